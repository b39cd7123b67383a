"""SparseCtrl parity: diffusers' SparseControlNetModel on the same weights against the pack's encoder; used by the comfy-tier tests and by ``python -m comfyui_animapose.workshop.parity sparsectrl``."""

from __future__ import annotations

import torch

from ..fixtures.sparsectrl import diffusers_config, sparsectrl_state_dict

FRAMES = 8


def diffusers(variant):
    from diffusers import SparseControlNetModel

    model = SparseControlNetModel(**diffusers_config(variant, "small"))
    model.load_state_dict(sparsectrl_state_dict(variant, "small", "diffusers", dtype=torch.float32), strict=True)
    return model.float().eval()


def reference(model, cond, mask, t, context):
    """diffusers on (1, c, f, h, w) inputs; the prompt repeated per frame as its pipelines do."""
    f = cond.shape[0]
    sample = torch.randn(1, 4, f, 8, 8)  # ignored: SparseCtrl zeroes the noisy input
    with torch.no_grad():
        down, mid = model(sample, t, encoder_hidden_states=context.repeat_interleave(f, dim=0),
                          controlnet_cond=cond.permute(1, 0, 2, 3)[None], conditioning_mask=mask.permute(1, 0, 2, 3)[None],
                          return_dict=False)
    return list(down), mid


def run_pack(control, hint, t, context, frames):
    like = torch.randn(frames, 4, 8, 8)
    with torch.no_grad():
        out = control.control_model(hint, t.expand(frames), context.expand(frames, -1, -1), frames, like,
                                    control.norm_across_frames)
    return out["output"], out["middle"][0]
