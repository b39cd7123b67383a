"""CameraCtrl's weights: what a file holds (told from keys and shapes) and the camera encoder as plain torch.

The file AnimateDiff-Evolved's users load (``CameraCtrl_pruned.safetensors``, a merge of the release's
``pose_encoder_state_dict`` and ``attention_processor_state_dict``; the release ``CameraCtrl.ckpt`` itself is
read too) holds:

- the camera encoder (CameraCtrl's ``CameraPoseEncoder``): ``encoder_conv_in`` (a 3x3 conv over the
  pixel-unshuffled Plücker embedding, 6 * 8 * 8 = 384 channels), then per level ``encoder_down_conv_blocks.L.J``
  ResNet blocks (``in_conv`` when the width changes, ``block1`` 3x3, ``block2``; the first block of every level
  but the first average-pools by 2) each followed by ``encoder_down_attention_blocks.L.J``, a temporal
  transformer block with one self-attention (``attention_blocks.0`` with a stored 16-frame ``pos_encoder.pe``),
  ``norms.0``, a GEGLU ``ff`` and ``ff_norm``. The last layer of each level gives that level's feature;
- one ``qkv_merge`` linear per motion module of the v3 model's down and up levels, keyed by the module's path
  (``down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0.processor.
  qkv_merge.weight``): in that first temporal self-attention, after the frame positions are added,
  ``h = qkv_merge(h + feature) * scale + h`` feeds the query, key and value (``PoseAdaptorAttnProcessor`` with
  query and key/value conditioning), the feature being the encoder level of the module's resolution.

Pure torch; no ComfyUI import.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import AnimaPoseError
from ..module import SingleAttentionBlock
from .lcm_i2v_encoder import AdapterResBlock

ENCODER_PREFIX = "encoder_"
ENCODER_HEADS = 8  # CameraCtrl's temporal_attention_nhead; not stored in the weights
PLUCKER_CHANNELS = 6
MERGE_KEY = re.compile(r"^(?P<module>(?:down_blocks|up_blocks)\.\d+\.motion_modules\.\d+)\.temporal_transformer\."
                       r"transformer_blocks\.0\.attention_blocks\.(?P<attn>\d+)\.processor\.qkv_merge\.(?P<p>weight|bias)$")
_ANY_MERGE = re.compile(r"\.processor\.qkv_merge\.(weight|bias)$")
_CONV = re.compile(r"^encoder_down_conv_blocks\.(\d+)\.(\d+)\.")
_LOADER = "Load AnimateDiff CameraCtrl"
_FIX_FILE = "choose CameraCtrl's file as AnimateDiff-Evolved users have it (CameraCtrl_pruned.safetensors) or the release's CameraCtrl.ckpt"


def is_cameractrl_key(key: str) -> bool:
    return key.startswith(ENCODER_PREFIX) or bool(_ANY_MERGE.search(key))


@dataclass(frozen=True)
class CameraCtrlInfo:
    channels: tuple[int, ...]  # per encoder level, = the v3 model's down widths
    layers_per_level: int
    downscale: int  # the pixel-unshuffle factor (8: one encoder pixel per latent pixel)
    kernel: int
    position_length: int  # frames the encoder's positions cover
    merges: tuple[str, ...]  # motion-module paths that get a qkv_merge
    merge_widths: tuple[int, ...]  # their channel widths
    parameters: int

    def summary(self) -> str:
        return (f"CameraCtrl camera encoder: {len(self.channels)} levels ({'/'.join(map(str, self.channels))} channels, "
                f"{self.layers_per_level} layers each), {self.position_length} frame positions, Plücker pixel-unshuffle "
                f"{self.downscale}; attention adapters on {len(self.merges)} motion modules "
                f"({self.parameters / 1e6:.1f} M parameters)")


def split_cameractrl(sd: dict[str, torch.Tensor], input_name: str = "cameractrl_name"
                     ) -> tuple[dict[str, torch.Tensor], dict[str, tuple[torch.Tensor, torch.Tensor]], CameraCtrlInfo]:
    """(encoder state dict, {motion-module path: (qkv_merge weight, bias)}, info); other keys (a v3 motion
    model merged into the same file) are ignored. Raises when the file is not CameraCtrl or is incomplete."""
    encoder = {k: v for k, v in sd.items() if k.startswith(ENCODER_PREFIX)}
    merge_keys = [k for k in sd if _ANY_MERGE.search(k)]
    if not encoder and not merge_keys:
        if any(".motion_modules." in k or "temporal_attentions." in k for k in sd):
            what = "an AnimateDiff motion module"
            fix = ("load it with 'Load AnimateDiff Motion Model'; choose CameraCtrl_pruned.safetensors (or "
                   "CameraCtrl.ckpt) here")
        else:
            what = f"not a CameraCtrl file (e.g. {', '.join(sorted(sd)[:3])})"
            fix = _FIX_FILE
        raise AnimaPoseError(input_name, f"this is {what}: it has no camera encoder ('encoder_*') and no qkv_merge "
                             "weights", fix)
    if not encoder:
        raise AnimaPoseError(input_name, "the file has CameraCtrl's attention adapters (qkv_merge) but no camera "
                             "encoder ('encoder_*' weights)", _FIX_FILE)
    if not merge_keys:
        raise AnimaPoseError(input_name, "the file has CameraCtrl's camera encoder but none of its attention adapters "
                             "(qkv_merge weights)", _FIX_FILE)
    merges: dict[str, dict[str, torch.Tensor]] = {}
    for key in merge_keys:
        m = MERGE_KEY.match(key)
        if m is None or m["attn"] != "0":
            raise AnimaPoseError(input_name, f"a CameraCtrl adapter sits where the released model has none ('{key}'); "
                                 "CameraCtrl conditions the first temporal self-attention of the down and up motion "
                                 "modules", _FIX_FILE)
        merges.setdefault(m["module"], {})[m["p"]] = sd[key]
    pairs = {}
    for path, p in sorted(merges.items()):
        w, b = p.get("weight"), p.get("bias")
        if w is None or b is None or w.dim() != 2 or w.shape[0] != w.shape[1] or tuple(b.shape) != (w.shape[0],):
            raise AnimaPoseError(input_name, f"the qkv_merge of '{path}' is incomplete or not square "
                                 f"({', '.join(f'{k} {list(v.shape)}' for k, v in p.items())})", _FIX_FILE)
        pairs[path] = (w, b)
    info = _encoder_info(encoder, pairs, input_name)
    return encoder, pairs, info


def _encoder_info(encoder: dict[str, torch.Tensor], merges: dict[str, tuple[torch.Tensor, torch.Tensor]],
                  input_name: str) -> CameraCtrlInfo:
    fix = "the file is truncated or damaged: download CameraCtrl again"
    conv_in = encoder.get("encoder_conv_in.weight")
    if conv_in is None or conv_in.dim() != 4 or "encoder_conv_in.bias" not in encoder:
        raise AnimaPoseError(input_name, "the camera encoder lacks encoder_conv_in", fix)
    cin = conv_in.shape[1]
    downscale = math.isqrt(cin // PLUCKER_CHANNELS)
    if cin != PLUCKER_CHANNELS * downscale * downscale:
        raise AnimaPoseError(input_name, f"encoder_conv_in reads {cin} channels, not 6 Plücker channels times a square "
                             "pixel-unshuffle factor (384 = 6 x 8 x 8 in the release)", _FIX_FILE)
    layers: dict[int, set[int]] = {}
    for key in encoder:
        m = _CONV.match(key)
        if m:
            layers.setdefault(int(m[1]), set()).add(int(m[2]))
    if not layers or sorted(layers) != list(range(len(layers))):
        raise AnimaPoseError(input_name, "the camera encoder's levels are missing or not contiguous", fix)
    counts = {len(js) for js in layers.values()}
    if len(counts) != 1 or any(sorted(js) != list(range(len(js))) for js in layers.values()):
        raise AnimaPoseError(input_name, "the camera encoder's levels have different or gapped layer counts", fix)
    per_level = counts.pop()
    channels = tuple(int(encoder[f"encoder_down_conv_blocks.{i}.{per_level - 1}.block1.weight"].shape[0])
                     if f"encoder_down_conv_blocks.{i}.{per_level - 1}.block1.weight" in encoder else 0
                     for i in range(len(layers)))
    if 0 in channels:
        raise AnimaPoseError(input_name, "a camera-encoder layer lacks its block1 weights", fix)
    block2 = encoder.get("encoder_down_conv_blocks.0.0.block2.weight")
    kernel = int(block2.shape[-1]) if block2 is not None else 1
    pe = encoder.get("encoder_down_attention_blocks.0.0.attention_blocks.0.pos_encoder.pe")
    if pe is None or pe.dim() != 3:
        raise AnimaPoseError(input_name, "the camera encoder lacks its frame positions (pos_encoder.pe)", fix)
    if any(".down_opt." in k for k in encoder):
        raise AnimaPoseError(input_name, "the camera encoder downsamples with a convolution (use_conv); the released "
                             "CameraCtrl average-pools", _FIX_FILE)
    parameters = sum(v.numel() for k, v in encoder.items() if not k.endswith("pos_encoder.pe"))
    parameters += sum(w.numel() + b.numel() for w, b in merges.values())
    return CameraCtrlInfo(channels, per_level, downscale, kernel, int(pe.shape[1]), tuple(merges),
                          tuple(int(w.shape[0]) for w, _ in merges.values()), parameters)


# -- the encoder ------------------------------------------------------------------------------------------------

class CameraPoseEncoder(nn.Module):
    """Plücker embeddings ``(frames, 6, H, W)`` -> one feature ``(frames, C_level, H / (d 2^level), W / (...))`` per
    level (``d`` the pixel-unshuffle factor); the frames of one call form one clip for the temporal attention."""

    def __init__(self, info: CameraCtrlInfo, operations=nn, dtype=None, device=None):
        super().__init__()
        self.downscale = info.downscale
        self.position_length = info.position_length
        ch = info.channels
        self.encoder_conv_in = operations.Conv2d(PLUCKER_CHANNELS * info.downscale ** 2, ch[0], 3, 1, 1, dtype=dtype,
                                                 device=device)
        self.encoder_down_conv_blocks = nn.ModuleList()
        self.encoder_down_attention_blocks = nn.ModuleList()
        for i, c in enumerate(ch):
            convs, attns = nn.ModuleList(), nn.ModuleList()
            for j in range(info.layers_per_level):
                c_in = (ch[i - 1] if i else ch[0]) if j == 0 else c
                convs.append(AdapterResBlock(c_in, c, j == 0 and i > 0, info.kernel, operations, dtype, device))
                attns.append(SingleAttentionBlock(c, ENCODER_HEADS, 4 * c, info.position_length, True, operations,
                                                  dtype, device))
            self.encoder_down_conv_blocks.append(convs)
            self.encoder_down_attention_blocks.append(attns)

    def forward(self, plucker: torch.Tensor) -> list[torch.Tensor]:
        frames = plucker.shape[0]
        x = self.encoder_conv_in(F.pixel_unshuffle(plucker, self.downscale))
        features = []
        for convs, attns in zip(self.encoder_down_conv_blocks, self.encoder_down_attention_blocks):
            for conv, attn in zip(convs, attns):
                x = conv(x)
                _, c, h, w = x.shape
                # f c h w -> (h w) f c: each pixel is one sequence over the frames
                y = attn(x.reshape(frames, c, h * w).permute(2, 0, 1))
                x = y.permute(1, 2, 0).reshape(frames, c, h, w)
            features.append(x)
        return features


class CameraCtrlModel(nn.Module):
    """The encoder and the qkv_merge linears (``merges[i]`` belongs to the motion module ``paths[i]``)."""

    def __init__(self, info: CameraCtrlInfo, operations=nn, dtype=None, device=None):
        super().__init__()
        self.info = info
        self.paths = list(info.merges)
        self.encoder = CameraPoseEncoder(info, operations, dtype, device)
        self.merges = nn.ModuleList([operations.Linear(c, c, dtype=dtype, device=device) for c in info.merge_widths])


def build_cameractrl(encoder_sd: dict[str, torch.Tensor], merges: dict[str, tuple[torch.Tensor, torch.Tensor]],
                     info: CameraCtrlInfo, operations=nn) -> CameraCtrlModel:
    """A ``CameraCtrlModel`` with the weights loaded strictly."""
    model = CameraCtrlModel(info, operations)
    sd = {f"encoder.{k}": v for k, v in encoder_sd.items()}
    for i, path in enumerate(model.paths):
        sd[f"merges.{i}.weight"], sd[f"merges.{i}.bias"] = merges[path]
    model.load_state_dict(sd, strict=True)
    return model


def merge_level(path: str, levels: int) -> int:
    """The encoder level whose feature a motion module at ``path`` reads: down level ``i`` -> ``i``, up level
    ``i`` (deepest first) -> ``levels - 1 - i``, as CameraCtrl reverses the features for the decoder."""
    kind, level = path.split(".")[:2]
    return int(level) if kind == "down_blocks" else levels - 1 - int(level)
