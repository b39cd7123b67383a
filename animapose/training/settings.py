"""The motion trainer's settings and choices, importable without ComfyUI (the command line's ``--help``)."""

from __future__ import annotations

from dataclasses import dataclass

PRECISIONS = ["fp32", "bf16", "fp16"]
MODES = ["motion_module", "motion_lora"]
DEFAULTS = {"motion_module": {"learning_rate": 1e-4}, "motion_lora": {"learning_rate": 1e-4}}


@dataclass
class MotionTrainSettings:
    mode: str = "motion_module"
    steps: int = 100
    learning_rate: float = 1e-4
    lora_rank: int = 32
    frames: int = 16
    stride: int = 1
    batch_size: int = 1
    uncond_probability: float = 0.1
    # Timesteps are drawn uniformly from [min_timestep, 1000) (the original recipe: 0). Raising it trains only the
    # noisier steps, where a sampled clip's layout and direction are decided.
    min_timestep: int = 0
    # DreamPose conditioning (clips with pose windows): the probability that a clip trains with a zero pose and its
    # subject's tokens, the e(I, 0) slot of dual CFG (``uncond_probability`` then drops both, the e(0, 0) slot)
    pose_dropout: float = 0.05
    seed: int = 0
    precision: str = "fp32"
    gradient_checkpointing: bool = True
