"""The demo models' files: the narrow weights ``workshop/demo/train_models.py`` writes to ``demo_models/`` and the wide
files made from them (``write_checkpoint``: an SD1.5 single-file checkpoint ComfyUI detects as SD15;
``write_motion_module``: an original-layout v2-type motion module), which the demo job and the test tiers load under
the real file names."""

from __future__ import annotations

import json
from pathlib import Path

import torch

UNET_FILE = "tiny_sd15_unet_narrow.safetensors"
MOTION_FILE = "tiny_motion_module_narrow.safetensors"
META_FILE = "training.json"
LORA_FILE = "tiny_motion_lora_right_narrow.safetensors"  # workshop/demo/direction_lora.py --save
LORA_META_FILE = "motion_lora_right_training.json"
SCALE_FACTOR = 0.18215  # SD1.x latent scale (ComfyUI's latent_formats.SD15)


def sd15_alphas_cumprod() -> torch.Tensor:
    """SD1.x's training schedule ("scaled_linear" betas 0.00085..0.012; ComfyUI's "linear")."""
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, 0).float()


def text_encoder(seed: int, dtype=torch.float32):
    """ComfyUI's SD1.5 CLIP object holding the seeded random CLIP-L (fp32 here: ComfyUI's CPU default, fp16, is many
    times slower on CPUs; the features differ by fp16 rounding only)."""
    import comfy.sd

    from .tiny_models import clip_l_state_dict

    return comfy.sd.load_text_encoder_state_dicts([clip_l_state_dict(seed)],
                                                  clip_type=comfy.sd.CLIPType.STABLE_DIFFUSION,
                                                  model_options={"dtype": dtype})


def encode_text(clip, text: str) -> torch.Tensor:
    return clip.encode_from_tokens_scheduled(clip.tokenize(text))[0][0].float()


def meta(folder) -> dict:
    return json.loads((Path(folder) / META_FILE).read_text())


def write_checkpoint(folder, dest) -> Path:
    """The wide SD1.5 checkpoint (fp16 safetensors) of the narrow UNet in ``folder``."""
    import safetensors.torch

    from .tiny_models import checkpoint_state_dict, expand_unet

    info = meta(folder)
    narrow = safetensors.torch.load_file(str(Path(folder) / UNET_FILE))
    sd = checkpoint_state_dict(expand_unet(narrow, info["ratio"]), info["clip_seed"], info["vae_scale"])
    safetensors.torch.save_file(sd, str(dest), metadata={"format": "pt", "animapose_demo": "tiny-sd15"})
    return Path(dest)


def write_motion_module(folder, dest, file_format: str = "ckpt") -> Path:
    """The wide motion module (original layout) of the narrow one in ``folder``: ``ckpt`` (a ``state_dict`` pickle of
    tensors, as the releases) or ``safetensors``."""
    import safetensors.torch

    from .tiny_models import expand_motion

    info = meta(folder)
    narrow = safetensors.torch.load_file(str(Path(folder) / MOTION_FILE))
    sd = {k: v.to(torch.float16).contiguous() for k, v in expand_motion(narrow, info["ratio"]).items()}
    if file_format == "safetensors":
        safetensors.torch.save_file(sd, str(dest), metadata={"format": "pt"})
    else:
        torch.save({"state_dict": sd}, str(dest))
    return Path(dest)


def write_motion_lora(folder, dest) -> Path:
    """The wide MotionLoRA (original layout, fp16 safetensors) of the narrow one in ``folder``, for the wide motion
    module ``write_motion_module`` writes."""
    import safetensors.torch

    from .tiny_models import expand_motion_lora

    narrow = safetensors.torch.load_file(str(Path(folder) / LORA_FILE))
    sd = {k: v.to(torch.float16).contiguous() for k, v in expand_motion_lora(narrow, meta(folder)["ratio"]).items()}
    safetensors.torch.save_file(sd, str(dest), metadata={"format": "pt", "animapose": "motion_lora"})
    return Path(dest)


def narrow_models(folder, model, motion):
    """(MODEL, MOTION_MODEL) computing exactly what the wide demo ``model`` (loaded from ``write_checkpoint``'s file)
    and ``motion`` (``write_motion_module``'s) compute, at a sixteenth of the cost: ComfyUI's own SD15 model class
    around the narrow UNet (the same config with narrow operations), and the narrow motion module with the wide one's
    detected info at narrow widths. For measuring many sampled clips on a CPU; parity with the wide files is tested."""
    import copy
    import dataclasses

    import comfy.model_management
    import comfy.model_patcher
    import safetensors.torch

    from ...animapose.motion.sampling.inflate import MotionModel
    from .tiny_models import WIDE, WIDE_HEADS, narrow_motion_set, narrow_ops

    ratio = meta(folder)["ratio"]
    config = copy.copy(model.model.model_config)
    config.unet_config = dict(config.unet_config, model_channels=WIDE // ratio, num_heads=WIDE_HEADS // ratio,
                              dtype=torch.float32)
    config.custom_operations = narrow_ops(ratio)
    base = config.get_model({}, device=torch.device("cpu"))
    weights = safetensors.torch.load_file(str(Path(folder) / UNET_FILE))
    base.diffusion_model.load_state_dict({k: v.float() for k, v in weights.items()}, strict=True)
    base.diffusion_model.eval().requires_grad_(False)
    patcher = comfy.model_patcher.ModelPatcher(base, load_device=comfy.model_management.get_torch_device(),
                                               offload_device=comfy.model_management.unet_offload_device())
    motion_set = narrow_motion_set(ratio, 0)
    weights = safetensors.torch.load_file(str(Path(folder) / MOTION_FILE))
    motion_set.load_state_dict({k: v.float() for k, v in weights.items()}, strict=True)
    c = WIDE // ratio
    info = dataclasses.replace(motion.info, down_channels=(c,), up_channels=(c,), mid_channels=c,
                               heads=WIDE_HEADS // ratio)
    motion_patcher = comfy.model_patcher.ModelPatcher(motion_set.eval().requires_grad_(False),
                                                      load_device=comfy.model_management.get_torch_device(),
                                                      offload_device=comfy.model_management.unet_offload_device())
    return patcher, MotionModel(motion_patcher, info, motion.name + " (narrow)")
