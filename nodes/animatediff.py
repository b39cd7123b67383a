"""AnimateDiff nodes: load a motion model, add motion LoRAs, inflate a MODEL, sample long clips in windows."""

from __future__ import annotations

import json
import os

from comfy_api.latest import io

from ..animapose.known_models import label_file
from ..animapose.motion import NORM_CHOICES, WEIGHT_DTYPE_NAMES
from ..animapose.motion.sampling import schedules
from .animatediff_controls import KeyframesType, MultivalType
from .common import (
    MOTION_CATEGORY,
    MOTION_LORA_FOLDER,
    MOTION_MODELS_FOLDER,
    PREFIX,
    PackNode,
    full_path,
    node_errors,
    node_info,
)

MotionModelType = io.Custom("ANIMAPOSE_MOTION_MODEL")


def _files(folder: str) -> list[str]:
    import folder_paths

    return folder_paths.get_filename_list(folder)


class LoadMotionModel(PackNode):
    DISPLAY = "Load AnimateDiff Motion Model"

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=PREFIX + "LoadMotionModel",
            display_name=cls.DISPLAY,
            category=MOTION_CATEGORY,
            description=(
                "Loads an AnimateDiff motion module from models/animatediff_models (AnimateDiff v1/v2/v3, SDXL beta, "
                "HotshotXL, AnimateLCM, AnimateLCM-I2V, AnimateDiff-Lightning, PIA; original or diffusers layout; .safetensors, or "
                ".ckpt/.pth read without running pickled code). The format, base model, widths, mid block, position "
                "length and GroupNorm scope are detected from the weights and shown on the node."),
            inputs=[
                io.Combo.Input("model_name", options=_files(MOTION_MODELS_FOLDER),
                               tooltip="Motion module file in models/animatediff_models (the folder "
                                       "AnimateDiff-Evolved uses too)."),
                io.Combo.Input("weight_dtype", options=list(WEIGHT_DTYPE_NAMES), default="default", optional=True,
                               tooltip="How the weights are stored in memory. 'default' follows ComfyUI's UNet "
                                       "options (--bf16-unet, --fp16-unet, --fp8_e4m3fn-unet; float32 on the CPU "
                                       "without flags). fp8 halves the memory of fp16 at some precision; the modules "
                                       "always compute in the dtype the UNet computes in."),
            ],
            outputs=[MotionModelType.Output(
                display_name="motion_model", tooltip="The motion modules, ready for 'Apply AnimateDiff Motion Model'.")],
        )

    @classmethod
    def execute(cls, model_name: str, weight_dtype: str = "default") -> io.NodeOutput:
        from ..animapose.motion.sampling.inflate import load_motion_model

        with node_errors(cls.DISPLAY):
            path = full_path(MOTION_MODELS_FOLDER, model_name, "model_name")
            motion = load_motion_model(path, model_name, _adapter_config(path), weight_dtype)
        text = motion.info.summary()
        label = label_file("motion_modules", path, model_name)
        if label:
            text += "\n" + label
        return io.NodeOutput(motion, ui=node_info(cls.DISPLAY, text))


def _adapter_config(path: str) -> dict | None:
    """diffusers MotionAdapter weights come with a config.json that tells v1 from v3 (their weights look alike)."""
    cfg = os.path.join(os.path.dirname(path), "config.json")
    if os.path.isfile(cfg):
        try:
            with open(cfg) as f:
                data = json.load(f)
            return data if data.get("_class_name") == "MotionAdapter" else None
        except (OSError, ValueError):
            return None
    return None


