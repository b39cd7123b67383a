"""Coherence thresholds of the clip analyser (``animapose.synthetic.analyse.clip_metrics``), shared by the unit tests
(which check them against the synthetic ground truth) and the demo-model tests.

Measured with ``clip_metrics`` on 96 synthetic clips (seed 100) and 16 clips of frames drawn from 16 different clips
(seeds 0-15), this machine:
- coherent clips: IoU of consecutive frames 0.40 .. 0.82 (median 0.69), area CV 0.000 .. 0.055, colour spread
  0.002 .. 0.085, path jerk (non-bouncing) 0.001 .. 0.020;
- independent frames: IoU 0.011 .. 0.128 (median 0.08), area CV 0.18 .. 0.29, colour spread 0.66 .. 0.94,
  jerk 0.39 .. 0.64.
The thresholds sit between the two distributions with a margin on each side.
"""

COHERENT = {"area_cv": 0.12, "colour_spread": 0.3, "jerk": 0.1}
INDEPENDENT_IOU_MAX = 0.25

# Demo models (tests/comfy/test_demo_models.py): clips sampled from the trained demo models, 64x64, 16 frames, DDIM
# 10 steps, cfg 5, with and without the motion module. Measured: see the README (AnimateDiff > Demo models).
DEMO = {
    "seeds": 3,
    "prompts": ["a red circle moving right", "a blue square moving in a circle"],
    "motion_iou_min": 0.3,
    "motion_area_cv_max": 0.3,
    "motion_colour_spread_max": 0.3,
    "still_iou_max": 0.3,
    "colour_hit_rate_min": 0.5,
}
