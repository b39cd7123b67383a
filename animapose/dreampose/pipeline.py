"""DreamPose's inference steps as native ComfyUI values (CLIP_VISION, CONDITIONING, LATENT, GUIDER, NOISE, IMAGE).

Data flow: reference photo(s) -> ``image_conditioning`` (CLIP ViT-B/32 tokens + pooled VAE latent, mixed by the
adapter into 50 cross-attention tokens) -> ``pose_conditioning`` (the pose window of every frame attached as concat
conditioning, an empty or key-frame latent of one row per frame) -> ``Guider_DualCFG`` -> ``sample_frames``
(several independent frames per UNet call) -> ``decode`` (the value range mapped back, the frame fit undone).

Value ranges ("clean", the default, or "legacy"): the released checkpoints were trained on [0, 1] pictures and
poses, while the official test.py fed the adapter's VAE branch 0-255 pixels, normalised poses to [-1, 1] and
min-max stretched each output frame. "legacy" reproduces test.py for parity; "clean" feeds what training fed
(except CLIP, which always gets the correctly preprocessed picture: training rescaled it twice, a bug) and maps the
output from the [0, 1] picture space the model generates in. The choice is made once, on the image conditioning,
and travels with the conditioning and the latent.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..comfy_seam import comfy_model_management, comfy_model_patcher, comfy_utils
from ..errors import AnimaPoseError, require_choice
from ..numerics import warn_if_not_finite
from .adapter import SD_LATENT_SCALE, EmbeddingAdapter, vae_encode_input
from .clip_image import encode_images
from .guidance import build_conds, check_pose_frames
from .poses import pose_windows

log = logging.getLogger(__name__)

OFFICIAL_HW = (640, 512)  # (height, width) the adapter's vae2clip layer was built for
FITS = ["letterbox", "crop", "stretch"]
VALUE_RANGES = ["clean", "legacy"]
MULTI_IMAGE = ["average", "first"]
WINDOWS = ["clamp", "official", "single"]
META = "animapose_dreampose"


# -- CLIP ViT-B/32 as a native CLIP_VISION -----------------------------------------------------------------------

class B32ClipVision:
    """CLIP ViT-B/32 through transformers, shaped like ComfyUI's ``ClipVisionModel`` (``encode_image``,
    ``patcher``, ``load_device``), so it travels on CLIP_VISION sockets and ComfyUI manages its memory."""

    def __init__(self, hf_model, name: str):
        self.name = name
        self.model = hf_model.eval()
        self.load_device = comfy_model_management.text_encoder_device()
        # ModelPatcher records the device on the module it manages, which transformers models forbid (read-only
        # ``device``): it manages a plain holder instead.
        holder = torch.nn.Module()
        holder.clip = self.model
        self.patcher = comfy_model_patcher.ModelPatcher(
            holder, load_device=self.load_device, offload_device=comfy_model_management.text_encoder_offload_device())

    def get_sd(self):
        return self.model.state_dict()

    def tokens(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 50, 768) ``last_hidden_state`` as DreamPose reads it, on the intermediate device."""
        comfy_model_management.load_model_gpu(self.patcher)
        out = encode_images(self.model, images, "legacy")
        return out.float().to(comfy_model_management.intermediate_device())

    def encode_image(self, image, crop=True):
        """ComfyUI's CLIPVisionEncode entry point: the same features plus the pooled embedding (no projection)."""
        from ..comfy_seam import comfy_clip_vision

        comfy_model_management.load_model_gpu(self.patcher)
        from .clip_image import preprocess

        param = next(self.model.parameters())
        pixels = preprocess(image, "legacy").to(device=param.device, dtype=param.dtype)
        with torch.no_grad():
            out = self.model(pixel_values=pixels, output_hidden_states=True)
        dev = comfy_model_management.intermediate_device()
        result = comfy_clip_vision.Output()
        result["last_hidden_state"] = out.last_hidden_state.to(dev)
        result["penultimate_hidden_states"] = out.hidden_states[-2].to(dev)
        result["image_embeds"] = out.pooler_output.to(dev)
        return result


def load_clip_b32(path: str, name: str) -> B32ClipVision:
    from .clip_image import load_clip_vision

    return B32ClipVision(load_clip_vision(path, "clip_name"), name)


# -- fitting pictures and poses into the working resolution ---------------------------------------------------

