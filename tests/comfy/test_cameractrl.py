"""CameraCtrl on an inflated MODEL: the whole UNet against diffusers' ``UNetMotionModel`` whose motion modules'
first attention runs the authors' ``PoseAdaptorAttnProcessor`` with features from the reference encoder
(``workshop/references/cameractrl_reference.py``), float32; context windows embedding each window as a clip of its own;
the node path through KSampler and SamplerCustomAdvanced with the incoming MODEL untouched; pairing errors."""

from __future__ import annotations

import comfy.model_management
import comfy.patcher_extension
import comfy.sd
import pytest
import torch

from comfyui_animapose.animapose.errors import AnimaPoseError
from comfyui_animapose.animapose.motion import NORM_AUTO
from comfyui_animapose.animapose.motion.addons.camera_trajectories import parse_pose_text, preset_trajectory
from comfyui_animapose.animapose.motion.addons.cameractrl import apply_cameractrl, load_cameractrl
from comfyui_animapose.animapose.motion.sampling.inflate import apply_motion_model, load_motion_model
from comfyui_animapose.workshop.fixtures.camera_poses import pose_text
from comfyui_animapose.workshop.fixtures.cameractrl import cameractrl_file
from comfyui_animapose.workshop.fixtures.motion import motion_module_file
from comfyui_animapose.workshop.parity.cameractrl_unet import FRAMES, call, inputs, reference_unet
from comfyui_animapose.workshop.parity.motion import diffusers_eps
from comfyui_animapose.workshop.references.motion_unet import rel_err

TOL = 1e-4


@pytest.fixture(scope="module")
def small_v3(small_model):
    path = motion_module_file("v3", "original", "small", dtype="fp32")
    return path, apply_motion_model(small_model, load_motion_model(str(path), "v3_sd15_mm.ckpt"), 1.0, "use existing",
                                    NORM_AUTO).model


def test_matches_original_cameractrl(small_model, small_v3):
    v3_path, inflated = small_v3
    ctrl_path = cameractrl_file("small", "release")
    trajectory = preset_trajectory("orbit right", FRAMES, 1.5)
    x, context, t = inputs()
    m = apply_cameractrl(inflated, load_cameractrl(str(ctrl_path), "CameraCtrl.ckpt", torch.float32), trajectory, 0.7)
    try:
        ours = call(m, x, context, t)
    finally:
        m.detach()
    expected = diffusers_eps(reference_unet(small_model, v3_path, ctrl_path, trajectory.plucker(64, 64), 0.7),
                             x, context, t)
    err = rel_err(ours, expected)
    assert err <= TOL, f"max relative error {err:.2e}"


def test_window_is_a_clip_of_its_own(small_v3):
    """A context window's call equals a clip made of the window's poses alone; another window differs."""
    _, inflated = small_v3
    ctrl = load_cameractrl(str(cameractrl_file("small", "pruned")), "CameraCtrl_pruned.safetensors", torch.float32)
    full = parse_pose_text(pose_text(12, seed=2), "random path")
    x, context, t = inputs(4)
    windowed = apply_cameractrl(inflated, ctrl, full)
    part = type(full)(full.intrinsics[6:10], full.w2c[6:10])
    alone = apply_cameractrl(inflated, ctrl, part)
    try:
        a = call(windowed, x, context, t, window=[6, 7, 8, 9])
        b = call(alone, x, context, t)
        c = call(windowed, x, context, t, window=[0, 1, 2, 3])
    finally:
        windowed.detach()
    assert rel_err(a, b) <= 1e-6
    assert rel_err(a, c) > 1e-4


