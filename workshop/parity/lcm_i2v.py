"""AnimateLCM-I2V parity: the authors' UNet re-derived on diffusers' UNetMotionModel with the reference features hooked in, against the pack's; used by the comfy-tier tests and by ``python -m comfyui_animapose.workshop.parity lcm_i2v``."""

from __future__ import annotations

import torch

from ...animapose.checkpoints import load_state_dict
from ...animapose.motion import NORM_AUTO
from ...animapose.motion.addons.lcm_i2v import reference_model
from ...animapose.motion.formats.convert import motion_adapter_config, original_to_diffusers
from ...animapose.motion.formats.detect import image_condition_weights, normalize_motion_state_dict
from ...animapose.motion.sampling import schedules
from ...animapose.motion.sampling.inflate import apply_motion_model, load_motion_model
from ..references.lcm_i2v_reference import (
    adapter_from_weights,
    add_to_diffusers_unet,
    features,
)
from ..references.motion_unet import diffusers_unet_from_comfy, rel_err, set_original_scope
from ..sampling import call_unet

FRAMES = 6


def build_reference_unet(model, path):
    """diffusers' UNetMotionModel on ``model`` and the I2V motion modules, in AnimateLCM's norm scope."""
    from diffusers import MotionAdapter, UNetMotionModel

    raw = load_state_dict(str(path), "motion_model")
    sd, info = normalize_motion_state_dict(raw)
    adapter = MotionAdapter(**motion_adapter_config(info))
    adapter.load_state_dict({k: v.float() for k, v in original_to_diffusers(sd, info).items()}, strict=True)
    unet = UNetMotionModel.from_unet2d(diffusers_unet_from_comfy(model), adapter).float().eval()
    # AnimateLCM's UNet: use_inflated_groupnorm (ResNets per frame), motion-module norm after (b f) -> per frame
    set_original_scope(unet, motion_per_frame=True, resnet_across_frames=False, frames=FRAMES)
    return unet, raw, info


def reference(reference_unet, x, latent, context, t, motion_scale, strength):
    unet, raw, info = reference_unet
    encoder = adapter_from_weights(image_condition_weights(raw), info.down_channels)
    encoder.motion_scale = motion_scale
    encoder.insertion_weights = [strength] * 4
    feats = features(encoder, latent, FRAMES)

    def run():
        with torch.no_grad():
            out = unet(x.unsqueeze(0).permute(0, 2, 1, 3, 4), t, encoder_hidden_states=context.repeat(FRAMES, 1, 1))
        return out.sample.permute(0, 2, 1, 3, 4)[0]

    plain = run()
    handles = add_to_diffusers_unet(unet, feats)
    try:
        return run(), plain
    finally:
        for h in handles:
            h.remove()


def run_pack(model, path, x, raw_latent, context, t, motion_scale, strength):
    applied = apply_motion_model(model, load_motion_model(str(path), NAME), 1.0, schedules.USE_EXISTING, NORM_AUTO).model
    m, _ = reference_model(applied, LatentVAE(raw_latent), torch.rand(1, 64, 64, 3), FRAMES, strength, motion_scale)
    return call_unet(m, x, t, context)


def parity(model, path, reference_unet, motion_scale, strength) -> tuple[float, float]:
    """(max relative error against the reference, how far the reference moves without the picture)."""
    g = torch.Generator().manual_seed(5)
    x = torch.randn(FRAMES, 4, 8, 8, generator=g)
    raw_latent = torch.randn(1, 4, 8, 8, generator=g)
    context = torch.randn(1, 77, 768, generator=g) * 0.5
    t = torch.tensor(601.0)
    latent = model.model.process_latent_in(raw_latent)  # the original's latent * 0.18215
    ref, plain = reference(reference_unet, x, latent, context, t, motion_scale, strength)
    ours = run_pack(model, path, x, raw_latent, context, t, motion_scale, strength)
    return rel_err(ours, ref), rel_err(plain, ref)


NAME = "AnimateLCM_sd15_i2v.ckpt"


class LatentVAE:
    """Hands out a fixed latent, so the parity test controls exactly what the encoder sees."""

    def __init__(self, latent):
        self.latent = latent

    def spacial_compression_encode(self):
        return 8

    def encode(self, pixels):
        return self.latent
