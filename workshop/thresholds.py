"""Coherence thresholds of the clip analyser (``workshop.synthetic.analyse.clip_metrics``), shared by the unit tests
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
# 10 steps, cfg 5, with and without the motion module, seeds 0-2 x the two prompts, and the same in 48 frames through
# 16-frame context windows (workshop/demo/strips.py, the same clips; demo_models/training.json: 3000 image updates,
# 5000 motion updates of 2 clips). Measured (min / median / max), with motion / without / 48 frames in windows:
# IoU 0.632 / 0.689 / 0.757, 0.206 / 0.233 / 0.378, 0.690 / 0.704 / 0.756; area CV 0.165 / 0.213 / 0.867,
# 0.164 / 0.223 / 0.290, 0.156 / 0.299 / 0.600; jerk 0.082 / 0.138 / 0.238, 0.279 / 0.413 / 0.448, 0.092 / 0.165 /
# 0.181; colour spread 0.130 / 0.198 / 0.738, 0.300 / 0.332 / 0.442, 0.173 / 0.373 / 0.792; prompt colour 12/12 in every
# condition. Without the module the image model still puts its object near the middle, so independent frames overlap
# more than the synthetic independent clips do (IoU 0.23 vs 0.14); their path jerk (0.41) is the independence sign.
DEMO = {
    "seeds": 3,
    "prompts": ["a red circle moving right", "a blue square moving in a circle"],
    "motion_iou_min": 0.5,
    "motion_area_cv_max": 0.3,
    "motion_colour_spread_max": 0.3,
    "motion_jerk_max": 0.25,
    "still_jerk_min": 0.25,
    "motion_iou_gain_min": 0.3,  # median IoU with motion minus without: measured 0.456
    "colour_hit_rate_min": 0.67,
    "long_frames": 48,
    "long_iou_min": 0.5,  # measured 0.690 .. 0.756 over 6 clips
    # The shipped rightward MotionLoRA (demo_models/motion_lora_right_training.json; workshop/demo/direction_lora.py
    # --clips 32 --lr 3e-3 --rank 8 --min-timestep 800 --measure-at 2000 --save), this prompt, dx > 0.05 counted as
    # rightward. Its configuration was chosen on seeds 0-5, where it looked weakly rightward (base 1/6 right, median
    # dx -0.1828; LoRA 2/6, median -0.0321). On held-out seeds 6-29 it is not: base 8/24 right, 12 left, median
    # -0.0577; LoRA 4/24 right, 7 left, median -0.0156 (it mostly damps the motion). The test samples held-out seeds
    # 6-17 (base 5/12 right, LoRA 2/12) and asserts the claim, a strict expected failure.
    "lora_prompt": "a red circle moving in a circle",
    "lora_seeds": range(6, 18),
    "lora_dx_margin": 0.05,
}
