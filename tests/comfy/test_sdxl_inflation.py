"""SDXL motion modules (AnimateDiff SDXL beta, HotshotXL) inflate an SDXL UNet at the original positions: 3 levels,
the level-0 modules after ResBlocks (SDXL has no attention there), none in the middle block; each format with its
own GroupNorm scope; and an SD1.5 module is refused."""

from __future__ import annotations

import comfy.model_management
import comfy.patcher_extension
import comfy.sd
import pytest
import torch
from comfy.ldm.modules.attention import SpatialTransformer
from comfy.ldm.modules.diffusionmodules.openaimodel import ResBlock, Upsample

from comfyui_animapose.animapose.errors import AnimaPoseError
from comfyui_animapose.animapose.motion.module import MotionModule
from comfyui_animapose.animapose.motion.sampling.inflate import apply_motion_model, load_motion_model
from comfyui_animapose.animapose.motion.sampling.placement import FrameGroupNorm
from comfyui_animapose.workshop.fixtures.motion import motion_module_file
from comfyui_animapose.workshop.fixtures.sdxl import sdxl_unet_file
from comfyui_animapose.workshop.sampling import sampling_run

FRAMES = 4


@pytest.fixture(scope="module")
def sdxl():
    return comfy.sd.load_diffusion_model(str(sdxl_unet_file("small")))


def _eps(m, x, seed=0):
    g = torch.Generator().manual_seed(seed)
    context = torch.randn(x.shape[0], 77, 2048, generator=g) * 0.3
    y = torch.randn(x.shape[0], 2816, generator=g) * 0.3
    to = comfy.patcher_extension.copy_nested_dicts(m.model_options["transformer_options"])
    to["wrappers"] = comfy.patcher_extension.copy_nested_dicts(m.wrappers)
    to["cond_or_uncond"] = [0]
    with sampling_run(m), torch.no_grad():
        return m.model.diffusion_model(x, torch.full((x.shape[0],), 400.0), context=context, y=y,
                                       transformer_options=to)


@pytest.mark.parametrize("family", ["sdxl_beta", "hotshotxl"])
def test_sdxl_families_inflate_at_original_positions(sdxl, family):
    assert type(sdxl.model.model_config).__name__ == "SDXL"
    motion = load_motion_model(str(motion_module_file(family, "original", "small")), family)
    applied = apply_motion_model(sdxl, motion)
    m = applied.model
    x = torch.randn(FRAMES, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    out = _eps(m, x)
    unet = m.model.diffusion_model
    with sampling_run(m):  # the modules are in the UNet for a run only
        placed = {i: list(b) for i, b in enumerate(unet.input_blocks) if any(isinstance(l, MotionModule) for l in b)}
        ups = [list(b) for b in unet.output_blocks if any(isinstance(l, MotionModule) for l in b)]
        in_middle = any(isinstance(l, MotionModule) for l in unet.middle_block)
        wrapped = sum(isinstance(mod, FrameGroupNorm) for mod in unet.modules())
    assert sorted(placed) == [1, 2, 4, 5, 7, 8]
    assert isinstance(placed[1][0], ResBlock) and isinstance(placed[1][1], MotionModule)  # level 0: no attention
    assert isinstance(placed[4][1], SpatialTransformer) and isinstance(placed[4][2], MotionModule)
    assert len(ups) == 9
    for layers in ups:
        if isinstance(layers[-1], Upsample):
            assert isinstance(layers[-2], MotionModule), "the motion module goes before the upsampler"
    assert not in_middle
    assert (wrapped > 0) == motion.info.norm_scope.resnet
    assert not any(isinstance(mod, (MotionModule, FrameGroupNorm)) for mod in unet.modules()), "left after the run"
    assert applied.schedule == ("linear (AnimateDiff-SDXL, 0.020)" if family == "sdxl_beta" else
                                "linear (SD default, HotshotXL)")
    plain = _eps(sdxl, x)
    assert torch.isfinite(out).all() and not torch.allclose(out, plain)
    comfy.model_management.unload_all_models()
    assert not any(isinstance(mod, (MotionModule, FrameGroupNorm)) for mod in unet.modules())


def test_sd15_module_refused_on_sdxl(sdxl):
    motion = load_motion_model(str(motion_module_file("v2", "original", "small")), "mm_sd_v15_v2.ckpt")
    with pytest.raises(AnimaPoseError, match="SD1.5 motion module .* on an SDXL model"):
        apply_motion_model(sdxl, motion)
