"""AnimateLCM-I2V: the inflated UNet reading a picture against a float32 reference of the authors' semantics (their
Adapter written out in ``workshop/references/lcm_i2v_reference.py``, its features added by hooks where their down blocks add
them, on diffusers' ``UNetMotionModel`` with the same weights), the node path through KSampler and
SamplerCustomAdvanced with context windows, the incoming MODEL untouched, and the errors."""

from __future__ import annotations

import logging

import comfy.patcher_extension
import comfy.sd
import pytest
import torch

from comfyui_animapose.animapose.errors import AnimaPoseError
from comfyui_animapose.animapose.motion.addons.lcm_i2v import KEY, MARKER, reference_model
from comfyui_animapose.animapose.motion.sampling import schedules
from comfyui_animapose.animapose.motion.sampling.inflate import apply_motion_model, load_motion_model
from comfyui_animapose.workshop.fixtures.motion import motion_module_file
from comfyui_animapose.workshop.fixtures.sd15 import sd15_checkpoint
from comfyui_animapose.workshop.parity.lcm_i2v import NAME, build_reference_unet, parity
from comfyui_animapose.workshop.sampling import run

TOL = 1e-5


@pytest.fixture(scope="module")
def small():
    model, clip, vae, _ = comfy.sd.load_checkpoint_guess_config(str(sd15_checkpoint("small", "taesd")))
    positive = clip.encode_from_tokens_scheduled(clip.tokenize("a fox running in snow"))
    negative = clip.encode_from_tokens_scheduled(clip.tokenize("blurry"))
    return model, vae, positive, negative


@pytest.fixture(scope="module")
def i2v_path():
    return motion_module_file("animatelcm_i2v", "original", "small", ext=".ckpt", dtype="fp32")


@pytest.fixture(scope="module")
def reference_unet(small, i2v_path):
    return build_reference_unet(small[0], i2v_path)


@pytest.mark.parametrize("motion_scale,strength", [(0.8, 1.0), (0.0, 0.5)])
def test_matches_authors_unet(small, i2v_path, reference_unet, motion_scale, strength):
    err, without_picture = parity(small[0], i2v_path, reference_unet, motion_scale, strength)
    logging.getLogger(__name__).info("AnimateLCM-I2V parity (motion_scale %g, strength %g): max relative error %.2e",
                                     motion_scale, strength, err)
    assert err <= TOL, f"max relative error {err:.2e}"
    assert without_picture > 100 * TOL  # the picture really changes the output


def test_node_path_samples_and_leaves_models_alone(small, i2v_path):
    model, vae, pos, neg = small
    before = {k: v.clone() for k, v in model.model.diffusion_model.state_dict().items()}
    applied = apply_motion_model(model, load_motion_model(str(i2v_path), NAME))
    assert applied.schedule == schedules.LCM_I2V
    m_in = applied.model

    def snapshot():
        # the injection's own insertion record appears once m_in itself is sampled; everything else must stay
        attachments = {k: v for k, v in m_in.attachments.items() if k != "animapose"}
        return (dict(m_in.patches), {k: dict(v) for k, v in m_in.wrappers.items()}, dict(m_in.additional_models),
                attachments, dict(m_in.model_options["transformer_options"].get("patches", {})))

    untouched = snapshot()
    image = torch.rand(1, 64, 72, 3)
    m, latent = reference_model(m_in, vae, image, 4, 1.0, 0.8)
    assert snapshot() == untouched
    assert latent["samples"].shape == (4, 4, 8, 9)
    assert m.get_additional_models_with_key(KEY) and not m_in.get_additional_models_with_key(KEY)
    out = run(m, pos, neg, frames=4, steps=1, sampler="lcm", cfg=1.5, latent=latent["samples"])
    plain = run(m_in, pos, neg, frames=4, steps=1, sampler="lcm", cfg=1.5, latent=latent["samples"])
    assert out.shape == (4, 4, 8, 9) and torch.isfinite(out).all()
    assert not torch.allclose(out, plain)  # the picture reached the UNet
    for patcher in (m, m_in):  # ComfyUI keeps the last sampled model patched in place until it is unloaded
        patcher.detach()
    after = model.model.diffusion_model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before) and set(after) == set(before)
    assert snapshot() == untouched
    assert MARKER not in model.attachments and not model.get_additional_models_with_key(KEY)


