"""Motion-model stages: what one Apply node asks of its motion modules during sampling.

Several Apply nodes can be chained on one MODEL; each adds a stage (its own injection, key suffix, additional
model and wrappers, see ``inflate.apply_motion_model``). ComfyUI hands every ``MotionModule`` of the UNet to the
first ``forward_timestep_embed`` patch whose class matches, so one dispatcher, rebuilt by each Apply with all the
stages so far, routes each module to the stage that inserted it.

No silent noise: every motion module a stage inserted must be reached through the dispatcher in every UNet call
(``calls``, counted in Python, checked by the stage's diffusion-model wrapper at the end of the call), and every
per-call input an add-on prepares (``Lookup``) must be read by its modules. A ComfyUI that stopped honouring the
``forward_timestep_embed`` patch or the module insertion would otherwise return unanimated frames without a word;
here the run fails naming the Apply node (``check_calls``, ``check_reads``).

Per UNet call a stage knows (from the diffusion-model wrapper): the sigma, hence whether it is inside its
``start_percent``..``end_percent`` range and which keyframe applies, and which frames of the clip the call holds
(all of them, or one context window's ``index_list``). A stage with default controls calls the module exactly as
a plain Apply always did, so existing graphs give bitwise-identical results. Pure torch; no ComfyUI import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ...errors import AnimaPoseError
from ..controls.multival import MotionKeyframe, Multival, ResolvedControls

APPLY_NODE = "Apply AnimateDiff Motion Model"
# transformer_options entry {id(motion module): tensor} of features added to a module's input (AnimateLCM-I2V)
REFERENCE_FEATURES = "animapose_reference_features"
CAMERA_OPTION = "animapose_camera"  # transformer_options entry set by cameractrl's diffusion-model wrapper


def frames_per_chunk(x: torch.Tensor, transformer_options: dict) -> int:
    """Frames in each cond/uncond chunk of a UNet batch (the latent batch is the frame axis)."""
    chunks = len(transformer_options.get("cond_or_uncond") or [0])
    if x.shape[0] % chunks:
        raise RuntimeError(f"batch {x.shape[0]} is not a multiple of {chunks} cond chunks")
    return x.shape[0] // chunks


def sigma_of(transformer_options: dict) -> float | None:
    """The sigma of a UNet call (ComfyUI puts the batch's sigmas in ``transformer_options``), or None."""
    sigmas = transformer_options.get("sigmas")
    return float(sigmas.flatten()[0]) if isinstance(sigmas, torch.Tensor) else None


def check_range(start_percent: float, end_percent: float, keyframes: list[MotionKeyframe] | None) -> None:
    if start_percent >= end_percent:
        raise AnimaPoseError("end_percent", f"the range {start_percent:g}..{end_percent:g} is empty (start_percent "
                             "must come before end_percent)", "set end_percent above start_percent (0..1 of sampling)",
                             node=APPLY_NODE)
    for k in keyframes or []:
        if not start_percent <= k.start_percent < end_percent:
            raise AnimaPoseError("keyframes", f"a keyframe starts at {k.start_percent:g}, outside this motion model's "
                                 f"range {start_percent:g}..{end_percent:g}",
                                 "move the keyframe into the range, or widen start_percent/end_percent",
                                 node=APPLY_NODE)


@dataclass(eq=False)
class MotionStage:
    key: str
    name: str
    modules: list[torch.nn.Module]
    effect: Multival
    scale: Multival
    norm_motion: bool
    start_percent: float = 0.0
    end_percent: float = 1.0
    keyframes: list[MotionKeyframe] = field(default_factory=list)
    patcher: Any = None  # the ModelPatcher of the motion modules (loaded by ComfyUI, or by residency when lazy)
    # set per sampling / per UNet call
    resolved: ResolvedControls | None = None
    sigma_start: float = float("inf")
    sigma_end: float = 0.0
    keyframe_sigmas: list[float] = field(default_factory=list)
    now: tuple | None = None
    calls: int = 0  # dispatcher calls of this stage's modules in the current UNet call

    @property
    def simple(self) -> bool:
        """Default controls: the module is called as it always was (no sigma or frame bookkeeping at all)."""
        return (self.effect.constant and self.scale.constant and self.scale.value == 1.0 and not self.keyframes
                and self.start_percent <= 0.0 and self.end_percent >= 1.0)

    @property
    def lazy(self) -> bool:
        """Limited to part of the steps: loaded onto the device only for them (``residency``)."""
        return self.start_percent > 0.0 or self.end_percent < 1.0

    def in_range(self, sigma: float | None) -> bool:
        """Whether a UNet call at ``sigma`` lies in the stage's steps (calls without a sigma count as inside)."""
        return self.simple or sigma is None or self.sigma_end <= sigma <= self.sigma_start

    def summary(self) -> str:
        text = f"effect {self.effect.describe()}, scale {self.scale.describe()}"
        if self.start_percent > 0.0 or self.end_percent < 1.0:
            text += f", steps {self.start_percent:g}..{self.end_percent:g}"
        if self.keyframes:
            text += f", {len(self.keyframes)} keyframe(s)"
        return text

    def prepare(self, frames: int, percent_to_sigma) -> None:
        """Before sampling ``frames`` frames: refuse multivals that do not fit, convert percents to sigmas."""
        for mv in [self.effect, self.scale, *[v for k in self.keyframes for v in (k.effect, k.scale)]]:
            mv.check(frames)
        self.resolved = ResolvedControls(frames)
        if self.simple:
            return
        self.sigma_start = float(percent_to_sigma(self.start_percent)) if self.start_percent > 0.0 else float("inf")
        self.sigma_end = float(percent_to_sigma(self.end_percent)) if self.end_percent < 1.0 else 0.0
        self.keyframe_sigmas = [float(percent_to_sigma(k.start_percent)) for k in self.keyframes]

    def finish(self) -> None:
        self.resolved = None
        self.now = None

    def begin_call(self, transformer_options: dict, frames: int) -> bool:
        """At the start of a UNet call: note what applies to it; returns whether the stage is active."""
        if self.simple:
            return True
        sigma = sigma_of(transformer_options)
        active = self.in_range(sigma)
        effect, scale = self.effect, self.scale
        if sigma is not None:
            for k, ks in zip(self.keyframes, self.keyframe_sigmas):
                if sigma <= ks:
                    effect, scale = k.effect, k.scale
        window = transformer_options.get("context_window")
        index = list(getattr(window, "index_list", None) or range(frames))
        if len(index) != frames:
            index = list(range(frames))
        self.now = (active, effect, scale, index)
        return active

    def end_call(self) -> None:
        self.now = None

    def call(self, layer, x: torch.Tensor, transformer_options: dict) -> torch.Tensor:
        frames = frames_per_chunk(x, transformer_options)
        # CameraCtrl's per-call features (cameractrl.CameraCall), when a camera trajectory is applied
        cameras = transformer_options.get(CAMERA_OPTION)
        camera = cameras.for_module(layer, x, frames) if cameras is not None else None
        # AnimateLCM-I2V's features, looked up whether or not the stage is active (the lookups are counted)
        reference = _reference(layer, transformer_options)
        if self.simple:
            return layer(x if reference is None else x + reference, frames, self.effect.value, self.norm_motion,
                         camera=camera)
        if self.now is None:
            self.begin_call(transformer_options, frames)
        active, effect, scale, index = self.now
        if not active:
            return x
        x = x if reference is None else x + reference
        if self.resolved is None or self.resolved.frames <= max(index):
            self.resolved = ResolvedControls(max(max(index) + 1, frames))
        chunks = x.shape[0] // frames
        h, w = x.shape[-2:]
        e = self.resolved.effect(effect, index, chunks, h, w, x.device, x.dtype)
        ks = self.resolved.key_scale(scale, index, chunks, h, w, x.device, x.dtype)
        return layer(x, frames, e, self.norm_motion, ks, camera=camera)


# The largest values of the Apply node's widgets: beyond them a multival (or keyframe) is the likely culprit.
_EFFECT_LIMIT, _SCALE_LIMIT = 2.0, 10.0


def _unusual(mv: Multival, limit: float) -> bool:
    """Per-frame or masked, or a constant outside the widget's range: what a user set on purpose."""
    return not mv.constant or not 0.0 <= mv.value <= limit


def non_finite_error(stages: list[MotionStage], sigma: float | None) -> AnimaPoseError:
    """The error for a UNet output with NaN or infinity on a MODEL carrying these motion stages: it names the Apply
    node and the first control set beyond what its widgets allow (a multival, keyframes), else motion_scale."""
    suspects = []
    for stage in stages:
        if _unusual(stage.effect, _EFFECT_LIMIT):
            suspects.append((stage, "effect_multival" if not stage.effect.constant else "motion_scale"))
        if _unusual(stage.scale, _SCALE_LIMIT):
            suspects.append((stage, "scale_multival" if not stage.scale.constant else "scale"))
        if any(_unusual(k.effect, _EFFECT_LIMIT) or _unusual(k.scale, _SCALE_LIMIT) for k in stage.keyframes):
            suspects.append((stage, "keyframes"))
    stage, input_name = suspects[0] if suspects else (stages[-1], "motion_scale")
    at = f" at sigma {sigma:.4g}" if sigma is not None else ""
    problem = (f"the UNet's output turned NaN or infinite{at} with {stage.name} applied ({stage.summary()}), so "
               "every frame would come out black")
    if suspects:
        fix = ("bring the motion amounts back into the widgets' ranges (effect 0..2, scale 0..10), including the "
               "value and per_frame of any 'AnimateDiff Motion Multival' or 'AnimateDiff Motion Keyframe' connected")
    else:
        fix = ("the motion settings are ordinary, so check the checkpoint and the precision first (fp16 can "
               "overflow: try --bf16-unet or --fp32-unet), then lower motion_scale")
    return AnimaPoseError(input_name, problem, fix, node=APPLY_NODE)


def _reference(layer, transformer_options: dict) -> torch.Tensor | None:
    features = transformer_options.get(REFERENCE_FEATURES)
    return None if features is None else features.get(id(layer))


class Lookup:
    """An add-on's per-call input for the motion modules, ``{id(module): value}``, counting the lookups that found
    a value: after the UNet call every entry must have been read exactly once (``check_reads``)."""

    def __init__(self, items: dict):
        self.items = items
        self.reads = 0

    def __len__(self) -> int:
        return len(self.items)

    def get(self, key):
        value = self.items.get(key)
        if value is not None:
            self.reads += 1
        return value


def bypassed(what: str, seen: int, expected: int, node: str, input_name: str) -> AnimaPoseError:
    return AnimaPoseError(
        input_name, f"{what} took part {seen} of {expected} times in a UNet call: this ComfyUI bypassed the "
        "injection point the pack relies on, and the frames would come out unanimated", "update AnimaPose, or use "
        "a ComfyUI version listed in the pack's docs/compatibility.md, and report the ComfyUI version", node=node)


def check_calls(stage: MotionStage) -> None:
    """After a UNet call: each of the stage's modules went through the dispatcher once."""
    if stage.calls != len(stage.modules):
        raise bypassed(f"the motion modules of {stage.name}", stage.calls, len(stage.modules), APPLY_NODE,
                       "motion_model")


def check_reads(lookup: Lookup, what: str, node: str, input_name: str) -> None:
    """After a UNet call: every value of an add-on's lookup was read by its motion module."""
    if lookup.reads != len(lookup.items):
        raise bypassed(what, lookup.reads, len(lookup.items), node, input_name)


def make_dispatch(stages: list[MotionStage]):
    """The forward_timestep_embed handler for every MotionModule of the MODEL's stages."""
    by_id = {id(m): s for s in stages for m in s.modules}

    def call_module(layer, x, emb, context, transformer_options, *args, **kwargs):
        stage = by_id.get(id(layer))
        if stage is None:  # not one of ours (cannot happen through the pack's nodes); run it plainly
            return layer(x, frames_per_chunk(x, transformer_options))
        stage.calls += 1
        return stage.call(layer, x, transformer_options)

    call_module.animapose = True
    call_module.stages = list(stages)
    return call_module


def stages_of(patches: list) -> list[MotionStage]:
    for _, handler in patches or []:
        if getattr(handler, "animapose", False):
            return list(getattr(handler, "stages", []))
    return []
