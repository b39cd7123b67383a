"""Inflating a ComfyUI UNet with a motion model, through ModelPatcher APIs only.

What ``apply_motion_model`` attaches to a *clone* of the incoming MODEL, all under the key ``KEY``:
- the motion model's own ModelPatcher as an additional model, so ComfyUI loads, offloads and casts it together
  with the UNet (and motion LoRAs, which are weight patches on it, are applied by ComfyUI's own machinery);
- an injection that inserts the motion modules into the UNet's blocks when the model is patched for sampling
  and removes them when it is unpatched (for formats whose original code normalised ResNets across frames,
  it also wraps those GroupNorms for the same period);
- a ``forward_timestep_embed`` patch that calls the inserted modules with the frame count;
- a diffusion-model wrapper that records the frame count of each UNet call, and an outer-sample wrapper that
  checks the frame count against the motion module's positions before any work is done;
- the motion module's noise schedule as a ``model_sampling`` object patch (when selected).

The frame axis is the latent batch: one UNet call carries ``len(cond_or_uncond)`` chunks of ``frames`` latents.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import comfy.model_management
import comfy.model_patcher
import comfy.ops
import comfy.patcher_extension
import torch
from comfy.ldm.modules.attention import SpatialTransformer
from comfy.ldm.modules.diffusionmodules.openaimodel import ResBlock, Upsample

from ..checkpoints import load_state_dict
from ..errors import AnimaPoseError, require_choice, require_finite
from ..numerics import warn_if_not_finite
from . import NORM_AUTO, NORM_CHOICES, WEIGHT_DTYPE_NAMES, image_conditioning, schedules
from .detect import (
    DIFFUSERS_SCOPE,
    MotionModelInfo,
    NormScope,
    build_motion_set,
    image_condition_weights,
    normalize_motion_state_dict,
)
from .module import MotionModelSet, MotionModule, group_norm_frames

log = logging.getLogger(__name__)

KEY = "animapose"


@dataclass
class MotionModel:
    """The value carried by the MOTION_MODEL socket: a ModelPatcher around the modules plus what was detected."""

    patcher: comfy.model_patcher.ModelPatcher
    info: MotionModelInfo
    name: str
    loras: list[tuple[str, float]] = field(default_factory=list)
    extras: dict[str, torch.Tensor] = field(default_factory=dict)  # PIA's conv_in (see image_conditioning)

    def clone(self) -> "MotionModel":
        return MotionModel(self.patcher.clone(), self.info, self.name, list(self.loras), self.extras)


# Storage dtypes of the motion modules' weights ("default": whatever ComfyUI stores a UNet in, see weight_dtype).
WEIGHT_DTYPES = dict(zip(WEIGHT_DTYPE_NAMES, (None, torch.float32, torch.float16, torch.bfloat16,
                                              torch.float8_e4m3fn, torch.float8_e5m2)))


def weight_dtype(name: str = "default") -> torch.dtype:
    """The storage dtype for ``name``; "default" follows ComfyUI's UNet weight options (--fp16-unet, --bf16-unet,
    --fp8_e4m3fn-unet, ...; float32 on the CPU without flags), as a UNet loaded by the same ComfyUI would be."""
    if name not in WEIGHT_DTYPES:
        raise AnimaPoseError("weight_dtype", f"unknown weight dtype {name!r}", f"pick one of {', '.join(WEIGHT_DTYPES)}")
    return WEIGHT_DTYPES[name] or comfy.model_management.unet_dtype()


def load_motion_model(path: str, name: str, adapter_config: dict | None = None,
                      weight_dtype_name: str = "default") -> MotionModel:
    sd = load_state_dict(path, "model_name", "motion module")
    extras = image_condition_weights(sd, "model_name")
    sd, info = normalize_motion_state_dict(sd, "model_name", adapter_config)
    # Weights are cast to the storage dtype once, after loading (casting before load_state_dict loses precision
    # and was a real bug elsewhere). The manual_cast ops cast each weight to the dtype of the activations that
    # reach it, so the modules compute in the UNet's compute dtype whatever they are stored in (fp8 storage
    # included). Only parameters are cast: the stored position table stays float32 (fp8 would round it coarsely).
    dtype = weight_dtype(weight_dtype_name)
    motion_set = build_motion_set(sd, info, operations=comfy.ops.manual_cast)
    for p in motion_set.parameters():
        p.data = p.data.to(dtype)
    patcher = comfy.model_patcher.ModelPatcher(
        motion_set, load_device=comfy.model_management.get_torch_device(),
        offload_device=comfy.model_management.unet_offload_device())
    return MotionModel(patcher, info, name, extras=extras)


def add_motion_lora(motion: MotionModel, path: str, name: str, strength: float) -> MotionModel:
    """A copy of ``motion`` with a motion LoRA as weight patches (W += strength * up @ down, as the original
    loader merges it); the LoRA stays unmerged, so strengths can be changed and LoRAs stacked cheaply."""
    import comfy.weight_adapter

    from .lora import parse_motion_lora

    strength = require_finite(strength, "strength")
    pairs = parse_motion_lora(load_state_dict(path, "lora_name", "motion LoRA"), "lora_name")
    out = motion.clone()
    params = out.patcher.model.state_dict().keys()
    missing = [k for k in pairs if k not in params]
    if missing:
        raise AnimaPoseError("lora_name", f"{len(missing)} of the LoRA's layers do not exist in {motion.name} "
                             f"(e.g. {missing[0]}); motion LoRAs were trained for v2-type modules",
                             "use a motion LoRA made for this motion module (the official ones need mm_sd_v15_v2)")
    patches = {k: comfy.weight_adapter.LoRAAdapter(set(), (up, down, None, None, None, None)) for k, (up, down) in pairs.items()}
    out.patcher.add_patches(patches, strength)
    out.loras.append((name, strength))
    return out


# -- placement --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Slot:
    """One motion module's place: ``blocks[index]`` of the UNet, inserted at ``position`` of that sequential."""

    blocks: str  # "input_blocks" | "output_blocks" | "middle_block"
    index: int
    module: str  # dotted path inside MotionModelSet


