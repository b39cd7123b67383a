"""AnimateDiff controls: prompt travel, motion multivals and keyframes, FreeNoise and FreeInit."""

from __future__ import annotations

from comfy_api.latest import io

from ..animapose.motion import MAX_FRAMES
from ..animapose.motion.controls.multival import MULTIVAL_NODE, VALUE_MAX, VALUE_MIN
from ..animapose.motion.controls.prompt_travel import NODE as PROMPT_TRAVEL_NODE
from .common import MOTION_CATEGORY, PREFIX, PackNode, node_errors, node_info, queue_check

MultivalType = io.Custom("ANIMAPOSE_MULTIVAL")
KeyframesType = io.Custom("ANIMAPOSE_MOTION_KEYFRAMES")

CONTROLS_CATEGORY = f"{MOTION_CATEGORY}/controls"


class PromptTravel(PackNode):
    DISPLAY = PROMPT_TRAVEL_NODE

    @classmethod
    def define_schema(cls):
        from ..animapose.motion.controls.prompt_travel import INTERPOLATIONS

        return io.Schema(
            node_id=PREFIX + "PromptTravel",
            display_name=cls.DISPLAY,
            category=CONTROLS_CATEGORY,
            description=(
                "Changes the prompt over the clip: a schedule of 'frame: prompt' lines becomes per-frame CONDITIONING, "
                "each frame between two keyframes getting the interpolation of their text embeddings (and pooled "
                "outputs, for SDXL). Works with every sampler node and inside context windows, where each window gets "
                "its own frames' conditioning."),
            inputs=[
                io.Clip.Input("clip", tooltip="The CLIP of the checkpoint."),
                io.String.Input("text", multiline=True, default="0: a cat walking in a garden\n16: a dog walking in a garden",
                                tooltip="One keyframe per line, 'frame: prompt' (frames count from 0; FizzNodes' "
                                        "'\"16\": \"a dog\",' works too). Frames before the first keyframe and after "
                                        "the last hold their prompt. At most 20,000 characters; checked when the "
                                        "prompt is queued."),
                io.Int.Input("frames", default=16, min=1, max=MAX_FRAMES,
                             tooltip="Frames of the clip: the batch size of the latent you sample (checked before "
                                     "sampling)."),
                io.Combo.Input("interpolation", options=INTERPOLATIONS, default="linear",
                               tooltip="linear: frames between keyframes blend the two embeddings; hold: each "
                                       "keyframe's prompt holds until the next."),
            ],
            outputs=[io.Conditioning.Output(display_name="conditioning",
                                            tooltip="Per-frame conditioning for the positive input of a sampler.")],
        )

    @classmethod
    def validate_inputs(cls, text=None, frames=None):
        from ..animapose.motion.controls.prompt_travel import parse_schedule

        return queue_check(cls, {"text": text, "frames": frames},
                           lambda: text is None or parse_schedule(text, frames))

    @classmethod
    def execute(cls, clip, text: str, frames: int, interpolation: str) -> io.NodeOutput:
        from ..animapose.motion.controls.prompt_travel import encode_schedule, parse_schedule

        with node_errors(cls.DISPLAY):
            if clip is None:
                from ..animapose.errors import AnimaPoseError

                raise AnimaPoseError("clip", "no CLIP is connected (the checkpoint has none)",
                                     "connect the CLIP output of a checkpoint loader")
            schedule = parse_schedule(text, frames)
            cond = encode_schedule(clip, schedule, frames, interpolation)
        shown = "\n".join(f"{f}: {p}" for f, p in schedule)
        return io.NodeOutput(cond, ui=node_info(cls.DISPLAY, f"{len(schedule)} keyframe(s) over {frames} frames\n{shown}"))


class MotionMultival(PackNode):
    DISPLAY = MULTIVAL_NODE

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=PREFIX + "MotionMultival",
            display_name=cls.DISPLAY,
            category=CONTROLS_CATEGORY,
            description=(
                "A motion amount that can vary over frames and space, for the effect_multival / scale_multival inputs "
                "of 'Apply AnimateDiff Motion Model' and 'AnimateDiff Motion Keyframe': value x per-frame values x mask."),
            inputs=[
                io.Float.Input("value", default=1.0, min=VALUE_MIN, max=VALUE_MAX, step=0.01,
                               tooltip="The constant part (alone, it behaves exactly like the plain float input)."),
                io.String.Input("per_frame", default="", multiline=False,
                                tooltip="Optional per-frame factors: one value per frame ('1, 0.9, 0.8, ...') or "
                                        "keyframes by frame ('0: 1.0, 16: 0.3'), linear in between, held outside. "
                                        f"Factors lie in {VALUE_MIN:g}..{VALUE_MAX:g} like 'value' (checked when the "
                                        "prompt is queued); their count must fit the sampled clip."),
                io.Mask.Input("mask", optional=True,
                              tooltip="Optional MASK: one per frame (or one for all), resized to each level of the "
                                      "UNet; white keeps the value, black turns it to 0 there."),
            ],
            outputs=[MultivalType.Output(display_name="multival", tooltip="The multival.")],
        )

    @classmethod
    def validate_inputs(cls, per_frame=None):
        from ..animapose.motion.controls.multival import parse_per_frame

        return queue_check(cls, {"per_frame": per_frame}, lambda: per_frame is None or parse_per_frame(per_frame))

    @classmethod
    def execute(cls, value: float, per_frame: str, mask=None) -> io.NodeOutput:
        from ..animapose.motion.controls.multival import Multival, parse_per_frame

        with node_errors(cls.DISPLAY):
            frame_list, points = parse_per_frame(per_frame)
        mv = Multival(value, frame_list, points, None if mask is None else mask.detach().float().cpu())
        return io.NodeOutput(mv, ui=node_info(cls.DISPLAY, mv.describe()))


