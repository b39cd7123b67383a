"""DensePose UV loading, refusals of non-UV pose images, 5-frame windows and the pose/frame count check."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch

from comfyui_animapose.animapose.dreampose.poses import (
    check_counts,
    load_uv_folder,
    pose_windows,
    synthetic_uv_sequence,
    uv_from_images,
    window_indices,
)
from comfyui_animapose.animapose.errors import AnimaPoseError
from comfyui_animapose.workshop.fixtures.dreampose import uv_sequence_folder

# ---------------------------------------------------------------- folders


def test_folder_loads_in_natural_frame_order():
    folder = uv_sequence_folder(frames=12, h=40, w=32)
    uv = load_uv_folder(str(folder))
    assert uv.shape == (12, 2, 40, 32) and uv.dtype == torch.float32
    # frame_10 and frame_11 sort after frame_9, not after frame_1
    torch.testing.assert_close(uv, synthetic_uv_sequence(12, 40, 32, 0))


def test_only_densepose_files_are_read_when_present(tmp_path):
    uv = synthetic_uv_sequence(2, 8, 8, 1).double().numpy()
    for n, arr in enumerate(uv):
        np.save(tmp_path / f"frame_{n}_densepose.npy", arr)
    np.save(tmp_path / "skeleton_0.npy", np.zeros((18, 3)))
    torch.testing.assert_close(load_uv_folder(str(tmp_path)), torch.from_numpy(uv).float())


def test_folder_numbering_gaps_are_logged(tmp_path, caplog):
    uv = synthetic_uv_sequence(3, 8, 8, 1).double().numpy()
    for n, arr in zip((1, 2, 5), uv):
        np.save(tmp_path / f"frame_{n}_densepose.npy", arr)
    with caplog.at_level(logging.WARNING):
        assert load_uv_folder(str(tmp_path)).shape == (3, 2, 8, 8)
    assert "not consecutive" in caplog.text


def _write(tmp_path, arrays):
    for i, a in enumerate(arrays):
        np.save(tmp_path / f"frame_{i}_densepose.npy", a)
    return str(tmp_path)


@pytest.mark.parametrize("array, message", [
    (np.random.rand(3, 16, 16), "IUV"),
    (np.random.rand(16, 16, 2), "channels-last"),
    (np.random.rand(16, 16), "shape"),
    (np.random.rand(2, 16, 16) * 2 - 1, r"\[-1, 1\]"),
    (np.random.rand(2, 16, 16) * 255, "8-bit"),
    ((np.random.rand(2, 16, 16) * 255).astype(np.uint8), "uint8"),
    (np.full((2, 16, 16), np.nan), "NaN"),
])
def test_bad_pose_files_are_refused_with_the_reason(tmp_path, array, message):
    with pytest.raises(AnimaPoseError, match=message) as e:
        load_uv_folder(_write(tmp_path, [array]), "pose_folder")
    assert "input 'pose_folder'" in str(e.value) and "Fix:" in str(e.value)


def test_empty_folder_mixed_sizes_and_pickles_are_refused(tmp_path):
    with pytest.raises(AnimaPoseError, match="no .npy files"):
        load_uv_folder(str(tmp_path))
    with pytest.raises(AnimaPoseError, match="not a folder"):
        load_uv_folder(str(tmp_path / "missing"))
    folder = _write(tmp_path, [np.random.rand(2, 16, 16), np.random.rand(2, 16, 12)])
    with pytest.raises(AnimaPoseError, match="one size"):
        load_uv_folder(folder)
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    np.save(pickled / "frame_0_densepose.npy", np.array([{"uv": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(AnimaPoseError, match="pickled"):
        load_uv_folder(str(pickled))


# ---------------------------------------------------------------- images

def _uv_image(frames=2, h=64, w=48):
    uv = synthetic_uv_sequence(frames, h, w, 3)
    return uv, torch.cat([uv, torch.zeros(frames, 1, h, w)], 1).permute(0, 2, 3, 1)


def test_uv_image_batch_is_accepted():
    uv, img = _uv_image()
    torch.testing.assert_close(uv_from_images(img), uv)
    noisy = img.clone()
    noisy[..., 2] = torch.rand(noisy.shape[:-1]) * 0.01  # compression noise in the empty channel
    torch.testing.assert_close(uv_from_images(noisy), uv)
    rgba = torch.cat([img, torch.ones_like(img[..., :1])], -1)
    torch.testing.assert_close(uv_from_images(rgba), uv)


def test_all_black_frames_mean_no_person(caplog):
    with caplog.at_level(logging.WARNING):
        out = uv_from_images(torch.zeros(2, 16, 16, 3))
    assert out.shape == (2, 2, 16, 16) and out.abs().sum() == 0
    assert "black" in caplog.text


def _part_map(h=96, w=64):
    """DensePose-like part indices 1..24: horizontal bands inside the synthetic body, 0 outside."""
    body = synthetic_uv_sequence(1, h, w, 5)[0, 0] > 0
    bands = (torch.arange(h)[:, None].expand(h, w) * 24 // h + 1)
    return torch.where(body, bands, torch.zeros(()).long())


def _colour_map(parts, table, background):
    """Colours as OpenCV's applyColorMap on parts * 255 / 24 (linear interpolation of the table), 8-bit."""
    table = torch.tensor(table, dtype=torch.float32)
    pos = parts.float() / 24 * (len(table) - 1)
    lo = pos.floor().long().clamp(max=len(table) - 2)
    t = (pos - lo)[..., None]
    rgb = table[lo] * (1 - t) + table[lo + 1] * t
    rgb = torch.where((parts > 0)[..., None], rgb, torch.tensor(background, dtype=torch.float32))
    return ((rgb * 255).round() / 255)[None]


