"""The DreamPose paper's claims, measured on the tiny DreamPose trained on synthetic people.

The model is trained into the fixture cache on first use (``scripts/train_demo_dreampose.py``). One trial per seed
(``tests/harness/dreampose_claims.py``): a training subject driven by a new motion, another subject's photo, three
photos, guidance scales, the 1-frame pose window and, for a held-out subject, stages 2a + 2b. Thresholds come from
``scripts/measure_dreampose_claims.py`` over seeds 0-5 (README table), with a margin.
"""

from __future__ import annotations

import numpy as np
import pytest

SEEDS = (0,)


@pytest.fixture(scope="module")
def trials():
    from tests.fixtures.dreampose_trained import trained_dreampose_folder
    from tests.harness import dreampose_claims as dc

    dp = dc.TrainedDreamPose(trained_dreampose_folder())
    return [dc.measure(dp, seed) for seed in SEEDS]


def _mean(trials, key):
    return float(np.mean([t[key] for t in trials]))


def test_pose_following_beats_a_zero_pose(trials):
    for t in trials:
        assert t["iou"] > t["iou_zero_pose"] + IOU_MARGIN, t


def test_subject_photo_sets_the_clothing_colours(trials):
    for t in trials:
        assert t["colour_err"] < t["colour_err_other_photo"] - COLOUR_MARGIN, t


def test_three_photos_are_not_worse_than_one(trials):
    for t in trials:
        assert t["colour_err_3_photos"] <= t["colour_err"] + SAME_TOLERANCE, t


def test_pose_guidance_raises_pose_iou(trials):
    for t in trials:
        assert t["iou"] > t["iou_sp1"], t


def test_image_guidance_raises_colour_fidelity(trials):
    for t in trials:
        assert t["colour_err"] < t["colour_err_sI1"], t


def test_subject_finetuning_improves_colour_fidelity(trials):
    for t in trials:
        assert t["unseen_colour_err_finetuned"] < t["unseen_colour_err"], t


def test_five_frame_window_flickers_less_than_one_frame(trials):
    for t in trials:
        assert t["flicker"] < t["flicker_single"], t


IOU_MARGIN = 0.05
COLOUR_MARGIN = 0.05
SAME_TOLERANCE = 0.02
