"""Loading DreamPose's official files into native ComfyUI objects, and saving them back in the same layouts.

- ``unet_epoch_N.pth``: a diffusers ``UNet2DConditionModel`` state dict (SD1.4 shapes, ``conv_in`` 14 -> 320),
  sometimes with DDP's ``module.`` prefix. It becomes an SD15-type ComfyUI MODEL whose 10 extra input channels come
  from concat conditioning (a conditioning entry ``"noise_concat"`` of shape (frames, 10, h, w) becomes ``c_concat``).
- ``adapter_N.pth``: ``vae2clip.*`` and ``linear1.*`` (see ``adapter``).
- ``vae_N.pth``: a diffusers ``AutoencoderKL`` state dict whose mid-block attention still has the pre-0.14 diffusers
  names (``query``/``key``/``value``/``proj_attn``); ComfyUI's own diffusers VAE conversion maps both those and the
  current names (``to_q``/``to_k``/``to_v``/``to_out.0``), so it becomes a plain ComfyUI VAE.

The UNet config is derived from the keys and shapes rather than left to ComfyUI's diffusers detection, which only
recognises exact known configs.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Sequence

import torch

from ..checkpoints import load_state_dict, strip_prefix
from ..errors import AnimaPoseError
from .adapter import EmbeddingAdapter, adapter_from_state_dict

log = logging.getLogger(__name__)

DREAMPOSE_IN_CHANNELS = 14
_UNET_WHAT = "DreamPose UNet (unet_epoch_N.pth)"
_UNET_FIX = "pick DreamPose's unet_epoch_N.pth: a diffusers UNet whose conv_in takes 14 channels (4 latent + 5 poses x UV)"
_VAE_FIX = "pick DreamPose's vae_N.pth (or any SD1.x VAE in diffusers or original layout)"
_LDM_PREFIX = "model.diffusion_model."
# Keys every diffusers UNet2DConditionModel has.
_UNET_CORE = ("conv_in.weight", "conv_out.weight", "time_embedding.linear_1.weight", "down_blocks.0.resnets.0.conv1.weight")


def read_unet_state_dict(path: str, input_name: str = "unet_name") -> dict[str, torch.Tensor]:
    """The diffusers-keyed UNet weights of a DreamPose UNet file, ``module.`` stripped, after format checks."""
    sd = strip_prefix(load_state_dict(path, input_name, _UNET_WHAT), "module.")
    name = os.path.basename(path)
    if any(k.startswith((_LDM_PREFIX, "input_blocks.")) for k in sd):
        raise AnimaPoseError(input_name, f"'{name}' is a Stable Diffusion model in the original (LDM) layout, not a "
                             "DreamPose UNet", _UNET_FIX)
    if set(sd) <= {"vae2clip.weight", "vae2clip.bias", "linear1.weight", "linear1.bias"}:
        raise AnimaPoseError(input_name, f"'{name}' is a DreamPose adapter file, not the UNet", _UNET_FIX)
    missing = [k for k in _UNET_CORE if k not in sd]
    if missing:
        raise AnimaPoseError(input_name, f"'{name}' is not a diffusers UNet (no {', '.join(missing)})", _UNET_FIX)
    conv_in = sd["conv_in.weight"]
    if conv_in.ndim != 4 or conv_in.shape[1] != DREAMPOSE_IN_CHANNELS:
        channels = conv_in.shape[1] if conv_in.ndim == 4 else "?"
        if channels == 4:
            problem = f"'{name}' is a plain Stable Diffusion UNet (conv_in takes 4 channels), not a DreamPose UNet"
        else:
            problem = f"'{name}' has a conv_in of shape {list(conv_in.shape)}; DreamPose's takes 14 input channels"
        raise AnimaPoseError(input_name, problem, _UNET_FIX)
    return sd


def _count(sd: dict, prefix: str) -> int:
    """1 + the largest index ``i`` among keys ``prefix + "i." ...``; 0 when there is none."""
    found = [int(k[len(prefix):].split(".", 1)[0]) for k in sd if k.startswith(prefix)]
    return 1 + max(found) if found else 0


def ldm_unet_config(sd: dict[str, torch.Tensor], input_name: str = "unet_name") -> dict:
    """ComfyUI ``UNetModel`` config of a diffusers SD1.x-style UNet state dict, read from its keys and shapes."""
    model_channels, in_channels = sd["conv_in.weight"].shape[:2]
    levels = _count(sd, "down_blocks.")
    num_res_blocks, channel_mult, transformer_depth = [], [], []
    for i in range(levels):
        blocks = _count(sd, f"down_blocks.{i}.resnets.")
        num_res_blocks.append(blocks)
        conv2 = sd.get(f"down_blocks.{i}.resnets.0.conv2.weight")
        if conv2 is None:
            raise AnimaPoseError(input_name, f"the UNet lacks down_blocks.{i}.resnets.0.conv2.weight; the file is "
                                 "truncated or not an SD UNet", _UNET_FIX)
        channel_mult.append(conv2.shape[0] // model_channels)
        transformer_depth += [_count(sd, f"down_blocks.{i}.attentions.{j}.transformer_blocks.") for j in range(blocks)]
    depth_out = []
    for i in range(levels):
        blocks = _count(sd, f"up_blocks.{i}.resnets.")
        if blocks != num_res_blocks[levels - 1 - i] + 1:
            raise AnimaPoseError(input_name, f"up_blocks.{i} has {blocks} res blocks, which does not mirror the down "
                                 "blocks of an SD UNet", _UNET_FIX)
        depth_out += [_count(sd, f"up_blocks.{i}.attentions.{j}.transformer_blocks.") for j in range(blocks)]
    to_k = [v for k, v in sd.items() if k.endswith("attn2.to_k.weight")]
    proj_in = [v for k, v in sd.items() if k.endswith(".proj_in.weight")]
    if not to_k or not proj_in:
        raise AnimaPoseError(input_name, "the UNet has no cross-attention layers", _UNET_FIX)
    has_mid_attention = "mid_block.attentions.0.proj_in.weight" in sd
    return {
        "use_checkpoint": False, "image_size": 32, "use_spatial_transformer": True, "legacy": False,
        "adm_in_channels": None, "use_temporal_attention": False, "use_temporal_resblock": False,
        "in_channels": int(in_channels), "out_channels": int(sd["conv_out.weight"].shape[0]),
        "model_channels": int(model_channels), "num_res_blocks": num_res_blocks, "channel_mult": channel_mult,
        "transformer_depth": transformer_depth,
        # ComfyUI lists the output blocks' depths from the last output block back to the first.
        "transformer_depth_output": depth_out[::-1],
        "transformer_depth_middle": _count(sd, "mid_block.attentions.0.transformer_blocks.") if has_mid_attention else -1,
        "context_dim": int(to_k[0].shape[1]), "use_linear_in_transformer": proj_in[0].ndim == 2,
        # Head count is not visible in the shapes; SD1.x (and so DreamPose) uses 8 heads everywhere.
        "num_heads": 8, "num_head_channels": -1,
    }


def unet_ldm_keys(sd: dict[str, torch.Tensor], config: dict, input_name: str = "unet_name") -> dict[str, torch.Tensor]:
    """The same tensors under ComfyUI's (LDM) UNet key names."""
    from ..comfy_seam import comfy_utils

    to_ldm = comfy_utils.unet_to_diffusers(config)
    unknown = sorted(k for k in sd if k not in to_ldm)
    if unknown:
        raise AnimaPoseError(input_name, f"the UNet has {len(unknown)} weights an SD1.x UNet does not have "
                             f"(e.g. {unknown[:3]})", _UNET_FIX)
    return {to_ldm[k]: v for k, v in sd.items()}


