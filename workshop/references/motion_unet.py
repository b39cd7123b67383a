"""Reference implementations for parity tests: diffusers models built from the same fixture weights.

diffusers' ``UNetMotionModel`` normalises the motion module across frames and the ResNets per frame. The original
code's other scopes are reproduced on a test-owned diffusers instance by swapping individual norm attributes for
wrappers (no class or global is touched), which pins down what each scope computes.
"""

from __future__ import annotations

import comfy.utils
import torch
from torch import nn


def diffusers_unet_config(unet_config: dict) -> dict:
    """``UNet2DConditionModel`` kwargs equivalent to a ComfyUI SD1.x ``unet_config`` (reduced profiles too)."""
    mults = unet_config["channel_mult"]
    levels = len(mults)
    depth = unet_config["transformer_depth"]
    nrb = unet_config["num_res_blocks"]
    has_attn = [depth[sum(nrb[:i])] > 0 for i in range(levels)]
    return dict(
        sample_size=64, in_channels=unet_config["in_channels"], out_channels=4,
        down_block_types=tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in has_attn),
        up_block_types=tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(has_attn)),
        mid_block_type="UNetMidBlock2DCrossAttn" if unet_config.get("transformer_depth_middle", -1) >= 0 else None,
        block_out_channels=tuple(unet_config["model_channels"] * m for m in mults),
        layers_per_block=nrb[0], cross_attention_dim=unet_config["context_dim"],
        attention_head_dim=unet_config.get("num_heads", 8), norm_num_groups=32,
    )


def diffusers_unet_from_comfy(model_patcher):
    """A float32 ``UNet2DConditionModel`` holding exactly the weights of a loaded ComfyUI SD1.x MODEL."""
    from diffusers import UNet2DConditionModel

    unet_config = model_patcher.model.model_config.unet_config
    ldm_sd = model_patcher.model.diffusion_model.state_dict()
    mapping = comfy.utils.unet_to_diffusers(unet_config)
    sd = {k: ldm_sd[v].float() for k, v in mapping.items() if v in ldm_sd}
    unet = UNet2DConditionModel(**diffusers_unet_config(unet_config))
    unet.load_state_dict(sd, strict=True)
    return unet.eval()


class PerFrameGroupNorm(nn.Module):
    """Applies a diffusers motion module's norm to each frame of a (b, c, f, h, w) tensor on its own."""

    def __init__(self, norm: nn.GroupNorm):
        super().__init__()
        self.norm = norm

    def forward(self, x):
        b, c, f, h, w = x.shape
        y = self.norm(x.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w))
        return y.reshape(b, f, c, h, w).permute(0, 2, 1, 3, 4)


class AcrossFramesGroupNorm(nn.Module):
    """Applies a 2-D GroupNorm of a diffusers UNet over all ``frames`` of each clip in a (b f) c h w batch."""

    def __init__(self, norm: nn.GroupNorm, frames: int):
        super().__init__()
        self.norm = norm
        self.frames = frames

    def forward(self, x):
        bf, c, h, w = x.shape
        f = self.frames
        y = self.norm(x.reshape(bf // f, f, c, h * w).transpose(1, 2))
        return y.transpose(1, 2).reshape(bf, c, h, w)


def set_original_scope(motion_unet, motion_per_frame: bool, resnet_across_frames: bool, frames: int) -> None:
    """Turns a test-owned ``UNetMotionModel`` into the original code's GroupNorm scope."""
    from diffusers.models.resnet import ResnetBlock2D

    if motion_per_frame:
        for name, module in motion_unet.named_modules():
            if type(module).__name__ == "AnimateDiffTransformer3D":
                module.norm = PerFrameGroupNorm(module.norm)
    if resnet_across_frames:
        for module in motion_unet.modules():
            if isinstance(module, ResnetBlock2D):
                module.norm1 = AcrossFramesGroupNorm(module.norm1, frames)
                module.norm2 = AcrossFramesGroupNorm(module.norm2, frames)
        motion_unet.conv_norm_out = AcrossFramesGroupNorm(motion_unet.conv_norm_out, frames)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).abs().max() / b.double().abs().max()).item()
