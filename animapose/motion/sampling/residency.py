"""Only the motion models active at the current step are on the device.

A motion model applied for the whole sampling is an additional model of the MODEL: ComfyUI loads it with the UNet
before the first step. One limited to part of the steps (``start_percent`` > 0 or ``end_percent`` < 1, typically one
of several chained Apply nodes) is *lazy*: it is not an additional model, and before each UNet call the stages'
diffusion-model wrappers settle which lazy ones must be resident at this sigma. Those outside their range are unloaded
first, then those inside are loaded, both through ComfyUI's own model management (``load_models_gpu`` and the
``LoadedModel`` it keeps), so partial loading under ``--lowvram``, weight patches such as motion LoRAs, and ComfyUI's
memory accounting all apply as for any other model. A hand-over from one module to another therefore never holds both.

Modules of an unloaded stage stay inserted in the UNet (on the offload device) but are not called: a stage outside
its range returns its input unchanged (``stages.MotionStage.call``).
"""

from __future__ import annotations

import logging

from ...comfy_seam import comfy_model_management
from .stages import MotionStage, sigma_of

log = logging.getLogger(__name__)


def is_resident(patcher) -> bool:
    return any(loaded.model is patcher for loaded in comfy_model_management.current_loaded_models)


def unload(patcher) -> bool:
    """Unloads one model the way ComfyUI's ``free_memory`` unloads any (its weight patches are undone, its weights go
    to the offload device); returns whether it had been loaded."""
    loaded_models = comfy_model_management.current_loaded_models
    for i, loaded in enumerate(loaded_models):
        if loaded.model is patcher:
            if loaded.model_unload():
                loaded_models.pop(i)
            return True
    return False


def settle(stages: list[MotionStage], transformer_options: dict) -> None:
    """Before a UNet call: unload the lazy stages that are inactive at this call's sigma, then load the active ones."""
    lazy = [s for s in stages if s.lazy and s.patcher is not None]
    if not lazy:
        return
    sigma = sigma_of(transformer_options)
    wanted = [s.in_range(sigma) for s in lazy]
    for stage, want in zip(lazy, wanted):
        if not want and unload(stage.patcher):
            log.debug("AnimaPose: %s unloaded (outside its steps)", stage.name)
    load = [s.patcher for s, want in zip(lazy, wanted) if want and not is_resident(s.patcher)]
    if load:
        log.debug("AnimaPose: loading %s for its steps", ", ".join(s.name for s, w in zip(lazy, wanted) if w))
        comfy_model_management.load_models_gpu(load)