def unet_to_model(sd: dict[str, torch.Tensor], dtype: torch.dtype | None = None, input_name: str = "unet_name"):
    """A native SD15-type ComfyUI MODEL (``ModelPatcher``) from a DreamPose UNet state dict (diffusers keys).

    The 14-channel ``conv_in`` reads the noisy latent followed by ``c_concat``: put the (frames, 10, h, w) pose
    windows in the conditioning as ``"noise_concat"``. Model sampling is SD1.x's (scaled-linear betas, eps), the
    schedule of the SD1.4 scheduler DreamPose was trained and sampled with. ``dtype`` None lets ComfyUI choose.
    """
    from ..comfy_seam import comfy_sd, comfy_supported_models

    config = ldm_unet_config(sd, input_name)
    ldm = unet_ldm_keys(sd, config, input_name)
    expected = _expected_ldm_shapes(config)
    missing = sorted(set(expected) - set(ldm))
    if missing:
        raise AnimaPoseError(input_name, f"the UNet file lacks {len(missing)} weights (e.g. {missing[:3]}); it is "
                             "truncated or not a complete DreamPose UNet", _UNET_FIX)
    wrong = sorted(k for k, v in ldm.items() if k in expected and tuple(v.shape) != expected[k])
    if wrong:
        raise AnimaPoseError(input_name, f"{len(wrong)} UNet weights have shapes an SD1.x UNet cannot have (e.g. "
                             f"{wrong[0]}: {list(ldm[wrong[0]].shape)} vs {list(expected[wrong[0]])})", _UNET_FIX)
    options = {"dtype": dtype} if dtype is not None else {}
    patcher = comfy_sd.load_diffusion_model_state_dict({_LDM_PREFIX + k: v for k, v in ldm.items()}, options)
    if patcher is None or not isinstance(patcher.model.model_config, comfy_supported_models.SD15):
        found = type(patcher.model.model_config).__name__ if patcher is not None else "nothing"
        raise AnimaPoseError(input_name, f"ComfyUI recognised this UNet as {found}, not as an SD1.x UNet "
                             f"(context {config['context_dim']}, {config['model_channels']} channels)", _UNET_FIX)
    detected = patcher.model.model_config.unet_config
    for key in ("in_channels", "model_channels", "num_res_blocks", "channel_mult", "transformer_depth",
                "transformer_depth_output", "transformer_depth_middle", "context_dim"):
        if detected.get(key) != config[key]:
            raise RuntimeError(f"DreamPose UNet: ComfyUI detected {key}={detected.get(key)}, keys say {config[key]}")
    return patcher


