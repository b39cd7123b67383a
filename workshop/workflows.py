"""The shipped example workflows, and the one change the CPU runs make to them.

The workflows in ``workflows/`` carry real-use settings (512 px, 20 steps) and real model file names. The demo
job and the test tiers run them against small random-weight fixtures on two CPU cores, so ``shrink_api_prompt``
lowers resolution and step counts (never the graph, the node types or the frame counts, which are the point of
each workflow), swaps the AnimateDiff prompts for captions the demo models were trained on, and gives every seed a
fresh value so ComfyUI's cache cannot skip the run.
"""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path

from .env import REPO

WORKFLOWS = REPO / "workflows"
# The Templates dialog lists the top level of workflows/, so only UI-format graphs live there; the API-format
# copies (what the demo job and the server tier queue) live in this subfolder under the same names.
API_WORKFLOWS = WORKFLOWS / "api"

# node class -> {input: value} applied when the input is present
CPU_SETTINGS = {
    "EmptyLatentImage": {"width": 64, "height": 64},
    "ImageScale": {"width": 64, "height": 64},
    "KSampler": {"steps": 3},
    "KSamplerAdvanced": {"steps": 3},
    "BasicScheduler": {"steps": 3},
    "AnimaPose_PoseConditioning": {"width": 64, "height": 80},
    "AnimaPose_DreamPoseFinetuneUNet": {"steps": 2, "width": 64, "height": 80},
    "AnimaPose_DreamPoseFinetuneVAE": {"steps": 2, "width": 64, "height": 80},
    # one update on 4-frame clips: the training path runs end to end, on the 320-wide demo UNet
    "AnimaPose_TrainMotionModule": {"steps": 1, "frames": 4},
}
SEED_INPUTS = ("seed", "noise_seed")
# Prompts of the shipped workflows -> what the demo models (trained on captioned clips of moving shapes, with the
# empty prompt as their unconditional one) were trained to draw.
CPU_TEXT = {
    "a red fox running through snowy woods, golden hour, detailed fur, masterpiece": "a red circle moving right",
    "timelapse of clouds drifting over a mountain lake, cinematic, highly detailed": "a blue square moving in a circle",
    "blurry, low quality, watermark, text": "",
}

# The Templates dialog shows a custom node pack's template by its file name (title = name) and, sorted
# alphabetically, in name order; so the UI-format file of workflows/api/<stem>.json is workflows/<title>.json with a
# leading number for the order. Workflows without an entry keep their stem as the name.
TEMPLATE_TITLES = {
    "animatediff_txt2vid": "01 AnimateDiff - text to animation",
    "animatediff_long_context": "02 AnimateDiff - long animation with context windows",
    "animatediff_prompt_travel": "03 AnimateDiff - prompt travel",
    "animatediff_long_freenoise": "04 AnimateDiff - long animation with FreeNoise",
    "animatediff_img2vid": "05 AnimateDiff - picture to animation (PIA)",
    "animatediff_lcm_img2vid": "06 AnimateDiff - picture to animation (AnimateLCM-I2V)",
    "animatediff_sparsectrl_keyframes": "07 AnimateDiff - keyframes to animation (SparseCtrl)",
    "animatediff_cameractrl": "08 AnimateDiff - camera moves (CameraCtrl)",
    "animatediff_train_motion_lora": "09 AnimateDiff - train a MotionLoRA",
    "dreampose_pose_to_video": "10 DreamPose - photo and poses to video",
    "dreampose_video_to_video": "11 DreamPose - video to video",
    "dreampose_finetune_then_animate": "12 DreamPose - finetune on a subject, then animate",
    "dreampose_pose_to_video_motion": "13 DreamPose - photo and poses to video, with a motion module",
}


def is_api_format(data: dict) -> bool:
    return "nodes" not in data and all(isinstance(v, dict) and "class_type" in v for v in data.values())


def shipped(api_only: bool = False) -> list[Path]:
    """The shipped API-format workflows (``api_only``), or every shipped workflow file, UI and API."""
    if api_only:
        return sorted(API_WORKFLOWS.glob("*.json"))
    return sorted(WORKFLOWS.glob("*.json")) + sorted(API_WORKFLOWS.glob("*.json"))


def template_name(stem: str) -> str:
    """The file name (without .json) of the UI-format template made from workflows/api/<stem>.json."""
    return TEMPLATE_TITLES.get(stem, stem)


def api_stem(template: str) -> str:
    """The API-format stem of a template name (the inverse of ``template_name``)."""
    return next((k for k, v in TEMPLATE_TITLES.items() if v == template), template)


def api_workflow(name: str) -> dict:
    """The API-format prompt of a shipped workflow, by name (``animatediff_txt2vid``)."""
    return json.loads((API_WORKFLOWS / f"{name}.json").read_text())


def shrink_api_prompt(prompt: dict, seed: int | None = None) -> dict:
    """A copy of an API-format prompt with CPU-sized settings and fresh seeds."""
    rng = random.Random(seed)
    out = copy.deepcopy(prompt)
    for node in out.values():
        inputs = node.get("inputs", {})
        for name, value in CPU_SETTINGS.get(node["class_type"], {}).items():
            if name in inputs and not isinstance(inputs[name], list):
                inputs[name] = min(inputs[name], value) if isinstance(value, int) else value
        if node["class_type"] == "CLIPTextEncode" and inputs.get("text") in CPU_TEXT:
            inputs["text"] = CPU_TEXT[inputs["text"]]
        for name in SEED_INPUTS:
            if name in inputs and not isinstance(inputs[name], list):
                inputs[name] = rng.randrange(2**32)
    return out
