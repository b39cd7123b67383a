"""AnimateLCM-I2V (a reference picture through an image encoder) on an inflated MODEL, through ModelPatcher APIs only.

The authors' UNet (G-U-N/AnimateLCM ``animatelcm_sd15/animatelcm/models/unet.py`` and ``unet_blocks.py``) encodes
the picture's latent once per call with ``img_encoder`` into one feature map per resolution level and, in every
down block, adds the level's feature to the hidden states of the block's *second* layer after its spatial
attention (after the ResNet in the attention-less last level) and before that layer's motion module. The same
latent serves the conditional and unconditional halves of CFG. Frame ``i`` of a clip gets the sinusoid of
position ``i`` scaled by ``motion_scale`` (0.8 in the authors' demo, "better identity with smaller scale";
AnimateDiff-Evolved calls it ``ref_drift``).

Two halves, as for PIA (``image_conditioning``):
- ``attach`` (called by ``apply_motion_model`` on its clone) marks the MODEL as carrying an AnimateLCM-I2V motion
  model: which motion modules take the features, and the encoder's ModelPatcher;
- ``reference_model`` (the reference-image node) clones that MODEL, adds the encoder as an additional model
  under ``KEY`` (ComfyUI loads, offloads and casts it with the UNet) and a diffusion-model wrapper that computes
  the features for the frames of each UNet call (a context window restarts the positions at 0, as
  AnimateDiff-Evolved does) and hands them to the motion modules through ``transformer_options``; the motion
  stage adds them right before the target module (``stages.MotionStage.call``), and only while it is active.

Where the original differs from what is reproduced here: it samples the VAE's latent distribution
(``latent_dist.sample()``) where ComfyUI's VAE encodes the mean, and it resizes and crops the picture to the
video's size where this resizes the encoded latent when the sampled latent has another size.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from ...comfy_seam import comfy_model_management, comfy_model_patcher, comfy_ops, comfy_patcher_extension, comfy_utils
from ...errors import AnimaPoseError, require_finite
from ..sampling.stages import REFERENCE_FEATURES, Lookup, check_reads, frames_per_chunk, stages_of
from .lcm_i2v_encoder import ImageEncoder, encoder_spec, split_encoder
from .pia import encode_picture

log = logging.getLogger(__name__)
NODE = "AnimateLCM-I2V Reference Image (picture to video)"

KEY = "animapose_lcm_i2v"
MARKER = "animapose_lcm_i2v_motion"
TARGET_MODULE = 1  # the original adds the features at the second layer of every down block (idx == 2, 1-based)
LATENT_CHANNELS = 4


@dataclass(frozen=True)
class I2VMarker:
    """Attachment saying that a MODEL carries an AnimateLCM-I2V motion model: its name, the encoder and, per
    level, the motion module the level's feature is added before."""

    name: str
    encoder: comfy_model_patcher.ModelPatcher
    targets: tuple[torch.nn.Module | None, ...]  # None: a level without a second layer (never gets its feature)


def load_image_encoder(extras: dict[str, torch.Tensor], down_channels: tuple[int, ...],
                       dtype: torch.dtype) -> comfy_model_patcher.ModelPatcher | None:
    """The encoder of an AnimateLCM-I2V file as a ModelPatcher (weights cast to ``dtype`` after a strict load,
    computing in the dtype of what reaches it); None when the file has none."""
    weights = split_encoder(extras)
    if not weights:
        return None
    encoder = ImageEncoder(encoder_spec(weights, down_channels, "model_name"), operations=comfy_ops.manual_cast)
    encoder.load_state_dict(weights, strict=True)
    for p in encoder.parameters():
        p.data = p.data.to(dtype)
    return comfy_model_patcher.ModelPatcher(encoder, load_device=comfy_model_management.get_torch_device(),
                                            offload_device=comfy_model_management.unet_offload_device())


# -- the motion-model side ----------------------------------------------------------------------------------------

def attach(m, motion, motion_set) -> None:
    """Marks the clone ``m`` when ``motion`` is AnimateLCM-I2V; a MODEL stacking other motion models after it
    keeps the mark (the I2V modules are still in its UNet)."""
    encoder = getattr(motion, "image_encoder", None)
    if encoder is None:
        return
    info = motion.info
    if info.down_per_level <= TARGET_MODULE:
        # SD1.5 has two layers per level; a reduced UNet with one never reaches the original's idx == 2
        log.warning("AnimateLCM-I2V: the UNet's down levels have %d layer(s); the original adds the picture at the "
                    "second, so the picture will have no effect", info.down_per_level)
    targets = tuple(motion_set.get_submodule(f"down_blocks.{level}.motion_modules.{TARGET_MODULE}")
                    if info.down_per_level > TARGET_MODULE else None for level in range(info.levels))
    m.set_attachments(MARKER, I2VMarker(motion.name, encoder, targets))


