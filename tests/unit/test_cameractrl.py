"""CameraCtrl without ComfyUI: Plücker embeddings and the camera encoder against a reference written from the
authors' code (float32), the pose-file parser and its input-folder confinement, the presets' geometry, and
detection of the released layouts (and refusal of the files people confuse with them)."""

from __future__ import annotations

import math
import os

import pytest
import torch

from comfyui_animapose.animapose.checkpoints import load_state_dict
from comfyui_animapose.animapose.errors import AnimaPoseError
from comfyui_animapose.animapose.motion.addons.camera_trajectories import (
    PRESET_NAMES,
    list_pose_files,
    load_pose_file,
    parse_pose_text,
    preset_trajectory,
    relative_c2w,
)
from comfyui_animapose.animapose.motion.addons.cameractrl_encoder import build_cameractrl, merge_level, split_cameractrl
from comfyui_animapose.animapose.motion.formats.detect import normalize_motion_state_dict
from comfyui_animapose.workshop.fixtures.camera_poses import pose_text
from comfyui_animapose.workshop.fixtures.cameractrl import cameractrl_file, cameractrl_parts
from comfyui_animapose.workshop.fixtures.motion import motion_module_file
from comfyui_animapose.workshop.parity import mutations
from comfyui_animapose.workshop.references import cameractrl_reference as ref

TOL = 1e-5


# (36, 64) is exactly the pose files' 16:9, where either aspect branch is the identity; (32, 96) is wider than 16:9,
# so the focal length fy is rescaled, and (40, 24), (96, 32) are taller, so fx is; (48, 48) is square.
SIZES = [(32, 48), (40, 24), (36, 64), (32, 96), (96, 32), (48, 48)]


def check_plucker(height, width, text=None):
    text = text or pose_text()
    ours = parse_pose_text(text).plucker(height, width)
    expected = ref.plucker_from_text(text, height, width)
    assert ours.shape == expected.shape == (6, 6, height, width) and ours.dtype == torch.float32
    err = (ours - expected).abs().max().item()
    assert err <= TOL, f"max abs error {err:.2e}"
    # ray directions are unit vectors and the first frame's rays start at the origin (zero moment)
    assert torch.allclose(ours[:, 3:].norm(dim=1), torch.ones(6, height, width), atol=1e-6)
    assert ours[0, :3].abs().max() < 1e-6


@pytest.mark.parametrize("height,width", SIZES)
def test_plucker_matches_reference(height, width):
    check_plucker(height, width)


def test_window_is_embedded_as_its_own_clip():
    text = pose_text(8, seed=1)
    trajectory = parse_pose_text(text)
    lines = text.splitlines()
    sub = "\n".join([lines[0]] + lines[1 + 3:1 + 7])
    assert (trajectory.plucker(16, 24, [3, 4, 5, 6]) - ref.plucker_from_text(sub, 16, 24)).abs().max() <= TOL


