"""The synthetic people generator (exact UV by construction) and the analyser, on rendered ground truth."""

from __future__ import annotations

import math

import numpy as np
import pytest

from comfyui_animapose.workshop.synthetic import people
from comfyui_animapose.workshop.synthetic import people_metrics as pm
from comfyui_animapose.workshop.train.dreampose import find_videos

HW = (80, 64)


def _subject(**kw):
    base = dict(shirt=(0.8, 0.15, 0.15), trousers=(0.15, 0.25, 0.75), skin=(0.93, 0.76, 0.62))
    return people.Subject(**{**base, **kw})


def test_uv_is_exact_along_and_across_a_part():
    # A lone vertical torso: U runs from the neck (a) to the pelvis (b), V across it, both analytically known.
    pose = people.Pose(x=0.5, y=0.6, scale=1.0)
    r = people.render(pose, _subject(), HW)
    name, a, b, radius = next(s for s in people.part_segments(pose, HW) if s[0] == "torso")
    column = int(a[0])  # the segment is vertical: U along the column, no arm overlaps the centre
    rows = [y for y in range(HW[0]) if r.parts[y, column] == people.PART_INDEX["torso"]]
    for y in rows:
        t = min(max((y + 0.5 - a[1]) / (b[1] - a[1]), 0), 1)
        assert r.uv[0, y, column] == pytest.approx(people.UV_MIN + (1 - people.UV_MIN) * t, abs=1e-6)
    us = r.uv[0, rows, column]
    assert np.all(np.diff(us) >= 0) and us[-1] - us[0] > 0.5
    # across: V grows from one edge to the other on a row through the middle of the torso
    y = int((a[1] + b[1]) / 2)
    xs = [x for x in range(HW[1]) if r.parts[y, x] == people.PART_INDEX["torso"]]
    vs = r.uv[1, y, xs]
    assert np.all(np.diff(vs) != 0) and (np.all(np.diff(vs) > 0) or np.all(np.diff(vs) < 0))
    across = (np.array(xs) + 0.5 - a[0]) * (b[1] - a[1]) / abs(b[1] - a[1])
    expected = people.UV_MIN + (1 - people.UV_MIN) * np.clip((across / radius + 1) / 2, 0, 1)
    np.testing.assert_allclose(vs, expected, atol=1e-6)


@pytest.mark.parametrize("motion", people.MOTIONS + ("swing",))
def test_uv_parts_and_picture_agree_pixel_for_pixel(motion):
    video = people.make_video(people.make_subject(3), motion, 5, HW, seed=1)
    for f in video.frames:
        body = f.parts > 0
        assert np.array_equal(pm.uv_mask(f.uv), body)  # UV is 0 exactly on the background
        assert f.uv[:, body].min() >= people.UV_MIN and f.uv.max() <= 1.0
        assert np.all(f.image[~body] == np.array(people.BACKGROUND, dtype=np.float32))
        assert np.array_equal(pm.silhouette(f.image, people.BACKGROUND), body)
        assert 0.08 < body.mean() < 0.4  # a whole figure inside the frame


def test_motions_move_the_parts_they_should():
    walk = people.make_video(people.make_subject(1), "walk", 6, HW, seed=2)
    wave = people.make_video(people.make_subject(1), "wave", 6, HW, seed=2)
    turn = people.make_video(people.make_subject(1), "turn", 6, HW, seed=2, cycles=0.5)

    def part_change(video, parts):
        ids = [people.PART_INDEX[p] for p in parts]
        masks = [np.isin(f.parts, ids) for f in video.frames]
        return np.mean([1 - pm.iou(a, b) for a, b in zip(masks[:-1], masks[1:])])

    assert part_change(walk, ["shin_l", "shin_r"]) > 0.2
    assert part_change(wave, ["forearm_l"]) > 0.2
    assert part_change(wave, ["forearm_l"]) > 2 * part_change(wave, ["shin_l", "shin_r"])  # the legs only sway
    widths = [f.mask.any(axis=0).sum() for f in turn.frames]
    assert max(widths) - min(widths) >= 4  # shoulders narrow while turning


def test_motion_clips_change_smoothly_with_exact_uv_and_a_photo():
    """Temporal training clips: consecutive frames differ a little (the pose moves every frame, the silhouettes of
    neighbours overlap far more than those of the clip's ends), UV exact per frame, a photo in another pose, seeded."""
    clips = people.motion_clips(6, frames=8, hw=HW, seed=3, subjects=2)
    assert [c.video.motion for c in clips] == list(people.CLIP_MOTIONS) * 2
    assert clips[0].video.subject == clips[2].video.subject != clips[1].video.subject
    for clip in clips:
        masks = [f.mask for f in clip.video.frames]
        step = [pm.iou(a, b) for a, b in zip(masks[:-1], masks[1:])]
        assert min(step) > 0.5, (clip.video.motion, step)
        assert all(not np.array_equal(a, b) for a, b in zip(masks[:-1], masks[1:]))  # it moves every frame
        assert pm.iou(masks[0], masks[-1]) < np.mean(step)
        for f in clip.video.frames:
            assert np.array_equal(pm.uv_mask(f.uv), f.parts > 0)
        assert clip.photo.shape == (*HW, 3) and np.array_equal(pm.uv_mask(clip.photo_uv), pm.silhouette(
            clip.photo, people.BACKGROUND))
        assert not any(np.array_equal(clip.photo, f.image) for f in clip.video.frames)
    again = people.motion_clips(6, frames=8, hw=HW, seed=3, subjects=2)
    assert all(np.array_equal(a.video.uv, b.video.uv) and np.array_equal(a.photo, b.photo) for a, b in zip(clips, again))
    other = people.motion_clips(1, frames=8, hw=HW, seed=4, subjects=2)
    assert not np.array_equal(other[0].video.uv, clips[0].video.uv)


