"""CLIP ViT-B/32 image features: preprocessing equal to the official CLIPProcessor, loading, refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from comfyui_animapose.animapose.dreampose import clip_image
from comfyui_animapose.animapose.errors import AnimaPoseError
from comfyui_animapose.workshop.fixtures.dreampose import tiny_clip_b32_file, tiny_clip_b32_folder


def _picture(h: int, w: int) -> np.ndarray:
    """A deterministic 8-bit picture with detail at several scales."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 127.5 + 127.5 * np.sin(xx / 9.0 + yy / 23.0)
    g = 127.5 + 127.5 * np.cos(yy / 7.0)
    b = (xx * 255.0 / max(w - 1, 1) + yy * 3) % 256
    return np.stack([r, g, b], -1).round().astype(np.uint8)


def _as_image(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a).float()[None] / 255.0  # what ComfyUI's LoadImage gives


# Values printed by transformers 4.30.2's CLIPImageProcessor(size=224, crop_size=224) on _picture(h, w) as a PIL
# image (the official pipeline's inference input) and as a [0, 1] CHW tensor (train.py's input).
OFFICIAL_430 = {
    (640, 512): (28323.185546875, [0.528887, -0.7916, 1.164713, 1.025234], -251013.5625, [-1.78316, -1.469848]),
    (333, 777): (27881.19140625, [-0.741176, -1.286856, 0.69545, -0.449207], -251015.28125, [-1.788141, -1.471688]),
}
PROBES = [(0, 0, 0), (1, 100, 50), (2, 223, 223), (0, 111, 170)]


@pytest.mark.parametrize("hw", sorted(OFFICIAL_430))
def test_preprocessing_matches_the_official_transformers_4_30_processor(hw):
    total, probes, train_total, train_probes = OFFICIAL_430[hw]
    pixels = clip_image.preprocess(_as_image(_picture(*hw)))[0]
    assert pixels.shape == (3, 224, 224)
    assert pixels.double().sum().item() == pytest.approx(total, rel=1e-6)
    assert [round(float(pixels[p]), 6) for p in PROBES] == pytest.approx(probes, abs=2e-6)
    train = clip_image.preprocess(_as_image(_picture(*hw)), value_range="clean")[0]
    assert train.double().sum().item() == pytest.approx(train_total, rel=1e-6)
    assert [round(float(train[p]), 6) for p in (PROBES[0], PROBES[2])] == pytest.approx(train_probes, abs=2e-6)


@pytest.mark.parametrize("hw", [(640, 512), (512, 640), (100, 80), (225, 300), (224, 224), (7, 500)])
def test_preprocessing_equals_transformers_pil_clip_processor(hw):
    from PIL import Image

    a = _picture(*hw)
    expected = clip_image.image_processor()(images=Image.fromarray(a), return_tensors="pt")["pixel_values"]
    assert torch.equal(clip_image.preprocess(_as_image(a)), expected)


def test_clip_mean_std_and_resize_are_openais():
    proc = clip_image.image_processor()
    assert list(proc.image_mean) == [0.48145466, 0.4578275, 0.40821073]
    assert list(proc.image_std) == [0.26862954, 0.26130258, 0.27577711]
    assert int(proc.resample) == 3  # PIL bicubic
    # A black picture normalises to -mean/std everywhere (the official unconditional image).
    black = clip_image.preprocess(torch.zeros(1, 640, 512, 3))[0]
    expected = -torch.tensor(proc.image_mean) / torch.tensor(proc.image_std)
    torch.testing.assert_close(black[:, 5, 7], expected)
    with pytest.raises(ValueError):
        clip_image.preprocess(torch.zeros(1, 8, 8, 3), value_range="bright")


@pytest.fixture(scope="module")
def folder_model():
    return clip_image.load_clip_vision(str(tiny_clip_b32_folder()))


def test_folder_and_single_file_give_the_same_50_tokens(folder_model):
    file_model = clip_image.load_clip_vision(str(tiny_clip_b32_file()))
    assert file_model.config.num_hidden_layers == 2 and file_model.config.intermediate_size == 256
    assert file_model.config.num_attention_heads == 12 and file_model.config.patch_size == 32
    images = _as_image(_picture(640, 512)).repeat(2, 1, 1, 1)
    images[1] = images[1].flip(1)
    a = clip_image.encode_images(folder_model, images)
    b = clip_image.encode_images(file_model, images)
    assert a.shape == (2, 50, 768)
    assert torch.equal(a, b)
    assert not torch.allclose(a[0], a[1])


def test_tokens_are_the_last_hidden_state_before_post_layernorm(folder_model):
    images = _as_image(_picture(333, 777))
    tokens = clip_image.encode_images(folder_model, images)
    with torch.no_grad():
        out = folder_model(pixel_values=clip_image.preprocess(images))
    assert torch.equal(tokens, out.last_hidden_state)
    post = out.pooler_output  # the post-layernormed CLS token
    assert not torch.allclose(tokens[:, 0], post)


def _save(tmp_path, sd, name="clip.safetensors"):
    import safetensors.torch

    path = tmp_path / name
    safetensors.torch.save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    return str(path)


def test_clip_l14_shaped_weights_are_refused(tmp_path):
    from transformers import CLIPVisionConfig, CLIPVisionModel

    cfg = CLIPVisionConfig(hidden_size=1024, intermediate_size=64, num_hidden_layers=1, num_attention_heads=16,
                           patch_size=14, image_size=224)
    path = _save(tmp_path, CLIPVisionModel(cfg).state_dict())
    with pytest.raises(AnimaPoseError, match="257 tokens of width 1024.*ViT-B/32") as e:
        clip_image.load_clip_vision(path, "clip_name")
    assert "clip-vit-base-patch32" in str(e.value)


def test_openclip_layout_and_folders_without_config_are_refused(tmp_path):
    path = _save(tmp_path, {"visual.conv1.weight": torch.zeros(768, 3, 32, 32)})
    with pytest.raises(AnimaPoseError, match="OpenCLIP"):
        clip_image.load_clip_vision(path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(AnimaPoseError, match="no config.json"):
        clip_image.load_clip_vision(str(tmp_path / "empty"))


def test_folder_with_missing_weights_is_refused(tmp_path):
    import shutil

    import safetensors.torch

    source = tiny_clip_b32_folder()
    shutil.copy(source / "config.json", tmp_path / "config.json")
    sd = safetensors.torch.load_file(str(source / "model.safetensors"))
    safetensors.torch.save_file({k: v for k, v in sd.items() if ".layers.1." not in k}, str(tmp_path / "model.safetensors"))
    with pytest.raises(AnimaPoseError, match="lacks .* CLIP vision weights"):
        clip_image.load_clip_vision(str(tmp_path))
