"""The pure maths of DreamPose training: random crops applied to a picture and its pose together, conditioning
dropout, the DDPM forward process and the two losses. Plain torch; nothing here imports ComfyUI.

Every random draw takes an explicit ``torch.Generator``, so a training run is a function of its seed.

Crops (``random_crop_box``) keep the aspect ratio and stay inside the picture; ``crop_pair`` cuts the same box out of
the picture and out of its UV pose and resizes both back, so pixel (y, x) of the target still shows the body point
whose surface coordinates the pose holds at (y, x). The official finetune-unet.py paired a cropped pose with the
uncropped target picture in 70% of its steps; this module is where that is done right.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

DROPOUT_KINDS = ("none", "pose", "image", "both")


@dataclass(frozen=True)
class CropPolicy:
    """How often a training sample is cropped, and by at most what fraction of the picture's shorter side."""

    probability: float
    margin: float


# finetune-unet.py: 70% of samples, box height in [H - 25, H) at 640x512 (25 px = 25/512 of the shorter side).
UNET_CROP = CropPolicy(probability=0.7, margin=25 / 512)
# finetune-vae.py: every sample, up to 10% of the shorter side.
VAE_CROP = CropPolicy(probability=1.0, margin=0.1)


def _randint(low: int, high: int, generator: torch.Generator) -> int:
    """An integer in [low, high] (both included)."""
    return int(torch.randint(low, high + 1, (1,), generator=generator).item())


def random_crop_box(hw: tuple[int, int], margin: float, generator: torch.Generator) -> tuple[int, int, int, int]:
    """(top, left, height, width) of a random box inside a picture of size ``hw``, with the picture's aspect ratio
    and each side shortened by at most ``margin`` x the shorter side.

    The official scripts drew the offset and the size independently, so a box could run past the right edge and
    torchvision padded it with black (a border no real photo has); here the size is drawn first and the offset
    within what fits.
    """
    h, w = hw
    cut = max(0, math.floor(margin * min(h, w)))
    box_h = _randint(max(1, h - cut), h, generator)
    box_w = min(w, max(1, round(box_h * w / h)))
    top = _randint(0, h - box_h, generator)
    left = _randint(0, w - box_w, generator)
    return top, left, box_h, box_w


def crop_resize(x: torch.Tensor, box: tuple[int, int, int, int], size: tuple[int, int] | None = None) -> torch.Tensor:
    """(N, C, H, W) -> the ``box`` region resized (bilinear, as the official code) to ``size`` (default (H, W))."""
    top, left, h, w = box
    size = tuple(size or x.shape[-2:])
    region = x[..., top:top + h, left:left + w]
    if tuple(region.shape[-2:]) == size:
        return region.clone()
    # A crop is only ever enlarged back, so no antialiasing is needed (or wanted: it would blur UV edges).
    return F.interpolate(region.float(), size, mode="bilinear", align_corners=False).to(x.dtype)


def crop_pair(image: torch.Tensor, pose: torch.Tensor | None, policy: CropPolicy, generator: torch.Generator):
    """(image, pose, box) after applying one random crop to both (box None when the sample stays uncropped).

    ``image`` is (N, C, H, W); ``pose`` (N, 2, H, W) at the same pixel size, or None. The pose is cropped and resized
    in floating point: the official code round-tripped it through an 8-bit PIL image, which quantised the UV
    coordinates to 1/255 in cropped samples only.
    """
    if pose is not None and tuple(pose.shape[-2:]) != tuple(image.shape[-2:]):
        raise ValueError(f"pose {tuple(pose.shape[-2:])} and image {tuple(image.shape[-2:])} must have one size")
    # Both draws are always made, so the sequence of random numbers does not depend on the outcome.
    u = float(torch.rand((), generator=generator))
    box = random_crop_box(tuple(image.shape[-2:]), policy.margin, generator)
    if u >= policy.probability:
        return image, pose, None
    return crop_resize(image, box), (crop_resize(pose, box) if pose is not None else None), box


def crop_draws(hw: tuple[int, int], policy: CropPolicy, generator: torch.Generator) -> None:
    """Makes exactly the random draws ``crop_pair`` makes for an ``hw`` picture, without cropping: a caller that
    reuses an uncropped sample keeps the random sequence of one that runs ``crop_pair``."""
    float(torch.rand((), generator=generator))
    random_crop_box(hw, policy.margin, generator)


def draw_dropout(generator: torch.Generator, pose: float = 0.0, image: float = 0.0, both: float = 0.0) -> str:
    """One of ``DROPOUT_KINDS``: the pose is dropped with probability ``pose``, the image with ``image`` and both
    with ``both`` (train.py's split of its dropout rate into three equal parts)."""
    if min(pose, image, both) < 0 or pose + image + both > 1:
        raise ValueError("dropout probabilities must be >= 0 and sum to at most 1")
    u = float(torch.rand((), generator=generator))
    if u < pose:
        return "pose"
    if u < pose + image:
        return "image"
    if u < pose + image + both:
        return "both"
    return "none"


def alphas_cumprod_from_sigmas(sigmas: torch.Tensor) -> torch.Tensor:
    """The DDPM schedule's cumulative alphas from k-diffusion sigmas (sigma^2 = (1 - a) / a)."""
    return (1.0 / (1.0 + sigmas.double() ** 2)).float()


def add_noise(latent: torch.Tensor, noise: torch.Tensor, alphas_cumprod: torch.Tensor,
              timesteps: torch.Tensor) -> torch.Tensor:
    """DDPM's forward process, ``sqrt(a_t) x0 + sqrt(1 - a_t) eps`` (diffusers' ``DDPMScheduler.add_noise``)."""
    a = alphas_cumprod.to(latent.device)[timesteps.to(latent.device)].float().view(-1, *([1] * (latent.ndim - 1)))
    return a.sqrt() * latent.float() + (1.0 - a).sqrt() * noise.float()


def epsilon_loss(prediction: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The diffusion loss of every DreamPose stage: mean squared error of the predicted noise, in fp32."""
    return F.mse_loss(prediction.float(), noise.float())


def decoder_loss(decoded: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """finetune-vae.py's loss: MSE between the decoder output clamped to [-1, 1] and the target picture (its help
    text says L1; the code, followed here, uses MSE)."""
    return F.mse_loss(decoded.float().clamp(-1.0, 1.0), target.float())
