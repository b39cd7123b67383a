"""The motion trainer with DreamPose conditioning (``MotionRun`` with pose windows): the windows reach the UNet as
concat channels beside the noisy latents, pose dropout zeroes them, and videos without one window per frame are
refused. On the narrow tiny DreamPose UNet, so it takes seconds."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from comfyui_animapose.animapose.errors import AnimaPoseError
from comfyui_animapose.animapose.motion.formats.detect import NormScope
from comfyui_animapose.animapose.motion.sampling.placement import plan_slots
from comfyui_animapose.animapose.training import motion as mt
from comfyui_animapose.workshop.synthetic import tiny_models as tm

RATIO, FRAMES = 8, 4


def _run(poses, pose_dropout=0.0, uncond=0.0):
    unet = tm.narrow_unet(RATIO, 0, in_channels=14).eval().requires_grad_(False)
    c = tm.WIDE // RATIO
    info = SimpleNamespace(base="custom", family="AnimateDiff v2", down_channels=(c,), up_channels=(c,),
                           mid_channels=c, down_per_level=1, up_per_level=2)
    g = torch.Generator().manual_seed(0)
    latents = [torch.randn(FRAMES, 4, 10, 8, generator=g) for _ in range(2)]
    tokens = [torch.randn(1, 50, 768, generator=g) for _ in range(2)]
    settings = mt.MotionTrainSettings(steps=1, frames=FRAMES, batch_size=1, uncond_probability=uncond,
                                      pose_dropout=pose_dropout, gradient_checkpointing=False)
    motion = tm.narrow_motion_set(RATIO, 0)
    return mt.MotionRun(unet, motion, plan_slots(unet, info), NormScope(motion=False, resnet=False), latents, [0, 1],
                        tokens, torch.zeros(1, 50, 768), settings, torch.device("cpu"), poses=poses)


def _windows(seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(FRAMES, 10, 10, 8, generator=g) for _ in range(2)]


def test_pose_windows_reach_the_unet_and_dropout_zeroes_them():
    seen = []
    run = _run(_windows(1))
    forward = run.unet.forward

    def spy(x, *args, **kwargs):
        seen.append(x.detach().clone())
        return forward(x, *args, **kwargs)

    run.unet.forward = spy
    loss = run.loss(torch.Generator().manual_seed(3)).detach()
    assert torch.isfinite(loss)
    x = seen[-1]
    assert x.shape == (FRAMES, 14, 10, 8)
    assert any(torch.equal(x[:, 4:], w) for w in _windows(1))  # one video's windows, aligned frame by frame
    # other poses, same draws: the loss changes, so the windows condition the prediction
    other = _run(_windows(2))
    assert float(other.loss(torch.Generator().manual_seed(3)).detach()) != pytest.approx(float(loss), abs=1e-7)
    dropped = _run(_windows(1), pose_dropout=1.0)
    dropped.unet.forward = spy
    dropped.loss(torch.Generator().manual_seed(3))
    assert torch.count_nonzero(seen[-1][:, 4:]) == 0
    # with the image dropped the pose goes too (dual CFG's e(0, 0) slot)
    both = _run(_windows(1), uncond=1.0)
    both.unet.forward = spy
    both.loss(torch.Generator().manual_seed(3))
    assert torch.count_nonzero(seen[-1][:, 4:]) == 0


def test_poses_must_match_the_frames():
    with pytest.raises(AnimaPoseError, match="one pose window per frame"):
        _run([w[:-1] for w in _windows(1)])
