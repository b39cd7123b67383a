"""Coherence thresholds of the clip analyser (``animapose.synthetic.analyse.clip_metrics``), shared by the unit tests
(which check them against the synthetic ground truth) and the demo-model tests.

Measured with ``clip_metrics`` on 96 synthetic clips (seed 100) and 16 clips of frames drawn from 16 different clips
(seeds 0-15), this machine:
- coherent clips: IoU of consecutive frames 0.48 .. 0.86 (median 0.75), area CV 0.000 .. 0.043, colour spread
  0.001 .. 0.070, path jerk (non-bouncing) 0.001 .. 0.023;
- independent frames: IoU 0.04 .. 0.19 (median 0.14), area CV 0.18 .. 0.26, colour spread 0.66 .. 0.94,
  jerk 0.35 .. 0.56.
The thresholds sit between the two distributions with a margin on each side.
"""

COHERENT = {"area_cv": 0.12, "colour_spread": 0.3, "jerk": 0.1}
INDEPENDENT_IOU_MAX = 0.3

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
    "lora_steps": 60,
    "lora_prompt": "a red circle moving in a circle",
    "lora_seeds": 6,
    "lora_dx_margin": 0.05,
}
