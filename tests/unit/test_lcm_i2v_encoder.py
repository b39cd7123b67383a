"""AnimateLCM-I2V's image encoder against a float32 reference written from the authors' Adapter, on the fixture's
``img_encoder.*`` weights (widths that change between levels, so ``in_conv`` and odd sizes are exercised)."""

from __future__ import annotations

import pytest
import torch

from comfyui_animapose.animapose.motion.addons.lcm_i2v_encoder import ImageEncoder, encoder_spec, split_encoder
from comfyui_animapose.workshop.fixtures import motion as fx
from comfyui_animapose.workshop.references.lcm_i2v_reference import adapter_from_weights, features

WIDTHS = (32, 64, 128, 128)
TOL = 1e-5


@pytest.mark.parametrize("frames,size,motion_scale", [(5, (9, 7), 0.8), (3, (8, 8), 0.0), (2, (5, 12), 1.5)])
def test_encoder_matches_authors_adapter(frames, size, motion_scale):
    weights = split_encoder(fx.motion_state_dict("animatelcm_i2v", "original", "micro", dtype="fp32"))
    assert "body.2.in_conv.weight" in weights and "body.6.in_conv.weight" not in weights
    ours = ImageEncoder(encoder_spec(weights, WIDTHS))
    ours.load_state_dict(weights, strict=True)
    ref = adapter_from_weights(weights, WIDTHS)
    ref.motion_scale = motion_scale
    latent = torch.randn(1, 4, *size, generator=torch.Generator().manual_seed(1))
    expected = features(ref, latent, frames)
    with torch.no_grad():
        got = ours(latent, frames, motion_scale)
    assert len(got) == len(expected) == 4
    for level, (g, e) in enumerate(zip(got, expected)):
        e = e[0].permute(1, 0, 2, 3)  # (c, f, h, w) -> (f, c, h, w)
        assert g.shape == e.shape, level
        err = ((g - e).abs().max() / e.abs().max()).item()
        assert err <= TOL, f"level {level}: max relative error {err:.2e}"
    # frames differ only through the positions: with motion_scale 0 every frame is the same
    if motion_scale == 0.0:
        assert torch.equal(got[0][0], got[0][-1])
    else:
        assert not torch.allclose(got[-1][0], got[-1][-1])
