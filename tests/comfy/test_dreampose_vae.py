"""DreamPose's vae_N.pth (legacy diffusers attention names) as a native ComfyUI VAE, against diffusers."""

from __future__ import annotations

import logging

import comfy.sd
import pytest
import torch

from comfyui_animapose.animapose.checkpoints import load_state_dict
from comfyui_animapose.animapose.dreampose import checkpoint
from comfyui_animapose.workshop.fixtures import dreampose as fx

log = logging.getLogger(__name__)


@pytest.fixture(scope="module")
def comfy_vae():
    return checkpoint.read_vae(str(fx.dreampose_vae_file(".pth", legacy_attention_names=True)), dtype=torch.float32)


@pytest.fixture(scope="module")
def diffusers_vae():
    """The file loaded through diffusers' own legacy-attention key conversion (what from_pretrained applies)."""
    from diffusers import AutoencoderKL

    sd = load_state_dict(str(fx.dreampose_vae_file(".pth", legacy_attention_names=True)), "vae")
    with torch.device("meta"):
        vae = AutoencoderKL(**fx.vae_diffusers_config())
    vae._fix_state_dict_keys_on_load(sd)
    vae.load_state_dict(sd, strict=True, assign=True)
    return vae.eval()


def _rel(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def test_is_a_native_comfy_vae(comfy_vae):
    assert isinstance(comfy_vae, comfy.sd.VAE)
    assert comfy_vae.latent_channels == 4 and comfy_vae.downscale_ratio == 8
    assert comfy_vae.vae_dtype == torch.float32


def test_encode_and_decode_match_diffusers(comfy_vae, diffusers_vae):
    g = torch.Generator().manual_seed(0)
    pixels = torch.rand(2, 64, 48, 3, generator=g)  # ComfyUI IMAGE in [0, 1]
    latent = comfy_vae.encode(pixels)
    with torch.no_grad():
        expected = diffusers_vae.encode(pixels.permute(0, 3, 1, 2) * 2 - 1).latent_dist.mode()
    enc_rel = _rel(latent, expected)

    z = torch.randn(2, 4, 8, 6, generator=g)
    with torch.no_grad():
        raw = comfy_vae.first_stage_model.decode(z)
        ref = diffusers_vae.decode(z).sample
    dec_rel = _rel(raw, ref)
    log.info("DreamPose VAE parity vs diffusers: encode %.3g, decode %.3g (max relative error)", enc_rel, dec_rel)
    assert enc_rel <= 1e-4 and dec_rel <= 1e-4
    images = comfy_vae.decode(z)  # the VAEDecode path: (B, H, W, 3) in [0, 1]
    torch.testing.assert_close(images, ((ref + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1), rtol=0, atol=1e-4)


def test_vae_nodes_accept_it(comfy_vae):
    import nodes

    pixels = torch.rand(1, 32, 32, 3, generator=torch.Generator().manual_seed(1))
    latent = nodes.VAEEncode().encode(comfy_vae, pixels)[0]
    assert latent["samples"].shape == (1, 4, 4, 4)
    image = nodes.VAEDecode().decode(comfy_vae, latent)[0]
    assert image.shape == (1, 32, 32, 3)


def test_modern_and_legacy_names_give_the_same_vae(comfy_vae):
    modern = checkpoint.read_vae(str(fx.dreampose_vae_file(".pth", legacy_attention_names=False)),
                                 dtype=torch.float32)
    z = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(2))
    assert torch.equal(modern.decode(z), comfy_vae.decode(z))
