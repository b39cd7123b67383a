"""The motion module trained for the tiny DreamPose (``demo_models/dreampose_motion_narrow.safetensors``, trained by
``workshop/demo/temporal_dreampose.py``), loaded widened and sampled through the joint path on seed 0 of the seeds
docs/tiny-dreampose.md measures, against per-frame DreamPose with shared noise (the official setting). Margins are set
below the smallest gain over those seeds. Where the module does not help (the subject's colours), a strict expected
failure asserts the hoped-for result, so a module that achieves it asks for the docs to be updated."""

from __future__ import annotations

import pytest

from comfyui_animapose.workshop.demo import temporal_dreampose as td

SEED = 0
BEFORE, AFTER = "per_frame_shared.", "joint_shared."
# per-frame (shared noise) minus joint with the module, seeds 0-5, min / mean / max (seed 0): background flicker
# 0.0006 / 0.0011 / 0.0021 (0.0009); colour flicker 0.0050 / 0.0142 / 0.0327 (0.0155)
BACKGROUND_MARGIN = 0.0004
COLOUR_MARGIN = 0.004
# pose IoU, joint minus per-frame: -0.0063 / +0.0210 / +0.0545 (seed 0: +0.0028)
IOU_TOLERANCE = 0.02


@pytest.fixture(scope="module")
def figures():
    from comfyui_animapose.workshop.demo.dreampose_claims import TrainedDreamPose
    from comfyui_animapose.workshop.fixtures.dreampose_trained import trained_dreampose_folder

    tdp = td.TemporalDreamPose(TrainedDreamPose(trained_dreampose_folder()), td.wide_motion_file())
    return td.measure(tdp, SEED, arms=("per_frame_shared", "joint_shared"))


def test_the_module_lowers_flicker(figures):
    assert figures[BEFORE + "background_flicker"] - figures[AFTER + "background_flicker"] > BACKGROUND_MARGIN
    assert figures[BEFORE + "colour_flicker"] - figures[AFTER + "colour_flicker"] > COLOUR_MARGIN


def test_the_module_keeps_the_pose(figures):
    assert figures[AFTER + "iou"] > figures[BEFORE + "iou"] - IOU_TOLERANCE


# colour error against the real frames, joint minus per-frame: -0.0082 / +0.0792 / +0.2666 (worse on 5 of 6; seed 0:
# +0.0105)
@pytest.mark.xfail(strict=True, reason="the module draws the subject's colours worse (docs/tiny-dreampose.md)")
def test_the_module_keeps_the_subjects_colours(figures):
    assert figures[AFTER + "colour_err_real"] <= figures[BEFORE + "colour_err_real"]