class MotionKeyframe(PackNode):
    DISPLAY = "AnimateDiff Motion Keyframe"

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=PREFIX + "MotionKeyframe",
            display_name=cls.DISPLAY,
            category=CONTROLS_CATEGORY,
            description=(
                "Changes the motion amount during sampling: from start_percent of the steps on (until the next "
                "keyframe of the chain), the motion model uses these effect and scale values. Chain keyframes through "
                "prev_keyframes and connect the last to the Apply node's keyframes input."),
            inputs=[
                io.Float.Input("start_percent", default=0.0, min=0.0, max=1.0, step=0.001,
                               tooltip="Where in the sampling (0 = first step, 1 = end) these values start."),
                io.Float.Input("effect", default=1.0, min=0.0, max=10.0, step=0.01,
                               tooltip="Like the Apply node's motion_scale: how much of what the motion modules add "
                                       "is kept (1 = original AnimateDiff, 0 = none)."),
                io.Float.Input("scale", default=1.0, min=0.0, max=10.0, step=0.01,
                               tooltip="Multiplies the keys inside the temporal attention (AnimateDiff-Evolved's "
                                       "'scale'): above 1 sharper frame-to-frame attention, below 1 flatter."),
                KeyframesType.Input("prev_keyframes", optional=True, tooltip="Earlier keyframes of the chain."),
                MultivalType.Input("effect_multival", optional=True,
                                   tooltip="Per-frame/masked effect; replaces 'effect' when connected."),
                MultivalType.Input("scale_multival", optional=True,
                                   tooltip="Per-frame/masked scale; replaces 'scale' when connected."),
            ],
            outputs=[KeyframesType.Output(display_name="keyframes", tooltip="The chain, for the Apply node.")],
        )

    @classmethod
    def execute(cls, start_percent: float, effect: float, scale: float, prev_keyframes=None, effect_multival=None,
                scale_multival=None) -> io.NodeOutput:
        from ..animapose.motion.controls.multival import MotionKeyframe as Keyframe
        from ..animapose.motion.controls.multival import add_keyframe, as_multival

        with node_errors(cls.DISPLAY):
            chain = add_keyframe(prev_keyframes, Keyframe(start_percent, as_multival(
                effect if effect_multival is None else effect_multival), as_multival(
                scale if scale_multival is None else scale_multival)))
        return io.NodeOutput(chain)


def _freenoise_inputs():
    from ..animapose.motion.controls.freenoise import NOISE_TYPES

    return [
        io.Int.Input("context_length", default=16, min=1, max=128,
                     tooltip="Frames per window: the context_length of the Context Windows node (16)."),
        io.Int.Input("context_stride", default=4, min=1, max=128,
                     tooltip="Frames between window starts, i.e. context_length - context_overlap of the Context "
                             "Windows node (the paper and diffusers use 4)."),
        io.Combo.Input("noise_type", options=NOISE_TYPES, default=NOISE_TYPES[0],
                       tooltip="shuffle_context: every later stride region is a shuffled copy of the noise "
                               "context_length frames earlier (FreeNoise); repeat_context: the first window's noise "
                               "repeated as it is."),
    ]


class FreeNoise(PackNode):
    DISPLAY = "AnimateDiff FreeNoise"

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=PREFIX + "FreeNoise",
            display_name=cls.DISPLAY,
            category=CONTROLS_CATEGORY,
            description=(
                "FreeNoise noise for long clips (Qiu et al.): ComfyUI's seeded noise with every stride region after the "
                "first window replaced by a shuffled copy of earlier frames, so all context windows start from the same "
                "noise. A NOISE for SamplerCustomAdvanced; with 'AnimateDiff Context Options / Windows' it is the paper's method."),
            inputs=[io.Int.Input("noise_seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                                 tooltip="Seed: the same as RandomNoise's for the first context_length frames."),
                    *_freenoise_inputs()],
            outputs=[io.Noise.Output(display_name="noise", tooltip="The rescheduled noise.")],
        )

    @classmethod
    def execute(cls, noise_seed: int, context_length: int, context_stride: int, noise_type: str) -> io.NodeOutput:
        from ..animapose.motion.controls.freenoise import FreeNoise as Noise

        return io.NodeOutput(Noise(noise_seed, context_length, context_stride, noise_type))


