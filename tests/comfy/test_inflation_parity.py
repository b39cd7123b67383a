"""The inflated ComfyUI UNet's noise prediction against diffusers' UNetMotionModel on the same weights (float32).

Where the GroupNorm scopes agree (the pack's "diffusers" setting) the outputs must match; the original code's
scopes are matched by a diffusers instance with swapped norms, and a test pins how far the scopes differ.
"""

from __future__ import annotations

import comfy.model_management
import comfy.patcher_extension
import comfy.sd
import pytest
import torch

from animapose.checkpoints import load_state_dict
from animapose.motion import NORM_AUTO, NORM_DIFFUSERS
from animapose.motion.convert import motion_adapter_config, original_to_diffusers
from animapose.motion.detect import normalize_motion_state_dict
from animapose.motion.inflate import apply_motion_model, load_motion_model
from tests.comfy.helpers import sampling_run
from tests.comfy.reference import diffusers_unet_from_comfy, rel_err, set_original_scope
from tests.fixtures.motion import motion_module_file

FRAMES = 8
TOL = 1e-4



@pytest.fixture(scope="module")
def inputs():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(FRAMES, 4, 8, 8, generator=g)
    context = torch.randn(1, 77, 768, generator=g) * 0.5
    t = torch.tensor(501.0)
    return x, context, t


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
