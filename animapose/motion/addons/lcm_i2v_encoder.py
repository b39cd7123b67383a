"""AnimateLCM-I2V's image encoder (``img_encoder.*`` in ``AnimateLCM_sd15_i2v.ckpt``) as plain torch.

The authors' ``animatelcm/models/adapter.py`` builds it as ``Adapter(cin=4, channels=[320, 640, 1280, 1280],
nums_rb=2, ksize=1, sk=True, use_conv=False)``: a T2I-Adapter-like stack over the reference image's latent.
``conv_in`` (3x3), then per UNet level ``nums_rb`` residual blocks ``x + block2(relu(block1(x)))`` (``block1`` 3x3,
``block2`` ksize), the first block of every level after the first halving the size (replicate-pad to even, 2x2
average pool) and, where the width changes, a ksize ``in_conv`` before the residual. The level's last output is
its feature. Before the blocks, ``motion_scale`` times the sinusoid of each frame's index (width of level 0) is
added, which is what lets the same picture give different features per frame.

``encoder_spec`` reads the architecture from the keys and shapes (never the file name) and refuses anything that
does not fit the motion module's down widths. Pure torch, no ComfyUI import.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import AnimaPoseError
from ..module import sinusoidal_positions

PREFIX = "img_encoder."
LATENT_CHANNELS = 4
_BODY = re.compile(r"^body\.(\d+)\.(in_conv|block1|block2)\.(weight|bias)$")
_FIX = "choose AnimateLCM_sd15_i2v.ckpt as released (the truncated or merged file lacks part of its image encoder)"


@dataclass(frozen=True)
class EncoderSpec:
    channels: tuple[int, ...]  # one width per UNet level
    blocks_per_level: int
    kernel: int  # ksize of block2 and in_conv (1 in the release)


def split_encoder(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The ``img_encoder.*`` tensors of a state dict, without the prefix."""
    return {k[len(PREFIX):]: v for k, v in tensors.items() if k.startswith(PREFIX)}


def encoder_spec(weights: dict[str, torch.Tensor], down_channels: tuple[int, ...],
                 input_name: str = "motion_model") -> EncoderSpec:
    """The encoder's architecture from its keys and shapes; raises when a key is unknown, missing or misshapen,
    or when its widths differ from the motion module's down widths (the features are added to those levels)."""
    unknown = sorted(k for k in weights if k not in ("conv_in.weight", "conv_in.bias") and not _BODY.match(k))
    if unknown:
        raise AnimaPoseError(input_name, f"the image encoder holds weights of a variant AnimaPose does not know "
                             f"({', '.join(PREFIX + k for k in unknown[:3])})", _FIX)
    conv = weights.get("conv_in.weight")
    if conv is None or conv.dim() != 4 or conv.shape[1] != LATENT_CHANNELS:
        raise AnimaPoseError(input_name, f"the image encoder's conv_in is {_shape(conv)}; AnimateLCM-I2V's reads the "
                             f"{LATENT_CHANNELS}-channel latent: [width, 4, 3, 3]", _FIX)
    blocks = sorted({int(_BODY.match(k).group(1)) for k in weights if k.startswith("body.")})
    levels = len(down_channels)
    if not blocks or blocks != list(range(len(blocks))) or len(blocks) % levels:
        raise AnimaPoseError(input_name, f"the image encoder has {len(blocks)} residual blocks (indices "
                             f"{blocks[:3]}...), not a whole number per level of the motion module's {levels}", _FIX)
    per_level = len(blocks) // levels
    block2 = weights.get("body.0.block2.weight")
    kernel = block2.shape[-1] if block2 is not None and block2.dim() == 4 else 1
    expected = _expected_shapes(tuple(down_channels), per_level, kernel)
    missing = [PREFIX + k for k in expected if k not in weights]
    if missing:
        raise AnimaPoseError(input_name, f"the image encoder lacks {len(missing)} of its {len(expected)} weights "
                             f"(e.g. {', '.join(missing[:3])})", _FIX)
    extra = [PREFIX + k for k in weights if k not in expected]
    if extra:
        raise AnimaPoseError(input_name, f"the image encoder has weights ({', '.join(extra[:3])}) that do not fit "
                             f"the motion module's widths {list(down_channels)}", _FIX)
    wrong = [f"{PREFIX}{k} {tuple(weights[k].shape)} (expected {v})" for k, v in expected.items()
             if tuple(weights[k].shape) != v]
    if wrong:
        raise AnimaPoseError(input_name, f"the image encoder's widths do not match the motion module's "
                             f"{list(down_channels)}: {'; '.join(wrong[:2])}", _FIX)
    return EncoderSpec(tuple(down_channels), per_level, kernel)


