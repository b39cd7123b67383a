"""The DreamPose paper's claims, measured on the tiny DreamPose trained on synthetic people.

The model is trained into the fixture cache on first use (``scripts/train_demo_dreampose.py``). One trial per seed
(``tests/harness/dreampose_claims.py``): a training subject driven by a new motion, another subject's photo, three
photos, guidance scales, the 1-frame pose window and, for a held-out subject, stages 2a + 2b.

Opt-in (``ANIMAPOSE_TRAINED_DREAMPOSE=1``): the recipe has not yet been trained to a model that learned the task (a
30-update run on two heavily shared CPU cores still predicted noise, loss 0.97), so these claims are unmeasured and
the margins below are placeholders, not figures from measured distributions. Train longer (``--steps`` of
``scripts/train_demo_dreampose.py``), run ``scripts/measure_dreampose_claims.py`` over seeds, then set the margins
from its min/mean/max and make this test part of the tier.
"""

from __future__ import annotations

import os

import pytest

SEEDS = (0,)
pytestmark = pytest.mark.skipif(os.environ.get("ANIMAPOSE_TRAINED_DREAMPOSE") != "1",
                                reason="opt-in: trains the synthetic-people DreamPose on first use (see the docstring)")


@pytest.fixture(scope="module")
def trials():
    from tests.fixtures.dreampose_trained import trained_dreampose_folder
    from tests.harness import dreampose_claims as dc

    dp = dc.TrainedDreamPose(trained_dreampose_folder())
    return [dc.measure(dp, seed) for seed in SEEDS]


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