class LoadMotionLoRA(PackNode):
    DISPLAY = "Load AnimateDiff Motion LoRA"

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=PREFIX + "LoadMotionLoRA",
            display_name=cls.DISPLAY,
            category=MOTION_CATEGORY,
            description=("Adds a motion LoRA (camera moves such as zoom or pan; original AnimateDiff layout) to a motion "
                         "model, as W += strength * (up x down) on its temporal attention. Chain several to mix them."),
            inputs=[
                MotionModelType.Input("motion_model", tooltip="Motion model from 'Load AnimateDiff Motion Model'."),
                io.Combo.Input("lora_name", options=_files(MOTION_LORA_FOLDER),
                               tooltip="Motion LoRA file in models/animatediff_motion_lora. The official ones were "
                                       "trained on mm_sd_v15_v2."),
                io.Float.Input("strength", default=1.0, min=-10.0, max=10.0, step=0.05,
                               tooltip="Multiplier of the LoRA's weight change; 1.0 is the original strength."),
            ],
            outputs=[MotionModelType.Output(display_name="motion_model", tooltip="The motion model with the LoRA added.")],
        )

    @classmethod
    def execute(cls, motion_model, lora_name: str, strength: float) -> io.NodeOutput:
        from ..animapose.motion.sampling.inflate import add_motion_lora

        with node_errors(cls.DISPLAY):
            path = full_path(MOTION_LORA_FOLDER, lora_name, "lora_name")
            return io.NodeOutput(add_motion_lora(motion_model, path, lora_name, strength))


class ApplyMotionModel(PackNode):
    DISPLAY = "Apply AnimateDiff Motion Model"

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=PREFIX + "ApplyMotionModel",
            display_name=cls.DISPLAY,
            category=MOTION_CATEGORY,
            description=(
                "Inflates an image MODEL into an animation MODEL: the motion modules are inserted after every "
                "resolution level's blocks, and the latent batch becomes the frame axis (16 frames = batch 16). "
                "Works with any sampler node, LoRA and ControlNet. The incoming MODEL is not changed. Applied to a MODEL "
                "that already has a motion model, it adds a second one (both run, each in its start/end range)."),
            inputs=[
                io.Model.Input("model", tooltip="An SD1.5 or SDXL MODEL matching the motion module's family."),
                MotionModelType.Input("motion_model", tooltip="Motion model from 'Load AnimateDiff Motion Model'."),
                io.Float.Input("motion_scale", default=1.0, min=0.0, max=2.0, step=0.01,
                               tooltip="Multiplies what the motion modules add: 1.0 is the original AnimateDiff, "
                                       "0 turns motion off, values in between calm it."),
                io.Combo.Input("beta_schedule", options=schedules.CHOICES, default=schedules.AUTOSELECT,
                               tooltip="Noise schedule. 'autoselect' uses the one the motion module was trained with "
                                       "(AnimateDiff SD1.5: sqrt_linear, the original's 'linear' betas; SDXL beta: "
                                       "linear to 0.020; AnimateLCM: lcm; AnimateLCM-I2V: its own lcm, betas to 0.014 over "
                                       "200 steps). 'use existing' keeps the checkpoint's (then ComfyUI's "
                                       "ModelSamplingDiscrete 'lcm' can follow)."),
                io.Combo.Input("groupnorm", options=NORM_CHOICES, default=NORM_CHOICES[0],
                               tooltip="Which GroupNorms see all frames at once. 'original code (auto)' reproduces the "
                                       "original implementation of the detected format (v1 and HotshotXL normalise "
                                       "ResNets across frames); 'diffusers' matches diffusers' AnimateDiff pipelines, "
                                       "which AnimateDiff-Lightning was distilled with."),
                io.Float.Input("scale", default=1.0, min=0.0, max=10.0, step=0.01, optional=True,
                               tooltip="Multiplies the keys inside every temporal attention (AnimateDiff-Evolved's "
                                       "'scale'): above 1 frames attend more sharply to each other, below 1 more "
                                       "evenly. 1 is the original."),
                io.Float.Input("start_percent", default=0.0, min=0.0, max=1.0, step=0.001, optional=True,
                               tooltip="Where in the sampling this motion model starts (0 = first step). Chain Apply "
                                       "nodes with different ranges to hand over from one motion model to another."),
                io.Float.Input("end_percent", default=1.0, min=0.0, max=1.0, step=0.001, optional=True,
                               tooltip="Where in the sampling this motion model stops (1 = last step)."),
                MultivalType.Input("effect_multival", optional=True,
                                   tooltip="Per-frame or masked motion_scale from 'AnimateDiff Motion Multival'; "
                                           "replaces motion_scale when connected."),
                MultivalType.Input("scale_multival", optional=True,
                                   tooltip="Per-frame or masked scale from 'AnimateDiff Motion Multival'; replaces scale "
                                           "when connected."),
                KeyframesType.Input("keyframes", optional=True,
                                    tooltip="Keyframes from 'AnimateDiff Motion Keyframe' that change effect and scale "
                                            "by sampling percent."),
            ],
            outputs=[io.Model.Output(display_name="model", tooltip="The animation MODEL; sample it with a latent batch of frames.")],
        )

    @classmethod
    def execute(cls, model, motion_model, motion_scale: float, beta_schedule: str, groupnorm: str, scale: float = 1.0,
                start_percent: float = 0.0, end_percent: float = 1.0, effect_multival=None, scale_multival=None,
                keyframes=None) -> io.NodeOutput:
        from ..animapose.motion.sampling.inflate import apply_motion_model

        with node_errors(cls.DISPLAY):
            applied = apply_motion_model(
                model, motion_model, motion_scale if effect_multival is None else effect_multival, beta_schedule,
                groupnorm, scale if scale_multival is None else scale_multival, start_percent, end_percent, keyframes)
        return io.NodeOutput(applied.model, ui=node_info(cls.DISPLAY, applied.summary))


