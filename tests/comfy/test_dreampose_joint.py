"""DreamPose sampled jointly with an AnimateDiff motion module (the DreamPose Sampler's frame_mode joint): a zero-output
module gives today's per-frame frames, dual CFG's three evaluations are three clips, context windows give each window
exactly its frames' poses and tokens, and the per-frame mode refuses a MODEL with a motion module."""

from __future__ import annotations

import comfy.samplers
import comfy.sd
import pytest
import torch

from comfyui_animapose.animapose.dreampose import checkpoint
from comfyui_animapose.animapose.dreampose.guidance import dreampose_guider
from comfyui_animapose.animapose.dreampose.joint import check_frame_mode, sample_joint
from comfyui_animapose.animapose.dreampose.pipeline import (
    PoseSequence,
    SharedNoise,
    frame_subset_guider,
    image_conditioning,
    load_clip_b32,
    pose_conditioning,
    sample_frames,
)
from comfyui_animapose.animapose.dreampose.poses import synthetic_uv_sequence
from comfyui_animapose.animapose.errors import AnimaPoseError
from comfyui_animapose.animapose.motion.controls.freenoise import FreeNoise
from comfyui_animapose.animapose.motion.sampling.context import set_context_windows
from comfyui_animapose.animapose.motion.sampling.inflate import apply_motion_model, load_motion_model
from comfyui_animapose.animapose.motion.sampling.schedules import USE_EXISTING
from comfyui_animapose.animapose.training.motion import motion_model_from_state, new_motion_set
from comfyui_animapose.workshop.fixtures import dreampose as fx
from comfyui_animapose.workshop.fixtures.motion import motion_module_file
from comfyui_animapose.workshop.fixtures.sd15 import sd15_checkpoint

FRAMES = 8
W, H = 64, 80


@pytest.fixture(scope="module")
def setup():
    model = checkpoint.load_unet(str(fx.dreampose_unet_file("tiny", ".pth")), dtype=torch.float32)
    adapter = checkpoint.read_adapter(str(fx.dreampose_adapter_file(".pth")))
    vae = comfy.sd.load_checkpoint_guess_config(str(sd15_checkpoint("tiny", "taesd")), output_model=False,
                                                output_clip=False)[2]
    clip = load_clip_b32(str(fx.tiny_clip_b32_folder()), "clip-vit-base-patch32")
    photo = torch.rand(1, 90, 72, 3, generator=torch.Generator().manual_seed(3))
    positive, negative = image_conditioning(clip, vae, adapter, photo)
    poses = PoseSequence(synthetic_uv_sequence(FRAMES, H, W, seed=1), "synthetic")
    conds = pose_conditioning(positive, negative, poses, W, H)
    unet = model.model.diffusion_model
    zero = motion_model_from_state(new_motion_set(unet, 0).state_dict(), "zero.safetensors")
    # random weights: every proj_out is non-zero, so frames really mix
    active = load_motion_model(str(motion_module_file("v2", "original", "tiny", ext=".ckpt")), "mm_sd_v15_v2.ckpt")
    return model, conds, zero, active


def _run(model, conds, noise, joint: bool, steps: int = 2, frames_per_batch: int = FRAMES, sampler="euler"):
    pos, mid, neg, latent = conds
    guider = dreampose_guider(model, pos, mid, neg, 3.0, 2.0)
    sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "karras", steps)
    s = comfy.samplers.sampler_object(sampler)
    if joint:
        check_frame_mode(guider, "joint")
        return sample_joint(guider, s, sigmas, noise, latent)["samples"]
    return sample_frames(guider, s, sigmas, noise, latent, frames_per_batch)["samples"]


