"""DreamPose's CLIP-VAE embedding adapter: a reference image becomes 50 cross-attention tokens of width 768.

The image enters twice. CLIP ViT-B/32 gives 50 tokens (``last_hidden_state``, see ``clip_image``). The SD VAE gives
a (B, 4, 80, 64) latent; a 2x2 max-pool makes it (B, 4, 40, 32), each of the 4 channels is flattened row-major into
1280 features and ``vae2clip`` (Linear 1280 -> 768) turns the channels into 4 more tokens. The 54 tokens are mixed
into 50 by ``linear1`` (Linear 54 -> 50) acting along the token axis::

    tokens = linear1(cat([clip, vae2clip(flatten(maxpool(latent)))], dim=1).transpose(1, 2)).transpose(1, 2)

Parameter names are the official ones, so an ``adapter_N.pth`` state dict loads as it is. Only a 640x512 (or
512x640) image gives the 1280 features ``vae2clip`` was trained on; other sizes are refused.

The official unconditional tokens come from an all-black image built with width and height swapped (512 high, 640
wide); both orientations are accepted, and only that one reproduces the official tokens exactly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import AnimaPoseError

CLIP_TOKENS = 50
VAE_TOKENS = 4
TOKEN_WIDTH = 768
VAE_FEATURES = 1280
# SD1.x latent scale; the official code multiplies the VAE output by it before the adapter.
SD_LATENT_SCALE = 0.18215

EXPECTED_SHAPES = {
    "vae2clip.weight": (TOKEN_WIDTH, VAE_FEATURES),
    "vae2clip.bias": (TOKEN_WIDTH,),
    "linear1.weight": (CLIP_TOKENS, CLIP_TOKENS + VAE_TOKENS),
    "linear1.bias": (CLIP_TOKENS,),
}


class EmbeddingAdapter(nn.Module):
    def __init__(self, device=None, dtype=None):
        super().__init__()
        self.vae2clip = nn.Linear(VAE_FEATURES, TOKEN_WIDTH, device=device, dtype=dtype)
        self.linear1 = nn.Linear(CLIP_TOKENS + VAE_TOKENS, CLIP_TOKENS, device=device, dtype=dtype)

    @torch.no_grad()
    def init_official(self) -> "EmbeddingAdapter":
        """The training start point: PyTorch's default Linear init, then ``linear1.weight = eye(50, 54)``.

        The identity passes the 50 CLIP tokens straight through and gives the 4 VAE tokens zero weight; the bias of
        ``linear1`` and all of ``vae2clip`` keep their random default init, as in the official code.
        """
        self.vae2clip.reset_parameters()
        self.linear1.reset_parameters()
        self.linear1.weight.copy_(torch.eye(CLIP_TOKENS, CLIP_TOKENS + VAE_TOKENS))
        return self

    def forward(self, clip_hidden: torch.Tensor, vae_latent: torch.Tensor) -> torch.Tensor:
        """(B, 50, 768) CLIP tokens and a (B, 4, 80, 64) latent scaled by 0.18215 -> (B, 50, 768)."""
        check_inputs(clip_hidden, vae_latent)
        ref = self.linear1.weight
        clip_hidden = clip_hidden.to(device=ref.device, dtype=ref.dtype)
        vae_latent = vae_latent.to(device=ref.device, dtype=ref.dtype)
        vae_tokens = self.vae2clip(F.max_pool2d(vae_latent, 2).flatten(2))
        tokens = torch.cat([clip_hidden, vae_tokens], dim=1)
        return self.linear1(tokens.transpose(1, 2)).transpose(1, 2)


def check_inputs(clip_hidden: torch.Tensor, vae_latent: torch.Tensor, input_name: str = "image") -> None:
    if clip_hidden.ndim != 3 or tuple(clip_hidden.shape[1:]) != (CLIP_TOKENS, TOKEN_WIDTH):
        raise AnimaPoseError(
            input_name,
            f"the CLIP image features have shape {list(clip_hidden.shape)}; DreamPose's adapter reads CLIP ViT-B/32's "
            f"[batch, {CLIP_TOKENS}, {TOKEN_WIDTH}] last hidden state",
            "load openai/clip-vit-base-patch32 as the CLIP vision model (not ViT-L/14 or ViT-H)",
        )
    if vae_latent.ndim != 4 or vae_latent.shape[1] != VAE_TOKENS:
        raise AnimaPoseError(input_name, f"the VAE latent has shape {list(vae_latent.shape)}, expected [batch, 4, 80, 64]",
                             "encode the reference image with the DreamPose (SD1.x) VAE")
    h, w = vae_latent.shape[-2:]
    if (h // 2) * (w // 2) != VAE_FEATURES:
        raise AnimaPoseError(
            input_name,
            f"the reference image is {w * 8}x{h * 8} pixels (latent {h}x{w}); DreamPose's adapter maps exactly 1280 "
            "pooled latent values per channel, which only a 512x640 (width x height) image gives",
            "resize or crop the reference image to 512 wide x 640 high before encoding it",
        )
    if clip_hidden.shape[0] != vae_latent.shape[0]:
        raise AnimaPoseError(input_name, f"{clip_hidden.shape[0]} CLIP feature rows for {vae_latent.shape[0]} VAE latents",
                             "encode the same reference image(s) with CLIP and with the VAE")


def adapter_from_state_dict(sd: dict[str, torch.Tensor], input_name: str = "adapter_name") -> EmbeddingAdapter:
    """An ``EmbeddingAdapter`` holding ``sd`` (official ``adapter_N.pth`` keys), after checking every shape."""
    missing = [k for k in EXPECTED_SHAPES if k not in sd]
    if missing:
        hint = ""
        if "conv_in.weight" in sd:
            hint = " (this is a UNet file)"
        elif any(k.startswith(("encoder.", "decoder.")) for k in sd):
            hint = " (this is a VAE file)"
        raise AnimaPoseError(input_name, f"the file is not a DreamPose adapter{hint}: it lacks {', '.join(missing)}",
                             "pick DreamPose's adapter_N.pth (keys vae2clip.* and linear1.*)")
    extra = sorted(k for k in sd if k not in EXPECTED_SHAPES)
    if extra:
        raise AnimaPoseError(input_name, f"the adapter file has unexpected keys {extra[:4]}",
                             "pick DreamPose's adapter_N.pth, which holds only vae2clip.* and linear1.*")
    for key, shape in EXPECTED_SHAPES.items():
        got = tuple(sd[key].shape)
        if got != shape:
            raise AnimaPoseError(input_name, f"{key} has shape {list(got)}, expected {list(shape)}; {_shape_reason(key)}",
                                 "pick the adapter_N.pth saved together with the DreamPose UNet you use")
    adapter = EmbeddingAdapter(dtype=sd["linear1.weight"].dtype)
    adapter.load_state_dict(sd)
    return adapter.eval()


def _shape_reason(key: str) -> str:
    if key.startswith("linear1"):
        return "linear1 mixes 54 tokens (50 CLIP ViT-B/32 + 4 VAE) into the 50 tokens the UNet cross-attends to"
    return "vae2clip maps the 1280 pooled latent values of a 512x640 image to CLIP's width 768"


def vae_encode_input(images: torch.Tensor, value_range: str = "clean") -> torch.Tensor:
    """The IMAGE to give ComfyUI's ``VAE.encode`` so the VAE sees the pixel values the official code fed it.

    ComfyUI's VAE maps its [0, 1] input to ``2x - 1``. DreamPose fed the adapter's VAE branch differently:
    ``"clean"`` (training, train.py / finetune-unet.py) used [0, 1] tensors; ``"legacy"`` (test.py's pipeline) used the
    raw 0-255 PIL array. This returns ``(v + 1) / 2`` for the wanted values ``v``; multiply the encoded latent by
    ``SD_LATENT_SCALE`` before the adapter. (The official code draws ``latent_dist.sample()``; ComfyUI returns the
    mean.)
    """
    if value_range == "clean":
        values = images
    elif value_range == "legacy":
        values = images * 255.0
    else:
        raise ValueError(f"value_range must be 'clean' or 'legacy', not {value_range!r}")
    return (values + 1.0) / 2.0