# -- the reference-image side -------------------------------------------------------------------------------------

class _Features:
    """The reference latent and the features computed from it, cached per sampling for the call shape."""

    def __init__(self, latent: torch.Tensor, strength: float, motion_scale: float, marker: I2VMarker):
        self.latent = latent
        self.strength = strength
        self.motion_scale = motion_scale
        self.marker = marker
        self.cache: tuple | None = None

    def for_call(self, encoder: ImageEncoder, frames: int, chunks: int, x: torch.Tensor) -> dict[int, torch.Tensor]:
        h, w = x.shape[-2:]
        key = (frames, chunks, h, w, x.device, x.dtype)
        if self.cache is None or self.cache[0] != key:
            latent = self.latent
            if tuple(latent.shape[-2:]) != (h, w):
                log.info("AnimateLCM-I2V: resizing the picture's latent %s to the sampled %s", tuple(latent.shape[-2:]),
                         (h, w))
                latent = comfy_utils.common_upscale(latent, w, h, "bilinear", "center")
            with torch.no_grad():
                features = encoder(latent.to(x.device, x.dtype), frames, self.motion_scale)
            features = [(self.strength * f).repeat(chunks, 1, 1, 1) for f in features]
            self.cache = (key, {id(t): f for t, f in zip(self.marker.targets, features) if t is not None})
        return self.cache[1]

    def clear(self) -> None:
        self.cache = None


def reference_model(model, vae, image: torch.Tensor, frames: int, strength: float = 1.0,
                    motion_scale: float = 0.8):
    """A clone of ``model`` (with AnimateLCM-I2V applied) that feeds ``image`` (the first of the batch) into its
    UNet, and an empty latent of ``frames`` at the picture's size (rounded down to whole latent pixels)."""
    strength = require_finite(strength, "strength")
    motion_scale = require_finite(motion_scale, "motion_scale")
    marker = model.get_attachment(MARKER)
    if marker is None:
        applied = [s.name for s in stages_of(model.model_options.get("transformer_options", {})
                                              .get("patches", {}).get("forward_timestep_embed_patch"))]
        what = (f"the motion model applied ({', '.join(applied)}) has no image encoder" if applied
                else "this MODEL has no motion model applied")
        raise AnimaPoseError("model", f"{what}, so nothing would read the picture",
                             "load AnimateLCM_sd15_i2v.ckpt with 'Load AnimateDiff Motion Model', apply it with 'Apply "
                             "AnimateDiff Motion Model' and connect that MODEL here")
    if frames < 1:
        raise AnimaPoseError("frames", f"{frames} frames", "render at least one frame")
    latent = encode_picture(model, vae, image, "AnimateLCM-I2V").float()
    h, w = latent.shape[-2:]
    if latent.shape[1] != LATENT_CHANNELS:
        raise AnimaPoseError("vae", f"the VAE gives {latent.shape[1]}-channel latents; AnimateLCM-I2V reads "
                             f"{LATENT_CHANNELS}", "connect the SD1.5 checkpoint's VAE")

    m = model.clone()
    m.set_additional_models(KEY, [marker.encoder.clone()])
    state = _Features(latent, strength, motion_scale, marker)
    encoder = marker.encoder.model

    def diffusion_model_wrapper(executor, x, *args, **kwargs):
        args = list(args)
        options = args[4] if len(args) > 4 else kwargs.get("transformer_options", {})
        frames_now = frames_per_chunk(x, options)
        lookup = Lookup(state.for_call(encoder, frames_now, x.shape[0] // frames_now, x))
        options = {**options, REFERENCE_FEATURES: lookup}
        if len(args) > 4:
            args[4] = options
        else:
            kwargs["transformer_options"] = options
        out = executor(x, *args, **kwargs)
        check_reads(lookup, "AnimateLCM-I2V's picture features", NODE, "image")
        return out

    def outer_sample_wrapper(executor, *args, **kwargs):
        try:
            return executor(*args, **kwargs)
        finally:
            state.clear()

    for kind, wrapper in ((comfy_patcher_extension.WrappersMP.DIFFUSION_MODEL, diffusion_model_wrapper),
                          (comfy_patcher_extension.WrappersMP.OUTER_SAMPLE, outer_sample_wrapper)):
        m.remove_wrappers_with_key(kind, KEY)  # a second reference node replaces the first one's picture
        m.add_wrapper_with_key(kind, KEY, wrapper)
    log.info("AnimateLCM-I2V: %s with a %dx%d latent, strength %g, motion_scale %g", marker.name, w, h, strength,
             motion_scale)
    return m, {"samples": torch.zeros(frames, LATENT_CHANNELS, h, w)}
