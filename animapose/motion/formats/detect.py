"""What a motion-module file is, told from its keys and shapes alone (never from its name).

``normalize_motion_state_dict`` accepts the original AnimateDiff layout, the diffusers ``MotionAdapter`` layout
and HotshotXL's layout (and PIA, whose file adds a 9-channel ``conv_in``, and AnimateLCM-I2V, whose file adds an
image encoder ``img_encoder.*``: see ``image_condition_weights``), refuses the files people mistake for motion
modules (checkpoints, LoRAs, SparseCtrl) with a message that names the fix, checks that every module is complete, and
returns the state dict in the original layout that ``MotionModelSet`` loads, plus a ``MotionModelInfo``.

The family decides the two things the weights cannot say: which GroupNorms pool their statistics over the
frames of a clip (``NormScope``) and the noise schedule the module was trained with.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

import torch
from torch import nn

from ...checkpoints import strip_prefix
from ...errors import AnimaPoseError
from ..addons import lcm_i2v_encoder as image_encoder
from ..addons.cameractrl_encoder import is_cameractrl_key
from ..module import MotionModelSet
from .convert import HOTSHOT_KEY, MODULE_KEY, diffusers_to_original, hotshot_to_original
from .lora import is_lora_key

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NormScope:
    """Which GroupNorms pool statistics over all frames of a clip (True) instead of normalising each frame.

    ``motion``: the motion module's own GroupNorm. ``resnet``: the UNet's ResBlock GroupNorms and the final
    ``conv_norm_out`` (spatial-transformer norms are per frame in every release).
    """

    motion: bool
    resnet: bool


# diffusers' UNetMotionModel: AnimateDiffTransformer3D normalises a (b, c, f, h, w) tensor, while its 2-D
# ResnetBlock2D and conv_norm_out see (b f) c h w. It computes this for every format it loads.
DIFFUSERS_SCOPE = NormScope(motion=True, resnet=False)

V1 = "AnimateDiff v1"
V2 = "AnimateDiff v2"
V3 = "AnimateDiff v3"
V3_OR_V1 = "AnimateDiff v3 (or v1: the diffusers layout does not say)"
SDXL_BETA = "AnimateDiff SDXL beta"
HOTSHOT = "HotshotXL"
LCM = "AnimateLCM"
PIA = "PIA"
LCM_I2V = "AnimateLCM-I2V"

# family -> (norm scope, recommended ComfyUI beta schedule). The original SD1.5 configs ask diffusers for
# "linear" betas 0.00085..0.012, a plain linspace, which ComfyUI calls "sqrt_linear".
_FAMILY_TRAITS = {
    # guoyww/AnimateDiff main: configs/inference/inference-v1.yaml use_inflated_groupnorm false, so resnet.py's
    # ResnetBlock3D norms and unet.py's conv_norm_out are plain GroupNorm on (b c f h w); motion_module.py
    # TemporalTransformer3DModel.forward rearranges to (b f) c h w before self.norm.
    V1: (NormScope(motion=False, resnet=True), "sqrt_linear"),
    # main: configs/inference/inference-v2.yaml and -v3.yaml use_inflated_groupnorm true (InflatedGroupNorm is
    # per frame); the motion norm is per frame as for v1.
    V2: (NormScope(motion=False, resnet=False), "sqrt_linear"),
    V3: (NormScope(motion=False, resnet=False), "sqrt_linear"),
    V3_OR_V1: (NormScope(motion=False, resnet=False), "sqrt_linear"),
    # sdxl branch: motion_module.py TemporalTransformer3DModel.forward applies self.norm to the 5-D input;
    # unet_blocks.py rearranges to (b f) before each resnet, unet.py before conv_norm_out;
    # configs/inference/inference.yaml: scaled_linear 0.00085..0.020.
    SDXL_BETA: (NormScope(motion=True, resnet=False), "linear_sdxl"),
    # Hotshot-XL: transformer_temporal.py TransformerTemporal.forward norms after "b c f h w -> (b f) c h w";
    # resnet.py ResnetBlock3D.norm1/norm2 and unet.py conv_norm_out are plain GroupNorm on the 5-D tensor;
    # inference.py keeps the SDXL scheduler config (scaled_linear 0.00085..0.012, ComfyUI "linear").
    HOTSHOT: (NormScope(motion=False, resnet=True), "linear"),
    # AnimateLCM animatelcm_sd15: configs/inference-t2v.yaml use_inflated_groupnorm true, motion_module.py norms
    # after (b f); its LCMScheduler uses "linear" (linspace) betas 0.00085..0.012, original_inference_steps 100.
    LCM: (NormScope(motion=False, resnet=False), "lcm"),
    # AnimateLCM animatelcm_sd15: configs/inference-i2v.yaml, the same UNet settings as t2v plus use_img_encoder;
    # its LCMScheduler ends the "linear" betas at 0.014 with original_inference_steps 200.
    LCM_I2V: (NormScope(motion=False, resnet=False), "lcm_i2v"),
    # open-mmlab/PIA: animatediff/models/resnet.py ResnetBlock3D norms are plain GroupNorm on (b c f h w) (no
    # inflated-groupnorm option at all), motion_module.py norms after (b f) as v1; example/config/base.yaml keeps
    # the "linear" 0.00085..0.012 betas of the original.
    PIA: (NormScope(motion=False, resnet=True), "sqrt_linear"),
}

# PIA's conv_in reads [noisy latent (4), per-frame affinity (1), image latent (4)].
PIA_IN_CHANNELS = 9

DEFAULT_HEADS = 8  # every release; the head count is not stored in the weights
DEFAULT_NORM_GROUPS = 32
LCM_POSITIONS = 64  # AnimateLCM's PositionalEncoding hard-codes max_length = 64
DIFFUSERS_POSITIONS = 32  # MotionAdapter's default motion_max_seq_length
HOTSHOT_POSITIONS = 24  # Hotshot-XL's PositionalEncoding default max_length

_TT = "temporal_transformer."
_PE_KEYS = tuple(f"transformer_blocks.0.attention_blocks.{n}.pos_encoder.pe" for n in range(2))
_FULL_CHECKPOINT_PREFIXES = ("model.diffusion_model.", "first_stage_model.", "cond_stage_model.", "conditioner.embedders.")
_EXAMPLES = "mm_sd_v15_v2.ckpt, v3_sd15_mm.ckpt, mm_sdxl_v10_beta.ckpt, hsxl_temporal_layers.safetensors, AnimateLCM_sd15_t2v.ckpt"


@dataclass(frozen=True)
class MotionModelInfo:
    family: str
    layout: str  # "original" | "diffusers" | "hotshot"
    base: str  # "SD1.5" (4 levels) | "SDXL" (3 levels) | "custom"
    down_channels: tuple[int, ...]
    up_channels: tuple[int, ...]  # diffusers order, deepest first
    mid_channels: int | None
    down_per_level: int
    up_per_level: int
    heads: int
    ff_mult: int
    norm_groups: int
    position_length: int | None
    stored_positions: bool
    norm_scope: NormScope
    beta_schedule: str
    parameters: int
    notes: tuple[str, ...] = field(default=())

    @property
    def levels(self) -> int:
        return len(self.down_channels)

    def summary(self) -> str:
        mid = f"yes ({self.mid_channels} channels)" if self.mid_channels else "no"
        positions = (f"{self.position_length} frames ({'stored table' if self.stored_positions else 'computed sinusoid'})"
                     if self.position_length else "none")
        lines = [
            f"{self.family}, {self.layout} layout, for {self.base} ({self.parameters / 1e6:.1f} M parameters)",
            f"{self.levels} levels: down widths {'/'.join(map(str, self.down_channels))} ({self.down_per_level} per level), "
            f"up widths {'/'.join(map(str, self.up_channels))} ({self.up_per_level} per level); mid block: {mid}",
            f"frame positions: {positions}",
            f"GroupNorm across frames: motion module {_yes(self.norm_scope.motion)}, "
            f"UNet ResBlocks {_yes(self.norm_scope.resnet)}",
            f"recommended beta schedule: {self.beta_schedule}",
        ]
        return "\n".join(lines + list(self.notes))


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def normalize_motion_state_dict(sd: dict, input_name: str = "motion_model",
                                adapter_config: dict | None = None) -> tuple[dict[str, torch.Tensor], MotionModelInfo]:
    """The state dict in the original layout (keys exactly as ``MotionModelSet`` names them) and its info.

    ``adapter_config`` is the diffusers ``config.json`` that sits next to diffusers-layout weights, if known.
    """
    tensors = {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise AnimaPoseError(input_name, "the file holds no tensors", f"choose a motion module ({_EXAMPLES})")
    tensors = _strip_wrappers(tensors)
    tensors = _without_cameractrl(tensors, input_name)
    _refuse_foreign(tensors, input_name)
    pia = _pia_weights(tensors, input_name)
    encoder = image_encoder.split_encoder(tensors)
    tensors = {k: v for k, v in tensors.items() if k not in pia and not k.startswith(image_encoder.PREFIX)}

    layout = _layout(tensors, input_name)
    if layout == "hotshot":
        tensors = hotshot_to_original(tensors)
    elif layout == "diffusers":
        tensors = diffusers_to_original(tensors)

    modules, lcm_table = _group_modules(tensors)
    shapes = {name: _check_module(name, params, input_name) for name, params in modules.items()}
    down, up, mid = _levels(shapes, input_name)

    widths = [c for c, _, _ in shapes.values()]
    ffs = {f // c if f % c == 0 else None for c, f, _ in shapes.values()}
    if len(ffs) != 1 or None in ffs:
        raise AnimaPoseError(input_name, "the motion modules' feed-forward widths are not one multiple of their "
                             "channel widths", f"choose a standard AnimateDiff motion module ({_EXAMPLES})")
    ff_mult = ffs.pop()

    tables = {name: length for name, (_, _, length) in shapes.items()}
    lengths = set(tables.values())
    if len(lengths) > 1:
        if None in lengths:
            bare = sorted(n for n, length in tables.items() if length is None)
            raise AnimaPoseError(input_name, f"the file is incomplete: {len(bare)} motion modules lack the position "
                                 f"tables the others store (e.g. '{bare[0]}')", "download the motion module again")
        raise AnimaPoseError(input_name, f"the motion modules store position tables of different lengths "
                             f"{sorted(lengths)}", f"choose a standard AnimateDiff motion module ({_EXAMPLES})")
    stored_length = lengths.pop()

    config = adapter_config or {}
    heads = _config_int(config, "motion_num_attention_heads", DEFAULT_HEADS, input_name)
    norm_groups = _config_int(config, "motion_norm_num_groups", DEFAULT_NORM_GROUPS, input_name)
    for c in sorted(set(widths)):
        if c % heads or c % norm_groups:
            raise AnimaPoseError(input_name, f"a motion-module width of {c} channels does not split into {heads} "
                                 f"attention heads and {norm_groups} norm groups",
                                 "choose a standard AnimateDiff motion module, or fix the adapter config")
    if config and "use_motion_mid_block" in config and bool(config["use_motion_mid_block"]) != (mid is not None):
        log.warning("motion model: the adapter config says use_motion_mid_block=%s but the weights %s a mid block; "
                    "following the weights", config["use_motion_mid_block"], "have" if mid else "lack")

    levels = len(down)
    base = {4: "SD1.5", 3: "SDXL"}.get(levels, "custom")
    family, position_length, notes = _family(layout, base, mid is not None, stored_length, lcm_table, config)
    if pia:
        family = PIA
        notes = ["image-to-video: its 9-channel conv_in needs the 'AnimateDiff PIA Image (picture to video)' node's conditioning"]
    if encoder:
        if family != LCM:
            raise AnimaPoseError(input_name, f"the file pairs an image encoder (img_encoder.*) with {family} motion "
                                 "modules; only AnimateLCM-I2V ships one, with AnimateLCM's modules",
                                 "choose AnimateLCM_sd15_i2v.ckpt as released")
        spec = image_encoder.encoder_spec(encoder, tuple(down), input_name)
        family = LCM_I2V
        notes = [f"image-to-video: an image encoder ({'/'.join(map(str, spec.channels))} channels, "
                 f"{sum(v.numel() for v in encoder.values()) / 1e6:.1f} M parameters) for the "
                 "'AnimateLCM-I2V Reference Image (picture to video)' node"]
    scope, schedule = _FAMILY_TRAITS[family]

    canonical = {f"{name}{_TT}{rest}": value for name, params in modules.items() for rest, value in params.items()}
    parameters = sum(v.numel() for k, v in canonical.items() if not k.endswith("pos_encoder.pe"))
    down_channels = tuple(down)
    up_channels = tuple(up)
    if up_channels != tuple(reversed(down_channels)):
        log.warning("motion model: up widths %s are not the down widths %s reversed", up_channels, down_channels)
    info = MotionModelInfo(
        family=family, layout=layout, base=base, down_channels=down_channels, up_channels=up_channels,
        mid_channels=mid, down_per_level=_per_level(shapes, "down_blocks"), up_per_level=_per_level(shapes, "up_blocks"),
        heads=heads, ff_mult=ff_mult, norm_groups=norm_groups, position_length=position_length,
        stored_positions=stored_length is not None, norm_scope=scope, beta_schedule=schedule, parameters=parameters,
        notes=tuple(notes))
    log.info("motion model: %s", info.summary().replace("\n", "; "))
    return canonical, info


def image_condition_weights(sd: dict, input_name: str = "motion_model") -> dict[str, torch.Tensor]:
    """The image-conditioning weights a motion-module file carries besides its motion modules: PIA's
    ``conv_in.weight`` [C, 9, 3, 3] and ``conv_in.bias``, or AnimateLCM-I2V's ``img_encoder.*`` (prefix kept);
    empty for every other format."""
    tensors = _strip_wrappers({k: v for k, v in sd.items() if isinstance(v, torch.Tensor)})
    return {**_pia_weights(tensors, input_name),
            **{k: v for k, v in tensors.items() if k.startswith(image_encoder.PREFIX)}}


def _strip_wrappers(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    for prefix in ("module.", "unet."):
        tensors = strip_prefix(tensors, prefix)
    return tensors


def _pia_weights(tensors: dict[str, torch.Tensor], input_name: str) -> dict[str, torch.Tensor]:
    """PIA's ``conv_in.*`` when the file is a motion-module file with one (a full UNet dump has resnets too and
    keeps its own conv_in, which the loader ignores); raises when the conv_in is not PIA's shape."""
    conv = {k: v for k, v in tensors.items() if k.startswith("conv_in.")}
    if not conv or any(".resnets." in k for k in tensors):
        return {}
    w, b = conv.get("conv_in.weight"), conv.get("conv_in.bias")
    fix = "choose PIA's pia.ckpt as released, or a motion module without a conv_in"
    if w is None or b is None or set(conv) != {"conv_in.weight", "conv_in.bias"}:
        raise AnimaPoseError(input_name, f"the file has an incomplete conv_in ({', '.join(sorted(conv))}); PIA's "
                             "holds conv_in.weight and conv_in.bias", fix)
    if w.dim() != 4 or w.shape[1] != PIA_IN_CHANNELS or tuple(w.shape[2:]) != (3, 3) or tuple(b.shape) != (w.shape[0],):
        raise AnimaPoseError(input_name, f"the file's conv_in has shape {list(w.shape)} (bias {list(b.shape)}); PIA's "
                             f"takes {PIA_IN_CHANNELS} channels: [width, 9, 3, 3]", fix)
    return conv