def test_zero_motion_module_joint_equals_per_frame(setup):
    """With every proj_out at zero the modules add exactly 0: the joint clip is bitwise today's per-frame result with
    the same batch, and equal to float noise (relative 1e-5) for other batch sizes."""
    model, conds, zero, _ = setup
    animated = apply_motion_model(model, zero, beta_schedule=USE_EXISTING).model
    for noise in (SharedNoise(5), comfy_random_noise(5)):
        assert torch.equal(_run(animated, conds, noise, joint=True), _run(model, conds, noise, joint=False))
    joint = _run(animated, conds, SharedNoise(5), joint=True)
    two_batches = _run(model, conds, SharedNoise(5), joint=False, frames_per_batch=FRAMES // 2)
    err = ((joint - two_batches).abs().max() / two_batches.abs().max()).item()
    assert err < 1e-5, f"relative difference {err:.2e}"


def comfy_random_noise(seed):
    from comfy_extras.nodes_custom_sampler import Noise_RandomNoise

    return Noise_RandomNoise(seed)


def test_motion_module_joins_the_frames(setup):
    """A non-zero module changes the frames and makes them depend on each other: changing frame 0's pose changes the
    other frames jointly, never per frame."""
    model, conds, _, active = setup
    animated = apply_motion_model(model, active, beta_schedule=USE_EXISTING).model
    joint = _run(animated, conds, SharedNoise(5), joint=True, steps=2)
    per_frame = _run(model, conds, SharedNoise(5), joint=False, steps=2)
    assert (joint - per_frame).abs().max() > 1e-2
    pos, mid, neg, latent = conds
    windows = pos[0][1]["noise_concat"].clone()
    windows[0] = 0.0  # only frame 0's own pose window: every other frame's inputs stay the same
    changed = ([[pos[0][0], {**pos[0][1], "noise_concat": windows}]], mid, neg, latent)
    joint2 = _run(animated, changed, SharedNoise(5), joint=True, steps=2)
    per_frame2 = _run(model, changed, SharedNoise(5), joint=False, steps=2)
    assert torch.equal(per_frame2[1:], per_frame[1:])
    assert (joint2[1:] - joint[1:]).abs().max() > 1e-4


def test_dual_cfg_evaluations_are_separate_clips(setup):
    """One Euler step to sigma 0 returns the guided prediction; with the three conds batched into one UNet call it
    equals the dual-CFG mix of three runs that each see one cond alone: no frame of one evaluation reaches another's
    clip through the motion modules."""
    from comfy_extras.nodes_custom_sampler import Guider_Basic

    model, conds, _, active = setup
    animated = apply_motion_model(model, active, beta_schedule=USE_EXISTING).model
    pos, mid, neg, latent = conds
    sigmas = torch.tensor([float(animated.get_model_object("model_sampling").sigma_max), 0.0])
    sampler = comfy.samplers.sampler_object("euler")
    s_i, s_p = 3.0, 2.0
    guider = dreampose_guider(animated, pos, mid, neg, s_i, s_p)
    guided = guider.sample(SharedNoise(2).generate_noise(latent), latent["samples"], sampler, sigmas, seed=2)
    alone = {}
    for name, cond in (("pos", pos), ("mid", mid), ("neg", neg)):
        g = Guider_Basic(animated)
        g.set_conds(cond)
        alone[name] = g.sample(SharedNoise(2).generate_noise(latent), latent["samples"], sampler, sigmas, seed=2)
    mixed = alone["neg"] + s_i * (alone["mid"] - alone["neg"]) + s_p * (alone["pos"] - alone["mid"])
    err = ((guided - mixed).abs().max() / mixed.abs().max()).item()
    assert err < 1e-4, f"relative difference {err:.2e}"
    # and the module is at work: the evaluations differ from the image model's
    plain = dreampose_guider(model, pos, mid, neg, s_i, s_p).sample(
        SharedNoise(2).generate_noise(latent), latent["samples"], sampler, sigmas, seed=2)
    assert (plain - guided).abs().max() > 1e-2


def test_each_context_window_equals_a_joint_run_on_its_frames(setup):
    """Windows of 4 without overlap ("flat" fusion): the 8-frame clip is exactly the two 4-frame joint runs on each
    window's frames, their pose windows, per-frame adapter tokens and their slice of the FreeNoise noise."""
    model, conds, _, active = setup
    pos, mid, neg, latent = conds
    g = torch.Generator().manual_seed(9)
    per_frame_tokens = pos[0][0] + 0.1 * torch.randn(FRAMES, *pos[0][0].shape[1:], generator=g)
    pos = [[per_frame_tokens, dict(pos[0][1])]]
    mid = [[per_frame_tokens, dict(mid[0][1])]]
    animated = apply_motion_model(model, active, beta_schedule=USE_EXISTING).model
    windowed = set_context_windows(animated, 4, 0, "standard_static", 1, False, "flat")
    sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "karras", 2)
    sampler = comfy.samplers.sampler_object("euler")
    noise = FreeNoise(4, 4, 1, "shuffle_context")
    guider = dreampose_guider(windowed, pos, mid, neg, 3.0, 2.0)
    whole = sample_joint(guider, sampler, sigmas, noise, latent)["samples"]
    full_noise = noise.generate_noise(latent)
    assert not torch.equal(full_noise[4:], comfy_random_noise(4).generate_noise(latent)[4:])  # rescheduled
    parts = []
    for lo, hi in ((0, 4), (4, 8)):
        sub = frame_subset_guider(dreampose_guider(animated, pos, mid, neg, 3.0, 2.0), lo, hi, FRAMES)
        assert torch.equal(sub.original_conds["positive"][0]["noise_concat"],
                           pos[0][1]["noise_concat"][lo:hi])
        parts.append(sub.sample(full_noise[lo:hi], latent["samples"][lo:hi], sampler, sigmas, seed=4))
    err = (whole - torch.cat(parts)).abs().max().item()
    assert err <= 1e-6 * torch.cat(parts).abs().max().item(), f"difference {err:.2e}"
    # a window given another window's poses would not match: the check can fail
    swapped = frame_subset_guider(dreampose_guider(animated, pos, mid, neg, 3.0, 2.0), 0, 4, FRAMES)
    other = frame_subset_guider(dreampose_guider(animated, pos, mid, neg, 3.0, 2.0), 4, 8, FRAMES)
    swapped.original_conds = other.original_conds
    wrong = swapped.sample(full_noise[:4], latent["samples"][:4], sampler, sigmas, seed=4)
    assert (wrong - whole[:4]).abs().max() > 1e-3


