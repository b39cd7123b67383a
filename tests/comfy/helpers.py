"""Sampling helpers for comfy-tier tests."""

from __future__ import annotations

import comfy.sample
import torch


def run(model, positive, negative, frames=4, steps=2, sampler="euler", scheduler="normal", seed=0, cfg=5.0, size=8,
        latent=None):
    latent = torch.zeros(frames, 4, size, size) if latent is None else latent
    noise = comfy.sample.prepare_noise(latent, seed)
    return comfy.sample.sample(model, noise, steps, cfg, sampler, scheduler, positive, negative, latent, seed=seed,
                               disable_pbar=True)