def build_motion_set(sd_original: dict[str, torch.Tensor], info: MotionModelInfo, operations=nn, dtype=None,
                     device=None) -> MotionModelSet:
    """A ``MotionModelSet`` shaped by ``info`` with the weights loaded strictly (cast to ``dtype`` on load)."""
    model = MotionModelSet(
        down_channels=info.down_channels, up_channels=info.up_channels, mid_channels=info.mid_channels,
        down_per_level=info.down_per_level, up_per_level=info.up_per_level, heads=info.heads, ff_mult=info.ff_mult,
        norm_groups=info.norm_groups, position_length=info.position_length, stored_positions=info.stored_positions,
        operations=operations, dtype=dtype, device=device)
    model.load_state_dict(sd_original, strict=True)
    return model


def _without_cameractrl(tensors: dict[str, torch.Tensor], input_name: str) -> dict[str, torch.Tensor]:
    """The tensors without CameraCtrl's (its encoder and qkv_merge adapters), which its own loader reads; a file
    holding nothing else is refused with that loader's name."""
    kept = {k: v for k, v in tensors.items() if not is_cameractrl_key(k)}
    if len(kept) == len(tensors):
        return tensors
    if not kept:
        raise AnimaPoseError(input_name, "this is CameraCtrl (a camera encoder and attention adapters for AnimateDiff "
                             "v3), not a motion module", "load v3_sd15_mm.ckpt here, and this file with the 'Load "
                             "AnimateDiff CameraCtrl' node connected to 'Apply CameraCtrl to AnimateDiff'")
    log.info("motion model: ignored %d CameraCtrl weights (the 'Load AnimateDiff CameraCtrl' node reads them)",
             len(tensors) - len(kept))
    return kept