def plan_slots(unet, info: MotionModelInfo, unet_kind: str | None = None, input_name: str = "motion_model") -> list[Slot]:
    """Where each module of ``info`` goes in a ComfyUI ``UNetModel``; raises when the two do not fit.
    ``unet_kind`` is the checkpoint family ComfyUI detected ("SD1.5", "SDXL", ...), for the error messages."""
    levels = len(unet.channel_mult)
    widths = [unet.model_channels * m for m in unet.channel_mult]
    res_blocks = list(unet.num_res_blocks)
    mm_levels = len(info.down_channels)
    if info.base in ("SD1.5", "SDXL") and unet_kind and info.base != unet_kind:
        raise AnimaPoseError(input_name, f"{info.base} motion module ({info.family}) on an {unet_kind} model",
                             f"load an {unet_kind} motion module, or switch the checkpoint to {info.base}")
    if mm_levels != levels:
        raise AnimaPoseError(input_name, f"the motion module has {mm_levels} levels but the model's UNet has {levels}",
                             "use a motion module made for this kind of checkpoint")
    if list(info.down_channels) != widths or list(info.up_channels) != widths[::-1]:
        raise AnimaPoseError(
            input_name, f"channel widths do not match: motion module {list(info.down_channels)}, UNet {widths}",
            "use a motion module made for this checkpoint family (SD1.5: 320/640/1280/1280, SDXL: 320/640/1280)")
    if any(n != info.down_per_level for n in res_blocks) or any(n + 1 != info.up_per_level for n in res_blocks):
        raise AnimaPoseError(
            input_name, f"the UNet has {res_blocks} res blocks per level, the motion module expects "
            f"{info.down_per_level} per down level and {info.up_per_level} per up level",
            "use a motion module made for this checkpoint family")
    if info.mid_channels is not None:
        if unet.middle_block is None or info.mid_channels != widths[-1]:
            raise AnimaPoseError(input_name, "the motion module has a mid-block module but the UNet's middle block "
                                 "does not fit it", "use a motion module made for this checkpoint family")

    slots = []
    index = 1  # input_blocks[0] is conv_in
    for level in range(levels):
        for j in range(res_blocks[level]):
            slots.append(Slot("input_blocks", index + j, f"down_blocks.{level}.motion_modules.{j}"))
        index += res_blocks[level] + (1 if level < levels - 1 else 0)
    index = 0
    for up in range(levels):
        for j in range(res_blocks[levels - 1 - up] + 1):
            slots.append(Slot("output_blocks", index + j, f"up_blocks.{up}.motion_modules.{j}"))
        index += res_blocks[levels - 1 - up] + 1
    if info.mid_channels is not None:
        slots.append(Slot("middle_block", 0, "mid_block.motion_modules.0"))
    return slots


def unet_kind(model) -> str | None:
    """The checkpoint family of a MODEL, from the model config ComfyUI detected."""
    name = type(model.model.model_config).__name__
    if name.startswith("SDXL"):
        return "SDXL"
    if name.startswith("SD15"):
        return "SD1.5"
    if name.startswith(("SD20", "SD21")):
        return "SD2.x"
    return None