class ContextWindows(PackNode):
    DISPLAY = "AnimateDiff Context Options / Windows"

    @classmethod
    def define_schema(cls):
        import comfy.context_windows as cw

        from ..animapose.motion.sampling import context

        return io.Schema(
            node_id=PREFIX + "ContextWindows",
            display_name=cls.DISPLAY,
            category=MOTION_CATEGORY,
            description=(
                "Samples clips longer than the motion module's positions in overlapping windows of frames and fuses "
                "the overlaps, with ComfyUI's own context-window handler on the frame (batch) axis. Memory stays that "
                "of one window however many frames you render."),
            inputs=[
                io.Model.Input("model", tooltip="The animation MODEL (before or after 'Apply AnimateDiff Motion Model')."),
                io.Int.Input("context_length", default=16, min=2, max=128,
                             tooltip="Frames per window; at most the motion module's position length (16 is "
                                     "AnimateDiff's sweet spot)."),
                io.Int.Input("context_overlap", default=4, min=0, max=64,
                             tooltip="Frames shared by neighbouring windows; more overlap, smoother seams, more work."),
                io.Combo.Input("context_schedule", options=context.SCHEDULES,
                               default=cw.ContextSchedules.UNIFORM_STANDARD,
                               tooltip="standard_uniform: windows shift every step so seams move; standard_static: the "
                                       "same windows each step; looped_uniform: windows wrap around for loops."),
                io.Int.Input("context_stride", default=1, min=1, max=8,
                             tooltip="Uniform schedules also sample frames 2^k apart up to this stride, for "
                                     "long-range coherence (1 = off)."),
                io.Boolean.Input("closed_loop", default=False,
                                 tooltip="looped_uniform only: make the last frames lead back into the first."),
                io.Combo.Input("fuse_method", options=context.FUSE_METHODS,
                               default=cw.ContextFuseMethods.PYRAMID,
                               tooltip="How overlapping windows are averaged: pyramid weights window centres most; "
                                       "overlap-linear cross-fades only the overlap; flat averages."),
            ],
            outputs=[io.Model.Output(display_name="model", tooltip="The MODEL with context windows set for sampling.")],
        )

    @classmethod
    def execute(cls, model, context_length, context_overlap, context_schedule, context_stride, closed_loop,
                fuse_method) -> io.NodeOutput:
        from ..animapose.motion.sampling.context import set_context_windows

        with node_errors(cls.DISPLAY):
            out = set_context_windows(model, context_length, context_overlap, context_schedule, context_stride,
                                      closed_loop, fuse_method)
        return io.NodeOutput(out)


NODES = [LoadMotionModel, LoadMotionLoRA, ApplyMotionModel, ContextWindows]
