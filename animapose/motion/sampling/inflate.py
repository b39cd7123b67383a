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

import torch

from ...checkpoints import load_state_dict
from ...comfy_seam import comfy_model_management, comfy_model_patcher, comfy_ops, comfy_patcher_extension
from ...errors import AnimaPoseError, require_choice, require_finite
from ...numerics import check_model_output, warn_if_not_finite
from .. import NORM_AUTO, NORM_CHOICES, WEIGHT_DTYPE_NAMES
from ..addons import lcm_i2v
from ..addons import pia as image_conditioning
from ..controls.multival import MotionKeyframe, as_multival
from ..controls.prompt_travel import check_conditioning_frames
from ..formats.detect import (
    DIFFUSERS_SCOPE,
    MotionModelInfo,
    NormScope,
    build_motion_set,
    image_condition_weights,
    normalize_motion_state_dict,
)
from ..module import MotionModule
from . import residency, schedules
from .injection import KEY, RUN_KEY, InsertionRecord, MotionInjection, end_run, start_run
from .placement import RunState, plan_slots, unet_kind
from .stages import MotionStage, check_calls, check_range, frames_per_chunk, make_dispatch, non_finite_error, stages_of

log = logging.getLogger(__name__)



@dataclass
class MotionModel:
    """The value carried by the MOTION_MODEL socket: a ModelPatcher around the modules plus what was detected."""

    patcher: comfy_model_patcher.ModelPatcher
    info: MotionModelInfo
    name: str
    loras: list[tuple[str, float]] = field(default_factory=list)
    extras: dict[str, torch.Tensor] = field(default_factory=dict)  # PIA's conv_in (see image_conditioning)
    image_encoder: comfy_model_patcher.ModelPatcher | None = None  # AnimateLCM-I2V's (see lcm_i2v)

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
    return WEIGHT_DTYPES[name] or comfy_model_management.unet_dtype()


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
    motion_set = build_motion_set(sd, info, operations=comfy_ops.manual_cast)
    for p in motion_set.parameters():
        p.data = p.data.to(dtype)
    patcher = comfy_model_patcher.ModelPatcher(
        motion_set, load_device=comfy_model_management.get_torch_device(),
        offload_device=comfy_model_management.unet_offload_device())
    encoder = lcm_i2v.load_image_encoder(extras, info.down_channels, dtype)
    return MotionModel(patcher, info, name, extras=extras, image_encoder=encoder)


def add_motion_lora(motion: MotionModel, path: str, name: str, strength: float) -> MotionModel:
    """A copy of ``motion`` with a motion LoRA as weight patches (W += strength * up @ down, as the original
    loader merges it); the LoRA stays unmerged, so strengths can be changed and LoRAs stacked cheaply."""
    from ...comfy_seam import comfy_weight_adapter
    from ..formats.lora import parse_motion_lora

    strength = require_finite(strength, "strength")
    pairs = parse_motion_lora(load_state_dict(path, "lora_name", "motion LoRA"), "lora_name")
    out = motion.clone()
    params = out.patcher.model.state_dict()
    missing = [k for k in pairs if k not in params]
    if missing:
        raise AnimaPoseError("lora_name", f"{len(missing)} of the LoRA's layers do not exist in {motion.name} "
                             f"(e.g. {missing[0]}); motion LoRAs were trained for v2-type modules",
                             "use a motion LoRA made for this motion module (the official ones need mm_sd_v15_v2)")
    # ComfyUI's LoRA patch logs a shape mismatch and leaves the layer unpatched: refuse it here instead.
    wrong = [f"{k} ({tuple(up.shape)} x {tuple(down.shape)} vs {tuple(params[k].shape)})" for k, (up, down)
             in pairs.items() if params[k].ndim < 1 or up.shape[0] != params[k].shape[0]
             or down[0].numel() != params[k][0].numel()]
    if wrong:
        raise AnimaPoseError("lora_name", f"{len(wrong)} of the LoRA's layers do not fit {motion.name}'s weights "
                             f"(e.g. {wrong[0]})", "use a motion LoRA made for this motion module (the official "
                             "ones need mm_sd_v15_v2)")
    patches = {k: comfy_weight_adapter.LoRAAdapter(set(), (up, down, None, None, None, None)) for k, (up, down) in pairs.items()}
    out.patcher.add_patches(patches, strength)
    out.loras.append((name, strength))
    return out


# -- applying ---------------------------------------------------------------------------------------------------

@dataclass
class Applied:
    model: comfy_model_patcher.ModelPatcher
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
    state = RunState()
    injection = MotionInjection(mm.model, slots, scope.resnet, state, key)
    m.set_attachments(key, InsertionRecord())
    m.set_injections(key, [comfy_patcher_extension.PatcherInjection(inject=injection.inject, eject=injection.eject)])
    for call_type, callback in ((comfy_patcher_extension.CallbacksMP.ON_PRE_RUN, start_run),
                                (comfy_patcher_extension.CallbacksMP.ON_CLEANUP, end_run)):
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
        stage.calls = 0
        try:
            out = executor(x, *args, **kwargs)
        finally:
            state.frames = None
            stage.end_call()
        check_calls(stage)
        return out

    m.add_wrapper_with_key(comfy_patcher_extension.WrappersMP.DIFFUSION_MODEL, key, diffusion_model_wrapper)
    m.add_wrapper_with_key(comfy_patcher_extension.WrappersMP.OUTER_SAMPLE, key, _frame_check(info, stage))
    m.add_wrapper_with_key(comfy_patcher_extension.WrappersMP.APPLY_MODEL, key, _output_check(stage))

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
