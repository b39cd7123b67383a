"""CLIP ViT-B/32 image features for DreamPose's adapter, through transformers' ``CLIPVisionModel``.

DreamPose uses ``openai/clip-vit-base-patch32``'s ``last_hidden_state`` (the 50 tokens before the post-layernorm),
preprocessed by ``CLIPProcessor``: shortest side to 224 with PIL bicubic, centre crop 224, CLIP mean/std. That
preprocessing is reproduced by running transformers' own PIL-backed CLIP image processor on the 8-bit picture (PIL's
uint8 bicubic resize cannot be matched exactly in torch). Loading is separate from encoding so a node can cache the
model.

Training fed CLIP differently from inference: train.py passes [0, 1] float tensors, which CLIPProcessor rescales by
1/255 a second time. ``value_range="clean"`` reproduces that input; ``"legacy"`` (default) is test.py's.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from ..checkpoints import load_state_dict, strip_prefix
from ..errors import AnimaPoseError

# openai/clip-vit-base-patch32's preprocessor_config.json
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
CLIP_SIZE = 224
BICUBIC = 3

_PREFIX = "vision_model."
EXPECTED_TOKENS = 50
EXPECTED_WIDTH = 768
_FIX = "load openai/clip-vit-base-patch32 (a folder with config.json and model.safetensors, or its weights file)"


def load_clip_vision(path: str, input_name: str = "clip_name", dtype: torch.dtype = torch.float32):
    """A ``CLIPVisionModel`` (eval mode) from a ``save_pretrained`` folder or a single HF-layout weights file."""
    from transformers import CLIPVisionModel

    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, "config.json")):
            raise AnimaPoseError(input_name, f"folder '{path}' has no config.json", _FIX)
        try:
            model, info = CLIPVisionModel.from_pretrained(path, local_files_only=True, output_loading_info=True)
        except (OSError, ValueError, RuntimeError) as e:
            raise AnimaPoseError(input_name, f"'{path}' could not be loaded as a CLIP vision model ({e})", _FIX) from e
        # from_pretrained fills weights missing from the folder with random values instead of failing.
        missing = [k for k in info.get("missing_keys", []) if not k.endswith("position_ids")]
        if missing:
            raise AnimaPoseError(input_name, f"'{path}' lacks {len(missing)} CLIP vision weights (e.g. {missing[:3]})",
                                 _FIX)
        model = model.to(dtype)
    else:
        sd = _vision_state_dict(load_state_dict(path, input_name, "CLIP vision model"), input_name)
        model = CLIPVisionModel(config_from_state_dict(sd))
        if not any(k.startswith(_PREFIX) for k in model.state_dict()):
            # transformers 5 keeps the tower's weights without the prefix; files keep it.
            sd = {k[len(_PREFIX):]: v for k, v in sd.items()}
        result = model.load_state_dict(sd, strict=False)
        missing = [k for k in result.missing_keys if not k.endswith("position_ids")]
        unexpected = [k for k in result.unexpected_keys if not k.endswith("position_ids")]
        if missing or unexpected:
            raise AnimaPoseError(input_name, f"the CLIP weights do not fit a CLIP vision model (missing {missing[:3]}, "
                                 f"unexpected {unexpected[:3]})", _FIX)
        model = model.to(dtype)
    _check_b32(model.config, input_name)
    return model.eval()


def _vision_state_dict(sd: dict[str, torch.Tensor], input_name: str) -> dict[str, torch.Tensor]:
    """The vision tower's weights under ``vision_model.*`` names (a full CLIPModel file also holds a text tower)."""
    sd = strip_prefix(sd, "module.")
    if "embeddings.patch_embedding.weight" in sd:  # saved by transformers 5, which drops the prefix
        sd = {_PREFIX + k: v for k, v in sd.items()}
    vision = {k: v for k, v in sd.items() if k.startswith(_PREFIX)}
    if not vision:
        if any(k.startswith("visual.") for k in sd):
            problem = "the file is an OpenCLIP/OpenAI-layout CLIP ('visual.*' keys), not the transformers layout"
        else:
            problem = "the file holds no 'vision_model.*' weights, so it is not a transformers CLIP vision model"
        raise AnimaPoseError(input_name, problem, _FIX)
    return vision


