"""FreeNoise (Qiu et al., "FreeNoise: Tuning-Free Longer Video Diffusion via Noise Rescheduling") noise.

Long clips sampled in windows drift because every window starts from unrelated noise. FreeNoise keeps the noise
of the first ``context_length`` frames and fills every later stride region with a shuffled copy of the region
``context_length`` frames earlier, so all windows see permutations of the same noise; with the pack's context
windows (the window fusion half of the paper) that is the paper's method.

``shuffle_context`` is the loop of the authors' method as diffusers ships it (``free_noise_utils``: the region
``[i, i + stride)`` for ``i = L, L + stride, ...`` takes frames ``[i - L, i - L + stride)`` in the order of
``torch.randperm(stride, generator)``, reading frames already rescheduled), with frames on dim 0 instead of 2.
Given the same base noise and generator, it reproduces diffusers bit for bit (tests/unit/test_motion_controls.py, test_freenoise_shuffle_matches_diffusers_bitwise).
The base noise itself follows ComfyUI's seed (``prepare_noise``: one ``randn`` of the (frames, C, H, W) latent),
so a seed gives other numbers than diffusers' (B, C, frames, H, W) draw; the permutations use a generator seeded
with the same seed. ``repeat_context`` repeats the first window's noise unshuffled.
"""

from __future__ import annotations

import torch

NOISE_TYPES = ["shuffle_context", "repeat_context"]
KEY = "animapose.freenoise"


def shuffle_context(noise: torch.Tensor, context_length: int, context_stride: int,
                    generator: torch.Generator | None) -> torch.Tensor:
    out = noise.clone()
    frames = out.shape[0]
    for i in range(context_length, frames, context_stride):
        window_start = max(0, i - context_length)
        window_end = min(frames, window_start + context_stride)
        length = window_end - window_start
        if length == 0:
            break
        indices = torch.arange(window_start, window_end)
        shuffled = indices[torch.randperm(length, generator=generator)]
        end = min(frames, i + length)
        out[i:end] = out[shuffled[: end - i].to(out.device)]
    return out


def repeat_context(noise: torch.Tensor, context_length: int) -> torch.Tensor:
    frames = noise.shape[0]
    repeats = -(-frames // context_length)
    return torch.cat([noise[:context_length]] * repeats, dim=0)[:frames]


def reschedule(noise: torch.Tensor, seed: int, context_length: int, context_stride: int,
               noise_type: str = "shuffle_context") -> torch.Tensor:
    """FreeNoise applied to the unit noise of a (frames, C, H, W) latent; clips of at most ``context_length``
    frames are returned unchanged."""
    if noise.shape[0] <= context_length:
        return noise
    if noise_type == "repeat_context":
        return repeat_context(noise, context_length)
    return shuffle_context(noise, context_length, context_stride, torch.Generator().manual_seed(int(seed)))


class FreeNoise:
    """A NOISE for SamplerCustomAdvanced: ComfyUI's seeded noise (as RandomNoise gives it), rescheduled."""

    def __init__(self, seed: int, context_length: int = 16, context_stride: int = 4,
                 noise_type: str = "shuffle_context"):
        self.seed = seed
        self.context_length = context_length
        self.context_stride = context_stride
        self.noise_type = noise_type

    def generate_noise(self, input_latent: dict) -> torch.Tensor:
        from ...comfy_seam import comfy_sample

        latent = input_latent["samples"]
        noise = comfy_sample.prepare_noise(latent, self.seed, input_latent.get("batch_index"))
        return reschedule(noise, self.seed, self.context_length, self.context_stride, self.noise_type)


def add_to_model(model, context_length: int, context_stride: int, noise_type: str):
    """A MODEL clone whose samplings (KSampler and the rest) reschedule their noise with FreeNoise first."""
    from ...comfy_seam import comfy_patcher_extension

    def outer_sample(executor, noise, *args, **kwargs):
        seed = args[6] if len(args) > 6 else kwargs.get("seed")
        # KSamplerAdvanced with add_noise off hands over zeros: a continued sampling keeps its (absent) noise
        if noise.ndim == 4 and torch.count_nonzero(noise) > 0:
            noise = reschedule(noise, seed or 0, context_length, context_stride, noise_type)
        return executor(noise, *args, **kwargs)

    m = model.clone()
    m.remove_wrappers_with_key(comfy_patcher_extension.WrappersMP.OUTER_SAMPLE, KEY)
    m.add_wrapper_with_key(comfy_patcher_extension.WrappersMP.OUTER_SAMPLE, KEY, outer_sample)
    return m
