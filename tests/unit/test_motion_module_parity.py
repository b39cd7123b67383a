"""Numerical parity of ``animapose.motion.module`` with diffusers' AnimateDiff modules on the same weights.

diffusers normalises the motion module's input across the frames of a clip; the original SD1.5 code normalises
each frame. Both are checked: ours with ``norm_across_frames=True`` against diffusers as it is, ours per frame
against a diffusers instance whose ``.norm`` (on that test-owned instance only) normalises per frame.
"""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from comfyui_animapose.animapose.checkpoints import load_state_dict
from comfyui_animapose.animapose.motion.formats.convert import (
    diffusers_to_original,
    hotshot_to_original,
    motion_adapter_config,
    original_to_diffusers,
)
from comfyui_animapose.animapose.motion.formats.detect import build_motion_set, normalize_motion_state_dict
from comfyui_animapose.animapose.motion.module import TemporalTransformer, sinusoidal_positions
from comfyui_animapose.workshop.fixtures import motion as fx
from comfyui_animapose.workshop.fixtures.cache import seeded_like

diffusers = pytest.importorskip("diffusers")
from diffusers import MotionAdapter
from diffusers.models.embeddings import SinusoidalPositionalEmbedding
from diffusers.models.unets.unet_motion_model import AnimateDiffTransformer3D

C, HEADS, GROUPS, POSITIONS = 64, 8, 8, 32
BATCH, FRAMES, H, W = 2, 8, 4, 4
TOLERANCE = 1e-4
PREFIX = "down_blocks.0.motion_modules.0."
log = logging.getLogger(__name__)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