def _refuse_foreign(tensors: dict[str, torch.Tensor], input_name: str):
    keys = list(tensors)
    motion_keys = [k for k in keys if MODULE_KEY.match(k) or HOTSHOT_KEY.match(k)]
    if any(k.startswith(_FULL_CHECKPOINT_PREFIXES) for k in keys):
        raise AnimaPoseError(input_name, "this is a full Stable Diffusion checkpoint, not a motion module",
                             f"load it with ComfyUI's Load Checkpoint node and choose a motion module here ({_EXAMPLES})")
    lora_keys = [k for k in keys if is_lora_key(k)]
    if lora_keys:
        if any("motion_modules" in k or "temporal" in k for k in lora_keys):
            raise AnimaPoseError(input_name, "this is a motion LoRA, not a motion module",
                                 "load it with the Load AnimateDiff Motion LoRA node and choose a motion module here")
        if any(".attentions." in k and "processor." in k for k in lora_keys):
            what = "the AnimateDiff v3 domain adapter (a LoRA on the image model's spatial attention)"
        else:
            what = "an image LoRA"
        raise AnimaPoseError(input_name, f"this is {what}, not a motion module",
                             "load it with ComfyUI's LoRA loader (Load LoRA) on the model and choose a motion module here")
    if any(k.startswith("controlnet_cond_embedding.") for k in keys):
        raise AnimaPoseError(input_name, "this is a SparseCtrl encoder (a ControlNet-like model with its own motion "
                             "modules), not a motion module",
                             "put it into models/controlnet and load it with the 'Load AnimateDiff SparseCtrl' node; "
                             f"choose a motion module here ({_EXAMPLES})")
    if not motion_keys:
        raise AnimaPoseError(input_name, f"the file holds no motion modules (none of its {len(keys)} keys is under "
                             f"'motion_modules.' or 'temporal_attentions.', e.g. {', '.join(sorted(keys)[:3])})",
                             f"choose an AnimateDiff motion module ({_EXAMPLES})")