def _expected_ldm_shapes(config: dict) -> dict[str, tuple]:
    from ..comfy_seam import UNetModel, comfy_ops, module_shapes

    # Built on the meta device: the shapes cost no memory and almost no time.
    return module_shapes(UNetModel(**config, device="meta", operations=comfy_ops.disable_weight_init))


def load_unet(path: str, input_name: str = "unet_name", dtype: torch.dtype | None = None):
    return unet_to_model(read_unet_state_dict(path, input_name), dtype=dtype, input_name=input_name)


def read_adapter(path: str, input_name: str = "adapter_name") -> EmbeddingAdapter:
    sd = strip_prefix(load_state_dict(path, input_name, "DreamPose adapter (adapter_N.pth)"), "module.")
    return adapter_from_state_dict(sd, input_name)


def read_vae(path: str, input_name: str = "vae_name", dtype: torch.dtype | None = None):
    """A native ``comfy.sd.VAE`` from DreamPose's ``vae_N.pth`` (legacy or current diffusers names) or an LDM VAE."""
    from ..comfy_seam import comfy_diffusers_convert, comfy_sd

    sd = strip_prefix(load_state_dict(path, input_name, "DreamPose VAE (vae_N.pth)"), "module.")
    name = os.path.basename(path)
    if any(k.startswith("first_stage_model.") for k in sd):
        sd = {k[len("first_stage_model."):]: v for k, v in sd.items() if k.startswith("first_stage_model.")}
    if "taesd_decoder.1.weight" in sd:
        return _read_taesd(sd, name, input_name, dtype)
    diffusers = "decoder.up_blocks.0.resnets.0.norm1.weight" in sd
    if not diffusers and "decoder.up.0.block.0.norm1.weight" not in sd:
        what = "a UNet" if "conv_in.weight" in sd else "an adapter" if "linear1.weight" in sd else "not a VAE"
        raise AnimaPoseError(input_name, f"'{name}' is {what}: it has no autoencoder decoder weights", _VAE_FIX)
    quant = sd.get("quant_conv.weight")
    if quant is None or tuple(quant.shape[:2]) != (8, 8):
        shape = list(quant.shape) if quant is not None else "missing"
        raise AnimaPoseError(input_name, f"'{name}' is not an SD1.x VAE with 4 latent channels (quant_conv {shape})",
                             _VAE_FIX)
    provided = set(comfy_diffusers_convert.convert_vae_state_dict(sd) if diffusers else sd)
    try:
        vae = comfy_sd.VAE(sd=dict(sd), dtype=dtype)
    except RuntimeError as e:  # size mismatches: a VAE of another architecture
        raise AnimaPoseError(input_name, f"'{name}' does not fit an SD1.x VAE ({str(e).splitlines()[0]})",
                             _VAE_FIX) from e
    if getattr(vae, "first_stage_model", None) is None:
        raise AnimaPoseError(input_name, f"ComfyUI does not recognise '{name}' as a VAE; it is truncated or not a "
                             "complete SD1.x VAE", _VAE_FIX)
    missing = sorted(set(vae.first_stage_model.state_dict()) - provided)
    if missing:
        raise AnimaPoseError(input_name, f"the VAE file lacks {len(missing)} weights (e.g. {missing[:3]}); it is "
                             "truncated or not a complete SD1.x VAE", _VAE_FIX)
    return vae