def _insert_position(seq) -> int:
    """After the last ResBlock/SpatialTransformer of a block, i.e. before an Upsample (the original order)."""
    layers = list(seq)
    if seq is not None and layers and isinstance(layers[-1], Upsample):
        return len(layers) - 1
    return len(layers)


def _mid_position(seq) -> int:
    layers = list(seq)
    attn = [i for i, m in enumerate(layers) if isinstance(m, SpatialTransformer)]
    return attn[-1] + 1 if attn else 1


# -- runtime pieces -------------------------------------------------------------------------------------------

def frames_per_chunk(x: torch.Tensor, transformer_options: dict) -> int:
    """Frames in each cond/uncond chunk of a UNet batch (the latent batch is the frame axis)."""
    chunks = len(transformer_options.get("cond_or_uncond") or [0])
    if x.shape[0] % chunks:
        raise RuntimeError(f"batch {x.shape[0]} is not a multiple of {chunks} cond chunks")
    return x.shape[0] // chunks


class _RunState:
    frames: int | None = None


class FrameGroupNorm(torch.nn.Module):
    """Wraps one of the UNet's GroupNorms while injected, pooling its statistics over the frames of a clip
    (the original v1/HotshotXL ResNets ran GroupNorm on the 5-D video tensor)."""

    def __init__(self, inner: torch.nn.Module, state: _RunState):
        super().__init__()
        self.inner = inner
        self.state = state

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames = self.state.frames
        if not frames or frames == 1 or x.shape[0] % frames:
            return self.inner(x)
        return group_norm_frames(x, frames, self.inner, True)


class InsertionRecord:
    """What one ModelPatcher inserted into the UNet it shares with its clones.

    ComfyUI's ``clone()`` copies both the injection list and the ``is_injected`` flag, so a clone made while its
    parent is injected believes it is injected too, and ejects when it is discarded (a node that fails after
    cloning). The record is a patcher attachment, and a clone starts with an empty one: a patcher only ever removes
    what it inserted itself, never what its parent (or a cached node's output) still relies on."""

    def __init__(self):
        self.inserted: list[tuple[torch.nn.Sequential, torch.nn.Module]] = []
        self.wrapped: list[tuple[torch.nn.Sequential, torch.nn.Module]] = []

    def on_model_patcher_clone(self) -> "InsertionRecord":
        return InsertionRecord()


class MotionInjection:
    """Inserts the modules of one MotionModelSet at their slots; ``eject`` undoes exactly what the same patcher
    inserted. The instance holds configuration only; what was inserted lives in each patcher's record."""

    def __init__(self, motion_set: MotionModelSet, slots: list[Slot], resnet_across_frames: bool, state: _RunState):
        self.motion_set = motion_set
        self.slots = slots
        self.resnet_across_frames = resnet_across_frames
        self.state = state

    def inject(self, model_patcher) -> None:
        record = model_patcher.get_attachment(KEY)
        if record is None:
            record = InsertionRecord()
            model_patcher.set_attachments(KEY, record)
        if record.inserted or record.wrapped:
            return
        unet = model_patcher.model.diffusion_model
        for slot in self.slots:
            seq = unet.middle_block if slot.blocks == "middle_block" else getattr(unet, slot.blocks)[slot.index]
            module = self.motion_set.get_submodule(slot.module)
            if any(m is module for m in seq):
                # Another patcher of this UNet left it in place; a second copy would apply the motion twice.
                log.warning("AnimaPose: motion module %s is already in the UNet; not inserting it twice", slot.module)
                continue
            pos = _mid_position(seq) if slot.blocks == "middle_block" else _insert_position(seq)
            seq.insert(pos, module)
            record.inserted.append((seq, module))
        if self.resnet_across_frames:
            for seq in _resnet_norm_holders(unet):
                norm = seq[0]
                if isinstance(norm, FrameGroupNorm):
                    continue
                seq[0] = FrameGroupNorm(norm, self.state)
                record.wrapped.append((seq, norm))

    def eject(self, model_patcher) -> None:
        record = model_patcher.get_attachment(KEY)
        if record is None:
            return
        for seq, module in reversed(record.inserted):
            for i, m in enumerate(seq):
                if m is module:
                    del seq[i]
                    break
        record.inserted.clear()
        for seq, norm in reversed(record.wrapped):
            seq[0] = norm
        record.wrapped.clear()


def _resnet_norm_holders(unet) -> list[torch.nn.Sequential]:
    """The Sequentials whose first layer is a ResBlock GroupNorm or the output GroupNorm (conv_norm_out)."""
    holders = []
    for m in unet.modules():
        if isinstance(m, ResBlock):
            holders += [m.in_layers, m.out_layers]
    return holders + [unet.out]


# -- applying ---------------------------------------------------------------------------------------------------

