"""Key-layout conversions between the three motion-module formats in circulation.

- original (guoyww/AnimateDiff, also AnimateLCM and the ``*_comfyui`` Lightning files):
  ``down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0.to_q.weight``,
  one ``pos_encoder.pe`` table per attention block when stored;
- diffusers ``MotionAdapter``: no ``temporal_transformer.``, ``attn1/attn2`` for the two attention blocks,
  ``norm1/norm2/norm3`` for ``norms.0/norms.1/ff_norm``, and one ``pos_embed.pe`` per transformer block (a
  persistent buffer, so ``save_pretrained`` writes it, sized by ``motion_max_seq_length``);
- HotshotXL: ``temporal_attentions.N.`` in place of ``motion_modules.N.temporal_transformer.`` and
  ``pos_encoder.positional_encoding`` in place of ``pos_encoder.pe``.

Every function renames the keys it recognises and passes any other key through unchanged, so the caller
(``detect.normalize_motion_state_dict``) decides what to keep and what to refuse.
"""

from __future__ import annotations

import re

import torch

from ..module import sinusoidal_positions

MODULE_KEY = re.compile(r"^(?P<block>down_blocks\.\d+|up_blocks\.\d+|mid_block)\.motion_modules\.(?P<index>\d+)\.(?P<rest>.+)$")
HOTSHOT_KEY = re.compile(r"^(?P<block>down_blocks\.\d+|up_blocks\.\d+|mid_block)\.temporal_attentions\.(?P<index>\d+)\.(?P<rest>.+)$")
_TT = "temporal_transformer."
_ORIGINAL_PE = re.compile(r"^transformer_blocks\.(\d+)\.attention_blocks\.(\d+)\.pos_encoder\.pe$")
_DIFFUSERS_PE = re.compile(r"^transformer_blocks\.(\d+)\.pos_embed\.pe$")

# (original, diffusers) name pairs inside ``transformer_blocks.N.``; the dots keep ``norm.`` (the module's
# GroupNorm, outside the transformer block) from matching ``norm1.``.
_BLOCK_RENAMES = (
    ("attention_blocks.0.", "attn1."),
    ("attention_blocks.1.", "attn2."),
    ("norms.0.", "norm1."),
    ("norms.1.", "norm2."),
    ("ff_norm.", "norm3."),
)
_BLOCK_PREFIX = re.compile(r"^(transformer_blocks\.\d+\.)(.+)$")


def _rename_in_block(rest: str, to_diffusers: bool) -> str:
    m = _BLOCK_PREFIX.match(rest)
    if not m:
        return rest
    head, tail = m.groups()
    for original, diffusers in _BLOCK_RENAMES:
        src, dst = (original, diffusers) if to_diffusers else (diffusers, original)
        if tail.startswith(src):
            return head + dst + tail[len(src):]
    return rest


def original_to_diffusers(sd: dict[str, torch.Tensor], info) -> dict[str, torch.Tensor]:
    """The ``MotionAdapter`` layout of an original-layout state dict.

    ``MotionAdapter`` always holds a ``pos_embed.pe`` buffer of ``motion_max_seq_length`` rows, so the table is
    taken from the file when stored (``attention_blocks.0``; both blocks hold the same sinusoid) and computed
    with ``info.position_length`` rows otherwise, which lets ``load_state_dict(strict=True)`` succeed.
    """
    out: dict[str, torch.Tensor] = {}
    widths: dict[str, tuple[int, torch.dtype]] = {}
    has_table: set[str] = set()
    for key, value in sd.items():
        m = MODULE_KEY.match(key)
        if not m or not m["rest"].startswith(_TT):
            out[key] = value
            continue
        prefix = f"{m['block']}.motion_modules.{m['index']}."
        rest = m["rest"][len(_TT):]
        pe = _ORIGINAL_PE.match(rest)
        if pe:
            if pe.group(2) == "0":
                out[f"{prefix}transformer_blocks.{pe.group(1)}.pos_embed.pe"] = value
                has_table.add(f"{prefix}transformer_blocks.{pe.group(1)}.")
            continue
        if rest == "norm.weight":
            widths[prefix] = (value.shape[0], value.dtype)
        out[prefix + _rename_in_block(rest, to_diffusers=True)] = value
    length = getattr(info, "position_length", None) or 32
    for prefix, (channels, dtype) in widths.items():
        block = f"{prefix}transformer_blocks.0."
        if block not in has_table:
            out[block + "pos_embed.pe"] = sinusoidal_positions(length, channels, dtype=dtype).unsqueeze(0)
    return out


def diffusers_to_original(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The original layout of a ``MotionAdapter`` state dict; a stored ``pos_embed.pe`` becomes the
    ``pos_encoder.pe`` table of both attention blocks, as the original files store it."""
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        m = MODULE_KEY.match(key)
        if not m or m["rest"].startswith(_TT):
            out[key] = value
            continue
        prefix = f"{m['block']}.motion_modules.{m['index']}.{_TT}"
        rest = m["rest"]
        pe = _DIFFUSERS_PE.match(rest)
        if pe:
            block = f"{prefix}transformer_blocks.{pe.group(1)}.attention_blocks"
            out[f"{block}.0.pos_encoder.pe"] = value
            # A separate copy: safetensors refuses to save two keys that share storage.
            out[f"{block}.1.pos_encoder.pe"] = value.clone()
            continue
        out[prefix + _rename_in_block(rest, to_diffusers=False)] = value
    return out


def hotshot_to_original(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """HotshotXL's ``temporal_attentions.N.`` modules in the original layout."""
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        m = HOTSHOT_KEY.match(key)
        if not m:
            out[key] = value
            continue
        rest = m["rest"]
        if rest.endswith("pos_encoder.positional_encoding"):
            rest = rest[: -len("positional_encoding")] + "pe"
        out[f"{m['block']}.motion_modules.{m['index']}.{_TT}{rest}"] = value
    return out


def motion_adapter_config(info) -> dict:
    """``diffusers.MotionAdapter`` keyword arguments for a detected file (a ``detect.MotionModelInfo``).

    Raises ``ValueError`` for shapes a ``MotionAdapter`` cannot express (it mirrors the down widths for the up
    levels, puts one more module in each up level and uses a 4x GEGLU feed-forward).
    """
    problems = []
    if tuple(info.up_channels) != tuple(reversed(info.down_channels)):
        problems.append(f"up widths {info.up_channels} are not the down widths {info.down_channels} reversed")
    if info.up_per_level != info.down_per_level + 1:
        problems.append(f"{info.up_per_level} modules per up level with {info.down_per_level} per down level")
    if info.mid_channels is not None and info.mid_channels != info.down_channels[-1]:
        problems.append(f"mid width {info.mid_channels} differs from the deepest width {info.down_channels[-1]}")
    if info.ff_mult != 4:
        problems.append(f"feed-forward multiplier {info.ff_mult} (MotionAdapter uses 4)")
    if problems:
        raise ValueError("not expressible as a diffusers MotionAdapter: " + "; ".join(problems))
    return {
        "block_out_channels": tuple(info.down_channels),
        "motion_layers_per_block": info.down_per_level,
        "motion_num_attention_heads": info.heads,
        "motion_norm_num_groups": info.norm_groups,
        "motion_max_seq_length": info.position_length or 32,
        "use_motion_mid_block": info.mid_channels is not None,
    }