VIRIDIS_9 = [[68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141], [39, 173, 129],
             [92, 200, 99], [170, 220, 50], [253, 231, 37]]
PARULA_8 = [[0.2422, 0.1504, 0.6603], [0.2810, 0.3228, 0.9579], [0.1786, 0.5289, 0.9682], [0.0689, 0.6948, 0.8394],
            [0.2161, 0.7843, 0.5923], [0.6720, 0.7793, 0.2227], [0.9970, 0.7659, 0.2199], [0.9769, 0.9839, 0.0805]]


def test_viridis_densepose_render_is_refused_as_part_labels():
    # comfyui_controlnet_aux paints the background viridis(0) = (68, 1, 84)
    img = _colour_map(_part_map(), [[c / 255 for c in rgb] for rgb in VIRIDIS_9], [68 / 255, 1 / 255, 84 / 255])
    with pytest.raises(AnimaPoseError, match="Viridis colour-mapped DensePose") as e:
        uv_from_images(img, "poses")
    assert "not UV coordinates" in str(e.value) and "frame_N_densepose.npy" in str(e.value)


def test_parula_densepose_render_is_refused_as_part_labels():
    img = _colour_map(_part_map(), PARULA_8, [0.0, 0.0, 0.0])
    with pytest.raises(AnimaPoseError, match="part segmentation"):
        uv_from_images(img)


def _skeleton(h=128, w=96):
    """An OpenPose-style render: limbs in pure hues, 4 px wide, on black."""
    img = torch.zeros(h, w, 3)
    joints = [(20, 48), (40, 48), (40, 30), (60, 22), (40, 66), (60, 74), (80, 40), (110, 38), (80, 56), (110, 58)]
    limbs = [(0, 1), (1, 2), (2, 3), (1, 4), (4, 5), (1, 6), (6, 7), (1, 8), (8, 9)]
    hues = [[1, 0, 0], [1, 0.33, 0], [1, 0.66, 0], [0, 1, 0], [0, 1, 0.66], [0, 0.66, 1], [0, 0, 1], [0.66, 0, 1],
            [1, 0, 1]]
    ys, xs = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    for (a, b), colour in zip(limbs, hues):
        (y0, x0), (y1, x1) = joints[a], joints[b]
        d = torch.tensor([y1 - y0, x1 - x0], dtype=torch.float32)
        t = (((ys - y0) * d[0] + (xs - x0) * d[1]) / (d @ d)).clamp(0, 1)
        dist = ((ys - (y0 + t * d[0])) ** 2 + (xs - (x0 + t * d[1])) ** 2).sqrt()
        img[dist <= 2] = torch.tensor(colour) * 0.6  # DWPose draws limbs at 60 % brightness
    return img[None]


def test_skeleton_render_is_refused_as_keypoints():
    with pytest.raises(AnimaPoseError, match="OpenPose/DWPose skeleton"):
        uv_from_images(_skeleton())


def test_greyscale_and_photos_are_refused():
    grey = torch.rand(1, 32, 32, 1).expand(1, 32, 32, 3)
    with pytest.raises(AnimaPoseError, match="greyscale"):
        uv_from_images(grey)
    g = torch.Generator().manual_seed(0)
    photo = torch.nn.functional.interpolate(torch.rand(1, 3, 8, 8, generator=g), (64, 64), mode="bilinear")
    with pytest.raises(AnimaPoseError, match="ordinary colour pictures"):
        uv_from_images(photo.permute(0, 2, 3, 1))
    with pytest.raises(AnimaPoseError, match="IMAGE batch"):
        uv_from_images(torch.rand(2, 16, 16))


# ---------------------------------------------------------------- windows

def _constant_frames(n, h=640, w=512):
    """Frame i has u = 0.01 * (i + 1) and v = 0.5 + 0.01 * i everywhere, so each slot's source is readable."""
    u = 0.01 * (torch.arange(n) + 1.0)
    v = 0.5 + 0.01 * torch.arange(n)
    return torch.stack([u, v], 1)[:, :, None, None].expand(n, 2, h, w).contiguous(), u, v


