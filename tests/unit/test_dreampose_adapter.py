"""DreamPose's CLIP-VAE adapter: maths, official init, parameter names and refusals."""

from __future__ import annotations

import pytest
import torch

from comfyui_animapose.animapose.dreampose.adapter import (
    SD_LATENT_SCALE,
    EmbeddingAdapter,
    adapter_from_state_dict,
    vae_encode_input,
)
from comfyui_animapose.animapose.errors import AnimaPoseError


def _random_adapter(seed: int = 0) -> EmbeddingAdapter:
    torch.manual_seed(seed)
    adapter = EmbeddingAdapter()
    with torch.no_grad():
        for p in adapter.parameters():
            p.normal_(0, 0.05)
    return adapter


def _reference(adapter: EmbeddingAdapter, clip: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
    """Written out index by index: pool 2x2 (max), flatten each channel row-major, project, mix the token axis."""
    b, c, h, w = latent.shape
    pooled = latent.reshape(b, c, h // 2, 2, w // 2, 2).amax(dim=(3, 5))
    flat = pooled.reshape(b, c, (h // 2) * (w // 2))
    vae_tokens = flat @ adapter.vae2clip.weight.T + adapter.vae2clip.bias
    tokens = torch.cat([clip, vae_tokens], dim=1)  # (b, 54, 768): CLIP first, then the 4 VAE tokens
    mixed = torch.einsum("ts,bsd->btd", adapter.linear1.weight, tokens)
    return mixed + adapter.linear1.bias[None, :, None]


def test_parameter_names_and_count_match_the_official_module():
    adapter = EmbeddingAdapter()
    shapes = {k: tuple(v.shape) for k, v in adapter.state_dict().items()}
    assert shapes == {"vae2clip.weight": (768, 1280), "vae2clip.bias": (768,),
                      "linear1.weight": (50, 54), "linear1.bias": (50,)}
    assert sum(p.numel() for p in adapter.parameters()) == 986_558


@pytest.mark.parametrize("hw", [(80, 64), (64, 80)])
def test_forward_equals_the_written_out_maths(hw):
    adapter = _random_adapter()
    g = torch.Generator().manual_seed(1)
    clip = torch.randn(2, 50, 768, generator=g)
    latent = torch.randn(2, 4, *hw, generator=g)
    out = adapter(clip, latent)
    assert out.shape == (2, 50, 768)
    torch.testing.assert_close(out, _reference(adapter, clip, latent), rtol=1e-5, atol=1e-5)


def test_vae_tokens_follow_the_clip_tokens_in_the_token_axis():
    adapter = _random_adapter()
    with torch.no_grad():
        adapter.linear1.weight.zero_()
        adapter.linear1.bias.zero_()
        adapter.linear1.weight[0, 50] = 1.0  # output token 0 := first VAE token
        adapter.linear1.weight[1, 0] = 1.0  # output token 1 := first CLIP token
    clip = torch.randn(1, 50, 768)
    latent = torch.randn(1, 4, 80, 64)
    out = adapter(clip, latent)
    pooled = torch.nn.functional.max_pool2d(latent, 2).flatten(2)
    torch.testing.assert_close(out[0, 0], adapter.vae2clip(pooled)[0, 0])
    torch.testing.assert_close(out[0, 1], clip[0, 0])


def test_official_init_passes_clip_tokens_through_and_ignores_the_vae():
    torch.manual_seed(3)
    adapter = EmbeddingAdapter().init_official()
    assert torch.equal(adapter.linear1.weight, torch.eye(50, 54))
    assert adapter.linear1.bias.abs().sum() > 0  # keeps the default random bias, as the official module does
    clip = torch.randn(1, 50, 768)
    out_a = adapter(clip, torch.randn(1, 4, 80, 64))
    out_b = adapter(clip, torch.randn(1, 4, 80, 64))
    torch.testing.assert_close(out_a, out_b)
    torch.testing.assert_close(out_a, clip + adapter.linear1.bias[None, :, None])


def test_wrong_image_size_is_refused_with_the_resolution():
    adapter = EmbeddingAdapter()
    with pytest.raises(AnimaPoseError, match="512 wide x 640 high") as e:
        adapter(torch.randn(1, 50, 768), torch.randn(1, 4, 64, 64))
    assert "512x512" in str(e.value)


def test_wrong_clip_model_is_refused():
    with pytest.raises(AnimaPoseError, match="ViT-B/32"):
        EmbeddingAdapter()(torch.randn(1, 257, 1024), torch.randn(1, 4, 80, 64))


def test_state_dict_round_trip_and_shape_errors():
    adapter = _random_adapter()
    loaded = adapter_from_state_dict(adapter.state_dict())
    clip, latent = torch.randn(1, 50, 768), torch.randn(1, 4, 80, 64)
    assert torch.equal(loaded(clip, latent), adapter(clip, latent))

    bad = dict(adapter.state_dict())
    bad["linear1.weight"] = torch.zeros(50, 77)
    with pytest.raises(AnimaPoseError, match=r"linear1.weight has shape \[50, 77\].*54 tokens"):
        adapter_from_state_dict(bad, "adapter_name")
    bad = dict(adapter.state_dict())
    bad["vae2clip.weight"] = torch.zeros(768, 1024)
    with pytest.raises(AnimaPoseError, match="1280 pooled latent values"):
        adapter_from_state_dict(bad)
    with pytest.raises(AnimaPoseError, match="UNet file"):
        adapter_from_state_dict({"conv_in.weight": torch.zeros(320, 14, 3, 3)})
    with pytest.raises(AnimaPoseError, match="unexpected keys"):
        adapter_from_state_dict({**adapter.state_dict(), "pool.weight": torch.zeros(1)})


def test_vae_encode_input_gives_the_official_pixel_values_after_comfys_2x_minus_1():
    images = torch.rand(1, 8, 8, 3)
    comfy_process_input = lambda x: x * 2.0 - 1.0
    torch.testing.assert_close(comfy_process_input(vae_encode_input(images, "clean")), images)
    torch.testing.assert_close(comfy_process_input(vae_encode_input(images, "legacy")), images * 255.0)
    assert SD_LATENT_SCALE == 0.18215
    with pytest.raises(ValueError):
        vae_encode_input(images, "other")
