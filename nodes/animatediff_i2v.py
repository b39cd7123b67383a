"""AnimateDiff from pictures: PIA's image input, AnimateLCM-I2V's reference image and SparseCtrl keyframes (a native
CONTROL_NET)."""

from __future__ import annotations

from comfy_api.latest import io

from ..animapose.known_models import label_file
from ..animapose.motion import MAX_FRAMES
from ..animapose.motion.addons.pia_affinity import PIA_NODE
from ..animapose.motion.addons.sparsectrl_keyframes import KEYFRAMES_NODE
from .common import MOTION_CATEGORY, PREFIX, PackNode, full_path, node_errors, node_info, queue_check

CONTROLNET_FOLDER = "controlnet"  # ComfyUI's own; Advanced-ControlNet users keep SparseCtrl files there too


def _files(folder: str) -> list[str]:
    import folder_paths

    return folder_paths.get_filename_list(folder)


class PIAImage(PackNode):
    DISPLAY = PIA_NODE

    @classmethod
    def define_schema(cls):
        from ..animapose.motion.addons.pia_affinity import PRESET_NAMES

        return io.Schema(
            node_id=PREFIX + "PIAImage",
            display_name=cls.DISPLAY,
            category=MOTION_CATEGORY,
            description=(
                "Animates a picture with PIA (pia.ckpt applied by 'Apply AnimateDiff Motion Model'): the picture's latent "
                "and a per-frame affinity (how closely each frame follows the picture) go to PIA's extra input "
                "channels through the conditioning, as in PIA's own pipeline. Outputs an empty latent of the clip at "
                "the picture's size; sample it with denoise 1."),
            inputs=[
                io.Model.Input("model", tooltip="The MODEL with pia.ckpt applied (its latent scale is used too)."),
                io.Conditioning.Input("positive", tooltip="The prompt's conditioning."),
                io.Conditioning.Input("negative", tooltip="The negative prompt's conditioning."),
                io.Vae.Input("vae", tooltip="The checkpoint's VAE, to encode the picture."),
                io.Image.Input("image", tooltip="The picture to animate (the first of a batch); it becomes frame 0. "
                                                "PIA was trained at 512x512."),
                io.Int.Input("frames", default=16, min=1, max=MAX_FRAMES,
                             tooltip="Frames to render (PIA's motion module has 32 positions; use context windows "
                                     "for more)."),
                io.Combo.Input("affinity", options=PRESET_NAMES, default=PRESET_NAMES[1],
                               tooltip="PIA's presets: how much each frame may move away from the picture. Loops return "
                                       "to it at frame 16; style-transfer presets follow it loosely."),
                io.String.Input("custom_affinity", default="", optional=True,
                                tooltip="Optional per-frame values (comma-separated, frame 0 first), e.g. '1.0, "
                                        "0.9, 0.8'. Replaces the preset when filled. Each lies in 0..1 (1: the frame "
                                        "is the picture); at most 'frames' values, and with fewer the last value "
                                        "repeats for the remaining frames, as PIA's own code pads its presets. "
                                        "Checked when the prompt is queued."),
            ],
            outputs=[
                io.Conditioning.Output(display_name="positive", tooltip="The prompt's conditioning with PIA's inputs."),
                io.Conditioning.Output(display_name="negative", tooltip="The negative conditioning with PIA's inputs."),
                io.Latent.Output(display_name="latent", tooltip="An empty latent of the clip, at the picture's size."),
            ],
        )

    @classmethod
    def validate_inputs(cls, frames=None, custom_affinity=None):
        from ..animapose.motion.addons.pia_affinity import parse_affinity

        return queue_check(cls, {"frames": frames, "custom_affinity": custom_affinity},
                           lambda: not (custom_affinity or "").strip() or parse_affinity(custom_affinity, frames))

    @classmethod
    def execute(cls, model, positive, negative, vae, image, frames: int, affinity: str,
                custom_affinity: str | None = None) -> io.NodeOutput:
        from ..animapose.motion.addons.pia import pia_conditioning

        with node_errors(cls.DISPLAY):
            pos, neg, latent = pia_conditioning(model, positive, negative, vae, image, frames, affinity,
                                                custom_affinity or "")
        return io.NodeOutput(pos, neg, latent)


