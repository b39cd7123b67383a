"""CameraCtrl UNet parity: the pack's inflated UNet with CameraCtrl against the authors' CameraCtrl re-derived on diffusers' UNetMotionModel; used by the comfy-tier tests and the parity command."""

from __future__ import annotations

import comfy.model_management
import comfy.patcher_extension
import comfy.sd
import torch
from comfy.context_windows import IndexListContextWindow

from ...animapose.checkpoints import load_state_dict
from ..parity.motion import diffusers_motion_unet
from ..references import cameractrl_reference as ref
from ..references.motion_unet import set_original_scope
from ..sampling import sampling_run

FRAMES = 8


def call(m, x, context, t, window=None):
    to = comfy.patcher_extension.copy_nested_dicts(m.model_options["transformer_options"])
    to["wrappers"] = comfy.patcher_extension.copy_nested_dicts(m.wrappers)
    to["cond_or_uncond"] = [0]
    if window is not None:
        to["context_window"] = IndexListContextWindow(window)
    with sampling_run(m), torch.no_grad():
        return m.model.diffusion_model(x, t.expand(x.shape[0]), context=context.expand(x.shape[0], -1, -1),
                                       transformer_options=to)


def inputs(frames=FRAMES):
    g = torch.Generator().manual_seed(5)
    return torch.randn(frames, 4, 8, 8, generator=g), torch.randn(1, 77, 768, generator=g) * 0.5, torch.tensor(301.0)


def reference_unet(small_model, v3_path, ctrl_path, plucker, strength):
    """diffusers' motion UNet with the original per-frame motion GroupNorm, and CameraCtrl's processor on attn1 of
    every down/up motion module fed the reference encoder's feature of its level (decoder: reversed)."""
    unet, _ = diffusers_motion_unet(small_model, v3_path)
    set_original_scope(unet, motion_per_frame=True, resnet_across_frames=False, frames=plucker.shape[0])
    sd = {k: v.float() for k, v in load_state_dict(str(ctrl_path), "cameractrl").items()}
    feats = ref.encode(sd, plucker, levels=4)
    for kind, blocks in (("down_blocks", unet.down_blocks), ("up_blocks", unet.up_blocks)):
        for i, block in enumerate(blocks):
            f = feats[i] if kind == "down_blocks" else feats[len(feats) - 1 - i]
            n, c, h, w = f.shape
            for j, mm in enumerate(block.motion_modules):
                key = f"{kind}.{i}.motion_modules.{j}.temporal_transformer.transformer_blocks.0.attention_blocks.0.processor.qkv_merge"
                proc = ref.PoseAdaptorProcessor(sd[f"{key}.weight"], sd[f"{key}.bias"], strength)
                proc.pose = f.permute(2, 3, 0, 1).reshape(h * w, n, c)
                mm.transformer_blocks[0].attn1.set_processor(proc)
    return unet
