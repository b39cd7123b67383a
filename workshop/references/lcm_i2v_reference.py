"""A float32 reference of AnimateLCM-I2V's image encoder and of where its features enter the UNet, written from the
authors' code (G-U-N/AnimateLCM ``animatelcm_sd15/animatelcm/models/adapter.py``, ``unet.py``, ``unet_blocks.py``):

- ``Adapter.forward`` takes the reference latent repeated over the frames as ``(b, c, t, h, w)``, folds the frames
  into the batch, runs ``conv_in``, adds ``motion_scale`` times the sinusoid of every frame's index, runs the
  residual blocks level by level (``Downsample`` replicate-pads odd sizes then average-pools when ``use_conv`` is
  False) and returns each level's last output unfolded to ``(b, c, t, h, w)`` times its insertion weight;
- ``UNet3DConditionModel.forward`` repeats ``img_latent`` over the frames and hands feature ``i`` to down block ``i``,
  which adds it to the hidden states of its second layer (``idx == 2``) after the spatial attention (after the
  ResNet in ``DownBlock3D``) and before that layer's motion module.

Kept deliberately close to the original structure (its own module tree, its own positional embedding), not to
``animapose``'s, so the two can disagree.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def fixed_positional_embedding(t: int, d_model: int) -> torch.Tensor:
    position = torch.arange(0, t, dtype=torch.float).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, d_model, 2).float() * (-np.log(10000.0) / d_model))
    pe = torch.zeros(t, d_model)
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term)
    return pe


class Downsample(nn.Module):
    def forward(self, x):
        ph = math.ceil(x.size(2) / 2) * 2 - x.size(2)
        pw = math.ceil(x.size(3) / 2) * 2 - x.size(3)
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        return F.avg_pool2d(x, kernel_size=2, stride=2)


class ResnetBlock(nn.Module):
    """``sk=True``: no skip conv; ``in_conv`` only where the width changes."""

    def __init__(self, in_c, out_c, down, ksize=1):
        super().__init__()
        ps = ksize // 2
        self.in_conv = nn.Conv2d(in_c, out_c, ksize, 1, ps) if in_c != out_c else None
        self.block1 = nn.Conv2d(out_c, out_c, 3, 1, 1)
        self.act = nn.ReLU()
        self.block2 = nn.Conv2d(out_c, out_c, ksize, 1, ps)
        self.down = down
        if down:
            self.down_opt = Downsample()

    def forward(self, x):
        if self.down:
            x = self.down_opt(x)
        if self.in_conv is not None:
            x = self.in_conv(x)
        h = self.block2(self.act(self.block1(x)))
        return h + x


class Adapter(nn.Module):
    def __init__(self, channels=(320, 640, 1280, 1280), nums_rb=2, cin=4, ksize=1):
        super().__init__()
        self.channels = list(channels)
        self.nums_rb = nums_rb
        body = []
        for i in range(len(channels)):
            for j in range(nums_rb):
                if i != 0 and j == 0:
                    body.append(ResnetBlock(channels[i - 1], channels[i], down=True, ksize=ksize))
                else:
                    body.append(ResnetBlock(channels[i], channels[i], down=False, ksize=ksize))
        self.body = nn.ModuleList(body)
        self.conv_in = nn.Conv2d(cin, channels[0], 3, 1, 1)
        self.motion_scale = 0.8
        self.insertion_weights = [1.0] * len(channels)
        self.d_model = channels[0]

    def forward(self, x):
        b, c, t, h, w = x.shape
        x = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        x = self.conv_in(x)
        pe = fixed_positional_embedding(t, self.d_model).to(x.device)[:, :, None, None].expand(-1, -1, h, w)
        x = self.motion_scale * pe.repeat(b, 1, 1, 1) + x
        features = []
        for i in range(len(self.channels)):
            for j in range(self.nums_rb):
                x = self.body[i * self.nums_rb + j](x)
            features.append(x)
        out = []
        for f, weight in zip(features, self.insertion_weights):
            _, cf, hf, wf = f.shape
            out.append(weight * f.reshape(b, t, cf, hf, wf).permute(0, 2, 1, 3, 4))
        return out


def adapter_from_weights(weights: dict[str, torch.Tensor], channels, nums_rb=2) -> Adapter:
    """``weights``: the ``img_encoder.*`` tensors of a file, with or without the prefix."""
    sd = {k.removeprefix("img_encoder."): v.float() for k, v in weights.items()}
    adapter = Adapter(channels, nums_rb)
    adapter.load_state_dict(sd, strict=True)
    return adapter.float().eval()


def features(adapter: Adapter, img_latent: torch.Tensor, frames: int) -> list[torch.Tensor]:
    """``unet.py``: ``repeat(img_latent, "b c h w -> b c f h w")`` then the adapter; (b, c, f, h, w) per level."""
    with torch.no_grad():
        return adapter(img_latent[:, :, None].expand(-1, -1, frames, -1, -1).contiguous())


def add_to_diffusers_unet(motion_unet, level_features: list[torch.Tensor]) -> list:
    """Pre-hooks on a test-owned diffusers ``UNetMotionModel`` adding each level's feature to the input of its down
    block's second motion module (diffusers' down blocks run resnet, attention, motion module per layer, the
    original's order); frames go (b f) as diffusers folds them. Returns the hook handles."""
    handles = []
    for block, feat in zip(motion_unet.down_blocks, level_features):
        b, c, f, h, w = feat.shape
        folded = feat.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)

        def hook(module, args, kwargs, folded=folded):
            return (args[0] + folded, *args[1:]), kwargs

        handles.append(block.motion_modules[1].register_forward_pre_hook(hook, with_kwargs=True))
    return handles
