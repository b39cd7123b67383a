"""Sampling and measuring the demo models' clips, shared by the demo-model tests and ``scripts/demo_strips.py``.

Clips are sampled through ComfyUI's own sampler with the pack's motion-model injection, on the narrow twins of the demo
files (``animapose.synthetic.demo.narrow_models``: the same outputs at a sixteenth of the cost, parity-tested), and
decoded with the demo checkpoint's VAE."""

from __future__ import annotations

from dataclasses import dataclass

import torch

SIZE = 64
FRAMES = 16
STEPS = 10
CFG = 5.0
SAMPLER, SCHEDULER = "ddim", "ddim_uniform"  # the shipped AnimateDiff workflows' choice


@dataclass
class DemoModels:
    model: object  # the narrow MODEL
    motion: object  # the narrow MOTION_MODEL
    clip: object
    vae: object


def load(folder=None) -> DemoModels:
    import comfy.sd

    from animapose.motion.inflate import load_motion_model
    from animapose.synthetic.demo import narrow_models

    from ..fixtures.demo import DEMO_MODELS, demo_checkpoint, demo_motion_module

    folder = folder or DEMO_MODELS
    wide, clip, vae, _ = comfy.sd.load_checkpoint_guess_config(str(demo_checkpoint()))
    motion = load_motion_model(str(demo_motion_module()), "mm_sd_v15_v2.ckpt")
    model, narrow_motion = narrow_models(folder, wide, motion)
    return DemoModels(model, narrow_motion, clip, vae)


def sample(models: DemoModels, prompt: str, seed: int, motion: bool = True, motion_model=None, frames: int = FRAMES,
           steps: int = STEPS) -> torch.Tensor:
    """(frames, SIZE, SIZE, 3) in [0, 1]."""
    import comfy.sample

    from animapose.motion.inflate import apply_motion_model

    with torch.inference_mode():
        model = apply_motion_model(models.model, motion_model or models.motion).model if motion else models.model
        clip = models.clip
        positive = clip.encode_from_tokens_scheduled(clip.tokenize(prompt))
        negative = clip.encode_from_tokens_scheduled(clip.tokenize(""))
        latent = torch.zeros(frames, 4, SIZE // 8, SIZE // 8)
        noise = comfy.sample.prepare_noise(latent, seed)
        out = comfy.sample.sample(model, noise, steps, CFG, SAMPLER, SCHEDULER, positive, negative, latent, seed=seed,
                                  disable_pbar=True)
        return models.vae.decode(out)[..., :3].float().clamp(0, 1)
