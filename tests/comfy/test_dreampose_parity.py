"""DreamPose in ComfyUI against diffusers: UNet noise prediction, dual CFG, and the save/reload round trip.

Both sides load the same official-layout fixture files. The ComfyUI side runs the way a sampler does: a guider's
``sample`` with a one-step probe sampler that records the model's denoised output, through ``calc_cond_batch`` and
``BaseModel.apply_model`` (concat conditioning from ``noise_concat``).
"""

from __future__ import annotations

import logging

import comfy.patcher_extension
import comfy.samplers
import pytest
import torch

from comfyui_animapose.animapose.dreampose import checkpoint, clip_image
from comfyui_animapose.animapose.dreampose.guidance import build_conds, dreampose_guider
from comfyui_animapose.animapose.dreampose.poses import pose_windows, synthetic_uv_sequence
from comfyui_animapose.workshop.fixtures import dreampose as fx

log = logging.getLogger(__name__)

FRAMES, LATENT_HW = 2, (8, 8)
T_INDEX = 500
S_IMAGE, S_POSE = 2.5, 1.7


@pytest.fixture(scope="module")
def model():
    return checkpoint.load_unet(str(fx.dreampose_unet_file("small", ".pth")), dtype=torch.float32)


@pytest.fixture(scope="module")
def adapter():
    return checkpoint.read_adapter(str(fx.dreampose_adapter_file(".pth")))


@pytest.fixture(scope="module")
def reference_unet():
    """The official get_unet() + load_state_dict path, in diffusers, float32."""
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        unet = UNet2DConditionModel(**fx.unet_diffusers_config("small"))
        unet.conv_in = torch.nn.Conv2d(14, 320, kernel_size=3, padding=(1, 1))
    sd = checkpoint.read_unet_state_dict(str(fx.dreampose_unet_file("small", ".pth")))
    unet.load_state_dict(sd, strict=True, assign=True)
    return unet.eval()


@pytest.fixture(scope="module")
def inputs(adapter):
    """Image tokens (adapter over CLIP tokens and a 80x64 latent), black-image tokens, and pose windows."""
    clip = clip_image.load_clip_vision(str(fx.tiny_clip_b32_folder()))
    g = torch.Generator().manual_seed(0)
    reference = torch.rand(1, 640, 512, 3, generator=g)
    latent = torch.randn(1, 4, 80, 64, generator=g)
    black_latent = torch.randn(1, 4, 80, 64, generator=g) * 0.1
    with torch.no_grad():
        tokens = adapter(clip_image.encode_images(clip, reference), latent)
        uncond = adapter(clip_image.encode_images(clip, torch.zeros_like(reference)), black_latent)
    h, w = LATENT_HW
    windows = pose_windows(synthetic_uv_sequence(FRAMES, 8 * h, 8 * w, seed=1), LATENT_HW)
    return tokens, uncond, windows


def _probe(guider, seed: int = 0):
    """One sampler step at timestep T_INDEX: returns (x the model saw, eps, sigma)."""
    ms = guider.model_patcher.get_model_object("model_sampling")
    sigma = ms.sigmas[T_INDEX].float()
    seen = {}

    def probe_sampler(model_k, x, sigmas, extra_args=None, callback=None, disable=None):
        denoised = model_k(x, sigmas[0] * x.new_ones([x.shape[0]]), **extra_args)
        seen.update(x=x.clone(), denoised=denoised.clone())
        return denoised

    shape = (FRAMES, 4, *LATENT_HW)
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    guider.sample(noise, torch.zeros(shape), comfy.samplers.KSAMPLER(probe_sampler),
                  torch.stack([sigma, torch.zeros(())]), disable_pbar=True, seed=seed)
    return seen["x"], (seen["x"] - seen["denoised"]) / sigma, sigma


def _rel(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def _counting(model):
    """A clone of the MODEL whose keyed APPLY_MODEL wrapper records the batch of every UNet call."""
    calls = []

    def count(executor, x, *args, **kwargs):
        calls.append(x.shape[0])
        return executor(x, *args, **kwargs)

    clone = model.clone()
    clone.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, "dreampose_test_count", count)
    return clone, calls


def _formula(e_pose, e_image, e_uncond, s_image, s_pose):
    return e_uncond + s_image * (e_image - e_uncond) + s_pose * (e_pose - e_image)


