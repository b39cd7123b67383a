"""API-format graphs the server and browser tiers queue besides the shipped workflows (the hostile table's live in ``hostile``)."""

from __future__ import annotations

from .models import CHECKPOINT_NAME, TRAINING_CLIPS

CAPTIONS = "a yellow circle moving right"


def motion_loaders() -> dict:
    return {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CHECKPOINT_NAME}},
            "2": {"class_type": "AnimaPose_LoadMotionModel", "inputs": {"model_name": "mm_sd_v15_v2.ckpt"}}}


def motion_reference_prompt(prefix: str) -> dict:
    return {**motion_loaders(),
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


def train_motion_prompt(mode: str, steps: int, with_motion: bool = True) -> dict:
    inputs = {"model": ["1", 0], "clip": ["1", 1], "vae": ["1", 2], "images": ["8", 0], "captions": CAPTIONS,
              "frames_per_video": 16, "mode": mode, "steps": steps, "learning_rate": 1e-4, "lora_rank": 4,
              "frames": 4, "stride": 1, "batch_size": 1, "seed": 0, "precision": "fp32",
              "gradient_checkpointing": False, "save_name": "interrupted"}
    if with_motion:
        inputs["motion_model"] = ["2", 0]
    return {**motion_loaders(), "8": {"class_type": "LoadImage", "inputs": {"image": TRAINING_CLIPS}},
            "9": {"class_type": "AnimaPose_TrainMotionModule", "inputs": inputs}}
