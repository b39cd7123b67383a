"""A TAESD-shaped autoencoder whose weights are written down, not trained: exact colour block averages.

The synthetic people are flat colours on a plain backdrop, so an 8x8 block average of the picture is all the
diffusion model needs to see. This module fills ComfyUI's TAESD architecture (``comfy.taesd.taesd``: 64-channel
convolutions, residual blocks, 3 stride-2 / upsampling stages) with hand-set weights:

- encoder: the first convolution copies R, G, B into 3 channels (inputs are >= 0, so the ReLUs pass them), every
  residual block is the identity (its last convolution is zero), each stride-2 convolution averages 2x2 pixels, and
  the last convolution maps the block-average colour to 4 latent channels: GAIN x an orthonormal opponent-colour
  transform (luminance, red-green, yellow-blue) of the colour's difference from the backdrop, and a constant 0 (so
  the backdrop is the all-zero latent);
- decoder: the inverse colour transform gives each colour's difference from the backdrop split into its positive
  and negative parts (two ReLU-safe channels), each upsampling is followed by a [1, 2, 1] x [1, 2, 1] / 16 blur (which
  makes the nearest-neighbour upsampling bilinear; zero padding there means "backdrop"), and the last convolution
  adds the backdrop back.

Round trip: decode(encode(picture)) is the picture's 8x8 block means upsampled bilinearly, up to TAESD's latent
clamp ``3 tanh(x / 3)``: exact on the backdrop, it bends the latents of the darkest colours (magnitude up to 1.2)
by up to 5%. The keys are
those of an SD1.x checkpoint's TAESD (``taesd_encoder.*``, ``taesd_decoder.*``, ``vae_scale``, ``vae_shift``), which
ComfyUI loads as a VAE.
"""

from __future__ import annotations

import math

import torch

LATENT_SCALE = 0.18215  # SD1.x: ComfyUI multiplies the VAE's latent by this; vae_scale undoes it
GAIN = 1.5
OPPONENT = torch.tensor([[1 / math.sqrt(3)] * 3,
                         [1 / math.sqrt(2), -1 / math.sqrt(2), 0.0],
                         [1 / math.sqrt(6), 1 / math.sqrt(6), -2 / math.sqrt(6)]], dtype=torch.float64)
BLUR = torch.tensor([1.0, 2.0, 1.0], dtype=torch.float64)


def _conv(sd: dict, prefix: str, n_out: int, n_in: int, bias: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    w = torch.zeros(n_out, n_in, 3, 3, dtype=torch.float64)
    sd[prefix + "weight"] = w
    b = None
    if bias:
        b = torch.zeros(n_out, dtype=torch.float64)
        sd[prefix + "bias"] = b
    return w, b


def _identity_block(sd: dict, prefix: str) -> None:
    """A TAESD Block (conv, ReLU, conv, ReLU, conv + skip, ReLU) that passes non-negative inputs unchanged."""
    for k in (0, 2, 4):
        _conv(sd, f"{prefix}conv.{k}.", 64, 64)


def people_taesd_state_dict(background: tuple[float, float, float] = (0.92, 0.91, 0.89),
                            latent_gain: float = 1.0) -> dict[str, torch.Tensor]:
    """The TAESD state dict (SD1.x checkpoint names without ``first_stage_model.``), float32. ``latent_gain``
    multiplies the latents the diffusion model sees (through ``vae_scale``, outside TAESD's clamp): at 1 the people
    frames' latents have a standard deviation of about 0.1, a tenth of SD's, which drowns them in the noise at most
    timesteps; the demo DreamPose trains at 8 (about SD's spread)."""
    sd: dict[str, torch.Tensor] = {}
    # TAESD's encoder sees (v + 1) / 2 for DreamPose's [0, 1] pictures v (see adapter.vae_encode_input)
    y_bg = (torch.tensor(background, dtype=torch.float64) + 1.0) / 2.0
    e = "taesd_encoder."
    w, _ = _conv(sd, f"{e}0.", 64, 3)
    for c in range(3):
        w[c, c, 1, 1] = 1.0
    for k in (1, 3, 4, 5, 7, 8, 9, 11, 12, 13):
        _identity_block(sd, f"{e}{k}.")
    for k in (2, 6, 10):
        w, _ = _conv(sd, f"{e}{k}.", 64, 64, bias=False)
        for c in range(3):
            w[c, c, 1:, 1:] = 0.25  # taps on rows/columns 2i and 2i+1: the 2x2 block average
    w, b = _conv(sd, f"{e}14.", 4, 64)
    m = GAIN * OPPONENT
    w[:3, :3, 1, 1] = m
    b[:3] = -m @ y_bg

    d = "taesd_decoder."
    # latent -> y - y_background = OPPONENT^T z / GAIN, as (+, -) channel pairs
    inverse = OPPONENT.T / GAIN
    w, b = _conv(sd, f"{d}1.", 64, 4)
    for c in range(3):
        for sign, ch in ((1.0, 2 * c), (-1.0, 2 * c + 1)):
            w[ch, :3, 1, 1] = sign * inverse[c]
    for k in (3, 4, 5, 8, 9, 10, 13, 14, 15, 18):
        _identity_block(sd, f"{d}{k}.")
    blur = torch.outer(BLUR, BLUR) / 16.0
    for k in (7, 12, 17):
        w, _ = _conv(sd, f"{d}{k}.", 64, 64, bias=False)
        for ch in range(6):
            w[ch, ch] = blur
    w, b = _conv(sd, f"{d}19.", 3, 64)
    for c in range(3):
        w[c, 2 * c, 1, 1], w[c, 2 * c + 1, 1, 1] = 1.0, -1.0
        b[c] = y_bg[c]
    out = {k: v.float().contiguous() for k, v in sd.items()}
    out["vae_scale"] = torch.tensor(LATENT_SCALE / latent_gain)
    out["vae_shift"] = torch.tensor(0.0)
    return out
