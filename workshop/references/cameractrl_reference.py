"""A reference for CameraCtrl written from the authors' code (hehao13/CameraCtrl, main branch), independent of
``animapose``: numpy pose handling and the Plücker rays of ``inference.py`` (``Camera``, ``get_relative_pose``,
``ray_condition``), the encoder of ``cameractrl/models/pose_adaptor.py`` (``CameraPoseEncoder`` with its
``ResnetBlock`` and ``TemporalTransformerBlock``; attention written out as softmax(QK^T/sqrt(d))V, positions added
after the norm), and ``PoseAdaptorAttnProcessor`` (``attention_processor.py``, query and key/value conditioning)
as a diffusers attention processor. Only the key/value layout of the weights is shared with the code under test.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


class Camera:
    """inference.py: one pose-file line -> intrinsics and 4x4 world-to-camera / camera-to-world (float64)."""

    def __init__(self, entry: list[float]):
        self.fx, self.fy, self.cx, self.cy = entry[1:5]
        w2c = np.eye(4)
        w2c[:3, :] = np.array(entry[7:]).reshape(3, 4)
        self.w2c_mat = w2c
        self.c2w_mat = np.linalg.inv(w2c)


def get_relative_pose(cams: list[Camera]) -> np.ndarray:
    target = np.eye(4)
    abs2rel = target @ cams[0].w2c_mat
    return np.array([target] + [abs2rel @ c.c2w_mat for c in cams[1:]], dtype=np.float32)


def ray_condition(K: torch.Tensor, c2w: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """K (B, V, 4), c2w (B, V, 4, 4) -> (B, V, H, W, 6)."""
    B = K.shape[0]
    j, i = torch.meshgrid(torch.linspace(0, H - 1, H, dtype=c2w.dtype), torch.linspace(0, W - 1, W, dtype=c2w.dtype),
                          indexing="ij")
    i = i.reshape([1, 1, H * W]).expand([B, 1, H * W]) + 0.5
    j = j.reshape([1, 1, H * W]).expand([B, 1, H * W]) + 0.5
    fx, fy, cx, cy = K.chunk(4, dim=-1)
    zs = torch.ones_like(i)
    xs = (i - cx) / fx * zs
    ys = (j - cy) / fy * zs
    zs = zs.expand_as(ys)
    directions = torch.stack((xs, ys, zs), dim=-1)
    directions = directions / directions.norm(dim=-1, keepdim=True)
    rays_d = directions @ c2w[..., :3, :3].transpose(-1, -2)
    rays_o = c2w[..., :3, 3][:, :, None].expand_as(rays_d)
    # the original calls torch.cross without dim, i.e. the first size-3 dim: the last one for these shapes
    rays_dxo = torch.cross(rays_o, rays_d, dim=-1)
    return torch.cat([rays_dxo, rays_d], dim=-1).reshape(B, c2w.shape[1], H, W, 6)


def plucker_from_text(text: str, height: int, width: int, pose_width: int = 1280, pose_height: int = 720) -> torch.Tensor:
    """inference.main: pose file -> (frames, 6, H, W)."""
    lines = [line.strip().split(" ") for line in text.splitlines()[1:] if line.strip()]
    cams = [Camera([float(x) for x in line]) for line in lines]
    sample_ratio = width / height
    pose_ratio = pose_width / pose_height
    if pose_ratio > sample_ratio:
        resized_w = height * pose_ratio
        for c in cams:
            c.fx = resized_w * c.fx / width
    else:
        resized_h = width / pose_ratio
        for c in cams:
            c.fy = resized_h * c.fy / height
    intrinsic = np.asarray([[c.fx * width, c.fy * height, c.cx * width, c.cy * height] for c in cams], dtype=np.float32)
    K = torch.as_tensor(intrinsic)[None]
    c2ws = torch.as_tensor(get_relative_pose(cams))[None]
    return ray_condition(K, c2ws, height, width)[0].permute(0, 3, 1, 2).contiguous()


# -- encoder ----------------------------------------------------------------------------------------------------

def _linear(sd, name, x):
    return F.linear(x, sd[f"{name}.weight"], sd.get(f"{name}.bias"))


def _attention(sd, name, x, heads):
    """diffusers Attention (no biases on q/k/v) over (sequences, frames, dim)."""
    n, f, d = x.shape
    q, k, v = (_linear(sd, f"{name}.{p}", x).reshape(n, f, heads, d // heads).transpose(1, 2)
               for p in ("to_q", "to_k", "to_v"))
    probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // heads), dim=-1)
    out = (probs @ v).transpose(1, 2).reshape(n, f, d)
    return _linear(sd, f"{name}.to_out.0", out)


def _geglu_ff(sd, name, x):
    h, gate = _linear(sd, f"{name}.net.0.proj", x).chunk(2, dim=-1)
    return _linear(sd, f"{name}.net.2", h * F.gelu(gate))


def _layer_norm(sd, name, x):
    return F.layer_norm(x, x.shape[-1:], sd[f"{name}.weight"], sd[f"{name}.bias"])


def _temporal_block(sd, name, x, heads=8):
    """pose_adaptor.TemporalTransformerBlock with one Temporal_Self block and its PositionalEncoding."""
    h = _layer_norm(sd, f"{name}.norms.0", x)
    h = h + sd[f"{name}.attention_blocks.0.pos_encoder.pe"][:, : h.shape[1]]
    x = _attention(sd, f"{name}.attention_blocks.0", h, heads) + x
    return _geglu_ff(sd, f"{name}.ff", _layer_norm(sd, f"{name}.ff_norm", x)) + x


def _resnet(sd, name, x, down):
    if down:
        x = F.avg_pool2d(x, kernel_size=2, stride=2)
    if f"{name}.in_conv.weight" in sd:
        w = sd[f"{name}.in_conv.weight"]
        x = F.conv2d(x, w, sd[f"{name}.in_conv.bias"], padding=w.shape[-1] // 2)
    h = F.relu(F.conv2d(x, sd[f"{name}.block1.weight"], sd[f"{name}.block1.bias"], padding=1))
    w2 = sd[f"{name}.block2.weight"]
    return F.conv2d(h, w2, sd[f"{name}.block2.bias"], padding=w2.shape[-1] // 2) + x


def encode(sd: dict[str, torch.Tensor], plucker: torch.Tensor, levels: int, layers: int = 2) -> list[torch.Tensor]:
    """CameraPoseEncoder.forward for one clip: (frames, 6, H, W) -> per level (frames, C, h, w)."""
    f = plucker.shape[0]
    x = F.pixel_unshuffle(plucker, 8)
    x = F.conv2d(x, sd["encoder_conv_in.weight"], sd["encoder_conv_in.bias"], padding=1)
    feats = []
    for i in range(levels):
        for j in range(layers):
            x = _resnet(sd, f"encoder_down_conv_blocks.{i}.{j}", x, down=(j == 0 and i != 0))
            _, c, h, w = x.shape
            y = x.permute(2, 3, 0, 1).reshape(h * w, f, c)  # (b f) c h w -> (b h w) f c with b = 1
            y = _temporal_block(sd, f"encoder_down_attention_blocks.{i}.{j}", y)
            x = y.reshape(h, w, f, c).permute(2, 3, 0, 1)
        feats.append(x)
    return feats


class PoseAdaptorProcessor:
    """attention_processor.PoseAdaptorAttnProcessor (query_condition and key_value_condition) for a diffusers
    ``Attention``; ``pose`` is set per call, laid out as the hidden states ((b h w), f, c)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, scale: float = 1.0):
        self.weight, self.bias, self.scale = weight, bias, scale
        self.pose: torch.Tensor | None = None

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        assert self.pose is not None and encoder_hidden_states is None
        merged = F.linear(hidden_states + self.pose, self.weight, self.bias) * self.scale + hidden_states
        query, key, value = attn.to_q(merged), attn.to_k(merged), attn.to_v(merged)
        query, key, value = attn.head_to_batch_dim(query), attn.head_to_batch_dim(key), attn.head_to_batch_dim(value)
        probs = attn.get_attention_scores(query, key, None)
        out = attn.batch_to_head_dim(torch.bmm(probs, value))
        return attn.to_out[1](attn.to_out[0](out)) / attn.rescale_output_factor
