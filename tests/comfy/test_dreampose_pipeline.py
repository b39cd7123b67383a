"""DreamPose pose-to-video steps in ComfyUI: image conditioning, pose conditioning, batched frame sampling (same
result as one SamplerCustomAdvanced run, interruptible with nothing left patched), shared noise, decoding."""

from __future__ import annotations

import comfy.model_management
import comfy.patcher_extension
import comfy.samplers
import comfy.sd
import pytest
import torch

from comfyui_animapose.animapose.dreampose import checkpoint
from comfyui_animapose.animapose.dreampose.pipeline import (
    META,
    OFFICIAL_HW,
    PoseSequence,
    SharedNoise,
    adapter_tokens,
    decode,
    fit_images,
    frame_subset_guider,
    image_conditioning,
    load_clip_b32,
    pose_conditioning,
    sample_frames,
    unfit_frames,
)
from comfyui_animapose.animapose.dreampose.poses import synthetic_uv_sequence
from comfyui_animapose.animapose.errors import AnimaPoseError
from comfyui_animapose.workshop.fixtures import dreampose as fx
from comfyui_animapose.workshop.fixtures.sd15 import sd15_checkpoint

FRAMES = 5


@pytest.fixture(scope="module")
def parts():
    model = checkpoint.load_unet(str(fx.dreampose_unet_file("small", ".pth")), dtype=torch.float32)
    adapter = checkpoint.read_adapter(str(fx.dreampose_adapter_file(".pth")))
    # The KL VAE needs ~10 s per 640x512 encode on two cores; these tests are about the pipeline, so they use the
    # TAESD VAE of the SD1.5 fixture (a native ComfyUI VAE too). The DreamPose VAE has its own parity tests.
    vae = comfy.sd.load_checkpoint_guess_config(str(sd15_checkpoint("tiny", "taesd")), output_model=False,
                                                output_clip=False)[2]
    clip = load_clip_b32(str(fx.tiny_clip_b32_folder()), "clip-vit-base-patch32")
    photo = torch.rand(1, 90, 72, 3, generator=torch.Generator().manual_seed(3))
    positive, negative = image_conditioning(clip, vae, adapter, photo)
    poses = PoseSequence(synthetic_uv_sequence(FRAMES, 80, 64, seed=1), "synthetic")
    return model, adapter, vae, clip, positive, negative, poses


def _guider(model, conds):
    from comfyui_animapose.animapose.dreampose.guidance import dreampose_guider

    pos, mid, neg, _ = conds
    return dreampose_guider(model, pos, mid, neg, 3.0, 2.0)


def test_image_conditioning_tokens_and_refusals(parts):
    _, adapter, vae, clip, positive, negative, _ = parts
    assert positive[0][0].shape == (1, 50, 768) and negative[0][0].shape == (1, 50, 768)
    assert positive[0][1][META]["value_range"] == "clean"
    two = torch.rand(2, 90, 72, 3, generator=torch.Generator().manual_seed(4))
    avg, _ = image_conditioning(clip, vae, adapter, two, multi_image="average")
    each = adapter_tokens(clip, vae, adapter, fit_images(two, OFFICIAL_HW, "letterbox"), "clean")
    assert torch.allclose(avg[0][0], each.mean(0, keepdim=True), atol=1e-6)
    assert not torch.allclose(each[0], each[1])
    with pytest.raises(AnimaPoseError, match="ViT-B/32"):
        image_conditioning(object(), vae, adapter, two[:1])


def test_pose_conditioning_shapes_and_latent(parts):
    _, _, vae, _, positive, negative, poses = parts
    pos, mid, neg, latent = pose_conditioning(positive, negative, poses, 64, 80)
    assert latent["samples"].shape == (FRAMES, 4, 10, 8)
    assert latent[META] == {"value_range": "clean", "fit": "letterbox", "source_hw": (80, 64)}
    windows = pos[0][1]["noise_concat"]
    assert windows.shape == (FRAMES, 10, 10, 8)
    assert torch.count_nonzero(mid[0][1]["noise_concat"]) == 0 and torch.count_nonzero(neg[0][1]["noise_concat"]) == 0
    key = torch.rand(1, 80, 64, 3)
    *_, started = pose_conditioning(positive, negative, poses, 64, 80, vae=vae, key_frame=key)
    assert started["samples"].abs().sum() > 0 and torch.equal(started["samples"][0], started["samples"][-1])
    with pytest.raises(AnimaPoseError, match="multiple of 8"):
        pose_conditioning(positive, negative, poses, 60, 80)


def test_batched_sampling_equals_one_run(parts):
    """frames_per_batch changes memory, not the frames: the same as SamplerCustomAdvanced on every frame at once."""
    from comfy_extras.nodes_custom_sampler import Noise_RandomNoise, SamplerCustomAdvanced

    model, *_, positive, negative, poses = parts
    conds = pose_conditioning(positive, negative, poses, 64, 80)
    guider = _guider(model, conds)
    sampler = comfy.samplers.sampler_object("euler")
    sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "normal", 3)
    whole = SamplerCustomAdvanced.execute(Noise_RandomNoise(11), guider, sampler, sigmas, conds[3])[0]["samples"]
    batched = sample_frames(guider, sampler, sigmas, Noise_RandomNoise(11), conds[3], frames_per_batch=2)
    assert batched["samples"].shape == whole.shape
    # equal up to the float rounding of different batch sizes
    err = ((batched["samples"] - whole).abs().max() / whole.abs().max()).item()
    assert err < 1e-5, f"relative difference {err:.2e}"
    assert batched[META] == conds[3][META]
    # the guider that flowed in keeps every frame's pose windows
    assert guider.original_conds["positive"][0]["noise_concat"].shape[0] == FRAMES
    part = frame_subset_guider(guider, 2, 4, FRAMES)
    assert torch.equal(part.original_conds["positive"][0]["noise_concat"],
                       guider.original_conds["positive"][0]["noise_concat"][2:4])


