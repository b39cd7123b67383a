"""AnimateDiff motion-module and MotionLoRA training on copies of native ComfyUI objects.

The original recipe (guoyww/AnimateDiff ``train.py`` with ``configs/training/v1/training.yaml``): the image UNet is
frozen and only the temporal modules train; a clip's frames are VAE-encoded, noised at one uniform timestep of the
1000-step schedule AnimateDiff trained with (diffusers' "linear" betas 0.00085..0.012, ComfyUI's ``sqrt_linear``),
and the UNet's noise prediction over all frames is scored by MSE (ε-prediction); captions are replaced by the empty
prompt 10% of the time (``cfg_random_null_text_ratio``); AdamW at lr 1e-4, constant, gradients clipped to 1.0.

Two modes:
- ``motion_module``: a full motion module. Without a starting module a new one is built to fit the UNet (its widths,
  res blocks per level and a mid-block module: the v2 architecture) with PyTorch's default init and every
  ``proj_out`` at zero (the original ``zero_initialize``), so training starts from the image model's own output.
  With one it continues from its weights (LoRAs already on it merged in).
- ``motion_lora``: the starting module is frozen and a rank-r LoRA trains on the ``to_q/to_k/to_v/to_out`` projections
  of every temporal attention (the official MotionLoRA layout); ``down`` starts at N(0, 1/r), ``up`` at zero.

What flows in is never changed: the UNet is copied in fp32 with its patches applied (the MODEL's LoRAs are part of
what stays frozen), the modules are inserted into that copy only, and the outputs are new motion models (the LoRA as
weight patches on a clone of the input motion model, as 'Load AnimateDiff Motion LoRA' adds one). Saved files are in
the original layouts ``load_motion_model`` / ``add_motion_lora`` (and other packs) read.

Differences from train.py: the VAE latents are ComfyUI's posterior mean, encoded once before training (train.py drew
``latent_dist.sample()`` each step; the SD VAE's posterior spread is tiny); a clip is ``frames`` consecutive frames
``stride`` apart from a random start, as its WebVid dataset sampled them.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..comfy_seam import comfy_model_management
from ..errors import AnimaPoseError
from ..output_names import MODEL_EXTENSIONS
from .loop import (
    Precision,
    ProgressFn,
    Updater,
    checkpoint_modules,
    effective_weights,
    highest_modules,
    run_updates,
    trainable_unet,
    training_device,
    training_mode,
)
from .settings import DEFAULTS, MODES, PRECISIONS, MotionTrainSettings  # noqa: F401  (the node and CLI use them)

log = logging.getLogger(__name__)

NUM_TIMESTEPS = 1000
BETA_START, BETA_END = 0.00085, 0.012
POSITIONS = 32  # the v2/v3 position table (temporal_position_encoding_max_len)
PROJECTIONS = ("to_q", "to_k", "to_v", "to_out")
__all__ = ["PRECISIONS", "MODES", "MotionTrainSettings", "Clips", "train_motion", "save_motion_module",
           "save_motion_lora"]


def animatediff_alphas_cumprod() -> torch.Tensor:
    """The training schedule of every AnimateDiff SD1.5 release: betas linearly spaced from 0.00085 to 0.012."""
    betas = torch.linspace(BETA_START, BETA_END, NUM_TIMESTEPS, dtype=torch.float64)
    return torch.cumprod(1.0 - betas, dim=0).float()


@dataclass
class Clips:
    """The training videos: ``videos[k]`` is (frames, H, W, 3) in [0, 1] (a ComfyUI IMAGE batch), conditioned on
    ``contexts[caption[k]]`` (cross-attention tokens (1, tokens, dim), e.g. a CONDITIONING's tensor); ``empty`` are
    the empty prompt's tokens for caption dropout (None: no dropout)."""

    videos: list[torch.Tensor]
    captions: list[int]
    contexts: list[torch.Tensor]
    empty: torch.Tensor | None = None
    # DreamPose conditioning: per video its frames' pose windows (frames, 10, h, w) at the latent size, fed to the
    # UNet as concat channels (``c_concat``) beside the noisy latents; ``contexts`` are then the adapter tokens of
    # each video's subject photo and ``empty`` those of the black picture
    poses: list[torch.Tensor] | None = None


@dataclass
class MotionTrainResult:
    losses: list[float]
    motion_state: dict[str, torch.Tensor] | None = None  # motion_module: the whole module (original layout)
    lora_pairs: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None  # motion_lora: {weight key: (up, down)}
    info: object = None
    probe: tuple[float, float] | None = None
    extra: dict = field(default_factory=dict)


# -- the modules being trained -------------------------------------------------------------------------------------

class LoRALinear(nn.Module):
    """``base(x) + up(down(x))`` with the base frozen: the update the original loader merges as W += up @ down."""

    def __init__(self, base: nn.Linear, rank: int, generator: torch.Generator):
        super().__init__()
        self.base = base.requires_grad_(False)
        device = base.weight.device
        down = torch.randn(rank, base.in_features, generator=generator) / rank
        self.down = nn.Parameter(down.to(device))
        self.up = nn.Parameter(torch.zeros(base.out_features, rank, device=device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + F.linear(F.linear(x, self.down.to(x.dtype)), self.up.to(x.dtype))


def new_motion_set(unet, seed: int):
    """A v2-architecture motion module fitting a ComfyUI UNet: default init, every ``proj_out`` at zero."""
    from ..motion.module import MotionModelSet, sinusoidal_positions

    widths = [unet.model_channels * m for m in unet.channel_mult]
    res = list(unet.num_res_blocks)
    if len(set(res)) != 1:
        raise AnimaPoseError("model", f"the UNet has {res} res blocks per level; a motion module needs one count",
                             "train on an SD1.5 or SDXL checkpoint")
    if any(w % 32 or w % 8 for w in widths):
        raise AnimaPoseError("model", f"UNet widths {widths} do not split into 32 norm groups and 8 heads",
                             "train on an SD1.5 or SDXL checkpoint")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        motion = MotionModelSet(down_channels=widths, up_channels=widths[::-1],
                                mid_channels=widths[-1] if unet.middle_block is not None else None,
                                down_per_level=res[0], up_per_level=res[0] + 1, position_length=POSITIONS,
                                stored_positions=True)
    for name, module in motion.named_modules():
        if name.endswith("temporal_transformer"):
            nn.init.zeros_(module.proj_out.weight)
            nn.init.zeros_(module.proj_out.bias)
        if hasattr(module, "pe") and isinstance(module.pe, torch.Tensor):
            module.pe.copy_(sinusoidal_positions(module.length, module.channels)[None])
    return motion


def _attention_blocks(motion_set):
    for name, module in motion_set.named_modules():
        if name.endswith(("attention_blocks.0", "attention_blocks.1")):
            yield name, module


def add_lora(motion_set, rank: int, generator: torch.Generator) -> dict[str, LoRALinear]:
    """Wraps every temporal-attention projection; {weight key of the projection: its LoRALinear}."""
    added = {}
    for name, attn in list(_attention_blocks(motion_set)):
        for proj in PROJECTIONS:
            if proj == "to_out":
                lora = LoRALinear(attn.to_out[0], rank, generator)
                attn.to_out[0] = lora
                added[f"{name}.to_out.0.weight"] = lora
            else:
                lora = LoRALinear(getattr(attn, proj), rank, generator)
                setattr(attn, proj, lora)
                added[f"{name}.{proj}.weight"] = lora
    return added


def lora_file_key(weight_key: str, factor: str) -> str:
    """``...attention_blocks.0.to_out.0.weight`` -> ``...attention_blocks.0.processor.to_out_lora.down.weight``."""
    head, proj = weight_key[:-len(".weight")].rsplit(".attention_blocks.", 1)
    index, proj = proj.split(".", 1)
    proj = proj.replace(".0", "") if proj.startswith("to_out") else proj
    return f"{head}.attention_blocks.{index}.processor.{proj}_lora.{factor}.weight"


# -- the run -------------------------------------------------------------------------------------------------------

def _check(model, vae, clips: Clips, motion, settings: MotionTrainSettings):
    unet = getattr(getattr(model, "model", None), "diffusion_model", None)
    if unet is None or not hasattr(unet, "input_blocks") or not hasattr(model, "get_key_patches"):
        raise AnimaPoseError("model", "this is not a UNet MODEL", "connect an SD1.5 checkpoint's MODEL")
    if settings.mode not in MODES:
        raise AnimaPoseError("mode", f"unknown mode '{settings.mode}'", f"use one of {', '.join(MODES)}")
    if settings.mode == "motion_lora" and motion is None:
        raise AnimaPoseError("motion_model", "a MotionLoRA trains on top of a motion module, and none is connected",
                             "connect 'Load AnimateDiff Motion Model' (e.g. mm_sd_v15_v2), or choose mode motion_module")
    if settings.frames < 2:
        raise AnimaPoseError("frames", f"{settings.frames} frame(s) per clip: motion needs at least 2",
                             "use 16 frames per clip (AnimateDiff's) or at least 2")
    if motion is not None and motion.info.position_length and settings.frames > motion.info.position_length:
        raise AnimaPoseError("frames", f"{settings.frames} frames per clip, but the motion module has only "
                             f"{motion.info.position_length} positions", f"use at most {motion.info.position_length}")
    if settings.frames > POSITIONS and motion is None:
        raise AnimaPoseError("frames", f"{settings.frames} frames per clip; a new module has {POSITIONS} positions",
                             f"use at most {POSITIONS} frames per clip")
    if settings.lora_rank < 1:
        raise AnimaPoseError("lora_rank", "the rank must be at least 1", "use e.g. 32")
    if not 0 <= settings.min_timestep < NUM_TIMESTEPS:
        raise AnimaPoseError("min_timestep", f"{settings.min_timestep} is outside the schedule's 0..{NUM_TIMESTEPS - 1}",
                             "use 0 (the original recipe) or e.g. 500 to train only the noisier half")
    if getattr(vae, "downscale_ratio", None) is None or not hasattr(vae, "encode"):
        raise AnimaPoseError("vae", "this is not a VAE", "connect the checkpoint's VAE")
    if not clips.videos:
        raise AnimaPoseError("images", "no training clips", "connect a batch of video frames")
    span = (settings.frames - 1) * settings.stride + 1
    short = [k for k, v in enumerate(clips.videos) if v.shape[0] < span]
    if short:
        raise AnimaPoseError("images", f"video {short[0]} has {clips.videos[short[0]].shape[0]} frames; a clip of "
                             f"{settings.frames} frames {settings.stride} apart needs {span}",
                             "give longer videos, or lower frames / stride")
    sizes = {tuple(v.shape[1:3]) for v in clips.videos}
    h, w = next(iter(sizes))
    if len(sizes) > 1 or h % 8 or w % 8:
        raise AnimaPoseError("images", f"frame sizes {sorted(sizes)}: all videos need one size, a multiple of 8",
                             "resize the frames (e.g. 'Upscale Image') to one size such as 256x256 or 512x512")


class MotionRun:
    """One training run's state: a frozen UNet copy with the motion modules inserted at ``slots``, the clips' latents
    and caption tokens, and the trainable parameters. ``from_comfy`` builds it from native ComfyUI objects; the demo
    models' script builds it from its own narrow UNet (``workshop/synthetic/tiny_models.py``) and trains it with the
    same loss, schedule and loop."""

    def __init__(self, unet, motion_set, slots, scope, latents: list[torch.Tensor], captions: list[int],
                 contexts: list[torch.Tensor], empty: torch.Tensor | None, settings: MotionTrainSettings,
                 device: torch.device, poses: list[torch.Tensor] | None = None,
                 alphas_cumprod: torch.Tensor | None = None):
        from ..motion.module import MotionModule
        from ..motion.sampling.placement import (
            FrameGroupNorm,
            RunState,
            insert_position,
            mid_position,
            resnet_norm_holders,
        )

        self.settings, self.device = settings, device
        self.precision = Precision(settings.precision, device)
        # AnimateDiff's schedule by default; a UNet trained on another (DreamPose on SD's) may train its module on it
        self.alphas = (animatediff_alphas_cumprod() if alphas_cumprod is None else alphas_cumprod.float()).to(device)
        self.generator = torch.Generator().manual_seed(settings.seed)
        self.latents = [x.to(device=device, dtype=torch.float32) for x in latents]
        self.captions = list(captions)
        self.contexts = [c.to(device=device, dtype=torch.float32) for c in contexts]
        self.empty = None if empty is None else empty.to(device=device, dtype=torch.float32)
        self.poses = None if poses is None else [p.to(device=device, dtype=torch.float32) for p in poses]
        if self.poses is not None and [p.shape[0] for p in self.poses] != [x.shape[0] for x in self.latents]:
            raise AnimaPoseError("poses", "every video needs one pose window per frame", "give each video's poses")
        self.unet, self.motion_set, self.scope = unet.requires_grad_(False), motion_set, scope
        self.loras = {}
        if settings.mode == "motion_lora":
            self.motion_set.requires_grad_(False)
            self.loras = add_lora(self.motion_set, settings.lora_rank, self.generator)
            self.params = [p for lora in self.loras.values() for p in (lora.down, lora.up)]
        else:
            self.motion_set.requires_grad_(True)
            self.params = list(self.motion_set.parameters())
        self.motion_set.train()
        for slot in slots:  # into the training copy only
            seq = self.unet.middle_block if slot.blocks == "middle_block" else getattr(self.unet, slot.blocks)[slot.index]
            pos = mid_position(seq) if slot.blocks == "middle_block" else insert_position(seq)
            seq.insert(pos, self.motion_set.get_submodule(slot.module))
        self.state = RunState()
        if scope.resnet:
            for seq in resnet_norm_holders(self.unet):
                seq[0] = FrameGroupNorm(seq[0], self.state)
        if settings.gradient_checkpointing:
            checkpoint_modules(highest_modules(self.unet))

        frames, across = settings.frames, scope.motion

        def call_module(layer, x, *args, **kwargs):
            return layer(x, frames, 1.0, across)

        self.options = {"patches": {"forward_timestep_embed_patch": [(MotionModule, call_module)]}}

    @classmethod
    def from_comfy(cls, model, vae, clips: Clips, motion, settings: MotionTrainSettings, device: torch.device):
        from ..motion.formats.detect import NormScope, normalize_motion_state_dict
        from ..motion.sampling.placement import plan_slots, unet_kind

        _check(model, vae, clips, motion, settings)
        latent_format = model.model.latent_format
        with torch.no_grad():  # the frozen VAE, once per frame
            latents = [latent_format.process_in(vae.encode(v[..., :3]).float()) for v in clips.videos]
        unet = trainable_unet(model, device).requires_grad_(False)
        if motion is None:
            motion_set = new_motion_set(unet, settings.seed).to(device)
            scope = NormScope(motion=False, resnet=False)
        else:
            motion_set = _motion_copy(motion, device)
            scope = motion.info.norm_scope
        _, info = normalize_motion_state_dict(motion_set.state_dict(), "motion_model")
        slots = plan_slots(unet, info, unet_kind(model))
        run = cls(unet, motion_set, slots, scope, latents, clips.captions, clips.contexts, clips.empty, settings,
                  device, clips.poses)
        run.info = info
        return run

    def loss(self, generator: torch.Generator, dropout: bool = True) -> torch.Tensor:
        s = self.settings
        span = (s.frames - 1) * s.stride + 1
        x0, contexts, concats = [], [], []
        for _ in range(s.batch_size):
            k = int(torch.randint(0, len(self.latents), (1,), generator=generator))
            start = int(torch.randint(0, self.latents[k].shape[0] - span + 1, (1,), generator=generator))
            x0.append(self.latents[k][start:start + span:s.stride])
            drop = self.empty is not None and dropout and \
                float(torch.rand((1,), generator=generator)) < s.uncond_probability
            context = self.empty if drop else self.contexts[self.captions[k]]
            contexts.append(context.expand(s.frames, -1, -1))
            if self.poses is not None:
                # dual CFG's three slots: (I, p), (I, 0) with pose dropout, (0, 0) with the image dropped
                drop_pose = dropout and float(torch.rand((1,), generator=generator)) < s.pose_dropout
                pose = self.poses[k][start:start + span:s.stride]
                concats.append(torch.zeros_like(pose) if drop or drop_pose else pose)
        x0 = torch.cat(x0)
        # One timestep per clip, as train.py draws it per video.
        t = torch.randint(s.min_timestep, NUM_TIMESTEPS, (s.batch_size,), generator=generator)
        t = t.repeat_interleave(s.frames)
        noise = torch.randn(x0.shape, generator=generator).to(self.device)
        tokens = max(c.shape[1] for c in contexts)
        context = torch.cat([c if c.shape[1] == tokens else c.repeat(1, tokens // c.shape[1], 1) for c in contexts])
        return self.noise_loss(x0, t, noise, context, torch.cat(concats) if concats else None)

    def noise_loss(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, context: torch.Tensor,
                   concat: torch.Tensor | None = None) -> torch.Tensor:
        """ε-MSE of the UNet with the motion modules on clips ``x0`` (whole clips of ``settings.frames`` frames along
        the batch) noised to per-frame timesteps ``t`` with ``noise``; ``concat`` (DreamPose's pose windows) joins the
        noisy latents on the channel axis, as ComfyUI feeds ``c_concat``."""
        a = self.alphas[t.to(self.device)].view(-1, 1, 1, 1)
        noisy = a.sqrt() * x0 + (1 - a).sqrt() * noise
        if concat is not None:
            noisy = torch.cat([noisy, concat.to(noisy.dtype)], dim=1)
        self.state.frames = self.settings.frames
        try:
            with self.precision.autocast():
                prediction = self.unet(noisy, timesteps=t.to(device=self.device, dtype=torch.float32),
                                       context=context, transformer_options=self.options)
        finally:
            self.state.frames = None
        return F.mse_loss(prediction.float(), noise)

    @torch.no_grad()
    def probe(self, draws: int, seed: int = 1234) -> float:
        """The mean loss over fixed draws (clips, timesteps, noise), without caption dropout: comparable before and
        after training, unlike the per-step losses."""
        generator = torch.Generator().manual_seed(seed)
        return sum(float(self.loss(generator, dropout=False)) for _ in range(draws)) / draws

    def motion_state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().to("cpu", torch.float32).clone() for k, v in self.motion_set.state_dict().items()}

    def lora_pairs(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        return {k: (m.up.detach().to("cpu", torch.float32).clone(), m.down.detach().to("cpu", torch.float32).clone())
                for k, m in self.loras.items()}


def _motion_copy(motion, device: torch.device):
    """An fp32 plain-torch copy of a motion model's modules, with its LoRA patches merged."""
    from ..motion.formats.detect import build_motion_set

    weights = effective_weights(motion.patcher, "", device)
    for name, buffer in motion.patcher.model.named_buffers():  # position tables are buffers, not in key patches
        weights.setdefault(name, buffer.detach().to(device=device, dtype=torch.float32, copy=True))
    return build_motion_set(weights, motion.info, device=device)


def train_motion(model, vae, clips: Clips, settings: MotionTrainSettings, motion=None,
                 progress: ProgressFn | None = None, probe_draws: int = 0) -> MotionTrainResult:
    """Trains a motion module or a MotionLoRA; returns the per-step losses and the trained weights."""
    device = training_device()
    label = "AnimateDiff " + ("MotionLoRA" if settings.mode == "motion_lora" else "motion module") + " training"
    with training_mode():
        run = MotionRun.from_comfy(model, vae, clips, motion, settings, device)
        try:
            result = train_run(run, label, progress, probe_draws)
            result.info = run.info
        finally:
            # An interrupt's traceback keeps this frame alive: drop the training copies now, not at the next GC.
            run.__dict__.clear()
            run = None
            comfy_model_management.soft_empty_cache()
    return result


def train_run(run: MotionRun, label: str, progress: ProgressFn | None = None, probe_draws: int = 0,
              log_every: int = 50) -> MotionTrainResult:
    """The updates of a prepared run (the shared loop); the trained weights on the CPU in fp32."""
    settings = run.settings
    before = run.probe(probe_draws) if probe_draws else None
    updater = Updater(run.params, settings.learning_rate, run.precision, clip_params=run.params)
    try:
        losses = run_updates(label, settings.steps, lambda: run.loss(run.generator), updater, progress, log_every)
    finally:
        updater = None  # the optimizer's moments: not kept alive by an interrupt's traceback
    result = MotionTrainResult(losses)
    if probe_draws:
        result.probe = (before, run.probe(probe_draws))
    if settings.mode == "motion_lora":
        result.lora_pairs = run.lora_pairs()
    else:
        result.motion_state = run.motion_state()
    return result


# -- outputs -------------------------------------------------------------------------------------------------------

def motion_model_from_state(state: dict[str, torch.Tensor], name: str):
    """A MOTION_MODEL value (as 'Load AnimateDiff Motion Model' gives) holding a trained module."""
    from ..comfy_seam import comfy_model_patcher, comfy_ops
    from ..motion.formats.detect import build_motion_set, normalize_motion_state_dict
    from ..motion.sampling.inflate import MotionModel

    sd, info = normalize_motion_state_dict(state, "motion_model")
    dtype = comfy_model_management.unet_dtype()
    motion_set = build_motion_set(sd, info, operations=comfy_ops.manual_cast).to(dtype)
    patcher = comfy_model_patcher.ModelPatcher(motion_set, load_device=comfy_model_management.get_torch_device(),
                                               offload_device=comfy_model_management.unet_offload_device())
    return MotionModel(patcher, info, name)


def motion_model_with_lora(motion, pairs: dict[str, tuple[torch.Tensor, torch.Tensor]], name: str,
                           strength: float = 1.0):
    """A clone of ``motion`` with a trained LoRA as weight patches, as 'Load AnimateDiff Motion LoRA' adds a file."""
    from ..comfy_seam import comfy_weight_adapter

    out = motion.clone()
    patches = {k: comfy_weight_adapter.LoRAAdapter(set(), (up, down, None, None, None, None))
               for k, (up, down) in pairs.items()}
    applied = out.patcher.add_patches(patches, strength)
    if len(applied) != len(patches):
        raise RuntimeError(f"{len(patches) - len(applied)} LoRA weights have no place in the motion model")
    out.loras.append((name, strength))
    return out


def lora_state_dict(pairs: dict[str, tuple[torch.Tensor, torch.Tensor]], dtype=torch.float32) -> dict:
    """The official MotionLoRA layout (``...processor.to_q_lora.down.weight``; no alpha stored)."""
    out = {}
    for key, (up, down) in pairs.items():
        out[lora_file_key(key, "down")] = down.to(dtype).contiguous()
        out[lora_file_key(key, "up")] = up.to(dtype).contiguous()
    return out


def _write(tensors: dict[str, torch.Tensor], path: Path, metadata: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if path.suffix == ".safetensors":
        import safetensors.torch

        safetensors.torch.save_file(tensors, str(tmp), metadata={"format": "pt", **metadata})
    else:  # .ckpt as the official releases: a plain dict under "state_dict"
        torch.save({"state_dict": tensors}, str(tmp))
    os.replace(tmp, path)
    log.info("saved %s", path)
    return path


def save_motion_module(state: dict[str, torch.Tensor], path, dtype=torch.float32) -> Path:
    tensors = {k: v.detach().to("cpu", dtype).contiguous() for k, v in state.items()}
    return _write(tensors, Path(path), {"animapose": "motion_module"})


def save_motion_lora(pairs: dict[str, tuple[torch.Tensor, torch.Tensor]], path, dtype=torch.float32) -> Path:
    return _write(lora_state_dict(pairs, dtype), Path(path), {"animapose": "motion_lora"})


def free_name(folders, stem: str, ext: str = ".safetensors") -> Path:
    """``folders[0]/stem.ext``, or ``stem_00001.ext`` ... when that name is taken in any of ``folders`` (the ones the
    loader lists; one folder may be given as such) under any model extension: a new training run never overwrites a
    file, nor puts a second file of one name into the loader's list."""
    folders = [Path(folders)] if isinstance(folders, (str, os.PathLike)) else [Path(f) for f in folders]
    candidate, n = stem, 0
    while any(os.path.lexists(f / (candidate + e)) for f in folders for e in {ext, *MODEL_EXTENSIONS}):
        n += 1
        candidate = f"{stem}_{n:05d}"
    return folders[0] / (candidate + ext)