def fit_box(src_hw: tuple[int, int], dst_hw: tuple[int, int], fit: str) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the source picture inside the destination frame (may exceed it for crop)."""
    (sh, sw), (dh, dw) = src_hw, dst_hw
    if fit == "stretch":
        return 0, 0, dh, dw
    scale = min(dh / sh, dw / sw) if fit == "letterbox" else max(dh / sh, dw / sw)
    h, w = max(1, round(sh * scale)), max(1, round(sw * scale))
    return (dh - h) // 2, (dw - w) // 2, h, w


def fit_channels_first(x: torch.Tensor, dst_hw: tuple[int, int], fit: str, fill: float = 0.0) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, dh, dw): letterboxed (padded with ``fill``), centre-cropped or stretched."""
    require_choice(fit, FITS, "fit")
    top, left, h, w = fit_box(tuple(x.shape[-2:]), dst_hw, fit)
    resized = F.interpolate(x.float(), (h, w), mode="bilinear", align_corners=False, antialias=True)
    out = torch.full((x.shape[0], x.shape[1], *dst_hw), fill, dtype=resized.dtype)
    # paste with clipping: letterbox pads (top, left >= 0), crop trims (top, left <= 0)
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + h, dst_hw[0]), min(left + w, dst_hw[1])
    out[:, :, y0:y1, x0:x1] = resized[:, :, y0 - top:y1 - top, x0 - left:x1 - left]
    return out


def fit_images(images: torch.Tensor, dst_hw: tuple[int, int], fit: str) -> torch.Tensor:
    """IMAGE (B, H, W, C) fitted into ``dst_hw``."""
    return fit_channels_first(images[..., :3].movedim(-1, 1), dst_hw, fit).movedim(1, -1).clamp(0, 1)


def unfit_frames(frames: torch.Tensor, src_hw: tuple[int, int], fit: str) -> torch.Tensor:
    """Undoes ``fit_images`` on generated frames: IMAGE at the frame size -> IMAGE at the source size (a cropped
    fit gives back the visible part of the source at its resolution, since nothing outside it was generated)."""
    dst_hw = tuple(frames.shape[1:3])
    if tuple(src_hw) == dst_hw:
        return frames
    x = frames.movedim(-1, 1)
    top, left, h, w = fit_box(tuple(src_hw), dst_hw, fit)
    if fit == "letterbox":
        x = x[:, :, top:top + h, left:left + w]
        size = tuple(src_hw)
    elif fit == "crop":
        size = (min(src_hw[0], round(dst_hw[0] * src_hw[0] / h)), min(src_hw[1], round(dst_hw[1] * src_hw[1] / w)))
    else:
        size = tuple(src_hw)
    x = F.interpolate(x, size, mode="bilinear", align_corners=False, antialias=True)
    return x.movedim(1, -1).clamp(0, 1)


# -- image conditioning -----------------------------------------------------------------------------------------

def image_conditioning(clip_vision, vae, adapter: EmbeddingAdapter, images: torch.Tensor, fit: str = "letterbox",
                       value_range: str = "clean", multi_image: str = "average") -> tuple[list, list]:
    """(positive, negative) CONDITIONING of the subject photo(s): adapter(CLIP tokens, pooled VAE latent) and the
    tokens of the official unconditional (all-black) picture."""
    require_choice(fit, FITS, "fit")
    require_choice(value_range, VALUE_RANGES, "value_range")
    require_choice(multi_image, MULTI_IMAGE, "multi_image")
    check_reference_models(clip_vision, adapter)
    fitted = fit_images(images, OFFICIAL_HW, fit)
    tokens = adapter_tokens(clip_vision, vae, adapter, fitted, value_range)
    tokens = tokens.mean(0, keepdim=True) if multi_image == "average" else tokens[:1]
    # The official unconditional picture is np.zeros((512, 640, 3)): black, landscape (its latent flattens in the
    # transposed order, which the adapter accepts).
    black = torch.zeros(1, OFFICIAL_HW[1], OFFICIAL_HW[0], 3)
    uncond = adapter_tokens(clip_vision, vae, adapter, black, value_range)
    meta = {"value_range": value_range, "photos": images.shape[0]}
    return [[tokens, {META: meta}]], [[uncond, {META: dict(meta)}]]


def reference_features(clip_vision, vae, pictures: torch.Tensor, value_range: str = "clean"):
    """(CLIP tokens (B, 50, 768), scaled VAE latent (B, 4, 80, 64)) of 640x512 pictures: the adapter's two inputs.
    Subject finetuning computes them once with this same function and trains the adapter on top."""
    clip_tokens = clip_vision.tokens(pictures)
    latent = vae.encode(vae_encode_input(pictures, value_range)).float() * SD_LATENT_SCALE
    return clip_tokens, latent


def check_reference_models(clip_vision, adapter) -> None:
    if not isinstance(clip_vision, B32ClipVision):
        raise AnimaPoseError(
            "clip_vision", "DreamPose was trained on CLIP ViT-B/32 features (50 tokens of width 768); this CLIP vision "
            "model is another one", "load openai/clip-vit-base-patch32 with 'Load DreamPose CLIP Vision (B/32)'")
    if not isinstance(adapter, EmbeddingAdapter):
        raise AnimaPoseError("adapter", "this is not a DreamPose adapter", "connect the adapter output of "
                             "'Load DreamPose UNet + Adapter'")


