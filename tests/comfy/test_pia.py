"""PIA: the inflated UNet with PIA's 9-channel conv_in against diffusers' PIA UNet (``UNetMotionModel.from_unet2d``
with a ``MotionAdapter(conv_in_channels=9)``) on the same weights in float32, the affinity presets against diffusers'
``prepare_mask_coef_by_statistics``, and the node path through real samplers with the incoming MODEL untouched."""

from __future__ import annotations

import comfy.patcher_extension
import comfy.sd
import pytest
import torch

from comfyui_animapose.animapose.errors import AnimaPoseError
from comfyui_animapose.animapose.motion import NORM_AUTO, NORM_DIFFUSERS
from comfyui_animapose.animapose.motion.addons.pia import CONV_KEY, pia_concat, pia_conditioning
from comfyui_animapose.animapose.motion.addons.pia_affinity import AFFINITY_PRESETS, affinity_schedule
from comfyui_animapose.animapose.motion.sampling.inflate import apply_motion_model, load_motion_model
from comfyui_animapose.workshop.fixtures.motion import motion_module_file
from comfyui_animapose.workshop.parity.pia import FRAMES, diffusers_pia_unet, inputs, reference, run_pack
from comfyui_animapose.workshop.references.motion_unet import rel_err, set_original_scope

TOL = 1e-4


@pytest.fixture(scope="module")
def pia_path():
    return motion_module_file("pia", "original", "small", dtype="fp32")


def test_presets_match_diffusers():
    from diffusers.pipelines.deprecated.pia.pipeline_pia import prepare_mask_coef_by_statistics

    for index, name in enumerate(AFFINITY_PRESETS):
        for frames in (1, 4, 16, 24):
            assert affinity_schedule(frames, name) == prepare_mask_coef_by_statistics(frames, 0, index), name
    assert affinity_schedule(4, "small motion", "1, 0.5") == [1.0, 0.5, 0.5, 0.5]
    with pytest.raises(AnimaPoseError) as e:
        affinity_schedule(4, "small motion", "1, x")
    assert e.value.input_name == "custom_affinity"


@pytest.mark.parametrize("groupnorm", [NORM_DIFFUSERS, NORM_AUTO])
def test_matches_diffusers_pia_unet(small_model, pia_path, groupnorm):
    x, image_latent, context, t = inputs()
    schedule = affinity_schedule(FRAMES, "moderate motion")
    unet, info = diffusers_pia_unet(small_model, pia_path)  # built before our patcher pads the shared conv_in
    if groupnorm == NORM_AUTO:
        # PIA's original code: ResNet GroupNorms over the clip, motion-module GroupNorm per frame
        set_original_scope(unet, motion_per_frame=True, resnet_across_frames=True, frames=FRAMES)
    ref = reference(unet, x, image_latent, schedule, context, t)
    xc = torch.cat([x, pia_concat(image_latent, schedule)], dim=1)
    ours = run_pack(small_model, pia_path, groupnorm, xc, context, t)
    err = rel_err(ours, ref)
    assert err <= TOL, f"max relative error {err:.2e}"
    assert small_model.model.diffusion_model.input_blocks[0][0].weight.shape[1] == 4


class _FakeVAE:
    """Stands in for a VAE: a fixed linear map from pixels to 4 latent channels at 1/8 size."""

    def spacial_compression_encode(self):
        return 8

    def encode(self, pixels):
        p = pixels.movedim(-1, 1)
        pooled = torch.nn.functional.avg_pool2d(p, 8)
        return torch.cat([pooled, pooled.mean(1, keepdim=True)], dim=1)


def test_node_path_samples_and_leaves_model_alone(tiny, small_model, pia_path):
    from comfyui_animapose.workshop.sampling import run

    _, _, _, pos, neg = tiny
    before = {k: v.clone() for k, v in small_model.model.diffusion_model.state_dict().items()}
    m = apply_motion_model(small_model, load_motion_model(str(pia_path), "pia.ckpt")).model
    assert CONV_KEY in m.patches and CONV_KEY not in small_model.patches
    image = torch.rand(1, 64, 64, 3)
    ppos, pneg, latent = pia_conditioning(m, pos, neg, _FakeVAE(), image, 4, "small motion")
    concat = ppos[0][1]["noise_concat"]
    assert concat.shape == (4, 5, 8, 8) and latent["samples"].shape == (4, 4, 8, 8)
    assert torch.allclose(concat[:, 0, 0, 0], torch.tensor([1.0, 0.9, 0.85, 0.85]))
    assert torch.allclose(concat[0, 1:], small_model.model.process_latent_in(_FakeVAE().encode(image))[0])
    out = run(m, ppos, pneg, frames=4, steps=2, latent=latent["samples"])
    assert out.shape == (4, 4, 8, 8) and torch.isfinite(out).all()
    m.detach()  # ComfyUI keeps the last sampled model patched in place until it is unloaded
    after = small_model.model.diffusion_model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)

    with pytest.raises(AnimaPoseError) as e:
        run(m, pos, neg, frames=4, steps=1)
    assert "PIA Image" in e.value.fix

    plain = apply_motion_model(m, load_motion_model(str(motion_module_file("v3", "original", "small")), "v3"))
    assert CONV_KEY not in plain.model.patches
    with pytest.raises(AnimaPoseError) as e:
        pia_conditioning(plain.model, pos, neg, _FakeVAE(), image, 4, "small motion")
    assert e.value.input_name == "model"


def test_sampler_custom_advanced_and_context_windows(tiny, small_model, pia_path):
    """The concat channels reach the UNet through SamplerCustomAdvanced too, and context windows slice them per window
    (a window that got the whole clip's channels would fail on the channel-count check's batch)."""
    from comfy_extras.nodes_custom_sampler import (
        BasicScheduler,
        CFGGuider,
        KSamplerSelect,
        RandomNoise,
        SamplerCustomAdvanced,
    )

    from comfyui_animapose.animapose.motion.sampling.context import set_context_windows

    _, _, _, pos, neg = tiny
    m = apply_motion_model(small_model, load_motion_model(str(pia_path), "pia.ckpt")).model
    ppos, pneg, latent = pia_conditioning(m, pos, neg, _FakeVAE(), torch.rand(1, 64, 64, 3), 6, "loop (small motion)")
    seen = []

    def record(executor, x, *args, **kwargs):
        seen.append(x[:, 4].flatten(1)[:, 0].tolist())  # the affinity channel of every frame in this call
        return executor(x, *args, **kwargs)

    windowed = set_context_windows(m, 4, 2, "standard_static", 1, False, "pyramid")
    windowed.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "test", record)
    guider = CFGGuider.execute(windowed, ppos, pneg, 5.0)[0]
    sigmas = BasicScheduler.execute(windowed, "normal", 2, 1.0)[0]
    out = SamplerCustomAdvanced.execute(RandomNoise.execute(3)[0], guider, KSamplerSelect.execute("euler")[0], sigmas,
                                        latent)[0]["samples"]
    m.detach()
    assert out.shape == (6, 4, 8, 8) and torch.isfinite(out).all()
    schedule = affinity_schedule(6, "loop (small motion)")
    assert seen and all(len(s) in (4, 8) for s in seen)  # one window per call, cond and uncond batched or not
    windows = {tuple(round(v, 4) for v in s[:4]) for s in seen}
    assert windows <= {tuple(round(v, 4) for v in schedule[i:i + 4]) for i in range(3)}
    assert len(windows) > 1