def test_shared_noise_is_one_picture():
    noise = SharedNoise(7).generate_noise({"samples": torch.zeros(4, 4, 10, 8)})
    assert all(torch.equal(noise[0], n) for n in noise)
    assert torch.equal(noise, SharedNoise(7).generate_noise({"samples": torch.zeros(4, 4, 10, 8)}))


def test_interrupt_between_batches_leaves_nothing_patched(parts):
    model, *_, positive, negative, poses = parts
    conds = pose_conditioning(positive, negative, poses, 64, 80)
    guider = _guider(model, conds)
    sampler = comfy.samplers.sampler_object("euler")
    sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "normal", 2)
    before = sample_frames(guider, sampler, sigmas, SharedNoise(1), conds[3], frames_per_batch=2)["samples"]
    calls = []

    def stop_after_first_batch(executor, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # two steps = the first batch
            comfy.model_management.interrupt_current_processing(True)
        return executor(*args, **kwargs)

    interrupting = model.clone()
    interrupting.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.PREDICT_NOISE, "test", stop_after_first_batch)
    g2 = _guider(interrupting, conds)
    try:
        with pytest.raises(comfy.model_management.InterruptProcessingException):
            sample_frames(g2, sampler, sigmas, SharedNoise(1), conds[3], frames_per_batch=2)
    finally:
        comfy.model_management.interrupt_current_processing(False)
    assert len(calls) == 2, "sampling went on after the interrupt"
    after = sample_frames(guider, sampler, sigmas, SharedNoise(1), conds[3], frames_per_batch=2)["samples"]
    assert torch.equal(before, after)


def test_decode_value_ranges_and_fit(parts):
    _, _, vae, _, _, _, _ = parts
    latent = torch.randn(2, 4, 10, 8, generator=torch.Generator().manual_seed(0))
    raw = vae.decode(latent).float()
    clean = decode(vae, {"samples": latent, META: {"value_range": "clean"}})
    assert torch.allclose(clean, (raw * 2 - 1).clamp(0, 1), atol=1e-6)
    legacy = decode(vae, {"samples": latent, META: {"value_range": "legacy"}})
    for frame in legacy:
        assert frame.min().item() == pytest.approx(0.0, abs=1e-6) and frame.max().item() == pytest.approx(1.0, abs=1e-6)
    mapped = decode(vae, {"samples": latent, META: {"value_range": "clean", "fit": "letterbox", "source_hw": (60, 96)}})
    assert mapped.shape == (2, 60, 96, 3)


@pytest.mark.parametrize("fit", ["letterbox", "crop", "stretch"])
def test_fit_round_trip(fit):
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 90), torch.linspace(0, 1, 120), indexing="ij")
    picture = torch.stack([yy, xx, (yy + xx) / 2], dim=-1)[None]
    fitted = fit_images(picture, (80, 64), fit)
    assert fitted.shape == (1, 80, 64, 3)
    back = unfit_frames(fitted, (90, 120), fit)
    if fit == "crop":
        assert back.shape[1] <= 90 and back.shape[2] <= 120
    else:
        assert back.shape == picture.shape
        if fit == "letterbox":  # the padding is gone: what comes back is the picture, softened by two resizes
            assert (back - picture).abs().mean() < 0.02


def test_frame_count_mismatch_is_an_error(parts):
    """A latent whose frame count differs from the poses would silently reuse or drop poses: refused, also when
    the guider is used with ComfyUI's own SamplerCustomAdvanced."""
    from comfy_extras.nodes_custom_sampler import Noise_RandomNoise, SamplerCustomAdvanced

    model, *_, positive, negative, poses = parts
    conds = pose_conditioning(positive, negative, poses, 64, 80)
    guider = _guider(model, conds)
    sampler = comfy.samplers.sampler_object("euler")
    sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "normal", 1)
    wrong = {"samples": torch.zeros(FRAMES + 2, 4, 10, 8)}
    with pytest.raises(AnimaPoseError, match=f"{FRAMES} pose frames for {FRAMES + 2} latent frames"):
        sample_frames(guider, sampler, sigmas, SharedNoise(0), wrong, 2)
    # raised inside ComfyUI's own sampler node, so the message names the pack node that checks it
    with pytest.raises(AnimaPoseError, match=r"^DreamPose Guider \(dual CFG\): input 'latent'"):
        SamplerCustomAdvanced.execute(Noise_RandomNoise(0), guider, sampler, sigmas, wrong)


def test_non_finite_prediction_fails_naming_the_guider(parts):
    """A UNet that produces NaN (simulated by a test wrapper on a clone) fails the run at its first step, naming
    the DreamPose guider, instead of sampling black frames."""
    model, *_, positive, negative, poses = parts
    conds = pose_conditioning(positive, negative, poses, 64, 80)
    calls = []

    def nan_output(executor, *args, **kwargs):
        calls.append(1)
        return torch.full_like(executor(*args, **kwargs), float("nan"))

    broken = model.clone()
    broken.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "test", nan_output)
    sampler = comfy.samplers.sampler_object("euler")
    sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "normal", 3)
    with pytest.raises(AnimaPoseError) as e:
        sample_frames(_guider(broken, conds), sampler, sigmas, SharedNoise(1), conds[3], frames_per_batch=FRAMES)
    assert e.value.node == "DreamPose Guider (dual CFG)" and "NaN or infinite" in e.value.problem
    assert "image_cfg 3" in e.value.problem and "precision" in e.value.fix
    assert len(calls) == 1, f"{len(calls)} UNet calls before the error"