class AnimateLCMI2VImage(PackNode):
    DISPLAY = "AnimateLCM-I2V Reference Image (picture to video)"

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=PREFIX + "AnimateLCMI2VImage",
            display_name=cls.DISPLAY,
            category=MOTION_CATEGORY,
            description=(
                "Animates a picture with AnimateLCM-I2V (AnimateLCM_sd15_i2v.ckpt applied by 'Apply AnimateDiff Motion "
                "Model'): its image encoder turns the picture's latent into features that are added to the UNet's down "
                "blocks before their motion modules, as in the authors' code. Outputs the MODEL that reads the picture "
                "and an empty latent of the clip at the picture's size; sample it with denoise 1. LCM sampling: the "
                "Apply node's autoselect gives the authors' I2V schedule (lcm, betas to 0.014, 200 original steps); "
                "ComfyUI's ModelSamplingDiscrete 'lcm' is the common ComfyUI alternative. Use the 'lcm' sampler, 4-8 "
                "steps, CFG 1-2."),
            inputs=[
                io.Model.Input("model", tooltip="The MODEL with AnimateLCM_sd15_i2v.ckpt applied (an SD1.5 checkpoint; "
                                                "the authors add their spatial LCM LoRA at 0.8 with ComfyUI's LoRA "
                                                "loader)."),
                io.Vae.Input("vae", tooltip="The checkpoint's VAE, to encode the picture."),
                io.Image.Input("image", tooltip="The picture to animate (the first of a batch). AnimateLCM-I2V was "
                                                "trained at 512x512."),
                io.Int.Input("frames", default=16, min=1, max=MAX_FRAMES,
                             tooltip="Frames to render (the motion modules have 64 positions; the authors' demo "
                                     "renders 12-20; use context windows for long clips)."),
                io.Float.Input("strength", default=1.0, min=0.0, max=10.0, step=0.01,
                               tooltip="Multiplies the picture features added to the UNet (the original's insertion "
                                       "weights, all 1.0); 0 ignores the picture."),
                io.Float.Input("motion_scale", default=0.8, min=0.0, max=10.0, step=0.01,
                               tooltip="How much each frame's position is mixed into the picture features (the "
                                       "authors' 'motion scale', default 0.8, 'better identity with smaller scale'; "
                                       "AnimateDiff-Evolved's ref_drift)."),
            ],
            outputs=[
                io.Model.Output(display_name="model", tooltip="The MODEL that feeds the picture into its UNet."),
                io.Latent.Output(display_name="latent", tooltip="An empty latent of the clip, at the picture's size."),
            ],
        )

    @classmethod
    def execute(cls, model, vae, image, frames: int, strength: float, motion_scale: float) -> io.NodeOutput:
        from ..animapose.motion.addons.lcm_i2v import reference_model

        with node_errors(cls.DISPLAY):
            m, latent = reference_model(model, vae, image, frames, strength, motion_scale)
        return io.NodeOutput(m, latent)


class LoadSparseCtrl(PackNode):
    DISPLAY = "Load AnimateDiff SparseCtrl"

    @classmethod
    def define_schema(cls):
        from ..animapose.motion import NORM_CHOICES

        return io.Schema(
            node_id=PREFIX + "LoadSparseCtrl",
            display_name=cls.DISPLAY,
            category=MOTION_CATEGORY,
            description=(
                "Loads a SparseCtrl encoder (v3_sd15_sparsectrl_rgb.ckpt or _scribble.ckpt, or diffusers' layout) from "
                "models/controlnet as a native CONTROL_NET: connect it to ComfyUI's 'Apply ControlNet' node with the "
                "keyframe images (and the VAE for the RGB variant). Keyframes land on the frames chosen by 'AnimaPose "
                "SparseCtrl Keyframes' (default: spread over the clip); every other frame is masked out."),
            inputs=[
                io.Combo.Input("sparsectrl_name", options=_files(CONTROLNET_FOLDER),
                               tooltip="SparseCtrl file in models/controlnet (RGB: keyframe pictures through the VAE; "
                                       "scribble: line drawings)."),
                io.Combo.Input("groupnorm", options=NORM_CHOICES, default=NORM_CHOICES[0],
                               tooltip="GroupNorm of its motion modules: 'original code (auto)' per frame as AnimateDiff's "
                                       "own SparseCtrl; 'diffusers' across the clip as diffusers' SparseControlNetModel."),
            ],
            outputs=[io.ControlNet.Output(display_name="control_net",
                                          tooltip="The SparseCtrl encoder, for the 'Apply ControlNet' nodes.")],
        )

    @classmethod
    def execute(cls, sparsectrl_name: str, groupnorm: str) -> io.NodeOutput:
        from ..animapose.motion import NORM_DIFFUSERS
        from ..animapose.motion.addons.sparsectrl import load_sparsectrl

        with node_errors(cls.DISPLAY):
            path = full_path(CONTROLNET_FOLDER, sparsectrl_name, "sparsectrl_name")
            control = load_sparsectrl(path, sparsectrl_name, groupnorm == NORM_DIFFUSERS)
        text = control.info.summary()
        label = label_file("motion_modules", path, sparsectrl_name)
        if label:
            text += "\n" + label
        return io.NodeOutput(control, ui=node_info(cls.DISPLAY, text))


class SparseCtrlKeyframes(PackNode):
    DISPLAY = KEYFRAMES_NODE

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=PREFIX + "SparseCtrlKeyframes",
            display_name=cls.DISPLAY,
            category=MOTION_CATEGORY,
            description=(
                "Chooses the frames SparseCtrl's hint images land on: the n-th image of the batch given to 'Apply "
                "ControlNet' goes to the n-th frame number; all other frames get no hint (mask 0). Works inside "
                "context windows (each window sees the keyframes that fall in it)."),
            inputs=[
                io.ControlNet.Input("control_net", tooltip="A SparseCtrl encoder from 'Load AnimateDiff SparseCtrl'."),
                io.String.Input("frame_indices", default="0, -1",
                                tooltip="Frame numbers, comma-separated, one per hint image; negative numbers count "
                                        "from the end (-1 = last frame). Empty: spread the images evenly. Each "
                                        "number once; whole numbers are checked when the prompt is queued, and "
                                        "against the clip's length and the hint images when it is sampled."),
            ],
            outputs=[io.ControlNet.Output(display_name="control_net", tooltip="The encoder with its keyframe frames set.")],
        )

    @classmethod
    def validate_inputs(cls, frame_indices=None):
        from ..animapose.motion.addons.sparsectrl_keyframes import parse_frame_indices

        return queue_check(cls, {"frame_indices": frame_indices},
                           lambda: frame_indices is None or parse_frame_indices(frame_indices))

    @classmethod
    def execute(cls, control_net, frame_indices: str) -> io.NodeOutput:
        from ..animapose.motion.addons.sparsectrl import with_keyframes

        with node_errors(cls.DISPLAY):
            return io.NodeOutput(with_keyframes(control_net, frame_indices))


NODES = [PIAImage, AnimateLCMI2VImage, LoadSparseCtrl, SparseCtrlKeyframes]
