"""Sampling helpers for comfy-tier tests."""

from __future__ import annotations

import contextlib

import comfy.model_management
import comfy.patcher_extension
import comfy.sample
import torch


@contextlib.contextmanager
def sampling_run(m):
    """Loads ``m`` and brackets a block of direct UNet calls the way a sampler's run does (``pre_run`` ...
    ``cleanup``): the pack inserts motion modules for a run only."""
    comfy.model_management.load_models_gpu([m])
    m.pre_run()
    try:
        yield m
    finally:
        m.cleanup()


def call_unet(m, x, t, context):
    """One UNet call of a MODEL (its wrappers and patches included) on one cond chunk; unpatches it afterwards."""
    to = comfy.patcher_extension.copy_nested_dicts(m.model_options["transformer_options"])
    to["wrappers"] = comfy.patcher_extension.copy_nested_dicts(m.wrappers)
    to["cond_or_uncond"] = [0]
    try:
        with sampling_run(m), torch.no_grad():
            return m.model.diffusion_model(x, t.expand(x.shape[0]), context=context.expand(x.shape[0], -1, -1),
                                           transformer_options=to)
    finally:
        m.detach()


def run(model, positive, negative, frames=4, steps=2, sampler="euler", scheduler="normal", seed=0, cfg=5.0, size=8,
        latent=None):
    latent = torch.zeros(frames, 4, size, size) if latent is None else latent
    noise = comfy.sample.prepare_noise(latent, seed)
    return comfy.sample.sample(model, noise, steps, cfg, sampler, scheduler, positive, negative, latent, seed=seed,
                               disable_pbar=True)
