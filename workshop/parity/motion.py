"""Motion-module parity: the pack's inflated UNet against diffusers' UNetMotionModel built from the same checkpoint and motion module."""

from __future__ import annotations

import comfy.model_management
import comfy.patcher_extension
import comfy.sd
import torch

from ...animapose.checkpoints import load_state_dict
from ...animapose.motion.formats.convert import motion_adapter_config, original_to_diffusers
from ...animapose.motion.formats.detect import normalize_motion_state_dict
from ...animapose.motion.sampling.inflate import apply_motion_model, load_motion_model
from ..references.motion_unet import diffusers_unet_from_comfy
from ..sampling import sampling_run


def comfy_eps(model, motion_path, name, groupnorm, x, context, t):
    motion = load_motion_model(str(motion_path), name)
    m = apply_motion_model(model, motion, 1.0, "use existing", groupnorm).model
    # what a sampler's prepare step puts into transformer_options, for a direct UNet call
    to = comfy.patcher_extension.copy_nested_dicts(m.model_options["transformer_options"])
    to["wrappers"] = comfy.patcher_extension.copy_nested_dicts(m.wrappers)
    to["cond_or_uncond"] = [0]
    with sampling_run(m), torch.no_grad():
        return m.model.diffusion_model(x, t.expand(x.shape[0]), context=context.expand(x.shape[0], -1, -1),
                                       transformer_options=to)


def diffusers_motion_unet(model, motion_path):
    from diffusers import MotionAdapter, UNetMotionModel

    sd, info = normalize_motion_state_dict(load_state_dict(str(motion_path), "motion_model"))
    adapter = MotionAdapter(**motion_adapter_config(info))
    adapter.load_state_dict({k: v.float() for k, v in original_to_diffusers(sd, info).items()}, strict=True)
    return UNetMotionModel.from_unet2d(diffusers_unet_from_comfy(model), adapter).float().eval(), info


def diffusers_eps(unet, x, context, t):
    sample = x.unsqueeze(0).permute(0, 2, 1, 3, 4)  # (f c h w) -> (1 c f h w)
    # diffusers' AnimateDiff pipelines repeat the prompt per frame before calling the UNet
    context = context.repeat_interleave(x.shape[0], dim=0)
    with torch.no_grad():
        out = unet(sample, t, encoder_hidden_states=context).sample
    return out.permute(0, 2, 1, 3, 4)[0]