def config_from_state_dict(sd: dict[str, torch.Tensor]):
    """``CLIPVisionConfig`` read off the shapes of ``vision_model.*`` weights (heads = width / 64, as in CLIP)."""
    from transformers import CLIPVisionConfig

    patch = sd["vision_model.embeddings.patch_embedding.weight"]
    positions = sd["vision_model.embeddings.position_embedding.weight"].shape[0]
    grid = round((positions - 1) ** 0.5)
    layers = 1 + max(int(k.split(".")[3]) for k in sd if k.startswith("vision_model.encoder.layers."))
    hidden = patch.shape[0]
    return CLIPVisionConfig(
        hidden_size=hidden,
        intermediate_size=sd["vision_model.encoder.layers.0.mlp.fc1.weight"].shape[0],
        num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 64),
        num_channels=patch.shape[1],
        patch_size=patch.shape[-1],
        image_size=grid * patch.shape[-1],
    )


def _check_b32(config, input_name: str) -> None:
    tokens = (config.image_size // config.patch_size) ** 2 + 1
    if tokens != EXPECTED_TOKENS or config.hidden_size != EXPECTED_WIDTH:
        raise AnimaPoseError(
            input_name,
            f"this CLIP vision model gives {tokens} tokens of width {config.hidden_size} (patch {config.patch_size}, "
            f"image {config.image_size}); DreamPose's adapter needs CLIP ViT-B/32: {EXPECTED_TOKENS} tokens of width "
            f"{EXPECTED_WIDTH}", _FIX)


def image_processor():
    """The PIL-backed CLIP image processor with openai/clip-vit-base-patch32's settings."""
    try:
        from transformers import CLIPImageProcessorPil as Processor
    except ImportError:  # transformers 4.x: the plain class is the PIL one
        from transformers import CLIPImageProcessor as Processor
    return Processor(size={"shortest_edge": CLIP_SIZE}, crop_size={"height": CLIP_SIZE, "width": CLIP_SIZE},
                     resample=BICUBIC, image_mean=CLIP_MEAN, image_std=CLIP_STD, do_resize=True,
                     do_center_crop=True, do_rescale=True, do_normalize=True, do_convert_rgb=True)


def to_pil(images: torch.Tensor) -> list:
    """ComfyUI IMAGE (B, H, W, C) float in [0, 1] -> 8-bit RGB PIL images, as a PNG loader would have produced."""
    from PIL import Image

    if images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
        raise AnimaPoseError("image", f"expected an IMAGE batch [batch, height, width, 3], got {list(images.shape)}",
                             "connect an IMAGE output")
    arr = (images[..., :3].float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    return [Image.fromarray(a, "RGB") for a in arr]


def preprocess(images: torch.Tensor, value_range: str = "legacy") -> torch.Tensor:
    """IMAGE (B, H, W, C) -> CLIP pixel values (B, 3, 224, 224).

    ``"legacy"`` (default) equals the official pipeline's ``CLIPProcessor`` on the 8-bit picture (test.py's
    inference). ``"clean"`` reproduces what training fed CLIP: train.py and finetune-unet.py pass [0, 1] float
    tensors, which the processor rescales by 1/255 a second time, so CLIP saw the picture at 1/255 of its brightness.
    """
    out = image_processor()(images=to_pil(images), return_tensors="np")["pixel_values"]
    pixels = torch.from_numpy(np.asarray(out, dtype=np.float32))
    if value_range == "legacy":
        return pixels
    if value_range != "clean":
        raise ValueError(f"value_range must be 'legacy' or 'clean', not {value_range!r}")
    mean = torch.tensor(CLIP_MEAN)[:, None, None]
    std = torch.tensor(CLIP_STD)[:, None, None]
    return ((pixels * std + mean) / 255.0 - mean) / std


@torch.no_grad()
def encode_images(model, images: torch.Tensor, value_range: str = "legacy") -> torch.Tensor:
    """IMAGE (B, H, W, C) in [0, 1] -> (B, 50, 768): ``last_hidden_state``, before the post-layernorm.

    The unconditional tokens of DreamPose's guidance are ``encode_images(model, torch.zeros_like(images))``: the
    official pipeline encodes an all-black picture.
    """
    param = next(model.parameters())
    pixels = preprocess(images, value_range).to(device=param.device, dtype=param.dtype)
    return model(pixel_values=pixels).last_hidden_state