@dataclass
class Applied:
    model: comfy.model_patcher.ModelPatcher
    schedule: str
    norm_scope: NormScope
    summary: str


def apply_motion_model(model, motion: MotionModel, motion_scale: float = 1.0, beta_schedule: str = schedules.AUTOSELECT,
                       norm_scope: str = NORM_AUTO) -> Applied:
    info = motion.info
    unet = getattr(model.model, "diffusion_model", None)
    if unet is None or not hasattr(unet, "input_blocks"):
        raise AnimaPoseError("model", f"{type(model.model).__name__} is not a UNet model",
                             "connect an SD1.5 or SDXL checkpoint's MODEL")
    slots = plan_slots(unet, info, unet_kind(model))
    motion_scale = require_finite(motion_scale, "motion_scale")
    scope = info.norm_scope if require_choice(norm_scope, NORM_CHOICES, "groupnorm") == NORM_AUTO else DIFFUSERS_SCOPE
    schedule = schedules.resolve(beta_schedule, info.beta_schedule)

    m = model.clone()
    _remove_previous(m)
    mm = motion.patcher.clone()
    state = _RunState()
    injection = MotionInjection(mm.model, slots, scope.resnet, state)
    m.set_additional_models(KEY, [mm])
    m.set_injections(KEY, [comfy.patcher_extension.PatcherInjection(inject=injection.inject, eject=injection.eject)])

    def call_module(layer, x, emb, context, transformer_options, *args, **kwargs):
        return layer(x, frames_per_chunk(x, transformer_options), motion_scale, scope.motion)

    call_module.animapose = True
    m.set_model_forward_timestep_embed_patch((MotionModule, call_module))

    def diffusion_model_wrapper(executor, x, *args, **kwargs):
        transformer_options = args[4] if len(args) > 4 else kwargs.get("transformer_options", {})
        state.frames = frames_per_chunk(x, transformer_options)
        try:
            return executor(x, *args, **kwargs)
        finally:
            state.frames = None

    m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, KEY, diffusion_model_wrapper)
    m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, KEY, _frame_check(info))

    image_conditioning.attach(m, motion)

    ms = schedules.model_sampling(m, schedule)
    if ms is not None:
        m.add_object_patch("model_sampling", ms)
    summary = (f"{motion.name}: {info.family}, scale {motion_scale:g}, schedule {schedule}, GroupNorm across frames: "
               f"motion {'yes' if scope.motion else 'no'}, ResNets {'yes' if scope.resnet else 'no'}")
    if motion.loras:
        summary += ", LoRAs " + ", ".join(f"{n} ({s:g})" for n, s in motion.loras)
    log.info("AnimaPose: %s", summary)
    return Applied(m, schedule, scope, summary)


def _remove_previous(m) -> None:
    """Applying a motion model to an already inflated MODEL replaces the earlier one rather than stacking."""
    m.remove_injections(KEY)
    m.remove_attachments(KEY)
    m.remove_additional_models(KEY)
    for kind in (comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, comfy.patcher_extension.WrappersMP.OUTER_SAMPLE):
        m.remove_wrappers_with_key(kind, KEY)
    patches = m.model_options.get("transformer_options", {}).get("patches", {})
    if "forward_timestep_embed_patch" in patches:
        patches["forward_timestep_embed_patch"] = [
            p for p in patches["forward_timestep_embed_patch"] if not getattr(p[1], "animapose", False)]


def _frame_check(info: MotionModelInfo):
    def outer_sample_wrapper(executor, noise, *args, **kwargs):
        frames = noise.shape[0]
        limit = info.position_length
        guider = executor.class_obj
        handler = guider.model_options.get("context_handler")
        window = getattr(handler, "context_length", None) if getattr(handler, "dim", 0) == 0 else None
        if limit is not None:
            if window is not None and window > limit and frames > window:
                raise AnimaPoseError(
                    "motion_model", f"the context windows are {window} frames long but this motion module "
                    f"({info.family}) has only {limit} positions",
                    f"set context_length to at most {limit} in the context windows node",
                    node="AnimaPose Apply Motion Model")
            if window is None and frames > limit:
                raise AnimaPoseError(
                    "motion_model", f"{frames} frames (the latent batch) are more than this motion module's "
                    f"{limit} positions ({info.family}), and no context windows are set",
                    f"add an 'AnimaPose Context Windows' node (context_length {min(16, limit)}) to the MODEL, "
                    f"or sample at most {limit} frames", node="AnimaPose Apply Motion Model")
        out = executor(noise, *args, **kwargs)
        warn_if_not_finite(out, f"sampling with {info.family}")
        return out

    return outer_sample_wrapper
