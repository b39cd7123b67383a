"""Inflating a ComfyUI UNet with a motion model, through ModelPatcher APIs only.

What ``apply_motion_model`` attaches to a *clone* of the incoming MODEL, all under the key ``KEY``:
- the motion model's own ModelPatcher as an additional model, so ComfyUI loads, offloads and casts it together
  with the UNet (and motion LoRAs, which are weight patches on it, are applied by ComfyUI's own machinery); a motion
  model limited to part of the steps is instead loaded for those steps only (``residency.py``);
- an injection that inserts the motion modules into the UNet's blocks for the duration of one sampling run and
  removes them when the run ends (for formats whose original code normalised ResNets across frames, it also wraps
  those GroupNorms for the same period); see ``InsertionRecord`` for why a run, not a load, is the scope;
- a ``forward_timestep_embed`` patch that calls the inserted modules with the frame count;
- a diffusion-model wrapper that records the frame count of each UNet call, and an outer-sample wrapper that
  checks the frame count against the motion module's positions before any work is done;
- the motion module's noise schedule as a ``model_sampling`` object patch (when selected).

The frame axis is the latent batch: one UNet call carries ``len(cond_or_uncond)`` chunks of ``frames`` latents.

Applying another motion model to an inflated MODEL stacks it (``stages.py``): the second one gets the key
``animapose.2`` (then ``.3``...) for its additional model, injection, insertion record and wrappers, and the one
``forward_timestep_embed`` patch dispatches each module to its own stage (effect, scale, step range, keyframes).
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
from ..numerics import check_model_output, warn_if_not_finite
from . import NORM_AUTO, NORM_CHOICES, WEIGHT_DTYPE_NAMES, image_conditioning, lcm_i2v, residency, schedules
from .detect import (
    DIFFUSERS_SCOPE,
    MotionModelInfo,
    NormScope,
    build_motion_set,
    image_condition_weights,
    normalize_motion_state_dict,
)
from .module import MotionModelSet, MotionModule, group_norm_frames
from .multival import MotionKeyframe, as_multival
from .prompt_travel import check_conditioning_frames
from .stages import MotionStage, check_range, frames_per_chunk, make_dispatch, non_finite_error, stages_of

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
    image_encoder: comfy.model_patcher.ModelPatcher | None = None  # AnimateLCM-I2V's (see lcm_i2v)

    def clone(self) -> "MotionModel":
        return MotionModel(self.patcher.clone(), self.info, self.name, list(self.loras), self.extras,
                           self.image_encoder)


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
    encoder = lcm_i2v.load_image_encoder(extras, info.down_channels, dtype)
    return MotionModel(patcher, info, name, extras=extras, image_encoder=encoder)


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

class _RunState:
    frames: int | None = None


class FrameGroupNorm(torch.nn.Module):
    """Wraps one of the UNet's GroupNorms while injected, pooling its statistics over the frames of a clip
    (the original v1/HotshotXL ResNets ran GroupNorm on the 5-D video tensor)."""

    def __init__(self, inner: torch.nn.Module, state: _RunState):
        super().__init__()
        self.inner = inner
        self.state = state
        # chained motion models of the same kind share one wrapper; each adds its state while injected
        self.more_states: list[_RunState] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames = self.state.frames or next((s.frames for s in self.more_states if s.frames), None)
        if not frames or frames == 1 or x.shape[0] % frames:
            return self.inner(x)
        return group_norm_frames(x, frames, self.inner, True)


class InsertionRecord:
    """What one ModelPatcher inserted into the UNet it shares with its clones, and whether it is sampling now.

    The UNet is shared by every patcher made from one checkpoint, and ComfyUI ejects a patcher's injections from
    wherever it happens to be: ``ModelPatcher.__del__`` ejects a patcher that is still injected, so garbage collection
    of a dropped node output can run ``eject`` at any allocation, in any thread, while another patcher is iterating
    over the same UNet (``state_dict`` inside ``add_patches`` then fails with "OrderedDict mutated during
    iteration"), or while it samples with modules it found already inserted. So modules are inserted only between
    the ``ON_PRE_RUN`` and ``ON_CLEANUP`` callbacks of the patcher being sampled (``start_run``/``end_run``, the
    latter in ComfyUI's ``finally``): outside a run no patcher holds anything in the UNet, and a patcher that can be
    collected is never running. ComfyUI's own ``inject``/``eject`` calls (loading, unloading, ``use_ejected``) are
    honoured inside a run and do nothing outside it.

    ComfyUI's ``clone()`` copies both the injection list and the ``is_injected`` flag; the record is a patcher
    attachment and a clone starts with an empty one that is not running: a patcher only ever removes what it
    inserted itself, never what its parent (or a cached node's output) relies on."""

    def __init__(self):
        self.inserted: list[tuple[torch.nn.Sequential, torch.nn.Module]] = []
        self.wrapped: list[tuple[torch.nn.Sequential, torch.nn.Module]] = []
        self.joined: list[FrameGroupNorm] = []
        self.running = False

    @property
    def holds(self) -> bool:
        return bool(self.inserted or self.wrapped or self.joined)

    def on_model_patcher_clone(self) -> "InsertionRecord":
        return InsertionRecord()


class MotionInjection:
    """Inserts the modules of one MotionModelSet at their slots; ``eject`` undoes exactly what the same patcher
    inserted. The instance holds configuration only; what was inserted lives in each patcher's record."""

    def __init__(self, motion_set: MotionModelSet, slots: list[Slot], resnet_across_frames: bool, state: _RunState,
                 key: str = KEY):
        self.motion_set = motion_set
        self.slots = slots
        self.resnet_across_frames = resnet_across_frames
        self.state = state
        self.key = key  # chained motion models each keep their own record

    def inject(self, model_patcher) -> None:
        record = model_patcher.get_attachment(self.key)
        if record is None or not record.running or record.holds:
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
                    if norm.state is not self.state and self.state not in norm.more_states:
                        norm.more_states.append(self.state)
                        record.joined.append(norm)
                    continue
                seq[0] = FrameGroupNorm(norm, self.state)
                record.wrapped.append((seq, norm))

    def eject(self, model_patcher) -> None:
        record = model_patcher.get_attachment(self.key)
        if record is None:
            return
        for norm in record.joined:
            if self.state in norm.more_states:
                norm.more_states.remove(self.state)
        record.joined.clear()
        for seq, module in reversed(record.inserted):
            for i, m in enumerate(seq):
                if m is module:
                    del seq[i]
                    break
        record.inserted.clear()
        for seq, norm in reversed(record.wrapped):
            seq[0] = norm
        record.wrapped.clear()


RUN_KEY = f"{KEY}.run"


def _records(model_patcher) -> list[tuple[str, InsertionRecord]]:
    return [(k, v) for k, v in model_patcher.attachments.items() if isinstance(v, InsertionRecord)]


def start_run(model_patcher) -> None:
    """``ON_PRE_RUN``: the patcher is about to sample (its weights are loaded); insert its motion modules."""
    for key, record in _records(model_patcher):
        record.running = True
        for injection in model_patcher.injections.get(key, []):
            injection.inject(model_patcher)


def end_run(model_patcher) -> None:
    """``ON_CLEANUP`` (ComfyUI calls it in a ``finally`` after every run, failed or interrupted ones included):
    remove what the run inserted, so the shared UNet is plain again before any other patcher can see it."""
    for key, record in _records(model_patcher):
        for injection in model_patcher.injections.get(key, []):
            injection.eject(model_patcher)
        record.running = False


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


def apply_motion_model(model, motion: MotionModel, motion_scale=1.0, beta_schedule: str = schedules.AUTOSELECT,
                       norm_scope: str = NORM_AUTO, scale=1.0, start_percent: float = 0.0, end_percent: float = 1.0,
                       keyframes: list[MotionKeyframe] | None = None) -> Applied:
    """Inflates a clone of ``model`` with ``motion``. ``motion_scale`` (the "effect") and ``scale`` (keys of the
    temporal attention) are floats or Multivals; ``start_percent``/``end_percent`` limit the motion model to part
    of the sampling, and ``keyframes`` change effect and scale by sampling percent. Applying to a MODEL that
    already carries motion models adds one more stage (its own key, injection and wrappers) instead of replacing
    them, so one module can run the early steps and another the late ones."""
    info = motion.info
    unet = getattr(model.model, "diffusion_model", None)
    if unet is None or not hasattr(unet, "input_blocks"):
        raise AnimaPoseError("model", f"{type(model.model).__name__} is not a UNet model",
                             "connect an SD1.5 or SDXL checkpoint's MODEL")
    slots = plan_slots(unet, info, unet_kind(model))
    if isinstance(motion_scale, (int, float)):
        motion_scale = require_finite(motion_scale, "motion_scale")
    if isinstance(scale, (int, float)):
        scale = require_finite(scale, "scale")
    scope = info.norm_scope if require_choice(norm_scope, NORM_CHOICES, "groupnorm") == NORM_AUTO else DIFFUSERS_SCOPE
    schedule = schedules.resolve(beta_schedule, info.beta_schedule)
    check_range(start_percent, end_percent, keyframes)

    m = model.clone()
    patches = m.model_options.get("transformer_options", {}).get("patches", {})
    previous = stages_of(patches.get("forward_timestep_embed_patch"))
    if any(s.modules and s.modules[0] is motion.patcher.model.get_submodule(slots[0].module) for s in previous):
        raise AnimaPoseError("motion_model", f"{motion.name} (or a LoRA'd copy of it, which shares its modules) is "
                             "already applied to this MODEL; the same modules cannot be inserted twice",
                             "to change its settings during sampling use 'AnimateDiff Motion Keyframe' on one Apply "
                             "node; chain Apply nodes only with different motion models")
    key = _free_key(m)
    mm = motion.patcher.clone()
    state = _RunState()
    injection = MotionInjection(mm.model, slots, scope.resnet, state, key)
    m.set_attachments(key, InsertionRecord())
    m.set_injections(key, [comfy.patcher_extension.PatcherInjection(inject=injection.inject, eject=injection.eject)])
    for call_type, callback in ((comfy.patcher_extension.CallbacksMP.ON_PRE_RUN, start_run),
                                (comfy.patcher_extension.CallbacksMP.ON_CLEANUP, end_run)):
        m.remove_callbacks_with_key(call_type, RUN_KEY)  # one pair serves every chained motion model
        m.add_callback_with_key(call_type, RUN_KEY, callback)

    stage = MotionStage(key, motion.name, [mm.model.get_submodule(s.module) for s in slots], as_multival(motion_scale),
                        as_multival(scale), scope.motion, start_percent, end_percent, list(keyframes or []), mm)
    if not stage.lazy:  # ComfyUI loads it with the UNet; a lazy one is loaded for its steps only (residency)
        m.set_additional_models(key, [mm])
    if previous:
        patches["forward_timestep_embed_patch"] = [
            p for p in patches["forward_timestep_embed_patch"] if not getattr(p[1], "animapose", False)]
    m.set_model_forward_timestep_embed_patch((MotionModule, make_dispatch([*previous, stage])))

    def diffusion_model_wrapper(executor, x, *args, **kwargs):
        transformer_options = args[4] if len(args) > 4 else kwargs.get("transformer_options", {})
        frames = frames_per_chunk(x, transformer_options)
        residency.settle(stages_of(transformer_options.get("patches", {}).get("forward_timestep_embed_patch")),
                         transformer_options)
        # the ResNet GroupNorms pool over frames only while this motion model is in its step range
        state.frames = frames if stage.begin_call(transformer_options, frames) else None
        try:
            return executor(x, *args, **kwargs)
        finally:
            state.frames = None
            stage.end_call()

    m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, key, diffusion_model_wrapper)
    m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, key, _frame_check(info, stage))
    m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, key, _output_check(stage))

    image_conditioning.attach(m, motion)
    lcm_i2v.attach(m, motion, mm.model)

    ms = schedules.model_sampling(m, schedule)
    if ms is not None:
        m.add_object_patch("model_sampling", ms)
    summary = (f"{motion.name}: {info.family}, scale {_describe(motion_scale)}, schedule {schedule}, GroupNorm across "
               f"frames: motion {'yes' if scope.motion else 'no'}, ResNets {'yes' if scope.resnet else 'no'}")
    if motion.loras:
        summary += ", LoRAs " + ", ".join(f"{n} ({s:g})" for n, s in motion.loras)
    if not stage.simple:
        summary += f"; {stage.summary()}"
    if previous:
        summary += f"; stacked on {', '.join(s.name for s in previous)}"
    log.info("AnimaPose: %s", summary)
    return Applied(m, schedule, scope, summary)