def _sources(windows, u):
    """Which frame fills each of the 5 slots of each row, read off the u channels."""
    slot_u = windows[:, 0::2, 0, 0]
    return ((slot_u[..., None] - u).abs().argmin(-1))


def test_windows_hold_uv_pairs_of_frames_i_minus_2_to_i_plus_2():
    uv, u, v = _constant_frames(7)
    win = pose_windows(uv, (80, 64))
    assert win.shape == (7, 10, 80, 64)
    for i in range(2, 5):
        for k in range(5):
            src = i - 2 + k
            assert torch.all(win[i, 2 * k] == u[src]) and torch.all(win[i, 2 * k + 1] == v[src])


def test_clamp_and_official_modes_differ_only_at_the_ends():
    uv, u, _ = _constant_frames(6, 16, 16)
    clamp = _sources(pose_windows(uv, (2, 2), mode="clamp"), u).tolist()
    official = _sources(pose_windows(uv, (2, 2), mode="official"), u).tolist()
    assert clamp[0] == [0, 0, 0, 1, 2] and official[0] == [0, 0, 0, 1, 2]
    assert clamp[1] == [0, 0, 1, 2, 3] and official[1] == [1, 0, 1, 2, 3]  # test.py: a missing neighbour -> own pose
    assert clamp[4] == [2, 3, 4, 5, 5] and official[4] == [2, 3, 4, 5, 4]
    assert clamp[5] == [3, 4, 5, 5, 5] and official[5] == [3, 4, 5, 5, 5]
    assert clamp[2:4] == official[2:4]
    assert window_indices(1, "official").tolist() == [[0] * 5]
    assert window_indices(1, "clamp").tolist() == [[0] * 5]


def test_clean_range_is_training_uv_and_legacy_is_test_py_normalisation():
    uv = synthetic_uv_sequence(3, 640, 512, 2)
    clean = pose_windows(uv, (80, 64), value_range="clean")
    legacy = pose_windows(uv, (80, 64), value_range="legacy")
    assert clean.min() == 0 and clean.max() <= 1
    assert legacy.min() == -1  # test.py's (x - 0.5) / 0.5 puts the background at -1
    torch.testing.assert_close(legacy, (clean - 0.5) / 0.5)


def test_downsample_to_latent_is_nearest_not_averaging():
    g = torch.Generator().manual_seed(0)
    uv = torch.rand(2, 2, 640, 512, generator=g)  # already 640x512: the bilinear step is the identity
    win = pose_windows(uv, (80, 64))
    torch.testing.assert_close(win[:, 4:6], uv[:, :, ::8, ::8])


def test_other_input_sizes_are_resized_bilinearly_to_8x_the_latent():
    uv = synthetic_uv_sequence(2, 720, 576, 4)
    win = pose_windows(uv, (80, 64))
    mid = torch.nn.functional.interpolate(uv, (640, 512), mode="bilinear", align_corners=False)
    torch.testing.assert_close(win[:, 4:6], mid[:, :, ::8, ::8])


def test_window_arguments_are_checked():
    uv = torch.zeros(2, 2, 16, 16)
    with pytest.raises(ValueError):
        pose_windows(uv, (2, 2), mode="wrap")
    with pytest.raises(ValueError):
        pose_windows(uv, (2, 2), value_range="raw")
    with pytest.raises(AnimaPoseError, match=r"\[frames, 2, height, width\]"):
        pose_windows(torch.zeros(2, 3, 16, 16), (2, 2))


# ---------------------------------------------------------------- counts and synthetic data

def test_pose_count_must_match_frame_count():
    check_counts(16, 16, "poses")
    with pytest.raises(AnimaPoseError, match="12 pose frames for 16 latent frames") as e:
        check_counts(12, 16, "poses")
    assert "make the latent batch 12 frames long" in str(e.value)


def test_synthetic_sequence_is_a_moving_uv_body():
    a = synthetic_uv_sequence(4, 64, 48, seed=7)
    assert torch.equal(a, synthetic_uv_sequence(4, 64, 48, seed=7))
    assert not torch.equal(a, synthetic_uv_sequence(4, 64, 48, seed=8))
    body = a[:, 0] > 0
    assert torch.equal(body, a[:, 1] > 0)  # U and V share the body mask, 0 outside
    assert 0.05 < body.float().mean() < 0.5
    assert a.min() >= 0 and a.max() <= 1
    assert (a[0] - a[3]).abs().max() > 0.1  # it moves
    assert math.isclose(float(a[:, 0][body].min()), 0.05, abs_tol=0.05)


def test_single_mode_repeats_each_frames_own_pose():
    # the paper's 1-frame ablation (and the released code's training input): pose i in all five slots
    assert window_indices(4, "single").tolist() == [[i] * 5 for i in range(4)]
    uv = torch.rand(3, 2, 16, 16)
    w = pose_windows(uv, (2, 2), "single")
    for slot in range(5):
        torch.testing.assert_close(w[:, 2 * slot:2 * slot + 2], w[:, 4:6])
