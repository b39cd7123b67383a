"""CameraCtrl on an inflated MODEL: the whole UNet against diffusers' ``UNetMotionModel`` whose motion modules'
first attention runs the authors' ``PoseAdaptorAttnProcessor`` with features from the reference encoder
(``tests/unit/cameractrl_reference.py``), float32; context windows embedding each window as a clip of its own;
the node path through KSampler and SamplerCustomAdvanced with the incoming MODEL untouched; pairing errors."""

from __future__ import annotations

import comfy.model_management
import comfy.patcher_extension
import comfy.sd
import pytest
import torch
from comfy.context_windows import IndexListContextWindow

from animapose.checkpoints import load_state_dict
from animapose.errors import AnimaPoseError
from animapose.motion import NORM_AUTO
from animapose.motion.camera_poses import parse_pose_text, preset_trajectory
from animapose.motion.cameractrl import apply_cameractrl, load_cameractrl
from animapose.motion.inflate import apply_motion_model, load_motion_model
from tests.comfy.helpers import sampling_run
from tests.comfy.reference import rel_err, set_original_scope
from tests.comfy.test_inflation_parity import diffusers_eps, diffusers_motion_unet
from tests.fixtures.cameractrl import cameractrl_file
from tests.fixtures.motion import motion_module_file
from tests.unit import cameractrl_reference as ref
from tests.unit.test_cameractrl import pose_text

FRAMES = 8
TOL = 1e-4



@pytest.fixture(scope="module")
def small_v3(small_model):
    path = motion_module_file("v3", "original", "small", dtype="fp32")
    return path, apply_motion_model(small_model, load_motion_model(str(path), "v3_sd15_mm.ckpt"), 1.0, "use existing",
                                    NORM_AUTO).model


def _call(m, x, context, t, window=None):
    to = comfy.patcher_extension.copy_nested_dicts(m.model_options["transformer_options"])
    to["wrappers"] = comfy.patcher_extension.copy_nested_dicts(m.wrappers)
    to["cond_or_uncond"] = [0]
    if window is not None:
        to["context_window"] = IndexListContextWindow(window)
    with sampling_run(m), torch.no_grad():
        return m.model.diffusion_model(x, t.expand(x.shape[0]), context=context.expand(x.shape[0], -1, -1),
                                       transformer_options=to)


def _inputs(frames=FRAMES):
    g = torch.Generator().manual_seed(5)
    return torch.randn(frames, 4, 8, 8, generator=g), torch.randn(1, 77, 768, generator=g) * 0.5, torch.tensor(301.0)


def _reference_unet(small_model, v3_path, ctrl_path, plucker, strength):
    """diffusers' motion UNet with the original per-frame motion GroupNorm, and CameraCtrl's processor on attn1 of
    every down/up motion module fed the reference encoder's feature of its level (decoder: reversed)."""
    unet, _ = diffusers_motion_unet(small_model, v3_path)
    set_original_scope(unet, motion_per_frame=True, resnet_across_frames=False, frames=plucker.shape[0])
    sd = {k: v.float() for k, v in load_state_dict(str(ctrl_path), "cameractrl").items()}
    feats = ref.encode(sd, plucker, levels=4)
    for kind, blocks in (("down_blocks", unet.down_blocks), ("up_blocks", unet.up_blocks)):
        for i, block in enumerate(blocks):
            f = feats[i] if kind == "down_blocks" else feats[len(feats) - 1 - i]
            n, c, h, w = f.shape
            for j, mm in enumerate(block.motion_modules):
                key = f"{kind}.{i}.motion_modules.{j}.temporal_transformer.transformer_blocks.0.attention_blocks.0.processor.qkv_merge"
                proc = ref.PoseAdaptorProcessor(sd[f"{key}.weight"], sd[f"{key}.bias"], strength)
                proc.pose = f.permute(2, 3, 0, 1).reshape(h * w, n, c)
                mm.transformer_blocks[0].attn1.set_processor(proc)
    return unet


def test_matches_original_cameractrl(small_model, small_v3):
    v3_path, inflated = small_v3
    ctrl_path = cameractrl_file("small", "release")
    trajectory = preset_trajectory("orbit right", FRAMES, 1.5)
    x, context, t = _inputs()
    m = apply_cameractrl(inflated, load_cameractrl(str(ctrl_path), "CameraCtrl.ckpt", torch.float32), trajectory, 0.7)
    try:
        ours = _call(m, x, context, t)
    finally:
        m.detach()
    expected = diffusers_eps(_reference_unet(small_model, v3_path, ctrl_path, trajectory.plucker(64, 64), 0.7),
                             x, context, t)
    err = rel_err(ours, expected)
    assert err <= TOL, f"max relative error {err:.2e}"


def test_window_is_a_clip_of_its_own(small_v3):
    """A context window's call equals a clip made of the window's poses alone; another window differs."""
    _, inflated = small_v3
    ctrl = load_cameractrl(str(cameractrl_file("small", "pruned")), "CameraCtrl_pruned.safetensors", torch.float32)
    full = parse_pose_text(pose_text(12, seed=2), "random path")
    x, context, t = _inputs(4)
    windowed = apply_cameractrl(inflated, ctrl, full)
    part = type(full)(full.intrinsics[6:10], full.w2c[6:10])
    alone = apply_cameractrl(inflated, ctrl, part)
    try:
        a = _call(windowed, x, context, t, window=[6, 7, 8, 9])
        b = _call(alone, x, context, t)
        c = _call(windowed, x, context, t, window=[0, 1, 2, 3])
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

    from animapose.motion.context import set_context_windows
    from tests.comfy.helpers import run

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
    from tests.comfy.helpers import run

    small_ctrl = load_cameractrl(str(cameractrl_file("small", "pruned")), "CameraCtrl_pruned.safetensors")
    with pytest.raises(AnimaPoseError) as e:
        run(apply_cameractrl(small_v3[1], small_ctrl, preset_trajectory("tilt up", 4)), tiny[3], tiny[4], frames=4,
            steps=1, size=12)
    assert "multiples of 64 pixels" in e.value.problem and e.value.input_name == "latent_image"
