"""The DreamPose fixtures have the exact key layouts the official code saves and diffusers loads."""

from __future__ import annotations

import pytest
import torch

from comfyui_animapose.animapose.checkpoints import load_state_dict, strip_prefix
from comfyui_animapose.animapose.dreampose.adapter import EmbeddingAdapter
from comfyui_animapose.workshop.fixtures import dreampose as fx


def _official_unet(profile: str):
    """The official get_unet(): a diffusers SD UNet whose conv_in is swapped for a 14-channel one (on meta)."""
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        unet = UNet2DConditionModel(**fx.unet_diffusers_config(profile))
        unet.conv_in = torch.nn.Conv2d(14, unet.conv_in.out_channels, kernel_size=3, padding=(1, 1))
    return unet


@pytest.mark.parametrize("prefix_module, ext", [(False, ".pth"), (True, ".pth")])
def test_unet_fixture_loads_strictly_into_the_official_unet(prefix_module, ext):
    sd = load_state_dict(str(fx.dreampose_unet_file("small", ext, prefix_module=prefix_module)), "unet")
    assert all(k.startswith("module.") for k in sd) == prefix_module
    sd = strip_prefix(sd, "module.")
    unet = _official_unet("small")
    unet.load_state_dict(sd, strict=True, assign=True)
    assert tuple(unet.conv_in.weight.shape) == (320, 14, 3, 3)
    assert unet.conv_in.weight[:, 4:].abs().min() > 0  # the pose columns carry weight
    assert all(v.dtype == torch.float32 for v in sd.values())


def test_full_profile_has_sd14_shapes():
    shapes = fx.unet_shapes("full")
    assert shapes["conv_in.weight"][0] == (320, 14, 3, 3)
    assert shapes["down_blocks.3.resnets.0.conv1.weight"][0] == (1280, 1280, 3, 3)
    # SD1.4's 859,520,964 UNet parameters plus 10 input channels x 320 x 3 x 3
    assert sum(s.numel() for s, _ in shapes.values()) == 859_520_964 + 10 * 320 * 9
    assert set(shapes) == set(_official_unet("full").state_dict())


def test_adapter_fixture_has_the_official_keys():
    sd = load_state_dict(str(fx.dreampose_adapter_file()), "adapter")
    assert {k: tuple(v.shape) for k, v in sd.items()} == {k: tuple(v.shape) for k, v in EmbeddingAdapter().state_dict().items()}
    assert all(v.abs().min() > 0 or v.numel() > 1000 for v in sd.values())


def test_legacy_vae_names_load_through_diffusers_own_legacy_conversion(tmp_path):
    from diffusers import AutoencoderKL

    path = fx.dreampose_vae_file(".pth", legacy_attention_names=True)
    sd = load_state_dict(str(path), "vae")
    legacy = sorted(k for k in sd if "mid_block.attentions" in k)
    assert "encoder.mid_block.attentions.0.query.weight" in legacy
    assert "decoder.mid_block.attentions.0.proj_attn.bias" in legacy
    assert not any(".to_q." in k or ".to_out." in k for k in sd)
    with pytest.raises(RuntimeError, match="query"):  # what users hit with current diffusers (DreamPose issue #49)
        with torch.device("meta"):
            AutoencoderKL(**fx.vae_diffusers_config()).load_state_dict(sd, strict=True, assign=True)

    with torch.device("meta"):
        AutoencoderKL(**fx.vae_diffusers_config()).save_config(str(tmp_path))
    (tmp_path / "diffusion_pytorch_model.bin").symlink_to(path)
    vae, info = AutoencoderKL.from_pretrained(str(tmp_path), output_loading_info=True)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == []
    torch.testing.assert_close(vae.encoder.mid_block.attentions[0].to_q.weight,
                               sd["encoder.mid_block.attentions.0.query.weight"])


def test_modern_vae_names_load_strictly():
    from diffusers import AutoencoderKL

    sd = load_state_dict(str(fx.dreampose_vae_file(".pth", legacy_attention_names=False)), "vae")
    with torch.device("meta"):
        AutoencoderKL(**fx.vae_diffusers_config()).load_state_dict(sd, strict=True, assign=True)


def test_uv_folder_has_the_official_file_layout():
    import numpy as np

    folder = fx.uv_sequence_folder(frames=3, h=40, w=32, start=50)
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["frame_50_densepose.npy", "frame_51_densepose.npy", "frame_52_densepose.npy"]
    arr = np.load(folder / "frame_50_densepose.npy")
    assert arr.shape == (2, 40, 32) and arr.dtype == np.float64
