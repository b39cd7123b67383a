"""AnimateDiff from pictures: PIA's image input and SparseCtrl keyframes (a native CONTROL_NET)."""

from __future__ import annotations

from comfy_api.latest import io

from .common import MOTION_CATEGORY, PREFIX, PackNode, full_path, node_errors

CONTROLNET_FOLDER = "controlnet"  # ComfyUI's own; Advanced-ControlNet users keep SparseCtrl files there too


def _files(folder: str) -> list[str]:
    import folder_paths

    return folder_paths.get_filename_list(folder)


class PIAImage(PackNode):
    DISPLAY = "AnimaPose PIA Image"

    @classmethod
    def define_schema(cls):
        from ..animapose.motion.image_conditioning import PRESET_NAMES

        return io.Schema(
            node_id=PREFIX + "PIAImage",
            display_name=cls.DISPLAY,
            category=MOTION_CATEGORY,
            description=(
                "Animates a picture with PIA (pia.ckpt applied by 'AnimaPose Apply Motion Model'): the picture's latent "
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
                io.Int.Input("frames", default=16, min=1, max=4096,
                             tooltip="Frames to render (PIA's motion module has 32 positions; use context windows "
                                     "for more)."),
                io.Combo.Input("affinity", options=PRESET_NAMES, default=PRESET_NAMES[1],
                               tooltip="PIA's presets: how much each frame may move away from the picture. Loops return "
                                       "to it at frame 16; style-transfer presets follow it loosely."),
                io.String.Input("custom_affinity", default="", optional=True,
                                tooltip="Optional per-frame values (comma-separated, frame 0 first, the last value "
                                        "repeats), e.g. '1.0, 0.9, 0.8'. Replaces the preset when filled."),
            ],
            outputs=[
                io.Conditioning.Output(display_name="positive", tooltip="The prompt's conditioning with PIA's inputs."),
                io.Conditioning.Output(display_name="negative", tooltip="The negative conditioning with PIA's inputs."),
                io.Latent.Output(display_name="latent", tooltip="An empty latent of the clip, at the picture's size."),
            ],
        )

    @classmethod
    def execute(cls, model, positive, negative, vae, image, frames: int, affinity: str,
                custom_affinity: str | None = None) -> io.NodeOutput:
        from ..animapose.motion.image_conditioning import pia_conditioning

        with node_errors(cls.DISPLAY):
            pos, neg, latent = pia_conditioning(model, positive, negative, vae, image, frames, affinity,
                                                custom_affinity or "")
        return io.NodeOutput(pos, neg, latent)


NODES = [PIAImage]