def adapter_tokens(clip_vision, vae, adapter, pictures, value_range) -> torch.Tensor:
    clip_tokens, latent = reference_features(clip_vision, vae, pictures, value_range)
    with torch.no_grad():
        adapter = adapter.to(device=latent.device, dtype=torch.float32)
        return adapter(clip_tokens.to(latent.device), latent).to(comfy_model_management.intermediate_device())


# -- poses ---------------------------------------------------------------------------------------------------

@dataclass
class PoseSequence:
    """DensePose UV of every frame, (N, 2, H, W) in [0, 1] with 0 on the background, at the source size."""

    uv: torch.Tensor
    source: str

    @property
    def frames(self) -> int:
        return self.uv.shape[0]

    @property
    def source_hw(self) -> tuple[int, int]:
        return tuple(self.uv.shape[-2:])

    def preview(self) -> torch.Tensor:
        """IMAGE of the poses: U in red, V in green (the layout ``uv_from_images`` reads back)."""
        rgb = torch.cat([self.uv, torch.zeros_like(self.uv[:, :1])], dim=1)
        return rgb.movedim(1, -1).float().clamp(0, 1)


def pose_conditioning(positive: list, negative: list, poses: PoseSequence, width: int, height: int,
                      fit: str = "letterbox", window: str = "clamp", vae=None, key_frame: torch.Tensor | None = None):
    """(positive, image_only, negative, latent): the three conds of dual CFG with every frame's pose window, and a
    latent of one row per pose frame (empty, or the key frame's latent for the official img2img start)."""
    require_choice(fit, FITS, "fit")
    require_choice(window, WINDOWS, "window")
    if width % 8 or height % 8:
        raise AnimaPoseError("width", f"{width}x{height} is not a multiple of 8", "use multiples of 8 (512x640 is "
                             "DreamPose's training size)")
    value_range = _meta(positive).get("value_range", "clean")
    uv = fit_channels_first(poses.uv, (height, width), fit)
    windows = pose_windows(uv, (height // 8, width // 8), window, value_range)
    pos, middle, neg = build_conds(positive, negative, windows)
    if key_frame is not None:
        if vae is None:
            raise AnimaPoseError("vae", "a key frame is given but no VAE to encode it", "connect the DreamPose VAE")
        picture = fit_images(key_frame[:1], (height, width), fit)
        if value_range == "clean":  # the model generates in the [0, 1] picture space it was trained on
            picture = (picture + 1.0) / 2.0
        samples = vae.encode(picture).float().repeat(poses.frames, 1, 1, 1)
    else:
        samples = torch.zeros(poses.frames, 4, height // 8, width // 8)
    latent = {"samples": samples, META: {"value_range": value_range, "fit": fit, "source_hw": poses.source_hw}}
    return pos, middle, neg, latent


def _meta(conditioning: list) -> dict:
    for _, d in conditioning:
        if META in d:
            return d[META]
    return {}


# -- sampling ---------------------------------------------------------------------------------------------------

class SharedNoise:
    """One noise picture for every frame, as the official code draws ``fixed_noise`` once per run."""

    def __init__(self, seed: int):
        self.seed = seed

    def generate_noise(self, input_latent: dict) -> torch.Tensor:
        latent = input_latent["samples"]
        g = torch.Generator().manual_seed(self.seed)
        one = torch.randn((1, *latent.shape[1:]), generator=g, dtype=torch.float32)
        return one.expand(latent.shape[0], *latent.shape[1:]).contiguous().to(latent.dtype)


def sample_frames(guider, sampler, sigmas: torch.Tensor, noise, latent: dict, frames_per_batch: int) -> dict:
    """Samples the frames of ``latent`` in batches of ``frames_per_batch`` with the same guider, sampler, sigmas and
    noise a single SamplerCustomAdvanced run would use; each batch sees exactly its frames' pose windows and noise.

    Frames are independent in DreamPose, so batching only trades memory for speed. ComfyUI's progress bar covers
    all batches; a Cancel between batches (or inside one, at the next step) stops with nothing left patched, as
    every batch is a complete ``guider.sample`` call that cleans up after itself.
    """
    samples, full_noise = prepare_frames(guider, noise, latent)
    frames = samples.shape[0]
    ranges = batch_ranges(frames, frames_per_batch)
    steps = max(1, len(sigmas) - 1)
    pbar = comfy_utils.ProgressBar(steps * len(ranges))
    outputs = []
    for b, (lo, hi) in enumerate(ranges):
        comfy_model_management.throw_exception_if_processing_interrupted()

        def callback(step, x0, x, total, _b=b):
            pbar.update_absolute(_b * steps + step + 1, steps * len(ranges))

        out = sample_frame_batch(guider, sampler, sigmas, full_noise, samples, lo, hi, getattr(noise, "seed", None),
                                 callback=callback)
        outputs.append(out.to(comfy_model_management.intermediate_device()))
    return assemble_frames(latent, outputs, "DreamPose Sampler")


def prepare_frames(guider, noise, latent: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(samples, noise) of the whole clip: the latent with ComfyUI's empty-latent channel fix, checked against the
    pose windows, and the noise drawn once, exactly as SamplerCustomAdvanced would, for the batches to slice."""
    from ..comfy_seam import comfy_sample

    samples = comfy_sample.fix_empty_latent_channels(guider.model_patcher, latent["samples"])
    check_pose_frames(guider, samples.shape[0])
    return samples, noise.generate_noise({**latent, "samples": samples})


def batch_ranges(frames: int, frames_per_batch: int) -> list[tuple[int, int]]:
    """The (first, end) frames of every batch, in frame order."""
    per = max(1, min(frames_per_batch, frames))
    return [(lo, min(frames, lo + per)) for lo in range(0, frames, per)]


def sample_frame_batch(guider, sampler, sigmas: torch.Tensor, full_noise: torch.Tensor, samples: torch.Tensor,
                       lo: int, hi: int, seed, callback=None) -> torch.Tensor:
    """Frames ``lo:hi`` sampled on their own: the one unit of work of every frame-batch sampler (in-process or on a
    cluster's workers), so that all of them give the same frames for the same batches."""
    part = frame_subset_guider(guider, lo, hi, samples.shape[0])
    return part.sample(full_noise[lo:hi], samples[lo:hi], sampler, sigmas, callback=callback, disable_pbar=True,
                       seed=seed)


def assemble_frames(latent: dict, outputs: list[torch.Tensor], node: str) -> dict:
    """The LATENT of the batches' outputs in frame order, carrying the input latent's DreamPose metadata."""
    result = {k: v for k, v in latent.items() if k not in ("batch_index", "noise_mask")}
    result["samples"] = torch.cat(outputs)
    warn_if_not_finite(result["samples"], node)
    return result


def frame_subset_guider(guider, lo: int, hi: int, frames: int):
    """A copy of ``guider`` whose conds hold only frames ``lo:hi`` of every per-frame tensor (pose windows, and
    token batches with a row per frame); the original guider is not changed."""
    part = copy.copy(guider)
    part.original_conds = {name: [_subset_cond(c, lo, hi, frames) for c in conds]
                           for name, conds in guider.original_conds.items()}
    part.conds = {}
    return part


def _subset_cond(cond: dict, lo: int, hi: int, frames: int) -> dict:
    out = dict(cond)
    for key, value in cond.items():
        if isinstance(value, torch.Tensor) and value.ndim > 0 and value.shape[0] == frames and frames > 1:
            out[key] = value[lo:hi]
    return out


# -- decoding ---------------------------------------------------------------------------------------------------

def decode(vae, latent: dict) -> torch.Tensor:
    """IMAGE of the generated frames, with the value range of the run and the frame fit undone."""
    meta = latent.get(META, {})
    images = vae.decode(latent["samples"]).float()
    if images.ndim == 5:
        images = images.reshape(-1, *images.shape[-3:])
    if meta.get("value_range", "clean") == "legacy":
        # test.py's "fix normalization": each frame stretched to the full 0-255 range on its own
        lo = images.amin(dim=(1, 2, 3), keepdim=True)
        hi = images.amax(dim=(1, 2, 3), keepdim=True)
        images = (images - lo) / (hi - lo).clamp_min(1e-8)
    else:
        # ComfyUI's VAE decode maps the model's [-1, 1] output to [0, 1]; a model trained on [0, 1] targets
        # generates in [0, 1] already, so undo that mapping.
        images = (images * 2.0 - 1.0).clamp(0, 1)
    if "source_hw" in meta:
        images = unfit_frames(images, tuple(meta["source_hw"]), meta.get("fit", "letterbox"))
    return even_size(images)


def even_size(images: torch.Tensor) -> torch.Tensor:
    """Drops the last row and/or column of frames with an odd height or width: H.264 and the other 4:2:0 encoders
    behind ComfyUI's video saving refuse odd sizes (poses of 65x81 would sample, then fail to save)."""
    h, w = images.shape[1] - images.shape[1] % 2, images.shape[2] - images.shape[2] % 2
    if (h, w) != tuple(images.shape[1:3]) and h > 0 and w > 0:
        log.info("AnimaPose: frames cropped from %dx%d to %dx%d, which video encoders accept",
                 images.shape[2], images.shape[1], w, h)
        images = images[:, :h, :w]
    return images
