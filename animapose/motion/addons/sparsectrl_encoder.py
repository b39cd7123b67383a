"""The SparseCtrl encoder (guoyww/AnimateDiff v3 ``sparse_controlnet.py``) as a torch module built from ComfyUI's own
ControlNet blocks, and its file formats.

SparseCtrl is a ControlNet (the down half and middle of the UNet plus zero convolutions) with three changes:
- the noisy latent is replaced by zeros (``set_noisy_sample_input_to_zero``): only the hints drive it;
- the hint is the keyframe condition with a mask channel concatenated (1 on frames that have a keyframe); the RGB
  variant conditions on VAE latents (4 + 1 channels) through one 3x3 convolution at latent resolution
  (``use_simplified_condition_embedding``), the scribble variant on pixels (3 + 1 channels) through the usual
  8x-downsampling hint embedding;
- each down level carries motion modules with a single temporal self-attention (``Temporal_Self`` once, no
  mid-block module), applied after each ResBlock/attention pair as in the UNet.

Two layouts exist: the original ``v3_sd15_sparsectrl_{rgb,scribble}.ckpt`` (diffusers UNet names for the spatial
layers, original AnimateDiff names for the motion modules, ``pos_encoder.pe`` tables that the original loader
drops) and diffusers' ``SparseControlNetModel`` (``attn1``/``norm1``/``norm3`` and ``pos_embed.pe`` in the motion
modules). Both become one canonical state dict: ``net.`` + ComfyUI ControlNet keys, and the motion modules under
their original names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn

from ...comfy_seam import ControlNet, TimestepEmbedSequential, timestep_embedding
from ...errors import AnimaPoseError
from ..formats.convert import MODULE_KEY, diffusers_to_original
from ..module import MotionModule, SingleAttentionBlock

RGB = "RGB (latent keyframes)"
SCRIBBLE = "scribble (image keyframes)"
_FIX = "choose a SparseCtrl file (v3_sd15_sparsectrl_rgb.ckpt or v3_sd15_sparsectrl_scribble.ckpt, or diffusers' layout)"
_TT = "temporal_transformer."
_SLOT = re.compile(r"^down_blocks\.(\d+)\.motion_modules\.(\d+)\.temporal_transformer\.")


@dataclass(frozen=True)
class SparseCtrlInfo:
    variant: str  # RGB | SCRIBBLE
    layout: str  # "original" | "diffusers"
    hint_channels: int  # condition channels + the mask channel
    unet_config: dict
    position_length: int
    heads: int
    parameters: int

    @property
    def uses_latents(self) -> bool:
        return self.variant == RGB

    def summary(self) -> str:
        widths = "/".join(str(self.unet_config["model_channels"] * m) for m in self.unet_config["channel_mult"])
        return (f"SparseCtrl {self.variant}, {self.layout} layout ({self.parameters / 1e6:.1f} M parameters); "
                f"widths {widths}; hint {self.hint_channels - 1} channels + mask; motion positions "
                f"{self.position_length}")


def normalize_sparsectrl_state_dict(sd: dict, input_name: str = "sparsectrl_name") -> tuple[dict, SparseCtrlInfo]:
    tensors = {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}
    for prefix in ("controlnet.", "module."):
        if tensors and all(k.startswith(prefix) for k in tensors):
            tensors = {k[len(prefix):]: v for k, v in tensors.items()}
    if "controlnet_cond_embedding.weight" in tensors:
        variant = RGB
        hint = tensors["controlnet_cond_embedding.weight"]
    elif "controlnet_cond_embedding.conv_in.weight" in tensors:
        variant = SCRIBBLE
        hint = tensors["controlnet_cond_embedding.conv_in.weight"]
    else:
        raise AnimaPoseError(input_name, "the file is not a SparseCtrl encoder (it has no controlnet_cond_embedding)",
                             _FIX)
    if not any(MODULE_KEY.match(k) for k in tensors):
        raise AnimaPoseError(input_name, "the file is a ControlNet without motion modules, not SparseCtrl",
                             "load ordinary ControlNets with ComfyUI's 'Load ControlNet Model' node")
    for key in ("conv_in.weight", "time_embedding.linear_1.weight", "controlnet_mid_block.weight"):
        if key not in tensors:
            raise AnimaPoseError(input_name, f"the file is incomplete: it lacks {key}", _FIX)
    layout = "original" if any(MODULE_KEY.match(k) and MODULE_KEY.match(k)["rest"].startswith(_TT) for k in tensors) \
        else "diffusers"
    tensors = diffusers_to_original(tensors)

    config = _unet_config(tensors, input_name)
    keymap = _ldm_keys(tensors, config, variant)
    canonical, lengths = {}, set()
    unused = []
    for key, value in tensors.items():
        if key in keymap:
            canonical["net." + keymap[key]] = value
        elif MODULE_KEY.match(key):
            if key.endswith("pos_encoder.pe"):
                lengths.add(int(value.shape[1]))  # the original loader drops the tables; the sinusoid is recomputed
                continue
            canonical[key] = value
        else:
            unused.append(key)
    if unused:
        raise AnimaPoseError(input_name, f"the file holds {len(unused)} weights SparseCtrl does not have (e.g. "
                             f"{', '.join(sorted(unused)[:3])})", _FIX)
    info = SparseCtrlInfo(variant=variant, layout=layout, hint_channels=int(hint.shape[1]), unet_config=config,
                          position_length=max(lengths) if lengths else 32, heads=8,
                          parameters=sum(v.numel() for v in canonical.values()))
    return canonical, info


def _count(tensors: dict, pattern: str) -> int:
    n = 0
    while any(k.startswith(pattern.format(n)) for k in tensors):
        n += 1
    return n


def _unet_config(t: dict, input_name: str) -> dict:
    """ComfyUI ``UNetModel``/``ControlNet`` kwargs read from the diffusers-named spatial keys."""
    levels = _count(t, "down_blocks.{}.resnets.0.")
    per_level = _count(t, "down_blocks.0.resnets.{}.")
    if not levels or not per_level:
        raise AnimaPoseError(input_name, "the file has no down blocks", _FIX)
    c0 = t["conv_in.weight"].shape[0]
    widths = [t[f"down_blocks.{i}.resnets.0.conv2.weight"].shape[0] for i in range(levels)]
    depth = [_count(t, f"down_blocks.{i}.attentions.0.transformer_blocks.{{}}.") for i in range(levels)]
    to_k = [v for k, v in t.items() if k.endswith("attn2.to_k.weight")]
    proj_in = [v for k, v in t.items() if k.endswith("attentions.0.proj_in.weight")]
    if not to_k or not proj_in:
        raise AnimaPoseError(input_name, "the file has no cross-attention layers", _FIX)
    mid_depth = _count(t, "mid_block.attentions.0.transformer_blocks.{}.")
    return {
        "image_size": 32, "in_channels": int(t["conv_in.weight"].shape[1]), "model_channels": int(c0),
        "num_res_blocks": [per_level] * levels, "channel_mult": [w // c0 for w in widths],
        "transformer_depth": [d for d in depth for _ in range(per_level)],
        "transformer_depth_output": [d for d in reversed(depth) for _ in range(per_level + 1)],
        "transformer_depth_middle": mid_depth if mid_depth else -1,
        "context_dim": int(to_k[0].shape[1]), "use_linear_in_transformer": proj_in[0].dim() == 2,
        "num_heads": 8, "num_head_channels": -1, "use_spatial_transformer": True, "legacy": False,
        "use_checkpoint": False, "adm_in_channels": None, "use_temporal_attention": False,
        "use_temporal_resblock": False,
    }


def _ldm_keys(t: dict, config: dict, variant: str) -> dict[str, str]:
    from ...comfy_seam import comfy_utils

    keys = comfy_utils.unet_to_diffusers(config)
    keys["controlnet_mid_block.weight"] = "middle_block_out.0.weight"
    keys["controlnet_mid_block.bias"] = "middle_block_out.0.bias"
    n = 0
    while f"controlnet_down_blocks.{n}.weight" in t:
        for s in (".weight", ".bias"):
            keys[f"controlnet_down_blocks.{n}{s}"] = f"zero_convs.{n}.0{s}"
        n += 1
    for s in (".weight", ".bias"):
        if variant == RGB:
            keys[f"controlnet_cond_embedding{s}"] = f"input_hint_block.0{s}"
        else:
            # conv_in, blocks.0..5, conv_out sit at input_hint_block 0, 2..12, 14 (SiLUs in between)
            keys[f"controlnet_cond_embedding.conv_in{s}"] = f"input_hint_block.0{s}"
            for b in range(_count(t, "controlnet_cond_embedding.blocks.{}.")):
                keys[f"controlnet_cond_embedding.blocks.{b}{s}"] = f"input_hint_block.{2 * (b + 1)}{s}"
            keys[f"controlnet_cond_embedding.conv_out{s}"] = "input_hint_block.14" + s
    return keys


class _Level(nn.Module):
    def __init__(self, modules):
        super().__init__()
        self.motion_modules = nn.ModuleList(modules)


class SparseControlModel(nn.Module):
    """``net``: ComfyUI's ControlNet blocks (its hint block replaced by one conv for the RGB variant);
    ``down_blocks.i.motion_modules.j``: the motion modules, run after ``net.input_blocks[slot]``."""

    def __init__(self, info: SparseCtrlInfo, operations, dtype=None, device=None):
        super().__init__()
        cfg = info.unet_config
        self.net = ControlNet(hint_channels=info.hint_channels if info.variant == SCRIBBLE else 3, dtype=dtype,
                              device=device, operations=operations, **cfg)
        c0 = cfg["model_channels"]
        if info.variant == RGB:
            self.net.input_hint_block = TimestepEmbedSequential(
                operations.conv_nd(2, info.hint_channels, c0, 3, padding=1, dtype=dtype, device=device))
        levels = []
        self.slots: dict[int, tuple[int, int]] = {}
        index = 1  # input_blocks[0] is conv_in
        for level, mult in enumerate(cfg["channel_mult"]):
            width = c0 * mult
            modules = []
            for j in range(cfg["num_res_blocks"][level]):
                module = MotionModule(channels=width, heads=info.heads, ff_inner=4 * width, norm_groups=32,
                                      position_length=None, stored_positions=False, operations=operations,
                                      dtype=dtype, device=device)
                tt = module.temporal_transformer
                tt.position_length = info.position_length
                tt.transformer_blocks = nn.ModuleList([SingleAttentionBlock(
                    width, info.heads, 4 * width, info.position_length, False, operations, dtype, device)])
                modules.append(module)
                self.slots[index + j] = (level, j)
            levels.append(_Level(modules))
            index += cfg["num_res_blocks"][level] + 1
        self.down_blocks = nn.ModuleList(levels)
        self.model_channels = c0
        self.dtype = dtype or torch.float32

    def forward(self, hint: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor, frames: int,
                like: torch.Tensor, norm_across_frames: bool = False) -> dict[str, list[torch.Tensor]]:
        """Residuals for a ``(batch*frames, C, h, w)`` batch shaped ``like`` (whose values SparseCtrl ignores)."""
        net = self.net
        emb = net.time_embed(timestep_embedding(timesteps, self.model_channels, repeat_only=False).to(like.dtype))
        guided = net.input_hint_block(hint, emb, context)
        h = torch.zeros_like(like)
        outs = []
        for i, (block, zero_conv) in enumerate(zip(net.input_blocks, net.zero_convs)):
            h = block(h, emb, context)
            if i == 0:
                h = h + guided
            slot = self.slots.get(i)
            if slot is not None:
                h = self.down_blocks[slot[0]].motion_modules[slot[1]](h, frames, 1.0, norm_across_frames)
            outs.append(zero_conv(h, emb, context))
        h = net.middle_block(h, emb, context)
        return {"middle": [net.middle_block_out(h, emb, context)], "output": outs}


def check_slot_names(sd: dict, model: SparseControlModel, input_name: str) -> None:
    """Every motion module of the file has a slot in the model (one per ResBlock of each down level)."""
    expected = {(lv, j) for lv, j in model.slots.values()}
    found = {(int(m[1]), int(m[2])) for k in sd for m in [_SLOT.match(k)] if m}
    if found != expected:
        raise AnimaPoseError(input_name, f"the file's motion modules {sorted(found)[:4]} do not match its down blocks "
                             f"{sorted(expected)[:4]}", _FIX)
