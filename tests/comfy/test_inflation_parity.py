"""The inflated ComfyUI UNet's noise prediction against diffusers' UNetMotionModel on the same weights (float32).

Where the GroupNorm scopes agree (the pack's "diffusers" setting) the outputs must match; the original code's
scopes are matched by a diffusers instance with swapped norms, and a test pins how far the scopes differ.
"""

from __future__ import annotations

import pytest
import torch

from comfyui_animapose.animapose.motion import NORM_AUTO, NORM_DIFFUSERS
from comfyui_animapose.workshop.fixtures.motion import motion_module_file
from comfyui_animapose.workshop.parity.motion import comfy_eps, diffusers_eps, diffusers_motion_unet
from comfyui_animapose.workshop.references.motion_unet import rel_err, set_original_scope

FRAMES = 8
TOL = 1e-4


@pytest.fixture(scope="module")
def inputs():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(FRAMES, 4, 8, 8, generator=g)
    context = torch.randn(1, 77, 768, generator=g) * 0.5
    t = torch.tensor(501.0)
    return x, context, t


@pytest.mark.parametrize("family", ["v2", "v3"])
def test_diffusers_scope_matches_diffusers(small_model, inputs, family):
    path = motion_module_file(family, "original", "small", dtype="fp32")
    ours = comfy_eps(small_model, path, family, NORM_DIFFUSERS, *inputs)
    ref_unet, _ = diffusers_motion_unet(small_model, path)
    ref = diffusers_eps(ref_unet, *inputs)
    err = rel_err(ours, ref)
    assert err <= TOL, f"max relative error {err:.2e}"


@pytest.mark.parametrize("family", ["v1", "v2", "v3"])
def test_original_scope_matches_original_semantics(small_model, inputs, family):
    path = motion_module_file(family, "original", "small", dtype="fp32")
    ours = comfy_eps(small_model, path, family, NORM_AUTO, *inputs)
    ref_unet, info = diffusers_motion_unet(small_model, path)
    set_original_scope(ref_unet, motion_per_frame=not info.norm_scope.motion,
                       resnet_across_frames=info.norm_scope.resnet, frames=FRAMES)
    ref = diffusers_eps(ref_unet, *inputs)
    err = rel_err(ours, ref)
    assert err <= TOL, f"max relative error {err:.2e}"


def test_scopes_differ_measurably(small_model, inputs):
    """The original v1 semantics are not what diffusers (or a global GroupNorm swap) computes."""
    path = motion_module_file("v1", "original", "small", dtype="fp32")
    original = comfy_eps(small_model, path, "v1", NORM_AUTO, *inputs)
    diffusers_like = comfy_eps(small_model, path, "v1", NORM_DIFFUSERS, *inputs)
    ref_unet, _ = diffusers_motion_unet(small_model, path)
    plain_diffusers = diffusers_eps(ref_unet, *inputs)
    assert rel_err(diffusers_like, plain_diffusers) <= TOL
    gap = rel_err(original, plain_diffusers)
    assert gap > 1e-2, f"v1's original scope should differ from diffusers' clearly, got {gap:.2e}"