def _describe(value) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else as_multival(value).describe()


def _free_key(m) -> str:
    """``animapose`` for the first motion model of a MODEL, ``animapose.2``, ``animapose.3``... for chained ones."""
    used = set(m.injections) | set(m.additional_models) | set(m.attachments)
    if KEY not in used:
        return KEY
    n = 2
    while f"{KEY}.{n}" in used:
        n += 1
    return f"{KEY}.{n}"


def _frame_check(info: MotionModelInfo, stage: MotionStage):
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
                    node="Apply AnimateDiff Motion Model")
            if window is None and frames > limit:
                raise AnimaPoseError(
                    "motion_model", f"{frames} frames (the latent batch) are more than this motion module's "
                    f"{limit} positions ({info.family}), and no context windows are set",
                    f"add an 'AnimateDiff Context Options / Windows' node (context_length {min(16, limit)}) to the MODEL, "
                    f"or sample at most {limit} frames", node="Apply AnimateDiff Motion Model")
        check_conditioning_frames(guider, frames)
        sampling = guider.model_patcher.get_model_object("model_sampling")
        stage.prepare(frames, sampling.percent_to_sigma)
        try:
            out = executor(noise, *args, **kwargs)
        finally:
            stage.finish()
        warn_if_not_finite(out, f"sampling with {info.family}")
        return out

    return outer_sample_wrapper


def _output_check(stage: MotionStage):
    """The backstop against black videos: the first model call whose output holds NaN or infinity fails the run,
    naming the likely control. An APPLY_MODEL wrapper, so it runs outside the diffusion model: reading the result
    inside it would break a torch.compile'd UNet's graph."""
    def apply_model_wrapper(executor, x, t, *args, **kwargs):
        out = executor(x, t, *args, **kwargs)
        options = args[3] if len(args) > 3 else kwargs.get("transformer_options", {})
        check_model_output(x, out, lambda: non_finite_error(
            stages_of(options.get("patches", {}).get("forward_timestep_embed_patch")) or [stage],
            float(t.flatten()[0])))
        return out

    return apply_model_wrapper