def test_per_frame_mode_refuses_a_motion_model(setup):
    model, conds, zero, _ = setup
    pos, mid, neg, _ = conds
    animated = apply_motion_model(model, zero, beta_schedule=USE_EXISTING).model
    with pytest.raises(AnimaPoseError, match="frame_mode.*motion module.*set frame_mode to joint") as e:
        check_frame_mode(dreampose_guider(animated, pos, mid, neg, 3.0, 2.0), "per_frame")
    assert e.value.node == "DreamPose Sampler"
    assert check_frame_mode(dreampose_guider(model, pos, mid, neg, 3.0, 2.0), "per_frame") == "per_frame"
    assert check_frame_mode(dreampose_guider(animated, pos, mid, neg, 3.0, 2.0), "joint") == "joint"
    with pytest.raises(AnimaPoseError, match="frame_mode"):
        check_frame_mode(dreampose_guider(model, pos, mid, neg, 3.0, 2.0), "together")


def test_cluster_sampler_refuses_a_motion_model_before_connecting(setup):
    # frame batches on Ray workers would cut the clip apart just as per_frame does; refused before Ray is touched
    from comfyui_animapose.animapose.dreampose.distributed import sample_frames_on_cluster

    model, conds, zero, _ = setup
    pos, mid, neg, _ = conds
    animated = apply_motion_model(model, zero, beta_schedule=USE_EXISTING).model
    guider = dreampose_guider(animated, pos, mid, neg, 3.0, 2.0)
    with pytest.raises(AnimaPoseError, match="guider.*motion module.*frame_mode joint") as e:
        sample_frames_on_cluster(guider, None, torch.ones(2), None, {"samples": torch.zeros(4, 4, 8, 8)}, 2,
                                 address="ray://127.0.0.1:1", start_local=False)
    assert e.value.input_name == "guider"
