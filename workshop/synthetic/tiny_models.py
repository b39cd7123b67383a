"""The demo's tiny models: an SD1.5-layout checkpoint and a motion module small enough to train on two CPU cores, and
exactly as large as ComfyUI's SD1.5 detection and the motion-module checks require.

ComfyUI recognises an SD1.5 checkpoint by its UNet's 320 base channels and 768-wide cross-attention, and a motion
module must have the UNet's widths. Training 320-wide layers is out of reach on a shared CPU, so the models are trained
*narrow* and stored *wide*: a narrow model of C = 320 / ratio channels is built from ComfyUI's own ``UNetModel`` and the
pack's ``MotionModelSet`` with operations that make it compute exactly what the 320-wide model computes when every
weight outside the first C channels is zero:
- GroupNorm(32, n) becomes GroupNorm(32 / ratio, n / ... ): the wide groups of 320/32 = 10 (or 20 after a skip
  concatenation) channels hold either only live or only zero channels, so the live groups see the same statistics;
- LayerNorm(n) becomes ``PaddedLayerNorm``, whose mean and variance count the zero channels of the wide model;
- attention keeps its head width (8 / ratio heads of 40 channels); zero heads add nothing;
- the timestep sinusoid of the narrow model uses every ratio-th frequency of the wide one, so ``time_embed.0``
  maps onto those columns; the motion modules' position tables are the wide sinusoid's first C channels.
``expand_unet`` / ``expand_motion`` place the narrow weights into the wide layouts (zeros elsewhere); the tests check
that the wide files, loaded by ComfyUI and the pack's loaders, reproduce the narrow models.

The VAE is a TAESD whose weights are constructed, not trained: its encoder averages 8x8 pixel blocks into three
colour channels (a fourth stays zero), its decoder upsamples them back (8x8 blocks) and undoes TAESD's input clamp
with a piecewise-linear fit. Blocky, but exact in colour and position, which is what the demo measures.
The text encoder is SD1.5's CLIP-L with seeded random weights (the UNet learns to read its features of the captions).
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

WIDE = 320
WIDE_HEADS = 8
TINY_UNET = dict(channel_mult=[1], num_res_blocks=[1], transformer_depth=[1], transformer_depth_output=[1, 1],
                 transformer_depth_middle=-1)
POSITIONS = 32


class PaddedLayerNorm(nn.Module):
    """LayerNorm over ``n`` live channels that normalises as LayerNorm over ``full`` channels of which the rest are 0."""

    def __init__(self, n: int, full: int, eps: float = 1e-5, elementwise_affine: bool = True, dtype=None, device=None,
                 **_):
        super().__init__()
        self.n, self.full, self.eps = n, full, eps
        self.weight = nn.Parameter(torch.ones(n, dtype=dtype, device=device))
        self.bias = nn.Parameter(torch.zeros(n, dtype=dtype, device=device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.sum(-1, keepdim=True) / self.full
        centred = x - mean
        var = (centred.pow(2).sum(-1, keepdim=True) + (self.full - self.n) * mean.pow(2)) / self.full
        return centred * torch.rsqrt(var + self.eps) * self.weight + self.bias


def narrow_ops(ratio: int):
    """An ``operations`` namespace (as ComfyUI's ``comfy.ops``) for narrow models that mirror 320-wide ones."""

    def group_norm(num_groups, num_channels, eps=1e-5, affine=True, dtype=None, device=None):
        return nn.GroupNorm(num_groups // ratio, num_channels, eps=eps, affine=affine, dtype=dtype, device=device)

    def layer_norm(normalized_shape, eps=1e-5, elementwise_affine=True, dtype=None, device=None, **kw):
        return PaddedLayerNorm(normalized_shape, normalized_shape * ratio, eps, elementwise_affine, dtype, device)

    def conv_nd(dims, *args, **kwargs):
        if dims != 2:
            raise ValueError("2-D only")
        return nn.Conv2d(*args, **kwargs)

    return SimpleNamespace(Linear=nn.Linear, Conv2d=nn.Conv2d, GroupNorm=group_norm, LayerNorm=layer_norm,
                           conv_nd=conv_nd)


def unet_config(width: int, heads: int, in_channels: int = 4) -> dict:
    """ComfyUI ``UNetModel`` kwargs of the one-level SD1.5-layout UNet at ``width`` base channels (``in_channels``
    14 for DreamPose: latent, reference latent and the 5-frame pose window)."""
    return {"image_size": 32, "in_channels": in_channels, "out_channels": 4, "model_channels": width, "num_heads": heads,
            "num_head_channels": -1, "use_spatial_transformer": True, "context_dim": 768, "legacy": False,
            "use_linear_in_transformer": False, "adm_in_channels": None, "use_checkpoint": False,
            "use_temporal_attention": False, "use_temporal_resblock": False, **TINY_UNET}


def narrow_unet(ratio: int, seed: int | None, in_channels: int = 4, device=None):
    """The narrow UNet (PyTorch default init, seeded; ``seed`` None on the meta device: shapes only), ComfyUI's own
    ``UNetModel`` class."""
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    config = unet_config(WIDE // ratio, WIDE_HEADS // ratio, in_channels)
    if seed is None:
        return UNetModel(**config, dtype=torch.float32, device="meta", operations=narrow_ops(ratio))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return UNetModel(**config, dtype=torch.float32, device=device, operations=narrow_ops(ratio))


def wide_unet_shapes(in_channels: int = 4) -> dict[str, torch.Size]:
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    m = UNetModel(**unet_config(WIDE, WIDE_HEADS, in_channels), device="meta",
                  operations=comfy.ops.disable_weight_init)
    return {k: v.shape for k, v in m.state_dict().items()}


def narrow_motion_set(ratio: int, seed: int):
    """A narrow v2-architecture motion module for the narrow UNet: default init, ``proj_out`` at zero, position
    tables the wide sinusoid's first channels."""
    from ...animapose.motion.module import MotionModelSet, sinusoidal_positions

    c = WIDE // ratio
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        motion = MotionModelSet(down_channels=[c], up_channels=[c], mid_channels=c, down_per_level=1, up_per_level=2,
                                heads=WIDE_HEADS // ratio, position_length=POSITIONS, stored_positions=True,
                                operations=narrow_ops(ratio))
    table = sinusoidal_positions(POSITIONS, WIDE)[None, :, :c]
    for name, module in motion.named_modules():
        if name.endswith("temporal_transformer"):
            nn.init.zeros_(module.proj_out.weight)
            nn.init.zeros_(module.proj_out.bias)
        if getattr(module, "pe", None) is not None:
            module.pe.copy_(table)
    return motion


# -- narrow -> wide -------------------------------------------------------------------------------------------------

def _index_map(key: str, dim: int, small: int, big: int, ratio: int) -> torch.Tensor:
    """Where index i of dimension ``dim`` of a narrow tensor goes in the wide one."""
    i = torch.arange(small)
    if small == big:
        return i
    if key == "time_embed.0.weight" and dim == 1:  # [cos(f_k), sin(f_k)]: the narrow f_k is the wide f_{ratio k}
        half = small // 2
        return torch.where(i < half, i * ratio, big // 2 + (i - half) * ratio)
    if key.endswith("ff.net.0.proj.weight") and dim == 0 or key.endswith("ff.net.0.proj.bias"):
        half = small // 2  # GEGLU: [value | gate] halves
        return torch.where(i < half, i, big // 2 + (i - half))
    concat = key.startswith("output_blocks.") and (
        (key.endswith(("in_layers.0.weight", "in_layers.0.bias")) and dim == 0)
        or (key.endswith(("in_layers.2.weight", "skip_connection.weight")) and dim == 1))
    if concat:  # torch.cat([h, skip]): both halves start at their own offset in the wide tensor
        half = small // 2
        return torch.where(i < half, i, big // 2 + (i - half))
    return i


def _widen(sd: dict[str, torch.Tensor], shapes: dict[str, torch.Size], ratio: int) -> dict[str, torch.Tensor]:
    out = {}
    for key, shape in shapes.items():
        small = sd[key]
        big = torch.zeros(shape, dtype=torch.float32)
        big[_indices(key, small.shape, shape, ratio)] = small.float()
        out[key] = big
    return out


def _indices(key: str, small: torch.Size, big: torch.Size, ratio: int) -> tuple:
    return tuple(_index_map(key, d, small[d], big[d], ratio).view(*[-1 if e == d else 1 for e in range(len(small))])
                 for d in range(len(small)))


def expand_unet(sd: dict[str, torch.Tensor], ratio: int) -> dict[str, torch.Tensor]:
    """The 320-wide ``diffusion_model`` state dict that computes what the narrow UNet ``sd`` computes (4 input
    channels, or DreamPose's 14)."""
    return _widen(sd, wide_unet_shapes(sd["input_blocks.0.0.weight"].shape[1]), ratio)


def shrink_unet(sd: dict[str, torch.Tensor], ratio: int) -> dict[str, torch.Tensor]:
    """The inverse of ``expand_unet``: the narrow twin of a 320-wide UNet whose weights are zero outside the narrow
    model's places (as ``expand_unet`` writes them). Raises ``ValueError`` for any other UNet, whose narrow twin
    would compute something else."""
    narrow = narrow_unet(ratio, None, sd["input_blocks.0.0.weight"].shape[1]).state_dict()
    out = {}
    for key, meta in narrow.items():
        if key not in sd:
            raise ValueError(f"not the one-level SD1.x layout: no '{key}'")
        out[key] = sd[key][_indices(key, meta.shape, sd[key].shape, ratio)].float().contiguous()
    if any(key not in narrow for key in sd):
        raise ValueError("not the one-level SD1.x layout: extra weights")
    for key, wide in expand_unet(out, ratio).items():
        if not torch.equal(wide, sd[key].float()):
            raise ValueError(f"'{key}' has non-zero weights outside the first {WIDE // ratio} channels")
    return out


def expand_motion(sd: dict[str, torch.Tensor], ratio: int) -> dict[str, torch.Tensor]:
    """The 320-wide original-layout motion module that computes what the narrow ``sd`` computes."""
    from ...animapose.motion.module import MotionModelSet, sinusoidal_positions

    with torch.device("meta"):
        wide = MotionModelSet(down_channels=[WIDE], up_channels=[WIDE], mid_channels=WIDE, down_per_level=1,
                              up_per_level=2, heads=WIDE_HEADS, position_length=POSITIONS, stored_positions=True)
    shapes = {k: v.shape for k, v in wide.state_dict().items()}
    out = _widen(sd, shapes, ratio)
    table = sinusoidal_positions(POSITIONS, WIDE)[None]
    for key in out:
        if key.endswith("pos_encoder.pe"):
            out[key] = table.clone()  # the full table: its extra channels meet zero weights
    return out


def expand_motion_lora(sd: dict[str, torch.Tensor], ratio: int) -> dict[str, torch.Tensor]:
    """The MotionLoRA (original layout) for the wide motion module that adds what the narrow LoRA ``sd`` adds to the
    narrow one: ``up`` (out, r) and ``down`` (r, in) widened on their channel side with zeros, so ``up @ down`` is
    the narrow update in the narrow module's places (the attention projections' channels map one to one)."""
    shapes = {k: torch.Size((WIDE, v.shape[1]) if k.endswith(".up.weight") else (v.shape[0], WIDE))
              for k, v in sd.items()}
    return _widen(sd, shapes, ratio)


# -- the constructed TAESD ------------------------------------------------------------------------------------------

ENCODE_GAIN = 2.5  # encoder output = gain * (rgb - 0.5): inside the decoder clamp's near-linear range


def _inverse_clamp_fit(points: int = 9) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(thresholds, weights, bias) with ``sum_j w_j relu(y - t_j) + b`` ~ the colour for clamped value y."""
    lo = 3 * math.tanh(-ENCODE_GAIN / 2 / 3)
    y = torch.linspace(lo, -lo, 401, dtype=torch.float64)
    target = 0.5 + 3 * torch.atanh(y / 3) / ENCODE_GAIN
    t = torch.linspace(lo - 0.05, -lo, points + 1, dtype=torch.float64)[:-1]
    design = torch.cat([torch.relu(y[:, None] - t[None]), torch.ones(len(y), 1, dtype=torch.float64)], 1)
    sol = torch.linalg.lstsq(design, target[:, None]).solution[:, 0]
    return t.float(), sol[:-1].float(), float(sol[-1])


def taesd_state_dict(latent_channels: int = 4) -> dict[str, torch.Tensor]:
    """TAESD weights (ComfyUI's ``taesd_encoder.*`` / ``taesd_decoder.*`` keys) of the constructed autoencoder."""
    import comfy.taesd.taesd as taesd

    with torch.device("meta"):
        shapes = {k: v.shape for k, v in taesd.TAESD(latent_channels=latent_channels).state_dict().items()}
    sd = {k: torch.zeros(s) for k, s in shapes.items() if k not in ("vae_scale", "vae_shift")}
    # encoder: conv(3, 64) copies RGB, Blocks with zero convs are ReLU (identity on [0, 1] values), each stride-2 conv
    # averages 2x2 pixels (taps 1 and 2 of a padded 3x3 kernel), the last conv maps RGB to the latent.
    for c in range(3):
        sd["taesd_encoder.0.weight"][c, c, 1, 1] = 1.0
        for k in (2, 6, 10):
            sd[f"taesd_encoder.{k}.weight"][c, c, 1:3, 1:3] = 0.25
        sd["taesd_encoder.14.weight"][c, c, 1, 1] = ENCODE_GAIN
        sd["taesd_encoder.14.bias"][c] = -0.5 * ENCODE_GAIN
    # decoder: conv(4, 64) + ReLU builds relu(y_c - t_j) per colour, Blocks pass them on, the convs after the nearest
    # upsamples copy them (a smoothing filter would darken the frame's border through the convs' zero padding), the
    # last conv sums the pieces into the colour.
    thresholds, weights, bias = _inverse_clamp_fit()
    n = len(thresholds)
    for c in range(3):
        for j in range(n):
            h = c * n + j
            sd["taesd_decoder.1.weight"][h, c, 1, 1] = 1.0
            sd["taesd_decoder.1.bias"][h] = -thresholds[j]
            for k in (7, 12, 17):  # the convs after the three Upsamples
                sd[f"taesd_decoder.{k}.weight"][h, h, 1, 1] = 1.0
            sd["taesd_decoder.19.weight"][c, h, 1, 1] = weights[j]
        sd["taesd_decoder.19.bias"][c] = bias
    return sd


# -- the demo checkpoint ---------------------------------------------------------------------------------------------

def clip_l_state_dict(seed: int) -> dict[str, torch.Tensor]:
    """SD1.5's CLIP-L text encoder with seeded random weights (``text_model.*`` keys): weights ~ N(0, 1/fan_in),
    embeddings N(0, 0.02), norm weights ~1, biases small."""
    import json
    from pathlib import Path

    import comfy.clip_model
    import comfy.ops
    import comfy.sd1_clip

    config = json.loads((Path(comfy.sd1_clip.__file__).parent / "sd1_clip_config.json").read_text())
    m = comfy.clip_model.CLIPTextModel(config, torch.float32, "meta", comfy.ops.disable_weight_init)
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, t in sorted(m.state_dict().items()):
        if name.startswith("text_projection"):
            continue
        if t.dim() == 1:
            out[name] = torch.randn(t.shape, generator=g) * 0.1 + (1.0 if name.endswith("weight") else 0.0)
        elif "embedding" in name:
            out[name] = torch.randn(t.shape, generator=g) * 0.02
        else:
            out[name] = torch.randn(t.shape, generator=g) / math.sqrt(t.shape[1:].numel())
    out["text_model.embeddings.position_ids"] = torch.arange(config["max_position_embeddings"])[None]
    return out


def checkpoint_state_dict(unet_wide: dict, clip_seed: int, vae_scale: float, dtype=torch.float16) -> dict:
    """The single-file SD1.5 checkpoint (LDM keys) of the demo: the widened UNet, the seeded CLIP, the TAESD."""
    sd = {"model.diffusion_model." + k: v for k, v in unet_wide.items()}
    sd.update({"cond_stage_model.transformer." + k: v for k, v in clip_l_state_dict(clip_seed).items()})
    sd.update({"first_stage_model." + k: v for k, v in taesd_state_dict().items()})
    sd["first_stage_model.vae_scale"] = torch.tensor(vae_scale)
    sd["first_stage_model.vae_shift"] = torch.tensor(0.0)
    return {k: (v.to(dtype) if v.is_floating_point() else v).contiguous() for k, v in sd.items()}


def encode_frames(frames: torch.Tensor, vae_scale: float, scale_factor: float = 0.18215) -> torch.Tensor:
    """What the constructed TAESD plus SD1.5's latent scaling make of (N, H, W, 3) frames, computed directly:
    the model-space latents (N, 4, H/8, W/8) the UNet trains on."""
    x = frames.movedim(-1, 1).float()
    pooled = F.avg_pool2d(x, 8)
    rgb = ENCODE_GAIN * (pooled - 0.5)
    raw = torch.cat([rgb, torch.zeros_like(rgb[:, :1])], 1) / vae_scale
    return raw * scale_factor