def test_sampler_custom_advanced_with_context_windows(small, i2v_path):
    """SamplerCustomAdvanced over 6 frames in 4-frame windows: every call gets features for its own frame count."""
    from comfy_extras.nodes_custom_sampler import (
        BasicScheduler,
        CFGGuider,
        KSamplerSelect,
        RandomNoise,
        SamplerCustomAdvanced,
    )

    from comfyui_animapose.animapose.motion.sampling.context import set_context_windows
    from comfyui_animapose.animapose.motion.sampling.stages import REFERENCE_FEATURES

    model, vae, pos, neg = small
    applied = apply_motion_model(model, load_motion_model(str(i2v_path), NAME)).model
    m, latent = reference_model(applied, vae, torch.rand(1, 64, 64, 3), 6, 1.0, 0.8)
    seen = []

    def record(executor, x, *args, **kwargs):
        out = executor(x, *args, **kwargs)
        seen.append(x.shape[0])
        return out

    windowed = set_context_windows(m, 4, 2, "standard_static", 1, False, "pyramid")
    # registered after the reference wrapper, so it runs inside it and sees the features it added
    windowed.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "test",
                                  lambda executor, x, *a, **k: (seen.append(len(a[4][REFERENCE_FEATURES])),
                                                                record(executor, x, *a, **k))[1])
    guider = CFGGuider.execute(windowed, pos, neg, 1.5)[0]
    sigmas = BasicScheduler.execute(windowed, "sgm_uniform", 1, 1.0)[0]
    out = SamplerCustomAdvanced.execute(RandomNoise.execute(3)[0], guider, KSamplerSelect.execute("lcm")[0], sigmas,
                                        latent)[0]["samples"]
    m.detach()
    assert out.shape == (6, 4, 8, 8) and torch.isfinite(out).all()
    assert seen and seen[0::2] == [4] * (len(seen) // 2)  # features for the four levels in every call
    assert set(seen[1::2]) <= {4, 8}  # one window per call, cond and uncond batched or not


def test_errors_name_the_fix(tiny, small, i2v_path, caplog):
    model, vae, _, _ = small
    with pytest.raises(AnimaPoseError) as e:
        reference_model(model, vae, torch.rand(1, 64, 64, 3), 4)
    assert e.value.input_name == "model" and "no motion model applied" in e.value.problem
    t2v = apply_motion_model(model, load_motion_model(str(motion_module_file("animatelcm", "original", "small")),
                                                      "AnimateLCM_sd15_t2v.ckpt")).model
    with pytest.raises(AnimaPoseError) as e:
        reference_model(t2v, vae, torch.rand(1, 64, 64, 3), 4)
    assert "AnimateLCM_sd15_t2v.ckpt) has no image encoder" in e.value.problem and NAME in e.value.fix
    with pytest.raises(AnimaPoseError) as e:  # the 1-level test UNet stands in for a checkpoint of another family
        apply_motion_model(tiny[0], load_motion_model(str(i2v_path), NAME))
    assert e.value.input_name == "motion_model" and "levels" in e.value.problem
    # a one-level UNet with one layer per level: the original's second layer does not exist, so no feature is added
    one_layer = load_motion_model(str(motion_module_file("animatelcm_i2v", "original", "tiny", ext=".ckpt")), NAME)
    with caplog.at_level(logging.WARNING):
        applied = apply_motion_model(tiny[0], one_layer).model
    assert "no effect" in caplog.text and applied.get_attachment(MARKER).targets == (None,)