def test_samplers_context_windows_and_untouched_model(tiny):
    from comfy_extras.nodes_custom_sampler import (
        BasicScheduler,
        CFGGuider,
        KSamplerSelect,
        RandomNoise,
        SamplerCustomAdvanced,
    )

    from comfyui_animapose.animapose.motion.sampling.context import set_context_windows
    from comfyui_animapose.workshop.sampling import run

    model, _, _, pos, neg = tiny
    before = {k: v.clone() for k, v in model.model.diffusion_model.state_dict().items()}
    inflated = apply_motion_model(model, load_motion_model(str(motion_module_file("v3", "original", "tiny", ext=".ckpt")),
                                                           "v3_sd15_mm.ckpt")).model
    wrappers_before = comfy.patcher_extension.copy_nested_dicts(inflated.wrappers)
    ctrl = load_cameractrl(str(cameractrl_file("tiny", "pruned", "fp16")), "CameraCtrl_pruned.safetensors")
    m = apply_cameractrl(inflated, ctrl, preset_trajectory("zoom in", 6))
    assert inflated.wrappers == wrappers_before and "animapose_cameractrl" not in inflated.additional_models
    out = run(m, pos, neg, frames=6, steps=2)
    plain = run(inflated, pos, neg, frames=6, steps=2)
    assert out.shape == (6, 4, 8, 8) and torch.isfinite(out).all() and not torch.equal(out, plain)
    zero = run(apply_cameractrl(inflated, ctrl, preset_trajectory("zoom in", 6), 0.0), pos, neg, frames=6, steps=2)
    assert torch.allclose(zero, plain, atol=1e-5)  # strength 0 is plain AnimateDiff

    windowed = set_context_windows(m, 4, 2, "standard_static", 1, False, "pyramid")
    guider = CFGGuider.execute(windowed, pos, neg, 5.0)[0]
    sigmas = BasicScheduler.execute(windowed, "normal", 2, 1.0)[0]
    latent = {"samples": torch.zeros(6, 4, 8, 8)}
    out = SamplerCustomAdvanced.execute(RandomNoise.execute(3)[0], guider, KSamplerSelect.execute("euler")[0], sigmas,
                                        latent)[0]["samples"]
    assert out.shape == (6, 4, 8, 8) and torch.isfinite(out).all()
    m.detach()
    after = model.model.diffusion_model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not any(k.startswith("animapose_cameractrl") for k in model.additional_models)

    # the trajectory must cover the latent, and the encoder sees at most 16 frames at once
    with pytest.raises(AnimaPoseError) as e:
        run(apply_cameractrl(inflated, ctrl, preset_trajectory("zoom in", 4)), pos, neg, frames=6, steps=1)
    assert "made for 4 frames" in e.value.problem and e.value.node == "Apply CameraCtrl to AnimateDiff"
    with pytest.raises(AnimaPoseError) as e:
        run(apply_cameractrl(inflated, ctrl, preset_trajectory("zoom in", 18)), pos, neg, frames=18, steps=1)
    assert "covers 16 frames" in e.value.problem
    inflated.detach()


def test_pairing_errors(tiny, small_v3):
    model = tiny[0]
    tiny_ctrl = load_cameractrl(str(cameractrl_file("tiny", "pruned")), "CameraCtrl_pruned.safetensors")
    camera = parse_pose_text("url\n" + " ".join(["0", "0.47", "0.84", "0.5", "0.5", "0", "0",
                                                  "1", "0", "0", "0", "0", "1", "0", "0", "0", "0", "1", "0"]))
    with pytest.raises(AnimaPoseError) as e:
        apply_cameractrl(model, tiny_ctrl, camera)
    assert "no AnimateDiff motion model" in e.value.problem and "Apply AnimateDiff Motion Model" in e.value.fix
    with pytest.raises(AnimaPoseError) as e:  # CameraCtrl for a 1-level model on a 4-level motion model
        apply_cameractrl(small_v3[1], tiny_ctrl, camera)
    assert "does not fit" in e.value.problem and "v3_sd15_mm" in e.value.fix
    # v2 has v3's widths, so the adapters would run, but they were trained on v3's temporal features only
    v2 = apply_motion_model(model, load_motion_model(str(motion_module_file("v2", "original", "tiny")), "v2")).model
    with pytest.raises(AnimaPoseError) as e:
        apply_cameractrl(v2, tiny_ctrl, camera)
    assert "v2-type" in e.value.problem and "v3" in e.value.fix and e.value.node == "Apply CameraCtrl to AnimateDiff"
    with pytest.raises(AnimaPoseError):
        apply_cameractrl(v2, tiny_ctrl, camera, float("nan"))
    # four levels halve the size three times: a 96-pixel latent is refused before sampling starts
    from comfyui_animapose.workshop.sampling import run

    small_ctrl = load_cameractrl(str(cameractrl_file("small", "pruned")), "CameraCtrl_pruned.safetensors")
    with pytest.raises(AnimaPoseError) as e:
        run(apply_cameractrl(small_v3[1], small_ctrl, preset_trajectory("tilt up", 4)), tiny[3], tiny[4], frames=4,
            steps=1, size=12)
    assert "multiples of 64 pixels" in e.value.problem and e.value.input_name == "latent_image"
