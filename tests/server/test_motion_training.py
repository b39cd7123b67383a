"""Motion training in the real server: the node shows progress and loss while it runs, a run cancelled mid-way (POST
/interrupt) stops, saves nothing, leaves the server serving and the loaders' cached MODEL and motion model unchanged
(an animated sampling gives the same latent before and after), and a MotionLoRA without a motion module is a clear
error."""

from __future__ import annotations

import pytest
import safetensors.torch

from tests.harness.models import CHECKPOINT_NAME, TRAINING_CLIPS
from tests.harness.server import ExecutionFailed
from tests.server.test_finetune_interrupt import _cached, interrupt_training

STEPS = 100000
CAPTIONS = "a yellow circle moving right"


def _loaders() -> dict:
    return {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CHECKPOINT_NAME}},
            "2": {"class_type": "AnimaPose_LoadMotionModel", "inputs": {"model_name": "mm_sd_v15_v2.ckpt"}}}


def _reference_prompt(prefix: str) -> dict:
    return {**_loaders(),
            "3": {"class_type": "AnimaPose_ApplyMotionModel",
                  "inputs": {"model": ["1", 0], "motion_model": ["2", 0], "motion_scale": 1.0,
                             "beta_schedule": "autoselect", "groupnorm": "original code (auto)"}},
            "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red circle moving right", "clip": ["1", 1]}},
            "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 4}},
            "6": {"class_type": "KSampler",
                  "inputs": {"model": ["3", 0], "positive": ["4", 0], "negative": ["4", 0], "latent_image": ["5", 0],
                             "seed": 1, "steps": 2, "cfg": 1.0, "sampler_name": "euler", "scheduler": "normal",
                             "denoise": 1.0}},
            "7": {"class_type": "SaveLatent", "inputs": {"samples": ["6", 0], "filename_prefix": prefix}}}


def _train_prompt(mode: str, steps: int, with_motion: bool = True) -> dict:
    inputs = {"model": ["1", 0], "clip": ["1", 1], "vae": ["1", 2], "images": ["8", 0], "captions": CAPTIONS,
              "frames_per_video": 16, "mode": mode, "steps": steps, "learning_rate": 1e-4, "lora_rank": 4,
              "frames": 4, "stride": 1, "batch_size": 1, "seed": 0, "precision": "fp32",
              "gradient_checkpointing": False, "save_name": "interrupted"}
    if with_motion:
        inputs["motion_model"] = ["2", 0]
    return {**_loaders(), "8": {"class_type": "LoadImage", "inputs": {"image": TRAINING_CLIPS}},
            "9": {"class_type": "AnimaPose_TrainMotionModule", "inputs": inputs}}


def _latent(server, entry) -> dict:
    (item,) = entry["outputs"]["7"]["latents"]
    return safetensors.torch.load_file(str(server.base / item["type"] / item["subfolder"] / item["filename"]))


def test_motion_lora_needs_a_motion_module(comfy_server):
    with pytest.raises(ExecutionFailed) as err:
        comfy_server.run(_train_prompt("motion_lora", 1, with_motion=False), timeout=300)
    message = str(err.value)
    for part in ("Train AnimateDiff Motion Module", "input 'motion_model'", "Fix:"):
        assert part in message, message


def test_interrupt_mid_run_leaves_the_server_and_the_models_untouched(comfy_server):
    before = comfy_server.run(_reference_prompt("animapose/mm_before"), timeout=600)
    listener = interrupt_training(comfy_server, _train_prompt("motion_lora", STEPS), "9", STEPS, 900, 300)
    text = next(t for t in listener.texts("9") if "loss" in t)
    assert text.startswith("MotionLoRA: step ") and f"/{STEPS}\nloss " in text, text
    assert not list((comfy_server.base / "models" / "animatediff_motion_lora").glob("interrupted*"))

    after = comfy_server.run(_reference_prompt("animapose/mm_after"), timeout=600)
    assert {"1", "2"} <= _cached(after) and "6" not in _cached(after), _cached(after)
    a, b = _latent(comfy_server, before), _latent(comfy_server, after)
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
