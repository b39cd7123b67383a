"""The motion module trained for the tiny DreamPose (``demo_models/dreampose_motion_narrow.safetensors``, trained by
``workshop/demo/temporal_dreampose.py``), loaded widened and sampled through the joint path on seed 0 of the seeds
docs/tiny-dreampose.md measures. Margins are set from the distributions over those seeds, with room to spare."""

from __future__ import annotations

import pytest

from comfyui_animapose.workshop.demo import temporal_dreampose as td

SEED = 0
# per-frame DreamPose with shared noise minus joint with the module, seeds 0-5 (min / mean / max; seed 0):
# background flicker 0.0088 / 0.0130 / 0.0200; 0.0088
BACKGROUND_MARGIN = 0.004
# colour flicker 0.021 / 0.034 / 0.050; 0.021
COLOUR_MARGIN = 0.008


@pytest.fixture(scope="module")
def figures():
    from comfyui_animapose.workshop.demo.dreampose_claims import TrainedDreamPose
    from comfyui_animapose.workshop.fixtures.dreampose_trained import trained_dreampose_folder

    tdp = td.TemporalDreamPose(TrainedDreamPose(trained_dreampose_folder()), td.wide_motion_file())
    return td.measure(tdp, SEED, arms=("per_frame_shared", "joint_shared"))


def test_the_module_lowers_flicker(figures):
    before, after = "per_frame_shared.", "joint_shared."
    assert figures[before + "background_flicker"] - figures[after + "background_flicker"] > BACKGROUND_MARGIN
    assert figures[before + "colour_flicker"] - figures[after + "colour_flicker"] > COLOUR_MARGIN


def test_the_module_keeps_pose_and_identity(figures):
    before, after = "per_frame_shared.", "joint_shared."
    assert figures[after + "iou"] > figures[before + "iou"] - 0.05
    assert figures[after + "colour_err_real"] < figures[before + "colour_err_real"] + 0.05
