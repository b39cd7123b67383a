"""The backstop behind the queue-time checks: a pack-wrapped model whose output turns NaN or infinite fails the run
at that UNet call with an error naming the pack node and the likely input, instead of sampling a black video.
Non-finite values are forced past the nodes' own checks (a multival built in code, a module weight set to infinity,
an affinity edited into the conditioning, a camera path far out of range)."""

from __future__ import annotations

import comfy.patcher_extension
import pytest
import torch

from comfyui_animapose.animapose.errors import AnimaPoseError
from comfyui_animapose.animapose.motion.addons.camera_trajectories import CameraTrajectory, preset_trajectory
from comfyui_animapose.animapose.motion.addons.cameractrl import APPLY_NODE as CAMERA_NODE
from comfyui_animapose.animapose.motion.addons.cameractrl import apply_cameractrl, load_cameractrl
from comfyui_animapose.animapose.motion.addons.pia import pia_conditioning
from comfyui_animapose.animapose.motion.controls.multival import Multival
from comfyui_animapose.animapose.motion.sampling.inflate import apply_motion_model, load_motion_model
from comfyui_animapose.animapose.motion.sampling.stages import APPLY_NODE
from comfyui_animapose.workshop.fixtures.cameractrl import cameractrl_file
from comfyui_animapose.workshop.fixtures.motion import motion_module_file
from comfyui_animapose.workshop.sampling import run


def _counting(model):
    """A clone that counts its UNet calls (a wrapper under a test key; the pack's wrappers stay as they are)."""
    calls = []

    def count(executor, x, *args, **kwargs):
        calls.append(x.shape[0])
        return executor(x, *args, **kwargs)

    m = model.clone()
    m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "test_count", count)
    return m, calls


def _fails_at_first_call(model, pos, neg, **kwargs) -> AnimaPoseError:
    m, calls = _counting(model)
    try:
        with pytest.raises(AnimaPoseError) as e:
            run(m, pos, neg, steps=4, **kwargs)
    finally:
        m.detach()
    assert len(calls) == 1, f"{len(calls)} UNet calls before the error"
    return e.value


@pytest.mark.parametrize("effect,input_name", [(Multival(1e30), "motion_scale"),
                                               (Multival(1.0, frame_list=[1.0, 1e30, 1.0, 1.0]), "effect_multival")])
def test_huge_motion_amount_fails_at_the_first_call(tiny, tiny_motion, effect, input_name):
    model, _, _, pos, neg = tiny
    applied = apply_motion_model(model, tiny_motion, effect).model
    err = _fails_at_first_call(applied, pos, neg)
    assert err.node == APPLY_NODE and err.input_name == input_name, str(err)
    assert "NaN or infinite" in err.problem and "mm_sd_v15_v2.ckpt" in err.problem and "Motion Multival" in err.fix


def test_infinite_module_weight_names_the_apply_node_and_the_precision(tiny):
    model, _, _, pos, neg = tiny
    motion = load_motion_model(str(motion_module_file("v2", "original", "tiny", ext=".ckpt")), "mm_sd_v15_v2.ckpt")
    weight = next(p for n, p in motion.patcher.model.named_parameters() if n.endswith("to_q.weight"))
    weight.data[0, 0] = float("inf")
    err = _fails_at_first_call(apply_motion_model(model, motion).model, pos, neg)
    assert err.node == APPLY_NODE and err.input_name == "motion_scale", str(err)
    assert "precision" in err.fix and "checkpoint" in err.fix


def test_finite_runs_are_unchanged(tiny, tiny_motion):
    """The check only reads the output: the same graph samples the same latents as before."""
    model, _, _, pos, neg = tiny
    applied = apply_motion_model(model, tiny_motion).model
    a = run(applied, pos, neg, steps=2, seed=3)
    b = run(applied, pos, neg, steps=2, seed=3)
    applied.detach()
    assert torch.isfinite(a).all() and torch.equal(a, b)


def test_affinity_edited_past_the_pia_node_is_refused_before_the_unet_runs(tiny, small_model):
    _, _, _, pos, neg = tiny
    pia = motion_module_file("pia", "original", "small", dtype="fp32")
    m = apply_motion_model(small_model, load_motion_model(str(pia), "pia.ckpt")).model

    class _VAE:
        def spacial_compression_encode(self):
            return 8

        def encode(self, pixels):
            pooled = torch.nn.functional.avg_pool2d(pixels.movedim(-1, 1), 8)
            return torch.cat([pooled, pooled.mean(1, keepdim=True)], dim=1)

    ppos, pneg, latent = pia_conditioning(m, pos, neg, _VAE(), torch.rand(1, 64, 64, 3), 4, "small motion")
    for bad in (1e30, float("nan"), -5.0):
        concat = ppos[0][1]["noise_concat"].clone()
        concat[1, 0] = bad
        edited = [[t, {**d, "noise_concat": concat}] for t, d in ppos]
        try:
            with pytest.raises(AnimaPoseError) as e:
                run(m, edited, pneg, frames=4, steps=1, latent=latent["samples"])
        finally:
            m.detach()
        assert e.value.node == "AnimateDiff PIA Image (picture to video)" and e.value.input_name == "custom_affinity"
        assert "outside 0..1" in e.value.problem


def test_camera_path_out_of_range_names_the_camera(tiny):
    model, _, _, pos, neg = tiny
    inflated = apply_motion_model(model, load_motion_model(
        str(motion_module_file("v3", "original", "tiny", ext=".ckpt")), "v3_sd15_mm.ckpt")).model
    ctrl = load_cameractrl(str(cameractrl_file("tiny", "pruned")), "CameraCtrl_pruned.safetensors")
    good = preset_trajectory("pan left", 4)
    w2c = good.w2c.clone()
    w2c[1:, 0, 3] = 1e38  # built in code: a pose file this far out is refused by its parser
    far = CameraTrajectory(good.intrinsics, w2c, exact=True)
    m = apply_cameractrl(inflated, ctrl, far)
    try:
        with pytest.raises(AnimaPoseError) as e:
            run(m, pos, neg, frames=4, steps=1)
    finally:
        m.detach()
    assert e.value.node == CAMERA_NODE and e.value.input_name == "camera" and "NaN" in e.value.problem
