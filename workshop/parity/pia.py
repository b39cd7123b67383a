"""PIA parity: diffusers' PIA UNet (UNetMotionModel.from_unet2d with a MotionAdapter(conv_in_channels=9)) on the pack's weights, and the pack's inflated UNet on the same inputs; used by the comfy-tier tests and by ``python -m comfyui_animapose.workshop.parity pia``."""

from __future__ import annotations

import torch

from ...animapose.checkpoints import load_state_dict
from ...animapose.motion.formats.convert import motion_adapter_config, original_to_diffusers
from ...animapose.motion.formats.detect import image_condition_weights, normalize_motion_state_dict
from ...animapose.motion.sampling.inflate import apply_motion_model, load_motion_model
from ..references.motion_unet import diffusers_unet_from_comfy
from ..sampling import call_unet

FRAMES = 8


def diffusers_pia_unet(model, path):
    from diffusers import MotionAdapter, UNetMotionModel

    raw = load_state_dict(str(path), "motion_model")
    sd, info = normalize_motion_state_dict(raw)
    adapter = MotionAdapter(**motion_adapter_config(info), conv_in_channels=9)
    weights = {k: v.float() for k, v in original_to_diffusers(sd, info).items()}
    weights.update({k: v.float() for k, v in image_condition_weights(raw).items()})
    adapter.load_state_dict(weights, strict=True)
    return UNetMotionModel.from_unet2d(diffusers_unet_from_comfy(model), adapter).float().eval(), info


def inputs():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(FRAMES, 4, 8, 8, generator=g)
    image_latent = torch.randn(1, 4, 8, 8, generator=g)
    context = torch.randn(1, 77, 768, generator=g) * 0.5
    return x, image_latent, context, torch.tensor(401.0)


def run_pack(model, path, groupnorm, xc, context, t):
    m = apply_motion_model(model, load_motion_model(str(path), "pia.ckpt"), 1.0, "use existing", groupnorm).model
    return call_unet(m, xc, t, context)


def reference(unet, x, image_latent, schedule, context, t):
    """diffusers' PIAPipeline.__call__: cat([latents, mask, masked_image], dim=1) on (b, c, f, h, w)."""
    f, _, h, w = x.shape
    mask = torch.tensor(schedule).view(1, 1, f, 1, 1).expand(1, 1, f, h, w)
    masked_image = image_latent[0][None, :, None].expand(1, 4, f, h, w)
    sample = torch.cat([x.unsqueeze(0).permute(0, 2, 1, 3, 4), mask, masked_image], dim=1)
    with torch.no_grad():
        out = unet(sample, t, encoder_hidden_states=context.repeat_interleave(f, dim=0)).sample
    return out.permute(0, 2, 1, 3, 4)[0]