class FreeNoiseModel(PackNode):
    DISPLAY = "AnimateDiff FreeNoise (KSampler)"

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=PREFIX + "FreeNoiseModel",
            display_name=cls.DISPLAY,
            category=CONTROLS_CATEGORY,
            description=(
                "FreeNoise for KSampler-style graphs: the MODEL reschedules the noise its sampler node generates from "
                "the seed, exactly as the 'AnimateDiff FreeNoise' NOISE does for SamplerCustomAdvanced."),
            inputs=[io.Model.Input("model", tooltip="The animation MODEL."), *_freenoise_inputs()],
            outputs=[io.Model.Output(display_name="model", tooltip="The MODEL with FreeNoise.")],
        )

    @classmethod
    def execute(cls, model, context_length: int, context_stride: int, noise_type: str) -> io.NodeOutput:
        from ..animapose.motion.controls.freenoise import add_to_model

        return io.NodeOutput(add_to_model(model, context_length, context_stride, noise_type))


def _freeinit_inputs():
    from ..animapose.motion.controls.freeinit import FILTERS

    return [
        io.Int.Input("iterations", default=3, min=1, max=10,
                     tooltip="Sampling passes; each after the first restarts from the previous result's low "
                             "frequencies (the cost is that many samplings)."),
        io.Combo.Input("filter", options=FILTERS, default="butterworth",
                       tooltip="Low-pass filter of the 3-D (frames, height, width) spectrum."),
        io.Float.Input("d_s", default=0.25, min=0.0, max=1.0, step=0.01,
                       tooltip="Normalised spatial stop frequency."),
        io.Float.Input("d_t", default=0.25, min=0.0, max=1.0, step=0.01,
                       tooltip="Normalised temporal stop frequency."),
        io.Int.Input("order", default=4, min=1, max=16, tooltip="Butterworth order (higher: closer to ideal)."),
    ]


class FreeInitSampler(PackNode):
    DISPLAY = "AnimateDiff FreeInit Sampler"

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=PREFIX + "FreeInitSampler",
            display_name=cls.DISPLAY,
            category=CONTROLS_CATEGORY,
            description=(
                "FreeInit (Wu et al.) around any SAMPLER: samples several times, each pass starting from the low "
                "frequencies of the previous result re-noised with the initial noise plus fresh high-frequency noise, "
                "for more coherent motion. For SamplerCustom / SamplerCustomAdvanced."),
            inputs=[io.Sampler.Input("sampler", tooltip="The sampler to repeat (e.g. from KSamplerSelect)."),
                    *_freeinit_inputs()],
            outputs=[io.Sampler.Output(display_name="sampler", tooltip="The FreeInit sampler.")],
        )

    @classmethod
    def execute(cls, sampler, iterations, filter, d_s, d_t, order) -> io.NodeOutput:
        from ..animapose.motion.controls.freeinit import FreeInitOptions
        from ..animapose.motion.controls.freeinit import FreeInitSampler as Sampler

        with node_errors(cls.DISPLAY):
            return io.NodeOutput(Sampler(sampler, FreeInitOptions(iterations, filter, d_s, d_t, order)))


class FreeInitModel(PackNode):
    DISPLAY = "AnimateDiff FreeInit (KSampler)"

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=PREFIX + "FreeInit",
            display_name=cls.DISPLAY,
            category=CONTROLS_CATEGORY,
            description=(
                "FreeInit (Wu et al.) as a MODEL option, so KSampler and every other sampler node get its iterations: "
                "each pass restarts from the low frequencies of the previous result."),
            inputs=[io.Model.Input("model", tooltip="The animation MODEL."), *_freeinit_inputs()],
            outputs=[io.Model.Output(display_name="model", tooltip="The MODEL with FreeInit.")],
        )

    @classmethod
    def execute(cls, model, iterations, filter, d_s, d_t, order) -> io.NodeOutput:
        from ..animapose.motion.controls.freeinit import FreeInitOptions, add_to_model

        return io.NodeOutput(add_to_model(model, FreeInitOptions(iterations, filter, d_s, d_t, order)))


NODES = [PromptTravel, MotionMultival, MotionKeyframe, FreeNoise, FreeNoiseModel, FreeInitSampler, FreeInitModel]