def _clip_input(seed: int = 0, channels: int = C) -> torch.Tensor:
    """(batch*frames, C, H, W) whose frames differ in mean and spread, so the GroupNorm scope matters."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(BATCH, FRAMES, channels, H, W, generator=g)
    frame = torch.arange(FRAMES, dtype=torch.float32).view(1, FRAMES, 1, 1, 1)
    return (x * (1 + 0.25 * frame) + 0.5 * frame).reshape(BATCH * FRAMES, channels, H, W)


def _diffusers_module(seed: int = 0) -> AnimateDiffTransformer3D:
    m = AnimateDiffTransformer3D(num_attention_heads=HEADS, attention_head_dim=C // HEADS, in_channels=C,
                                 norm_num_groups=GROUPS, cross_attention_dim=None, activation_fn="geglu",
                                 attention_bias=False, positional_embeddings="sinusoidal",
                                 num_positional_embeddings=POSITIONS).eval()
    shapes = {k: (v.shape, v.dtype) for k, v in m.state_dict().items() if not k.endswith("pos_embed.pe")}
    missing, unexpected = m.load_state_dict(seeded_like(shapes, seed, torch.float32), strict=False)
    assert not unexpected and all(k.endswith("pos_embed.pe") for k in missing)
    return m


def _ours_from(m: AnimateDiffTransformer3D) -> TemporalTransformer:
    original = diffusers_to_original({PREFIX + k: v for k, v in m.state_dict().items()})
    head = PREFIX + "temporal_transformer."
    ours = TemporalTransformer(C, heads=HEADS, norm_groups=GROUPS, position_length=POSITIONS, stored_positions=True)
    ours.load_state_dict({k[len(head):]: v for k, v in original.items()}, strict=True)
    return ours.eval()


class _PerFrameGroupNorm(nn.Module):
    """Applies a GroupNorm to each frame of a (batch, C, frames, H, W) tensor on its own."""

    def __init__(self, norm: nn.GroupNorm):
        super().__init__()
        self.inner = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, f, h, w = x.shape
        y = self.inner(x.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w))
        return y.reshape(b, f, c, h, w).permute(0, 2, 1, 3, 4)


@torch.no_grad()
def test_across_frames_matches_diffusers():
    theirs = _diffusers_module()
    ours = _ours_from(theirs)
    x = _clip_input()
    expected = theirs(x, num_frames=FRAMES)
    err = _rel(ours(x, FRAMES, norm_across_frames=True), expected)
    log.info(f"across frames vs diffusers: max|a-b|/max|b| = {err:.2e}")
    assert err <= TOLERANCE
    # The module does something: the output is not the residual.
    assert _rel(expected, x) > 0.1


@torch.no_grad()
def test_per_frame_matches_diffusers_with_per_frame_norm():
    theirs = _diffusers_module(seed=1)
    ours = _ours_from(theirs)
    x = _clip_input(seed=1)
    unmodified = theirs(x, num_frames=FRAMES)
    theirs.norm = _PerFrameGroupNorm(theirs.norm)
    per_frame = theirs(x, num_frames=FRAMES)
    ours_per_frame = ours(x, FRAMES, norm_across_frames=False)
    err = _rel(ours_per_frame, per_frame)
    log.info(f"per frame vs diffusers with per-frame norm: {err:.2e}")
    assert err <= TOLERANCE
    # The two scopes differ clearly on clips whose frames differ (measured 0.29 on this input).
    scope_gap = _rel(ours_per_frame, unmodified)
    log.info(f"per-frame vs across-frames scope gap: {scope_gap:.3f}")
    assert scope_gap > 0.2


@torch.no_grad()
def test_whole_set_from_diffusers_fixture_matches_motion_adapter():
    raw = load_state_dict(str(fx.motion_module_file("v2", "diffusers", "micro")), "motion_model")
    canonical, info = normalize_motion_state_dict(raw)
    adapter = MotionAdapter(**motion_adapter_config(info)).eval()
    adapter.load_state_dict({k: v.float() for k, v in raw.items()}, strict=True)
    ours = build_motion_set(canonical, info, dtype=torch.float32).eval()
    pairs = [(f"down_blocks.{i}", ours.down_blocks[i], adapter.down_blocks[i]) for i in range(len(ours.down_blocks))]
    pairs += [(f"up_blocks.{i}", ours.up_blocks[i], adapter.up_blocks[i]) for i in range(len(ours.up_blocks))]
    pairs.append(("mid_block", ours.mid_block, adapter.mid_block))
    worst, compared = 0.0, 0
    for name, mine, theirs in pairs:
        assert len(mine.motion_modules) == len(theirs.motion_modules), name
        for j, (a, b) in enumerate(zip(mine.motion_modules, theirs.motion_modules)):
            x = _clip_input(seed=compared, channels=a.temporal_transformer.channels)
            err = _rel(a(x, FRAMES, norm_across_frames=True), b(x, num_frames=FRAMES))
            assert err <= TOLERANCE, f"{name}.motion_modules.{j}: {err:.2e}"
            worst, compared = max(worst, err), compared + 1
    log.info(f"whole set, {compared} modules: worst {worst:.2e}")
    assert compared == 21


def test_positions_match_stored_tables_and_diffusers():
    sd = fx.motion_state_dict("v1", "original", "micro", dtype="fp32")
    table = sd["up_blocks.1.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.1.pos_encoder.pe"]
    assert table.shape == (1, 24, 128)
    ours = sinusoidal_positions(24, 128)
    assert torch.allclose(ours, table[0], atol=1e-6, rtol=0)
    theirs = SinusoidalPositionalEmbedding(128, max_seq_length=32).pe[0]
    assert torch.allclose(sinusoidal_positions(32, 128), theirs, atol=1e-6, rtol=0)
    # fp16 release tables are the rounded sinusoid.
    half = fx.motion_state_dict("v2", "original", "micro")
    key = "mid_block.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0.pos_encoder.pe"
    assert torch.equal(half[key][0], sinusoidal_positions(32, 128).half())


@pytest.mark.parametrize("family", ["v2", "sdxl_beta", "v1", "animatelcm"])
def test_round_trips_and_strict_motion_adapter_load(family):
    original = fx.motion_state_dict(family, "original", "micro")
    canonical, info = normalize_motion_state_dict(original)
    as_diffusers = original_to_diffusers(canonical, info)
    adapter = MotionAdapter(**motion_adapter_config(info))
    adapter.load_state_dict(as_diffusers, strict=True)
    # The fixture generator writes the diffusers layout independently; it must name what MotionAdapter holds.
    assert set(fx.motion_shapes(family, "diffusers", "micro")) == set(adapter.state_dict())
    back = diffusers_to_original(as_diffusers)
    if info.stored_positions:
        assert set(back) == set(canonical) and all(torch.equal(back[k], canonical[k]) for k in canonical)
    else:
        # Files without tables gain the computed sinusoid on the way through diffusers, nothing else.
        extra = set(back) - set(canonical)
        assert extra and all(k.endswith("pos_encoder.pe") for k in extra)
        assert all(torch.equal(back[k], canonical[k]) for k in canonical)
    diffusers_file = fx.motion_state_dict(family, "diffusers", "micro")
    restored = original_to_diffusers(diffusers_to_original(diffusers_file), info)
    assert set(restored) == set(diffusers_file) and all(torch.equal(restored[k], diffusers_file[k]) for k in restored)


def test_hotshot_keys_convert_to_the_original_layout():
    hotshot = fx.motion_state_dict("hotshotxl", "original", "micro")
    converted = hotshot_to_original(hotshot)
    # Same architecture and key names as the SDXL beta release (only the table length differs: 24 vs 32).
    assert set(converted) == set(fx.motion_shapes("sdxl_beta", "original", "micro"))
    key = "down_blocks.1.temporal_attentions.0.transformer_blocks.0.attention_blocks.0.pos_encoder.positional_encoding"
    assert torch.equal(converted[key.replace("temporal_attentions.0.", "motion_modules.0.temporal_transformer.")
                                 .replace("positional_encoding", "pe")], hotshot[key])
