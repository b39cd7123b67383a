"""The hand-set TAESD autoencoder of the synthetic people: ComfyUI loads it (through the DreamPose VAE loader too),
and its round trip is the pictures' 8x8 block means, bilinearly upsampled."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from comfyui_animapose.animapose.dreampose.adapter import vae_encode_input
from comfyui_animapose.animapose.errors import AnimaPoseError
from comfyui_animapose.workshop.synthetic import people
from comfyui_animapose.workshop.synthetic.people_vae import GAIN, OPPONENT, people_taesd_state_dict

HW = (80, 64)


@pytest.fixture(scope="module")
def vae(tmp_path_factory):
    from comfyui_animapose.animapose.dreampose.checkpoint import read_vae

    path = tmp_path_factory.mktemp("vae") / "vae_1499.pth"
    torch.save(people_taesd_state_dict(), path)
    return read_vae(str(path))


def test_loader_builds_a_taesd(vae):
    import comfy.taesd.taesd

    assert isinstance(vae.first_stage_model, comfy.taesd.taesd.TAESD)
    assert vae.latent_channels == 4 and vae.downscale_ratio == 8


def test_latent_is_the_opponent_colour_of_block_means(vae):
    video = people.make_video(people.make_subject(5), "walk", 2, HW, seed=0)
    pictures = torch.from_numpy(video.images)
    with torch.no_grad():
        latent = vae.encode(vae_encode_input(pictures, "clean")).float() * 0.18215
    y = (F.avg_pool2d(pictures.movedim(-1, 1).double(), 8) + 1) / 2  # what TAESD's encoder sees, block-averaged
    y_bg = (torch.tensor(people.BACKGROUND, dtype=torch.float64)[:, None, None] + 1) / 2
    expected = torch.einsum("kc,bchw->bkhw", GAIN * OPPONENT, y - y_bg)
    torch.testing.assert_close(latent[:, :3].double(), expected, atol=1e-4, rtol=0)
    assert latent[:, 3].abs().max() < 1e-6


def test_round_trip_is_the_bilinear_block_means(vae):
    video = people.make_video(people.make_subject(6), "wave", 2, HW, seed=1)
    pictures = torch.from_numpy(video.images)
    with torch.no_grad():
        decoded = vae.decode(vae.encode(vae_encode_input(pictures, "clean"))).float()
    frames = (decoded * 2 - 1).clamp(0, 1)  # the pipeline's "clean" decode
    # the backdrop comes back exactly; the figure as 8x8 block colours spread smoothly
    corner = frames[:, :4, :4].reshape(-1, 3)
    torch.testing.assert_close(corner, torch.tensor(people.BACKGROUND).expand_as(corner), atol=1e-5, rtol=0)
    # reference: the block means' difference from the backdrop, 3 x (nearest 2x upsampling, [1, 2, 1]^2 / 16 blur
    # with zero padding), plus the backdrop
    bg = torch.tensor(people.BACKGROUND)[None, :, None, None]
    d = F.avg_pool2d(pictures.movedim(-1, 1), 8) - bg
    kernel = (torch.outer(torch.tensor([1.0, 2, 1]), torch.tensor([1.0, 2, 1])) / 16).expand(3, 1, 3, 3)
    for _ in range(3):
        d = F.conv2d(F.interpolate(d, scale_factor=2, mode="nearest"), kernel, padding=1, groups=3)
    expected = (bg + d).clamp(0, 1).movedim(1, -1)
    assert (frames - expected).abs().max() < 0.03  # the latent clamp 3 tanh(x / 3) bends dark colours slightly
    assert (frames - expected).abs().mean() < 0.002
    assert float((frames - pictures).abs().mean()) < 0.08


def test_a_taesd_without_an_encoder_is_refused(tmp_path):
    from comfyui_animapose.animapose.dreampose.checkpoint import read_vae

    sd = {k: v for k, v in people_taesd_state_dict().items() if not k.startswith("taesd_encoder.")}
    path = tmp_path / "decoder_only.pth"
    torch.save(sd, path)
    with pytest.raises(AnimaPoseError, match="no encoder"):
        read_vae(str(path))
    assert np.isfinite(float(people_taesd_state_dict()["vae_scale"]))
