"""The pure maths of DreamPose training: crops shared by a picture and its pose, dropout, DDPM noising, losses."""

from __future__ import annotations

import pytest
import torch

from comfyui_animapose.animapose.dreampose import augment
from comfyui_animapose.workshop.train.dreampose import window_frames


def _grid(h: int, w: int) -> torch.Tensor:
    """(1, 2, h, w): every pixel holds its own (y, x) position in (0, 1)."""
    ys = (torch.arange(h) + 0.5) / h
    xs = (torch.arange(w) + 0.5) / w
    return torch.stack([ys[:, None].expand(h, w), xs[None, :].expand(h, w)])[None]


@pytest.mark.parametrize("hw,margin", [((640, 512), 25 / 512), ((80, 64), 0.1), ((64, 80), 0.3)])
def test_crop_box_stays_inside_and_keeps_the_aspect(hw, margin):
    g = torch.Generator().manual_seed(0)
    h, w = hw
    for _ in range(300):
        top, left, bh, bw = augment.random_crop_box(hw, margin, g)
        assert 0 <= top and top + bh <= h and 0 <= left and left + bw <= w
        assert bh >= h - margin * min(h, w) - 1
        assert abs(bw - bh * w / h) <= 1.0


def test_picture_and_pose_are_cropped_together():
    """The regression of finetune-unet.py's bug: after augmentation, pixel (y, x) of the target and of the pose
    still come from the same place of the original (here both carry their source coordinates)."""
    g = torch.Generator().manual_seed(3)
    grid = _grid(80, 64)
    picture = torch.cat([grid, torch.full((1, 1, 80, 64), 0.5)], dim=1)  # RGB whose R, G are the coordinates
    cropped = 0
    for _ in range(40):
        out_picture, out_pose, box = augment.crop_pair(picture, grid.clone(), augment.CropPolicy(1.0, 0.2), g)
        assert box is not None
        cropped += 1
        # Same box and resize for both; torch's resampling kernels may vectorise 4- and 2-channel tensors differently
        # (seen with one thread), so the values agree to float rounding, while a box one pixel off differs by 1/80.
        torch.testing.assert_close(out_picture[:, :2], out_pose, rtol=0, atol=1e-6)
        assert out_picture.shape == picture.shape and out_pose.shape == grid.shape
        top, left, bh, bw = box
        # the resized crop still spans the box it came from
        assert abs(out_pose[0, 0, 0, 0] - (top + 0.5 * bh / 80) / 80) < 1.5 / 80
    assert cropped == 40


def test_crop_probability_and_determinism():
    grid = _grid(40, 32)
    policy = augment.UNET_CROP
    boxes = []
    for seed in (11, 11):
        g = torch.Generator().manual_seed(seed)
        boxes.append([augment.crop_pair(grid, grid, policy, g)[2] for _ in range(2000)])
    assert boxes[0] == boxes[1]
    share = sum(b is not None for b in boxes[0]) / len(boxes[0])
    assert abs(share - 0.7) < 0.04, share
    untouched = augment.crop_pair(grid, grid, augment.CropPolicy(0.0, 0.1), torch.Generator().manual_seed(0))
    assert untouched[0] is grid and untouched[2] is None


def test_cropped_pose_is_not_quantised():
    """The official path through an 8-bit PIL image rounded UV to 1/255; here values survive a crop."""
    pose = torch.full((1, 2, 80, 64), 0.123456)
    _, out, box = augment.crop_pair(torch.zeros(1, 3, 80, 64), pose, augment.CropPolicy(1.0, 0.1),
                                    torch.Generator().manual_seed(1))
    assert box is not None
    torch.testing.assert_close(out, pose, rtol=0, atol=1e-6)


def test_mismatched_pose_size_is_refused():
    with pytest.raises(ValueError, match="one size"):
        augment.crop_pair(torch.zeros(1, 3, 80, 64), torch.zeros(1, 2, 40, 32), augment.UNET_CROP,
                          torch.Generator())


def test_dropout_frequencies_follow_the_three_way_split():
    g = torch.Generator().manual_seed(0)
    n = 20000
    draws = [augment.draw_dropout(g, 0.05, 0.05, 0.05) for _ in range(n)]
    for kind, expected in (("pose", 0.05), ("image", 0.05), ("both", 0.05), ("none", 0.85)):
        assert abs(draws.count(kind) / n - expected) < 0.01, kind
    assert {augment.draw_dropout(g) for _ in range(100)} == {"none"}
    with pytest.raises(ValueError):
        augment.draw_dropout(g, 0.5, 0.5, 0.5)


def test_add_noise_matches_diffusers_ddpm():
    from diffusers import DDPMScheduler

    scheduler = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              num_train_timesteps=1000)
    # ComfyUI keeps sigmas, not alphas: go through them as finetune.noise_schedule does.
    sigmas = ((1 - scheduler.alphas_cumprod) / scheduler.alphas_cumprod) ** 0.5
    alphas = augment.alphas_cumprod_from_sigmas(sigmas.float())
    g = torch.Generator().manual_seed(0)
    latent, noise = torch.randn(4, 4, 10, 8, generator=g), torch.randn(4, 4, 10, 8, generator=g)
    t = torch.tensor([0, 250, 700, 999])
    torch.testing.assert_close(augment.add_noise(latent, noise, alphas, t), scheduler.add_noise(latent, noise, t),
                               rtol=1e-5, atol=1e-5)


def test_losses():
    pred, noise = torch.ones(1, 4, 2, 2), torch.zeros(1, 4, 2, 2)
    assert augment.epsilon_loss(pred, noise).item() == 1.0
    decoded = torch.full((1, 3, 2, 2), 5.0)  # clamped to 1 before the MSE, as finetune-vae.py
    assert augment.decoder_loss(decoded, torch.full((1, 3, 2, 2), 0.5)).item() == pytest.approx(0.25)


def test_pose_windows_of_stage_one():
    assert window_frames(0, 5, "neighbours") == [0, 0, 0, 1, 2]
    assert window_frames(4, 5, "neighbours") == [2, 3, 4, 4, 4]
    assert window_frames(2, 9, "neighbours") == [0, 1, 2, 3, 4]
    assert window_frames(3, 9, "repeat") == [3] * 5
