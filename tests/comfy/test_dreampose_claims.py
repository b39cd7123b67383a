"""The DreamPose paper's claims, measured on the tiny DreamPose trained on synthetic people.

The model ships in ``demo_models/`` (``workshop/demo/train_dreampose.py``) and is widened into the fixture cache on
first use. One trial (``workshop/demo/dreampose_claims.py``, seed 0 of the seeds 0-5 in docs/tiny-dreampose.md): a training subject
driven by a new motion, another subject's photo, three photos' averaged tokens (the pack's option), guidance scales and
the 1-frame pose window, and the subject-finetuning trial (its own module-scoped trial on a held-out subject: stage 2a
on its photo and on three photos, 2b, 2a + 2b; 50 + 50 steps at 64x80).
Every colour claim is checked against the real frames' clothing colours, the reference docs/tiny-dreampose.md argues for (what
the paper's user compares the video with), and also against their VAE round trip (what this 64x80 VAE can draw at
best): a test where the claim holds there on seed 0, a strict expected failure where it does not.
Margins are set from the distributions over seeds 0-5 (the figures are in docs/tiny-dreampose.md) with room to spare.
Claims the model does not reproduce are strict expected failures: they assert the paper's claim, so a model that
learns it turns them into failures that ask for docs/tiny-dreampose.md to be updated.
"""

from __future__ import annotations

import pytest

SEEDS = (0,)
REAL, ROUND_TRIP = "_real", ""
# pose IoU with the poses minus with a zero pose: 0.446 / 0.472 / 0.519 (min / mean / max over seeds 0-5)
IOU_MARGIN = 0.25
# a colour-error gain counts above this. Measured gains (min / mean / max over seeds 0-5; seed 0), real frames | round
# trip: another subject's photo minus the subject's own -0.023 / 0.198 / 0.363; 0.200 | -0.135 / 0.129 / 0.339; 0.047
# (5 of 6 both: seed 2); s_I 1 minus s_I 3 -0.036 / 0.066 / 0.107; 0.107 (5 of 6: seed 2) | -0.138 / -0.050 / 0.007;
# 0.007 (1 of 6)
COLOUR_MARGIN = 0.02
# 1-frame minus 5-frame window flicker: 0.0072 / 0.0125 / 0.0196
FLICKER_MARGIN = 0.003
# "not worse": within this of one photo's colour error. 2a on 3 photos minus 2a on 1, real frames: -0.065 / -0.024 /
# +0.006; -0.015 | round trip: -0.008 / +0.050 / +0.101; +0.060 (within 0.02 on 2 of 6)
SAME_TOLERANCE = 0.02
# the held-out subject's colour error against its real frames, before minus after 2a + 2b (harness recipe: 50 steps at
# lr 5e-4, 50 at 5e-5): 0.090 / 0.126 / 0.171 over seeds 0-5 (seed 0: 0.142)
FINETUNE_MARGIN = 0.05


def round_trip_xfail(reason: str):
    return pytest.param(ROUND_TRIP, id="round_trip", marks=pytest.mark.xfail(strict=True, reason=reason))


@pytest.fixture(scope="module")
def trials():
    from comfyui_animapose.workshop.demo import dreampose_claims as dc
    from comfyui_animapose.workshop.fixtures.dreampose_trained import trained_dreampose_folder

    dp = dc.TrainedDreamPose(trained_dreampose_folder())
    return [dc.measure(dp, seed, finetune=False) for seed in SEEDS]


@pytest.fixture(scope="module")
def finetune_trials():
    from comfyui_animapose.workshop.demo import dreampose_claims as dc
    from comfyui_animapose.workshop.fixtures.dreampose_trained import trained_dreampose_folder

    dp = dc.TrainedDreamPose(trained_dreampose_folder())
    return [dc.measure(dp, seed, others=False) for seed in SEEDS]


def test_pose_following_beats_a_zero_pose(trials):
    for t in trials:
        assert t["iou"] > t["iou_zero_pose"] + IOU_MARGIN, t


@pytest.mark.parametrize("ref", [pytest.param(REAL, id="real"), pytest.param(ROUND_TRIP, id="round_trip")])
def test_subject_photo_sets_the_clothing_colours(trials, ref):
    for t in trials:
        assert t["colour_err" + ref] < t["colour_err_other_photo" + ref] - COLOUR_MARGIN, t


def test_pose_guidance_raises_pose_iou(trials):
    # s_p 3 vs 1: +0.020 mean IoU, -0.034 / +0.071 (holds on 4 of 6 seeds, seed 0 among them: +0.071)
    for t in trials:
        assert t["iou"] > t["iou_sp1"] + 0.02, t


def test_five_frame_window_flickers_less_than_one_frame(trials):
    for t in trials:
        assert t["flicker"] < t["flicker_single"] - FLICKER_MARGIN, t


@pytest.mark.parametrize("ref", [pytest.param(REAL, id="real"), round_trip_xfail(
    "measured: against the round trip raising s_I from 1 to 3 lowers colour fidelity on 5 of 6 seeds (seed 0 gains "
    "0.007, below the margin)")])
def test_image_guidance_raises_colour_fidelity(trials, ref):
    for t in trials:
        assert t["colour_err" + ref] < t["colour_err_sI1" + ref] - COLOUR_MARGIN, t


@pytest.mark.parametrize("ref", [pytest.param(REAL, id="real"), round_trip_xfail(
    "measured: against the round trip 2a on 3 photos is worse than on 1 on 5 of 6 seeds (seed 0 by 0.060)")])
def test_finetuning_on_three_photos_is_not_worse_than_on_one(finetune_trials, ref):
    # The paper's use of several photos: stage 2a picks one per step; generation conditions on one photo.
    for t in finetune_trials:
        assert t["unseen_colour_err_finetuned_unet_3_photos" + ref] <= t["unseen_colour_err_finetuned_unet" + ref] \
            + SAME_TOLERANCE, t


@pytest.mark.parametrize("ref", [REAL, ROUND_TRIP], ids=["real", "round_trip"])
@pytest.mark.xfail(strict=True, reason="the pack's multi_image='average' at inference, not a paper claim; measured: "
                                       "three photos' averaged tokens are worse than one photo on 5 of 6 seeds, by "
                                       "more than 0.02 on 2 (seed 0: +0.050 real frames, +0.031 round trip)")
def test_pack_averaged_tokens_of_three_photos_are_not_worse_than_one(trials, ref):
    for t in trials:
        assert t["colour_err_3_photos_averaged" + ref] <= t["colour_err" + ref] + SAME_TOLERANCE, t


@pytest.mark.parametrize("ref", [pytest.param(REAL, id="real"), round_trip_xfail(
    "measured: after 2a + 2b the colours move away from the VAE round trip on 4 of 6 seeds (seed 0: 0.354 -> 0.630); "
    "the decoder finetune (2b) alone does on 6 of 6")])
def test_subject_finetuning_brings_the_colours_closer(finetune_trials, ref):
    # Stage 2b retrains the very decoder whose round trip is the second reference.
    for t in finetune_trials:
        assert t["unseen_colour_err_finetuned" + ref] < t["unseen_colour_err" + ref] - FINETUNE_MARGIN, t
