"""AnimaPose: AnimateDiff motion modules and DreamPose pose-to-video as native ComfyUI nodes.

ComfyUI uses ``comfy_entrypoint`` only when the legacy V1 node mapping is absent, so this module exports just
the V3 entrypoint and the web folder. Everything is imported lazily so that the runtime package can be
imported (and unit-tested) without ComfyUI.
"""

WEB_DIRECTORY = "./js"


async def comfy_entrypoint():
    from .nodes import AnimaPoseExtension, register_model_folders, register_prompt_checks

    register_model_folders()
    register_prompt_checks()
    return AnimaPoseExtension()