def check_encoder(height, width, frames=12):
    """The pack's Plücker rays and encoder against the reference's own rays and encoder, level by level."""
    encoder_sd, merges_sd = cameractrl_parts("micro", seed=3)
    encoder, merges, info = split_cameractrl({**encoder_sd, **merges_sd})
    assert info.channels == (32, 64, 128, 128) and info.layers_per_level == 2 and info.position_length == 16
    assert info.downscale == 8 and info.kernel == 1 and len(info.merges) == 20
    model = build_cameractrl(encoder, merges, info).eval()
    text = pose_text(frames, seed=4)
    with torch.no_grad():
        ours = model.encoder(parse_pose_text(text).plucker(height, width))
        expected = ref.encode(encoder_sd, ref.plucker_from_text(text, height, width), levels=4)
    assert len(ours) == len(expected) == len(info.channels) == 4
    for level, (a, b) in enumerate(zip(ours, expected)):
        assert a.shape == b.shape == (frames, info.channels[level], max(height // 8 // 2 ** level, 1),
                                      max(width // 8 // 2 ** level, 1))
        err = ((a - b).abs().max() / b.abs().max()).item()
        assert err <= TOL, f"level {level}: relative error {err:.2e}"


# 8x12 (taller than 16:9: the fx branch), 8x24 (wider: the fy branch) and 16x8 latents
@pytest.mark.parametrize("height,width", [(64, 96), (64, 192), (128, 64)])
def test_encoder_matches_reference(height, width):
    check_encoder(height, width)
    assert [merge_level(p, 4) for p in ("down_blocks.2.motion_modules.1", "up_blocks.0.motion_modules.2",
                                        "up_blocks.3.motion_modules.0")] == [2, 3, 0]


def test_presets_geometry():
    assert set(PRESET_NAMES) >= {"pan left", "pan right", "zoom in", "zoom out", "orbit left", "tilt up", "static"}
    for name in PRESET_NAMES:
        t = preset_trajectory(name, 9)
        c2w = relative_c2w(t.w2c)
        assert torch.allclose(c2w[0], torch.eye(4, dtype=torch.float64))
        assert torch.allclose(c2w[:, :3, :3] @ c2w[:, :3, :3].transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(9, 3, 3))
    centre = {n: relative_c2w(preset_trajectory(n, 9).w2c)[-1, :3, 3] for n in PRESET_NAMES}
    assert centre["pan left"][0] < 0 < centre["pan right"][0] and centre["pan up"][1] < 0 < centre["pan down"][1]
    assert centre["zoom in"][2] > 0 > centre["zoom out"][2]
    assert torch.allclose(centre["static"], torch.zeros(3, dtype=torch.float64))
    # orbits keep looking at the point 2 units ahead of the first camera
    c2w = relative_c2w(preset_trajectory("orbit left", 9, speed=2.0).w2c)
    to_target = torch.tensor([0, 0, 2.0], dtype=torch.float64) - c2w[:, :3, 3]
    forward = c2w[:, :3, 2]
    assert torch.allclose(torch.nn.functional.normalize(to_target, dim=-1), forward, atol=1e-9)
    assert c2w[-1, 0, 3] < 0  # orbit left moves the camera left
    # speed scales the step; turning right points the camera's forward axis to +x (OpenCV: x right)
    assert math.isclose(float(centre["zoom in"][2]) * 2,
                        float(relative_c2w(preset_trajectory("zoom in", 9, 2.0).w2c)[-1, 2, 3]), rel_tol=1e-9)
    assert relative_c2w(preset_trajectory("turn right", 9).w2c)[-1, 0, 2] > 0


def test_pose_file_parser_and_confinement(tmp_path):
    text = pose_text(4)
    t = parse_pose_text(text, pose_width=640, pose_height=480)
    assert t.frames == 4 and t.pose_width == 640 and t.intrinsics.shape == (4, 4)
    for bad, words in ((text + "1 2 3\n", "has 3 numbers"), (text.replace("0.5", "x", 1), "not a list of numbers"),
                       ("url only\n", "no pose lines"), (text.replace("0.500000000", "nan", 1), "NaN")):
        with pytest.raises(AnimaPoseError) as e:
            parse_pose_text(bad)
        assert words in e.value.problem and e.value.input_name == "pose_file"
    inside = tmp_path / "input"
    (inside / "poses").mkdir(parents=True)
    (inside / "poses" / "orbit.txt").write_text(text)
    (tmp_path / "secret.txt").write_text(text)
    os.symlink(tmp_path / "secret.txt", inside / "link.txt")
    assert "poses/orbit.txt" in list_pose_files(str(inside))
    assert load_pose_file(str(inside), "poses/orbit.txt").frames == 4
    for name in ("../secret.txt", str(tmp_path / "secret.txt"), "link.txt", "poses/missing.txt", ""):
        with pytest.raises(AnimaPoseError) as e:
            load_pose_file(str(inside), name)
        assert e.value.input_name == "pose_file", name


def test_detects_both_layouts_and_refuses_confusions():
    pruned = load_state_dict(str(cameractrl_file("tiny", "pruned")), "cameractrl_name")
    release = load_state_dict(str(cameractrl_file("tiny", "release")), "cameractrl_name")
    assert set(pruned) == set(release)
    _, merges, info = split_cameractrl(release)
    assert info.channels == (320,) and list(merges) == ["down_blocks.0.motion_modules.0", "up_blocks.0.motion_modules.0",
                                                        "up_blocks.0.motion_modules.1"]
    # a motion-module loader given CameraCtrl names the right loader
    with pytest.raises(AnimaPoseError) as e:
        normalize_motion_state_dict(pruned)
    assert "CameraCtrl" in e.value.problem and "Load AnimateDiff CameraCtrl" in e.value.fix
    # a v3 motion module with CameraCtrl merged into it loads as the motion module, and as CameraCtrl
    v3 = load_state_dict(str(motion_module_file("v3", "original", "tiny")), "model_name")
    _, mm_info = normalize_motion_state_dict({**v3, **pruned})
    assert mm_info.family == "AnimateDiff v3"
    assert split_cameractrl({**v3, **pruned})[2].merges == info.merges
    # and the CameraCtrl loader given a motion module, or a file missing a part
    with pytest.raises(AnimaPoseError) as e:
        split_cameractrl(v3)
    assert "motion module" in e.value.problem and "Load AnimateDiff Motion Model" in e.value.fix
    for drop in ("qkv_merge", "encoder_"):
        with pytest.raises(AnimaPoseError) as e:
            split_cameractrl({k: v for k, v in pruned.items() if drop not in k})
        assert e.value.input_name == "cameractrl_name"
    with pytest.raises(AnimaPoseError) as e:
        split_cameractrl({k.replace("attention_blocks.0.processor", "attention_blocks.1.processor"): v
                          for k, v in pruned.items()})
    assert "first temporal self-attention" in e.value.problem


# -- mutation check: each mutation below slipped through the tests before they pinned the case it breaks -----------

def test_mutation_wide_frames_rescale_fx(monkeypatch):
    mutations.wide_frames_rescale_fx(monkeypatch)
    check_plucker(36, 64)  # exactly 16:9, the widest size tested before: the mutation cannot show
    with pytest.raises(AssertionError):
        check_plucker(32, 96)
    monkeypatch.undo()
    check_plucker(32, 96)


def test_mutation_height_width_swap(monkeypatch):
    mutations.plucker_height_width_swapped(monkeypatch)
    check_plucker(48, 48)
    for height, width in ((32, 96), (96, 32)):
        with pytest.raises(AssertionError):
            check_plucker(height, width)
    with pytest.raises(AssertionError):
        check_encoder(64, 192)


def test_mutation_encoder_drops_a_level(monkeypatch):
    mutations.camera_encoder_drops_a_level(monkeypatch)
    with pytest.raises(AssertionError):
        check_encoder(64, 96)