def _read_taesd(sd: dict, name: str, input_name: str, dtype):
    """A TAESD-architecture SD1.x VAE (``taesd_encoder.*``/``taesd_decoder.*``, as in SD1.x checkpoints that carry
    TAESD, such as the pack's demo DreamPose): ComfyUI builds it; here the latent width and completeness are checked."""
    from ..comfy_seam import comfy_sd

    channels = sd["taesd_decoder.1.weight"].shape[1]
    if channels != 4 or "taesd_encoder.0.weight" not in sd:
        raise AnimaPoseError(input_name, f"'{name}' is a TAESD with {channels} latent channels"
                             f"{'' if 'taesd_encoder.0.weight' in sd else ' and no encoder'}; DreamPose needs an SD1.x "
                             "VAE (4 channels, encoder and decoder)", _VAE_FIX)
    vae = comfy_sd.VAE(sd=dict(sd), dtype=dtype)
    missing = sorted(k for k in vae.first_stage_model.state_dict() if k not in sd and not k.startswith("vae_"))
    if missing:
        raise AnimaPoseError(input_name, f"the TAESD file lacks {len(missing)} weights (e.g. {missing[:3]})", _VAE_FIX)
    return vae


def _vae_ldm_to_diffusers(ldm: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """ComfyUI's (LDM) VAE keys back to current diffusers ``AutoencoderKL`` names, checked by a round trip."""
    from ..comfy_seam import comfy_diffusers_convert as dc

    out = {}
    for key, value in ldm.items():
        new = key
        for sd_part, hf_part in dc.vae_conversion_map:
            new = new.replace(sd_part, hf_part)
        if "mid_block.attentions.0." in new:
            for sd_part, hf_part in (("norm.", "group_norm."), ("q.", "to_q."), ("k.", "to_k."), ("v.", "to_v."),
                                     ("proj_out.", "to_out.0.")):
                tail = new.split("mid_block.attentions.0.", 1)[1]
                if tail.startswith(sd_part):
                    new = new.replace("mid_block.attentions.0." + sd_part, "mid_block.attentions.0." + hf_part)
                    break
            if new.endswith("weight") and value.ndim == 4 and "group_norm" not in new:
                value = value.reshape(value.shape[:2])
        out[new] = value
    back = dc.convert_vae_state_dict(dict(out))
    if set(back) != set(ldm):
        raise RuntimeError(f"VAE key round trip failed: {sorted(set(back) ^ set(ldm))[:4]}")
    return out


def _unet_diffusers_state_dict(model) -> dict[str, torch.Tensor]:
    from ..comfy_seam import comfy_model_management, weights_patcher

    # Bake any weight patches (LoRA, finetune deltas) into the saved weights.
    model = weights_patcher(model)
    comfy_model_management.load_models_gpu([model], force_patch_weights=True)
    return unet_diffusers_keys(model.model.diffusion_model.state_dict(), model.model.model_config.unet_config)


def unet_diffusers_keys(ldm: dict[str, torch.Tensor], unet_config: dict) -> dict[str, torch.Tensor]:
    """ComfyUI (LDM) UNet weights under the diffusers names of DreamPose's unet_epoch_N.pth."""
    from ..comfy_seam import comfy_utils

    to_ldm = comfy_utils.unet_to_diffusers(unet_config)
    from_ldm = {v: k for k, v in to_ldm.items()}
    missing = sorted(k for k in ldm if k not in from_ldm)
    if missing:
        raise RuntimeError(f"UNet weights without a diffusers name: {missing[:4]}")
    return {from_ldm[k]: v for k, v in ldm.items()}


def save_dreampose_set(model, adapter: EmbeddingAdapter | None, vae, directory: str, prefix: str,
                       other_folders: Sequence[str] = ()) -> list[Path]:
    """Writes ``{prefix}_{counter}_unet``, ``..._adapter`` and ``..._vae`` ``.safetensors`` in the official key layouts.

    ``prefix`` may lead into sub-folders of ``directory`` ('/' between them; checked by the caller with
    ``output_names.check_output_name``). The counter (5 digits, ComfyUI's save convention) is one past the highest
    already used with this prefix under any extension, in ``directory`` and in ``other_folders`` (the other folders
    the loader lists), so saving again never replaces an earlier set nor lists one name twice.

    The UNet and VAE use diffusers names (the VAE with current attention names, which diffusers and ComfyUI both
    load); the adapter its own. Each file reloads with ``read_unet_state_dict``/``read_adapter``/``read_vae``.
    ``adapter`` or ``vae`` may be None to skip that file.
    """
    import safetensors.torch

    sub, stem = os.path.split(prefix)
    out_dir = Path(directory) / sub
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = [("unet", _unet_diffusers_state_dict(model) if model is not None else None),
             ("adapter", adapter.state_dict() if adapter is not None else None),
             ("vae", _vae_ldm_to_diffusers(vae.first_stage_model.state_dict()) if vae is not None else None)]
    written = []
    counter = max(next_counter(Path(d) / sub, stem, [part for part, _ in parts]) for d in (directory, *other_folders))
    for part, sd in parts:
        if sd is None:
            continue
        path = out_dir / f"{stem}_{counter:05d}_{part}.safetensors"
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in sd.items()}
        tmp = path.with_name(path.name + ".tmp")
        safetensors.torch.save_file(tensors, str(tmp), metadata={"format": "pt", "animapose": f"dreampose-{part}"})
        os.replace(tmp, path)
        log.info("saved DreamPose %s to %s", part, path)
        written.append(path)
    return written


def next_counter(directory: Path, prefix: str, parts: list[str]) -> int:
    """One past the highest counter of ``{prefix}_{NNNNN}_{part}.<any extension>`` files in ``directory`` (1 when
    it does not exist)."""
    pattern = re.compile(rf"^{re.escape(prefix)}_(\d{{5}})_({'|'.join(map(re.escape, parts))})\..*$")
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        names = []
    used = [int(m.group(1)) for name in names if (m := pattern.match(name))]
    return max(used, default=0) + 1