def _layout(tensors: dict[str, torch.Tensor], input_name: str) -> str:
    found = set()
    for key in tensors:
        if HOTSHOT_KEY.match(key):
            found.add("hotshot")
        else:
            m = MODULE_KEY.match(key)
            if m:
                found.add("original" if m["rest"].startswith(_TT) else "diffusers")
    if len(found) > 1:
        raise AnimaPoseError(input_name, f"the file mixes motion-module layouts ({', '.join(sorted(found))})",
                             "use the motion module as released, not a merge of different formats")
    return found.pop()


def _group_modules(tensors: dict[str, torch.Tensor]) -> tuple[dict[str, dict[str, torch.Tensor]], bool]:
    """``{"down_blocks.0.motion_modules.0.": {rest after temporal_transformer.: tensor}}``; other keys are
    dropped (a full 3-D UNet dump, stray config entries). Also says whether AnimateLCM's ``pos_encoding`` name
    was seen (renamed to ``pe``)."""
    modules: dict[str, dict[str, torch.Tensor]] = {}
    dropped = []
    lcm_table = False
    for key, value in tensors.items():
        m = MODULE_KEY.match(key)
        if not m or not m["rest"].startswith(_TT):
            dropped.append(key)
            continue
        rest = m["rest"][len(_TT):]
        if rest.endswith("pos_encoder.pos_encoding"):
            rest = rest[: -len("pos_encoding")] + "pe"
            lcm_table = True
        modules.setdefault(f"{m['block']}.motion_modules.{m['index']}.", {})[rest] = value
    if dropped:
        log.info("motion model: ignored %d keys outside the motion modules (e.g. %s)", len(dropped),
                 ", ".join(sorted(dropped)[:3]))
    return modules, lcm_table