def _shape(t) -> str:
    return "missing" if t is None else str(list(t.shape))


def _expected_shapes(channels: tuple[int, ...], per_level: int, kernel: int) -> dict[str, tuple[int, ...]]:
    shapes = {"conv_in.weight": (channels[0], LATENT_CHANNELS, 3, 3), "conv_in.bias": (channels[0],)}
    for level, c in enumerate(channels):
        for j in range(per_level):
            n = level * per_level + j
            c_in = channels[level - 1] if level > 0 and j == 0 else c
            if c_in != c:
                shapes.update({f"body.{n}.in_conv.weight": (c, c_in, kernel, kernel), f"body.{n}.in_conv.bias": (c,)})
            shapes.update({f"body.{n}.block1.weight": (c, c, 3, 3), f"body.{n}.block1.bias": (c,),
                           f"body.{n}.block2.weight": (c, c, kernel, kernel), f"body.{n}.block2.bias": (c,)})
    return shapes


class AdapterResBlock(nn.Module):
    """T2I-Adapter's ``ResnetBlock`` with a plain skip (``sk=True``), as AnimateLCM-I2V's and CameraCtrl's encoders
    use it: optional 2x average pool, ``in_conv`` when the width changes, then ``x + block2(relu(block1(x)))``.
    ``pad_odd``: odd sizes are padded by repeating the last row/column before the pool, so the halving matches the
    UNet's ceil(h/2) (AnimateLCM-I2V's latents; CameraCtrl's sizes are always even)."""

    def __init__(self, c_in: int, c_out: int, down: bool, kernel: int, operations=nn, dtype=None, device=None,
                 pad_odd: bool = False):
        super().__init__()
        pad = kernel // 2
        self.down, self.pad_odd = down, pad_odd
        self.in_conv = (operations.Conv2d(c_in, c_out, kernel, 1, pad, dtype=dtype, device=device)
                        if c_in != c_out else None)
        self.block1 = operations.Conv2d(c_out, c_out, 3, 1, 1, dtype=dtype, device=device)
        self.block2 = operations.Conv2d(c_out, c_out, kernel, 1, pad, dtype=dtype, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.down:
            if self.pad_odd:
                x = F.pad(x, (0, x.shape[-1] % 2, 0, x.shape[-2] % 2), mode="replicate")
            x = F.avg_pool2d(x, 2, 2)
        if self.in_conv is not None:
            x = self.in_conv(x)
        return x + self.block2(F.relu(self.block1(x)))


class ImageEncoder(nn.Module):
    def __init__(self, spec: EncoderSpec, operations=nn, dtype=None, device=None):
        super().__init__()
        self.spec = spec
        c = spec.channels
        self.conv_in = operations.Conv2d(LATENT_CHANNELS, c[0], 3, 1, 1, dtype=dtype, device=device)
        self.body = nn.ModuleList(
            AdapterResBlock(c[level - 1] if level > 0 and j == 0 else c[level], c[level], level > 0 and j == 0,
                            spec.kernel, operations, dtype, device, pad_odd=True)
            for level in range(len(c)) for j in range(spec.blocks_per_level))

    def forward(self, latent: torch.Tensor, frames: int, motion_scale: float) -> list[torch.Tensor]:
        """Per-level features ``(frames, C_level, h_level, w_level)`` for one reference latent ``(1, 4, h, w)``
        (already scaled like the UNet's input); frame ``i`` gets position ``i``."""
        x = self.conv_in(latent)
        # conv_in sees the same picture in every frame, so it runs once; only the positions differ per frame
        positions = sinusoidal_positions(frames, x.shape[1], x.device, torch.float32)
        x = x + (motion_scale * positions)[:, :, None, None].to(x.dtype)
        features = []
        n = self.spec.blocks_per_level
        for level in range(len(self.spec.channels)):
            for block in self.body[level * n:(level + 1) * n]:
                x = block(x)
            features.append(x)
        return features