@pytest.fixture(scope="module")
def separate(model, inputs):
    """x and the three evaluations (image+pose, image+zero pose, uncond+zero pose), each from its own UNet call."""
    out = []
    for cond in build_conds(*inputs):
        single, calls = _counting(model)
        g = comfy.samplers.CFGGuider(single)
        g.set_conds(cond, [])
        g.set_cfg(1.0)
        x, eps, sigma = _probe(g)
        assert calls == [FRAMES]
        out.append(eps)
    return x, sigma, out


@pytest.fixture(scope="module")
def dual(model, inputs):
    counted, calls = _counting(model)
    x, eps, _ = _probe(dreampose_guider(counted, *build_conds(*inputs), image_cfg=S_IMAGE, pose_cfg=S_POSE))
    return x, eps, calls


@pytest.fixture(scope="module")
def official(model, reference_unet, separate, inputs):
    """The official pipeline's single diffusers call: batch [uncond + zero pose, image + pose, image + zero pose]."""
    tokens, uncond, windows = inputs
    x, sigma, _ = separate
    zeros = torch.zeros_like(windows)
    ms = model.get_model_object("model_sampling")
    t = ms.timestep(sigma.reshape(1)).float()
    latents = (x / (sigma**2 + 1) ** 0.5).repeat(3, 1, 1, 1)
    poses = torch.cat([zeros, windows, zeros])
    context = torch.cat([uncond, tokens, tokens]).repeat_interleave(FRAMES, 0)
    with torch.no_grad():
        e = reference_unet(torch.cat([latents, poses], 1), t.expand(3 * FRAMES), encoder_hidden_states=context).sample
    return e.chunk(3)


def test_model_is_native_sd15_with_14_input_channels(model):
    import comfy.supported_models

    assert isinstance(model.model.model_config, comfy.supported_models.SD15)
    assert model.model.diffusion_model.input_blocks[0][0].weight.shape == (320, 14, 3, 3)
    # SD1.4's schedule: scaled-linear betas 0.00085 .. 0.012 over 1000 steps
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    alphas_cumprod = torch.cumprod(1 - betas, 0)
    sigmas = ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5
    torch.testing.assert_close(model.get_model_object("model_sampling").sigmas.double(), sigmas, rtol=1e-5, atol=0)


def test_noise_prediction_matches_diffusers(separate, official):
    e_pose, e_image, e_uncond = separate[2]
    d_uncond, d_pose, d_image = official
    rel = max(_rel(e_pose, d_pose), _rel(e_image, d_image), _rel(e_uncond, d_uncond))
    log.info("DreamPose UNet parity, ComfyUI vs diffusers (float32): max relative error %.3g", rel)
    assert rel <= 1e-4
    assert _rel(d_image, d_pose) > 1e-3  # the pose channels matter


def test_dual_cfg_runs_three_evaluations_in_one_unet_call(dual, separate):
    x, eps, calls = dual
    assert calls == [3 * FRAMES]
    assert torch.equal(x, separate[0])
    expected = _formula(*separate[2], S_IMAGE, S_POSE)
    assert _rel(eps, expected) <= 1e-5


def test_dual_cfg_matches_the_official_pipeline_arithmetic(dual, official):
    e0, e1, e2 = official
    s1, s2 = S_IMAGE, S_POSE  # test.py --s1 / --s2
    rel = _rel(dual[1], e0 + s1 * (e2 - e0) + s2 * (e1 - e2))
    log.info("DreamPose dual-CFG parity vs the official arithmetic in diffusers: max relative error %.3g", rel)
    assert rel <= 1e-4


def test_comfy_dual_cfg_guider_node_mapping(model, inputs, dual, separate):
    """ComfyUI's DualCFGGuider node with cfg_cond2_negative = s_I and cfg_conds = s_p is the same guider."""
    from comfy_extras.nodes_custom_sampler import DualCFGGuider

    node = DualCFGGuider.execute(model, *build_conds(*inputs), cfg_conds=S_POSE, cfg_cond2_negative=S_IMAGE,
                                 style="regular").args[0]
    assert torch.equal(_probe(node)[1], dual[1])
    assert _rel(_formula(*separate[2], S_POSE, S_IMAGE), dual[1]) > 1e-3  # the other assignment differs