def _expected_shapes(c: int, ff: int) -> dict[str, tuple[int, ...]]:
    shapes = {"norm.weight": (c,), "norm.bias": (c,), "proj_in.weight": (c, c), "proj_in.bias": (c,),
              "proj_out.weight": (c, c), "proj_out.bias": (c,)}
    block = "transformer_blocks.0."
    for n in range(2):
        attn = f"{block}attention_blocks.{n}."
        for proj in ("to_q", "to_k", "to_v"):
            shapes[f"{attn}{proj}.weight"] = (c, c)
        shapes[f"{attn}to_out.0.weight"] = (c, c)
        shapes[f"{attn}to_out.0.bias"] = (c,)
        shapes[f"{block}norms.{n}.weight"] = (c,)
        shapes[f"{block}norms.{n}.bias"] = (c,)
    shapes.update({f"{block}ff.net.0.proj.weight": (2 * ff, c), f"{block}ff.net.0.proj.bias": (2 * ff,),
                   f"{block}ff.net.2.weight": (c, ff), f"{block}ff.net.2.bias": (c,),
                   f"{block}ff_norm.weight": (c,), f"{block}ff_norm.bias": (c,)})
    return shapes


def _check_module(name: str, params: dict[str, torch.Tensor], input_name: str) -> tuple[int, int, int | None]:
    """(channels, feed-forward inner width, stored position-table length or None) of one complete module."""
    label = name.rstrip(".")
    incomplete_fix = "the file is truncated or damaged: download the motion module again"
    c = next((params[k].shape[0] for k in ("norm.weight", "norm.bias", "proj_in.bias", "proj_out.bias") if k in params), None)
    ff2 = params.get("transformer_blocks.0.ff.net.2.weight")
    ff0 = params.get("transformer_blocks.0.ff.net.0.proj.weight")
    ff = ff2.shape[-1] if ff2 is not None and ff2.dim() == 2 else (ff0.shape[0] // 2 if ff0 is not None else None)
    if c is None or ff is None:
        raise AnimaPoseError(input_name, f"the file is incomplete: motion module '{label}' lacks its "
                             f"{'norm and projection' if c is None else 'feed-forward'} weights", incomplete_fix)
    expected = _expected_shapes(c, ff)
    unknown = sorted(k for k in params if k not in expected and k not in _PE_KEYS)
    if unknown:
        raise AnimaPoseError(input_name, f"motion module '{label}' holds weights of a variant AnimaPose does not "
                             f"support ({', '.join(unknown[:3])}{', ...' if len(unknown) > 3 else ''})",
                             "choose an AnimateDiff v1/v2/v3, SDXL beta, HotshotXL or AnimateLCM motion module")
    missing = [k for k in expected if k not in params]
    if missing:
        raise AnimaPoseError(input_name, f"the file is incomplete: motion module '{label}' lacks {len(missing)} of its "
                             f"{len(expected)} weights (e.g. {', '.join(missing[:3])})", incomplete_fix)
    wrong = [f"{k} {tuple(params[k].shape)} (expected {v})" for k, v in expected.items() if tuple(params[k].shape) != v]
    tables = [params[k] for k in _PE_KEYS if k in params]
    if len(tables) == 1:
        raise AnimaPoseError(input_name, f"the file is incomplete: motion module '{label}' stores the position table "
                             "of one attention block but not the other", incomplete_fix)
    for key in _PE_KEYS:
        if key in params and (params[key].dim() != 3 or params[key].shape[0] != 1 or params[key].shape[2] != c):
            wrong.append(f"{key} {tuple(params[key].shape)} (expected (1, frames, {c}))")
    if tables and tables[0].shape != tables[1].shape:
        wrong.append(f"position tables {tuple(tables[0].shape)} and {tuple(tables[1].shape)} differ in length")
    if wrong:
        raise AnimaPoseError(input_name, f"motion module '{label}' has weights of unexpected shapes: "
                             f"{'; '.join(wrong[:3])}", incomplete_fix)
    return c, ff, (tables[0].shape[1] if tables else None)


_NAME = re.compile(r"^(down_blocks|up_blocks|mid_block)(?:\.(\d+))?\.motion_modules\.(\d+)\.$")


def _levels(shapes: dict[str, tuple], input_name: str) -> tuple[list[int], list[int], int | None]:
    """Per-level widths of the down and up levels and the mid width, after checking that every level is
    complete (contiguous levels and module indices, one module count per direction, one width per level)."""
    found: dict[str, dict[int, dict[int, int]]] = {"down_blocks": {}, "up_blocks": {}, "mid_block": {}}
    for name, (c, _, _) in shapes.items():
        kind, level, index = _NAME.match(name).groups()
        found[kind].setdefault(int(level or 0), {})[int(index)] = c
    fix = "the file is truncated or damaged: download the motion module again"
    widths = {}
    for kind in ("down_blocks", "up_blocks"):
        levels = found[kind]
        if list(levels) and sorted(levels) != list(range(len(levels))):
            gaps = sorted(set(range(max(levels) + 1)) - set(levels))
            raise AnimaPoseError(input_name, f"the file is incomplete: it has no motion modules for {kind}.{gaps[0]}",
                                 fix)
        widths[kind] = []
        for level in sorted(levels):
            modules = levels[level]
            if sorted(modules) != list(range(len(modules))):
                raise AnimaPoseError(input_name, f"the file is incomplete: {kind}.{level} lacks motion module "
                                     f"{min(set(range(max(modules) + 1)) - set(modules))}", fix)
            if len(set(modules.values())) != 1:
                raise AnimaPoseError(input_name, f"the motion modules of {kind}.{level} have different widths "
                                     f"{sorted(set(modules.values()))}", fix)
            widths[kind].append(next(iter(modules.values())))
        counts = {len(m) for m in levels.values()}
        if len(counts) > 1:
            short = min(levels, key=lambda lv: len(levels[lv]))
            raise AnimaPoseError(input_name, f"the file is incomplete: {kind}.{short} has {len(levels[short])} "
                                 f"motion modules where the other levels have {max(counts)}", fix)
    if len(widths["down_blocks"]) != len(widths["up_blocks"]):
        raise AnimaPoseError(input_name, f"the file is incomplete: it has motion modules for "
                             f"{len(widths['down_blocks'])} down levels but {len(widths['up_blocks'])} up levels", fix)
    if not widths["down_blocks"]:
        raise AnimaPoseError(input_name, "the file has a mid-block motion module but none for the down and up levels",
                             fix)
    mid = found["mid_block"].get(0)
    if mid and len(mid) != 1:
        raise AnimaPoseError(input_name, f"the file has {len(mid)} mid-block motion modules; every release has one",
                             f"choose a standard AnimateDiff motion module ({_EXAMPLES})")
    return widths["down_blocks"], widths["up_blocks"], (next(iter(mid.values())) if mid else None)


def _per_level(shapes: dict[str, tuple], kind: str) -> int:
    return sum(1 for name in shapes if name.startswith(f"{kind}.0."))


def _config_int(config: dict, key: str, default: int, input_name: str) -> int:
    value = config.get(key)
    if value is None:
        return default
    if isinstance(value, (list, tuple)):
        if len(set(value)) != 1:
            raise AnimaPoseError(input_name, f"the adapter config sets {key}={list(value)}; AnimaPose needs one value "
                                 "for every level", "use a motion adapter with one value for every level")
        value = value[0]
    return int(value)


def _family(layout: str, base: str, has_mid: bool, stored_length: int | None, lcm_table: bool,
            config: dict) -> tuple[str, int | None, list[str]]:
    """(family, position length, notes) from what the weights show; see the table in ``_FAMILY_TRAITS``."""
    notes = []
    if layout == "hotshot":
        return HOTSHOT, stored_length or HOTSHOT_POSITIONS, notes
    if layout == "original":
        if lcm_table or stored_length is None:
            # AnimateLCM's files carry no pos_encoder tables (or, in its own code, 'pos_encoding' ones).
            return LCM, stored_length or LCM_POSITIONS, notes
        if base == "SDXL":
            return SDXL_BETA, stored_length, notes
        if has_mid:
            notes.append("(AnimateDiff-Lightning has the same weights as v2 and is labelled v2)")
            return V2, stored_length, notes
        return (V1 if stored_length == 24 else V3), stored_length, notes
    # diffusers: save_pretrained writes pos_embed.pe with motion_max_seq_length rows, the only hint left.
    length = stored_length or config.get("motion_max_seq_length")
    if base == "SDXL":
        return SDXL_BETA, length or DIFFUSERS_POSITIONS, notes
    if length == LCM_POSITIONS:
        return LCM, length, notes
    if has_mid:
        notes.append("(AnimateDiff-Lightning has the same weights as v2 and is labelled v2)")
        return V2, length or DIFFUSERS_POSITIONS, notes
    if length == 24:
        return V1, length, notes
    if length:
        return V3, length, notes
    notes.append("(v1 and v3 differ only in their ResBlock GroupNorm scope; give the adapter config.json to tell them apart)")
    return V3_OR_V1, DIFFUSERS_POSITIONS, notes
