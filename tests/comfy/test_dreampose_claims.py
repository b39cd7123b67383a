"""The DreamPose paper's claims, measured on the tiny DreamPose trained on synthetic people.

The model ships in ``demo_models/`` (``scripts/train_demo_dreampose.py``) and is widened into the fixture cache on
first use. One trial (``tests/harness/dreampose_claims.py``, seed 0 of the README's seeds 0-5): a training subject
driven by a new motion, another subject's photo, three photos, guidance scales and the 1-frame pose window (21-36 s
on two shared CPU cores), and the subject-finetuning trial (stages 2a + 2b on a held-out subject, its own module-scoped
trial, 50 + 50 steps at 64x80).
Margins are set from the distributions over seeds 0-5 (the figures are in the README's table) with room to spare.
Claims the model does not reproduce are strict expected failures: they assert the paper's claim, so a model that
learns it turns them into failures that ask for the README to be updated.
"""

from __future__ import annotations

import pytest

SEEDS = (0,)
# pose IoU with the poses minus with a zero pose: 0.446 / 0.472 / 0.519 (min / mean / max over seeds 0-5)
IOU_MARGIN = 0.25
# colour error with another subject's photo minus with the subject's own: -0.135 / 0.129 / 0.339 (holds on 5 of 6)
COLOUR_MARGIN = 0.02
# 1-frame minus 5-frame window flicker: 0.0072 / 0.0125 / 0.0196
FLICKER_MARGIN = 0.003
# "not worse": within this of one photo's colour error
SAME_TOLERANCE = 0.02
# the held-out subject's colour error against its real frames, before minus after 2a + 2b (harness recipe: 50 steps at
# lr 5e-4, 50 at 5e-5): 0.090 / 0.126 / 0.171 over seeds 0-5 (seed 0: 0.142)
FINETUNE_MARGIN = 0.05


@pytest.fixture(scope="module")
def trials():
    from tests.fixtures.dreampose_trained import trained_dreampose_folder
    from tests.harness import dreampose_claims as dc

    dp = dc.TrainedDreamPose(trained_dreampose_folder())
    return [dc.measure(dp, seed, finetune=False) for seed in SEEDS]


@pytest.fixture(scope="module")
def finetune_trials():
    from tests.fixtures.dreampose_trained import trained_dreampose_folder
    from tests.harness import dreampose_claims as dc

    dp = dc.TrainedDreamPose(trained_dreampose_folder())
    return [dc.measure(dp, seed, others=False) for seed in SEEDS]


def test_pose_following_beats_a_zero_pose(trials):
    for t in trials:
        assert t["iou"] > t["iou_zero_pose"] + IOU_MARGIN, t


def test_subject_photo_sets_the_clothing_colours(trials):
    for t in trials:
        assert t["colour_err"] < t["colour_err_other_photo"] - COLOUR_MARGIN, t


def test_pose_guidance_raises_pose_iou(trials):
    # s_p 3 vs 1: +0.020 mean IoU, -0.034 / +0.071 (holds on 4 of 6 seeds, seed 0 among them: +0.071)
    for t in trials:
        assert t["iou"] > t["iou_sp1"] + 0.02, t


def test_five_frame_window_flickers_less_than_one_frame(trials):
    for t in trials:
        assert t["flicker"] < t["flicker_single"] - FLICKER_MARGIN, t


@pytest.mark.xfail(strict=True, reason="measured: 3 photos are slightly worse than 1 (colour error +0.018 mean, "
                                       "up to +0.063; within 0.02 on 4 of 6 seeds, not on seed 0)")
def test_three_photos_are_not_worse_than_one(trials):
    for t in trials:
        assert t["colour_err_3_photos"] <= t["colour_err"] + SAME_TOLERANCE, t


@pytest.mark.xfail(strict=True, reason="measured: raising s_I from 1 to 3 lowers colour fidelity on 5 of 6 seeds "
                                       "(colour error +0.050 mean; seed 0 gains 0.007, below the margin)")
def test_image_guidance_raises_colour_fidelity(trials):
    for t in trials:
        assert t["colour_err"] < t["colour_err_sI1"] - COLOUR_MARGIN, t


def test_subject_finetuning_brings_the_real_colours_closer(finetune_trials):
    # Against the real frames: stage 2b retrains the decoder whose round trip the other colour claims take as truth.
    for t in finetune_trials:
        assert t["unseen_colour_err_finetuned_real"] < t["unseen_colour_err_real"] - FINETUNE_MARGIN, t


@pytest.mark.xfail(strict=True, reason="measured: after 2a + 2b the colours move away from the VAE round trip on 4 of 6 "
                                       "seeds (seed 0: 0.354 -> 0.630); the decoder finetune (2b) alone does on 6 of 6")
def test_subject_finetuning_brings_the_round_trip_colours_closer(finetune_trials):
    for t in finetune_trials:
        assert t["unseen_colour_err_finetuned"] < t["unseen_colour_err"] - COLOUR_MARGIN, t