def test_subjects_differ_and_are_reproducible():
    a, b = people.make_subject(0), people.make_subject(1)
    assert a == people.make_subject(0) and a != b
    assert a.shirt != a.trousers
    v1 = people.make_video(a, "walk", 3, HW, seed=5)
    v2 = people.make_video(a, "walk", 3, HW, seed=5)
    assert np.array_equal(v1.images, v2.images) and np.array_equal(v1.uv, v2.uv)


def test_ubc_layout_is_what_stage1_reads(tmp_path):
    videos = people.write_ubc_dataset(str(tmp_path), videos=3, frames=4, hw=HW, seed=0)
    found = find_videos(str(tmp_path))
    assert [len(v) for v in found] == [4, 4, 4]
    png, npy = found[1][2]
    uv = np.load(npy)
    assert uv.dtype == np.float64 and uv.shape == (2, *HW)
    np.testing.assert_array_equal(uv.astype(np.float32), videos[1].frames[2].uv)
    from PIL import Image

    with Image.open(png) as im:
        assert im.size == (HW[1], HW[0])
        np.testing.assert_array_equal(np.asarray(im), people.to_uint8(videos[1].frames[2].image))


# -- the analyser on ground truth --------------------------------------------------------------------------------

def test_iou_of_ground_truth_is_one_and_drops_with_a_shift():
    f = people.make_video(people.make_subject(4), "walk", 1, HW, seed=3).frames[0]
    assert pm.pose_iou(f.image[None], f.uv[None], people.BACKGROUND)[0] == 1.0
    assert pm.pose_iou(f.image[None], f.uv[None])[0] == 1.0  # backdrop estimated from the border
    shifted = np.roll(f.image, 6, axis=1)
    assert pm.pose_iou(shifted[None], f.uv[None])[0] < 0.6
    blank = np.broadcast_to(np.array(people.BACKGROUND, dtype=np.float32), f.image.shape)
    assert pm.pose_iou(blank[None], f.uv[None])[0] == 0.0


def test_colour_error_is_zero_for_the_subject_and_large_for_another():
    plain = _subject()
    f = people.render(people.motion_pose("wave", 0.3), plain, HW)
    regions = f.clothing_masks()
    assert pm.colour_error(f.image, regions, plain.clothing) == pytest.approx(0.0, abs=1e-6)
    other = _subject(shirt=(0.15, 0.55, 0.2), trousers=(0.9, 0.7, 0.1))
    g = people.render(people.motion_pose("wave", 0.3), other, HW)
    assert pm.colour_error(g.image, regions, plain.clothing) > 0.5
    # stripes darken part of the shirt: the error stays small next to another subject's
    striped = people.render(people.motion_pose("wave", 0.3), _subject(stripes=3), HW)
    assert 0.0 < pm.colour_error(striped.image, regions, plain.clothing) < 0.2


def test_flicker_counts_only_change_the_pose_does_not_explain():
    video = people.make_video(people.make_subject(2), "walk", 5, HW, seed=4)
    assert pm.flicker(video.images, video.uv) == 0.0  # rendered frames change exactly where the pose changes
    noisy = video.images.copy()
    noisy[2] += np.random.default_rng(0).normal(0, 0.1, noisy[2].shape).astype(np.float32)
    assert pm.flicker(noisy, video.uv) > 0.02
    still = people.make_video(people.make_subject(2), "wave", 1, HW, seed=4)
    static = np.repeat(still.uv, 4, axis=0)
    frames = np.repeat(still.images, 4, axis=0)
    frames[1:3] = 1 - frames[1:3]  # the picture changes while the pose stands still: all unexplained
    assert pm.flicker(frames, static) > 0.3


def test_background_and_colour_flicker_discount_the_pose():
    """A rendered walk changes only where the pose moves: 0 for both; noise on the backdrop of one frame counts as
    background flicker only; a shirt that changes colour between frames counts as colour flicker only."""
    subject = _subject()  # plain shirt: stripes move along the torso with the pose
    video = people.make_video(subject, "walk", 5, HW, seed=4)
    regions = [f.clothing_masks() for f in video.frames]
    assert pm.background_flicker(video.images, video.uv) == 0.0
    assert pm.colour_flicker(video.images, regions) == pytest.approx(0.0, abs=1e-5)  # float32 means
    noisy = video.images.copy()
    backdrop = ~pm.dilate(video.frames[2].mask, 4)
    noisy[2][backdrop] += np.float32(0.1)
    assert pm.background_flicker(noisy, video.uv) > 0.02
    assert pm.colour_flicker(noisy, regions) == pytest.approx(0.0, abs=1e-5)
    recoloured = people.make_video(_subject(shirt=(0.1, 0.9, 0.1)), "walk", 5, HW,
                                   seed=4)
    mixed = video.images.copy()
    mixed[2] = recoloured.images[2]
    assert pm.colour_flicker(mixed, regions) > 0.1
    assert pm.background_flicker(mixed, video.uv) == 0.0
    assert np.array_equal(pm.dilate(np.eye(3, dtype=bool)[None], 1)[0], np.array(
        [[1, 1, 0], [1, 1, 1], [0, 1, 1]], dtype=bool))


def test_erode_and_backdrop():
    m = np.zeros((7, 7), bool)
    m[1:6, 1:6] = True
    assert pm.erode(m).sum() == 9 and pm.erode(m, 2).sum() == 1
    img = np.zeros((8, 8, 3)) + 0.5
    img[3:5, 3:5] = 0.1
    np.testing.assert_allclose(pm.backdrop_colour(img), [0.5, 0.5, 0.5])
    assert not math.isnan(pm.iou(m, m))
