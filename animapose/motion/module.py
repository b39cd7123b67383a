"""The AnimateDiff motion module (the original ``VanillaTemporalModule``) as plain torch.

Parameter names follow the original checkpoints exactly, so ``MotionModelSet.load_state_dict`` takes an
original-layout state dict as it is (``down_blocks.0.motion_modules.0.temporal_transformer.norm.weight``, ...).

One module: ``x + scale * proj_out(block(proj_in(GroupNorm(x))))`` over the frame axis, where ``block`` is two
temporal self-attentions (each ``x = attn(LayerNorm(x) + PE) + x``, the sinusoidal PE added after the norm and
outside the residual) and a GEGLU feed-forward. Frames arrive folded into the batch, ``(batch*frames, C, H, W)``.

The GroupNorm scope is the one thing the released formats disagree on (see ``detect.NormScope``): the original
SD1.5 code normalises each frame on its own, the SDXL branch (and diffusers) across the frames of a clip.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def sinusoidal_positions(length: int, channels: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """``pe[p, 2i] = sin(p / 10000^(2i/C))``, ``pe[p, 2i+1] = cos(...)``; shape (length, channels)."""
    position = torch.arange(length, dtype=torch.float32, device=device).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, channels, 2, dtype=torch.float32, device=device) * (-math.log(10000.0) / channels))
    pe = torch.zeros(length, channels, dtype=torch.float32, device=device)
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term)
    return pe.to(dtype)


def group_norm_frames(x: torch.Tensor, frames: int, norm: nn.Module, across_frames: bool) -> torch.Tensor:
    """GroupNorm of a ``(batch*frames, C, H, W)`` tensor, per frame or with statistics over all frames of a clip."""
    if not across_frames or frames == 1:
        return norm(x)
    bf, c, h, w = x.shape
    # (b f) c h w -> b c f (h w): group_norm pools over every dim after C, i.e. the clip's frames and pixels.
    y = x.reshape(bf // frames, frames, c, h * w).transpose(1, 2)
    y = norm(y)
    return y.transpose(1, 2).reshape(bf, c, h, w)


class PositionalEncoding(nn.Module):
    """The sinusoidal frame positions of one attention block.

    Files that stored the table (the v1/v2/v3 releases, HotshotXL) load it into ``pe`` under its original key
    (``...attention_blocks.N.pos_encoder.pe``) and it is used as stored; files without it (AnimateLCM, the
    diffusers layout) get the same sinusoid computed on the fly. The values agree for every official release.
    """

    def __init__(self, channels: int, length: int, stored: bool, dtype=None, device=None):
        super().__init__()
        self.channels = channels
        self.length = length
        if stored:
            self.register_buffer("pe", torch.zeros(1, length, channels, dtype=dtype or torch.float32, device=device))
        else:
            self.pe = None
        self._cache: tuple | None = None

    def table(self, frames: int, device, dtype) -> torch.Tensor:
        if self.pe is not None:
            return self.pe[0, :frames].to(device=device, dtype=dtype)
        if self._cache is None or self._cache[0] != (frames, device, dtype):
            self._cache = ((frames, device, dtype), sinusoidal_positions(frames, self.channels, device, dtype))
        return self._cache[1]


class TemporalAttention(nn.Module):
    def __init__(self, dim: int, heads: int, position_length: int | None, stored_positions: bool, operations=nn,
                 dtype=None, device=None):
        super().__init__()
        self.heads = heads
        self.to_q = operations.Linear(dim, dim, bias=False, dtype=dtype, device=device)
        self.to_k = operations.Linear(dim, dim, bias=False, dtype=dtype, device=device)
        self.to_v = operations.Linear(dim, dim, bias=False, dtype=dtype, device=device)
        self.to_out = nn.ModuleList([operations.Linear(dim, dim, dtype=dtype, device=device)])
        self.pos_encoder = (PositionalEncoding(dim, position_length, stored_positions, dtype, device)
                            if position_length else None)

    def forward(self, x: torch.Tensor, key_scale=None, camera=None) -> torch.Tensor:
        # x: (sequences, frames, dim); each pixel of each clip is one sequence over the frames.
        # key_scale (AnimateDiff-Evolved's "scale" multival): None, a float, or a tensor broadcast over the keys.
        # camera (CameraCtrl, see cameractrl.py): None or (qkv_merge linear, feature laid out as x, strength).
        n, f, d = x.shape
        if self.pos_encoder is not None:
            x = x + self.pos_encoder.table(f, x.device, x.dtype)
        if camera is not None:
            merge, feature, strength = camera
            x = merge(x + feature) * strength + x
        h = self.heads
        q = self.to_q(x).view(n, f, h, d // h).transpose(1, 2)
        k = self.to_k(x)
        if key_scale is not None:
            k = k * key_scale
        k = k.view(n, f, h, d // h).transpose(1, 2)
        v = self.to_v(x).view(n, f, h, d // h).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v)
        out = out.transpose(1, 2).reshape(n, f, d)
        return self.to_out[0](out)


class GEGLUFeedForward(nn.Module):
    def __init__(self, dim: int, inner: int, operations=nn, dtype=None, device=None):
        super().__init__()
        # Indexes 0 and 2 match the original ``ff.net.0.proj`` / ``ff.net.2`` keys (1 was dropout).
        self.net = nn.ModuleList([_GEGLU(dim, inner, operations, dtype, device), nn.Identity(),
                                  operations.Linear(inner, dim, dtype=dtype, device=device)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net[2](self.net[0](x))


class _GEGLU(nn.Module):
    def __init__(self, dim: int, inner: int, operations, dtype, device):
        super().__init__()
        self.proj = operations.Linear(dim, inner * 2, dtype=dtype, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, gate = self.proj(x).chunk(2, dim=-1)
        return h * F.gelu(gate)


class TemporalTransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, ff_inner: int, position_length: int | None, stored_positions: bool,
                 operations=nn, dtype=None, device=None):
        super().__init__()
        self.attention_blocks = nn.ModuleList(
            [TemporalAttention(dim, heads, position_length, stored_positions, operations, dtype, device) for _ in range(2)])
        self.norms = nn.ModuleList([operations.LayerNorm(dim, dtype=dtype, device=device) for _ in range(2)])
        self.ff = GEGLUFeedForward(dim, ff_inner, operations, dtype, device)
        self.ff_norm = operations.LayerNorm(dim, dtype=dtype, device=device)

    def forward(self, x: torch.Tensor, key_scale=None, camera=None) -> torch.Tensor:
        for i, (attn, norm) in enumerate(zip(self.attention_blocks, self.norms)):
            x = attn(norm(x), key_scale, camera if i == 0 else None) + x
        return self.ff(self.ff_norm(x)) + x


class SingleAttentionBlock(TemporalTransformerBlock):
    """A temporal transformer block with one self-attention (``attention_block_types: [Temporal_Self]``), as in
    SparseCtrl's motion modules and CameraCtrl's camera encoder."""

    def __init__(self, dim: int, heads: int, ff_inner: int, position_length: int | None, stored_positions: bool,
                 operations=nn, dtype=None, device=None):
        nn.Module.__init__(self)
        self.attention_blocks = nn.ModuleList(
            [TemporalAttention(dim, heads, position_length, stored_positions, operations, dtype, device)])
        self.norms = nn.ModuleList([operations.LayerNorm(dim, dtype=dtype, device=device)])
        self.ff = GEGLUFeedForward(dim, ff_inner, operations, dtype, device)
        self.ff_norm = operations.LayerNorm(dim, dtype=dtype, device=device)


class TemporalTransformer(nn.Module):
    """The original ``TemporalTransformer3DModel`` (one per insertion point)."""

    def __init__(self, channels: int, heads: int = 8, ff_inner: int | None = None, norm_groups: int = 32,
                 position_length: int | None = 32, stored_positions: bool = False, operations=nn, dtype=None, device=None):
        super().__init__()
        self.channels = channels
        self.position_length = position_length  # longest clip the positions cover; None: no positions
        self.norm = operations.GroupNorm(norm_groups, channels, eps=1e-6, affine=True, dtype=dtype, device=device)
        self.proj_in = operations.Linear(channels, channels, dtype=dtype, device=device)
        self.transformer_blocks = nn.ModuleList([TemporalTransformerBlock(
            channels, heads, ff_inner or 4 * channels, position_length, stored_positions, operations, dtype, device)])
        self.proj_out = operations.Linear(channels, channels, dtype=dtype, device=device)

    def forward(self, x: torch.Tensor, frames: int, scale=1.0, norm_across_frames: bool = False,
                key_scale=None, camera=None) -> torch.Tensor:
        # scale: what the module adds is multiplied by it (a float, or a tensor per frame/pixel: the "effect").
        bf, c, h, w = x.shape
        b = bf // frames
        residual = x
        y = group_norm_frames(x, frames, self.norm, norm_across_frames)
        # (b f) c h w -> (b h w) f c: each pixel of each clip becomes a sequence over the frames.
        y = y.reshape(b, frames, c, h * w).permute(0, 3, 1, 2).reshape(b * h * w, frames, c)
        y = self.proj_in(y)
        for block in self.transformer_blocks:
            y = block(y, key_scale, camera)
        y = self.proj_out(y)
        y = y.reshape(b, h * w, frames, c).permute(0, 2, 3, 1).reshape(bf, c, h, w)
        if isinstance(scale, torch.Tensor) or scale != 1.0:
            y = y * scale
        return residual + y


class MotionModule(nn.Module):
    """The original ``VanillaTemporalModule``: a holder whose only child gives the ``temporal_transformer.`` keys."""

    def __init__(self, **kwargs):
        super().__init__()
        self.temporal_transformer = TemporalTransformer(**kwargs)

    def forward(self, x: torch.Tensor, frames: int, scale=1.0, norm_across_frames: bool = False,
                key_scale=None, camera=None) -> torch.Tensor:
        return self.temporal_transformer(x, frames, scale, norm_across_frames, key_scale, camera)


class _Block(nn.Module):
    def __init__(self, modules: list[MotionModule]):
        super().__init__()
        self.motion_modules = nn.ModuleList(modules)


class MotionModelSet(nn.Module):
    """Every motion module of a file, named as in the original layout.

    ``down_channels[i]`` / ``up_channels[i]`` are the widths of down level ``i`` and up level ``i`` (up levels in
    diffusers order, deepest first); ``down_per_level`` / ``up_per_level`` the modules per level (2 and 3 in every
    release); ``mid_channels`` the mid-block width or None.
    """

    def __init__(self, down_channels, up_channels, mid_channels=None, down_per_level=2, up_per_level=3, heads=8,
                 ff_mult=4, norm_groups=32, position_length=32, stored_positions=False, operations=nn, dtype=None, device=None):
        super().__init__()

        def make(c):
            return MotionModule(channels=c, heads=heads, ff_inner=ff_mult * c, norm_groups=norm_groups,
                                position_length=position_length, stored_positions=stored_positions,
                                operations=operations, dtype=dtype, device=device)

        self.down_blocks = nn.ModuleList([_Block([make(c) for _ in range(down_per_level)]) for c in down_channels])
        self.up_blocks = nn.ModuleList([_Block([make(c) for _ in range(up_per_level)]) for c in up_channels])
        self.mid_block = _Block([make(mid_channels)]) if mid_channels else None