def test_image_cfg_one_skips_the_unconditional_slot(model, inputs, separate):
    counted, calls = _counting(model)
    _, eps, _ = _probe(dreampose_guider(counted, *build_conds(*inputs), image_cfg=1.0, pose_cfg=S_POSE))
    assert calls == [2 * FRAMES]
    assert _rel(eps, _formula(*separate[2], 1.0, S_POSE)) <= 1e-5


@pytest.mark.parametrize("sampler_name, scheduler", [("euler", "normal"), ("dpmpp_2m", "karras"),
                                                     ("uni_pc", "simple"), ("ddim", "ddim_uniform")])
def test_guider_runs_with_comfy_samplers(model, inputs, sampler_name, scheduler):
    guider = dreampose_guider(model, *build_conds(*inputs), image_cfg=S_IMAGE, pose_cfg=S_POSE)
    sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), scheduler, 2)
    shape = (FRAMES, 4, *LATENT_HW)
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    out = guider.sample(noise, torch.zeros(shape), comfy.samplers.sampler_object(sampler_name), sigmas,
                        disable_pbar=True, seed=1)
    assert out.shape == shape and torch.isfinite(out).all()


def test_build_conds_layout_and_checks(inputs):
    from comfyui_animapose.animapose.errors import AnimaPoseError

    tokens, uncond, windows = inputs
    positive, middle, negative = build_conds(tokens, uncond, windows)
    assert positive[0][0] is tokens and middle[0][0] is tokens and negative[0][0] is uncond
    assert positive[0][1]["noise_concat"] is windows
    assert middle[0][1]["noise_concat"].abs().sum() == 0 and negative[0][1]["noise_concat"].shape == windows.shape
    # an existing CONDITIONING keeps its other entries and is not modified in place
    cond = [[tokens, {"strength": 0.5}]]
    p, _, _ = build_conds(cond, uncond, windows)
    assert p[0][1] == {"strength": 0.5, "noise_concat": windows} and cond[0][1] == {"strength": 0.5}
    with pytest.raises(AnimaPoseError, match="3 image embeddings for 2 pose frames"):
        build_conds(tokens.expand(3, -1, -1), uncond, windows)
    with pytest.raises(AnimaPoseError, match="pose windows"):
        build_conds(tokens, uncond, windows[:, :4])


def test_save_and_reload_gives_identical_outputs(model, adapter, inputs, dual, tmp_path):
    vae = checkpoint.read_vae(str(fx.dreampose_vae_file(".pth")), dtype=torch.float32)
    paths = checkpoint.save_dreampose_set(model, adapter, vae, str(tmp_path), "subject")
    assert [p.name for p in paths] == ["subject_00001_unet.safetensors", "subject_00001_adapter.safetensors",
                                       "subject_00001_vae.safetensors"]

    original = checkpoint.read_unet_state_dict(str(fx.dreampose_unet_file("small", ".pth")))
    saved = checkpoint.read_unet_state_dict(str(paths[0]))
    assert saved.keys() == original.keys() and all(torch.equal(saved[k], original[k]) for k in original)

    reloaded = checkpoint.unet_to_model(saved, dtype=torch.float32)
    _, eps, _ = _probe(dreampose_guider(reloaded, *build_conds(*inputs), S_IMAGE, S_POSE))
    assert torch.equal(eps, dual[1])

    adapter2 = checkpoint.read_adapter(str(paths[1]))
    clip, latent = torch.randn(1, 50, 768), torch.randn(1, 4, 80, 64)
    assert torch.equal(adapter(clip, latent), adapter2(clip, latent))

    from safetensors import safe_open

    with safe_open(str(paths[2]), "pt") as f:  # current diffusers AutoencoderKL names, as diffusers saves them
        assert set(f.keys()) == set(fx.vae_shapes())
    vae2 = checkpoint.read_vae(str(paths[2]), dtype=torch.float32)
    z = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(2))
    assert torch.equal(vae.decode(z), vae2.decode(z))
    pixels = torch.rand(1, 32, 32, 3, generator=torch.Generator().manual_seed(3))
    assert torch.equal(vae.encode(pixels), vae2.encode(pixels))
