"""The one seam between the pack's runtime and ComfyUI's internals.

Everything the runtime (``animapose/``) uses from ``comfy.*`` and ``comfy_extras.*`` is reached through this package,
never by importing ComfyUI directly (``tests/unit/test_layout.py`` fails otherwise); the node files (``nodes/``) use
the public V3 node API and ``folder_paths``. ``internals.py`` names every internal the pack uses, why, what newer
ComfyUI changed and how the pack adapts; ``docs/compatibility.md`` carries that table. Where newer ComfyUI changed
an internal in a way the pack's use notices, the adapter is here, chosen by feature detection (never by version).

Names resolve lazily (module ``__getattr__``): ``from ..comfy_seam import comfy_utils`` imports ``comfy.utils`` at
the place and time the ``import`` statement runs, exactly as a direct ``import comfy.utils`` there would, so
importing the seam itself never imports ComfyUI (``comfy.model_management`` probes the device on import).
"""

from __future__ import annotations

import importlib

# seam name -> ComfyUI module
MODULES = {
    "comfy_cli_args": "comfy.cli_args",
    "comfy_clip_vision": "comfy.clip_vision",
    "comfy_context_windows": "comfy.context_windows",
    "comfy_controlnet": "comfy.controlnet",
    "comfy_diffusers_convert": "comfy.diffusers_convert",
    "comfy_latent_formats": "comfy.latent_formats",
    "comfy_lora": "comfy.lora",
    "comfy_model_base": "comfy.model_base",
    "comfy_model_management": "comfy.model_management",
    "comfy_model_patcher": "comfy.model_patcher",
    "comfy_model_sampling": "comfy.model_sampling",
    "comfy_ops": "comfy.ops",
    "comfy_patcher_extension": "comfy.patcher_extension",
    "comfy_sample": "comfy.sample",
    "comfy_sd": "comfy.sd",
    "comfy_supported_models": "comfy.supported_models",
    "comfy_utils": "comfy.utils",
    "comfy_weight_adapter": "comfy.weight_adapter",
}

# seam name -> (ComfyUI module, attribute): classes and functions imported by name
OBJECTS = {
    "ControlNet": ("comfy.cldm.cldm", "ControlNet"),
    "UNetModel": ("comfy.ldm.modules.diffusionmodules.openaimodel", "UNetModel"),
    "TimestepEmbedSequential": ("comfy.ldm.modules.diffusionmodules.openaimodel", "TimestepEmbedSequential"),
    "ResBlock": ("comfy.ldm.modules.diffusionmodules.openaimodel", "ResBlock"),
    "UNetUpsample": ("comfy.ldm.modules.diffusionmodules.openaimodel", "Upsample"),
    "SpatialTransformer": ("comfy.ldm.modules.attention", "SpatialTransformer"),
    "timestep_embedding": ("comfy.ldm.modules.diffusionmodules.util", "timestep_embedding"),
    "VAEAttnBlock": ("comfy.ldm.modules.diffusionmodules.model", "AttnBlock"),
    "VAEResnetBlock": ("comfy.ldm.modules.diffusionmodules.model", "ResnetBlock"),
    "VAEUpsample": ("comfy.ldm.modules.diffusionmodules.model", "Upsample"),
    "TAESDBlock": ("comfy.taesd.taesd", "Block"),
    "Guider_DualCFG": ("comfy_extras.nodes_custom_sampler", "Guider_DualCFG"),
    "LCM": ("comfy_extras.nodes_model_advanced", "LCM"),
    "ModelSamplingDiscreteDistilled": ("comfy_extras.nodes_model_advanced", "ModelSamplingDiscreteDistilled"),
    "train_checkpoint_patch": ("comfy_extras.nodes_train", "patch"),
    "find_all_highest_child_module_with_forward": ("comfy_extras.nodes_train",
                                                   "find_all_highest_child_module_with_forward"),
}


def __getattr__(name: str):
    if name in MODULES:
        return importlib.import_module(MODULES[name])
    if name in OBJECTS:
        module, attribute = OBJECTS[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def weights_patcher(model):
    """A patcher whose ``load_models_gpu(..., force_patch_weights=True)`` bakes its weight patches into the weights.

    ComfyUI's dynamic-VRAM patcher (``ModelPatcherDynamic``, ``is_dynamic()`` True) streams weights and asserts on
    ``force_patch_weights``; its non-dynamic clone loads the ordinary way. Other patchers are returned as they are."""
    is_dynamic = getattr(model, "is_dynamic", None)
    if callable(is_dynamic) and is_dynamic():
        return model.clone(disable_dynamic=True)
    return model


def module_shapes(module) -> dict[str, tuple]:
    """``{state-dict key: shape}`` of a model built with ComfyUI's ops, e.g. on the meta device to learn the shapes.

    With dynamic VRAM (``comfy.memory_management.aimdo_enabled``) ComfyUI's ``Linear`` leaves ``weight`` and ``bias``
    None until a state dict is loaded (``comfy_need_lazy_init_bias`` marks a bias to come), so ``state_dict()``
    alone would miss them."""
    import torch

    shapes = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    for name, m in module.named_modules():
        if isinstance(m, torch.nn.Linear) and m.weight is None:
            prefix = f"{name}." if name else ""
            shapes[f"{prefix}weight"] = (m.out_features, m.in_features)
            if getattr(m, "comfy_need_lazy_init_bias", False):
                shapes[f"{prefix}bias"] = (m.out_features,)
    return shapes
