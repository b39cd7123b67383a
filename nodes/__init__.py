"""The pack's V3 node classes. They declare inputs and outputs and call the runtime package ``animapose``."""

from comfy_api.latest import ComfyExtension

from . import (
    animatediff,
    animatediff_camera,
    animatediff_controls,
    animatediff_i2v,
    animatediff_training,
    densepose,
    dreampose,
    dreampose_finetune,
    dreampose_ray,
)
from .common import register_model_folders

ALL_NODES = [*animatediff.NODES, *animatediff_controls.NODES, *animatediff_i2v.NODES, *animatediff_camera.NODES,
             *animatediff_training.NODES, *dreampose.NODES, *dreampose_finetune.NODES, *densepose.NODES,
             *dreampose_ray.NODES]


class AnimaPoseExtension(ComfyExtension):
    async def get_node_list(self):
        return list(ALL_NODES)


def register_prompt_checks() -> None:
    from . import boolean_inputs

    boolean_inputs.register()


__all__ = ["ALL_NODES", "AnimaPoseExtension", "register_model_folders", "register_prompt_checks"]
