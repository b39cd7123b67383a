"""Deliberate bugs for the mutation check: each function applies one plausible mistake to the pack's own code with
pytest's ``monkeypatch`` (test-local, undone after the test; nothing of ComfyUI or torch is touched). Every one of
them passed the parity tests at some point; the tests named in docs/exactness.md ("Mutation check") now fail on each,
and the check asserts that they do (``./scripts/test.sh -k mutation``).

Imports of pack modules that need ComfyUI happen inside the functions, so the unit tier can use the others.
"""

from __future__ import annotations

import torch
import torch.fft as fft

from ...animapose.densepose.model import DensePoseModel
from ...animapose.motion.addons import camera_trajectories
from ...animapose.motion.addons.camera_trajectories import CameraTrajectory
from ...animapose.motion.addons.cameractrl_encoder import CameraPoseEncoder
from ...animapose.motion.controls import freeinit


def wide_frames_rescale_fx(monkeypatch) -> None:
    """Samples wider than the pose files' 16:9 get fx rescaled instead of fy (the identity at exactly 16:9)."""
    def pixel_intrinsics(intrinsics, height, width, pose_width, pose_height):
        k = intrinsics.to(torch.float64).clone()
        if pose_width / pose_height > width / height:
            k[:, 0] = height * pose_width / pose_height * k[:, 0] / width
        else:
            k[:, 0] = width / (pose_width / pose_height) * k[:, 0] / height
        return (k * torch.tensor([width, height, width, height], dtype=torch.float64)).to(torch.float32)

    monkeypatch.setattr(camera_trajectories, "pixel_intrinsics", pixel_intrinsics)


def plucker_height_width_swapped(monkeypatch) -> None:
    """Rays computed for (width, height), laid out as (height, width): the right shape, the same values on a square."""
    plucker = CameraTrajectory.plucker

    def swapped(self, h, w, index=None):
        out = plucker(self, w, h, index)
        return out.reshape(*out.shape[:-2], h, w)

    monkeypatch.setattr(CameraTrajectory, "plucker", swapped)


def camera_encoder_drops_a_level(monkeypatch) -> None:
    """The camera encoder returns three of its four levels."""
    forward = CameraPoseEncoder.forward
    monkeypatch.setattr(CameraPoseEncoder, "forward", lambda self, p: forward(self, p)[:-1])


def camera_features_interleaved(monkeypatch) -> None:
    """Camera features laid out (h w chunks) over a CFG batch instead of (chunks h w): one chunk cannot tell."""
    from ...animapose.motion.addons.cameractrl import CameraCall

    def for_module(self, layer, x, frames):
        entry = self.by_module.get(id(layer))
        if entry is None:
            return None
        merge, level = entry
        n, c, h, w = self.features[level].shape
        f = self.features[level].reshape(1, n, c, h * w).expand(self.chunks, -1, -1, -1).permute(3, 0, 1, 2)
        return merge, f.reshape(self.chunks * h * w, n, c).to(dtype=x.dtype), self.strength

    monkeypatch.setattr(CameraCall, "for_module", for_module)


def cfg_batch_as_one_clip(monkeypatch) -> None:
    """A cond+uncond batch taken for one clip of twice the frames (frames = the whole batch), in the motion modules,
    PIA, AnimateLCM-I2V and CameraCtrl alike; identical on a cond-only call."""
    from ...animapose.motion.addons import cameractrl, lcm_i2v
    from ...animapose.motion.sampling import inflate, stages

    for module in (stages, inflate, lcm_i2v, cameractrl):
        monkeypatch.setattr(module, "frames_per_chunk", lambda x, options: x.shape[0])


def sparsectrl_cfg_batch_as_one_clip(monkeypatch) -> None:
    """SparseCtrl's encoder given the whole CFG batch as one clip."""
    from ...animapose.motion.addons.sparsectrl_encoder import SparseControlModel

    forward = SparseControlModel.forward
    monkeypatch.setattr(SparseControlModel, "forward", lambda self, hint, t, context, frames, like, scope=False:
                        forward(self, hint, t, context, hint.shape[0], like, scope))


def motion_norm_eps(monkeypatch, eps: float = 1e-5) -> None:
    """The motion modules' GroupNorm with another eps (the releases use 1e-6): a small-constant bug."""
    from ...animapose.motion import module

    group_norm_frames = module.group_norm_frames

    def other_eps(x, frames, norm, across_frames):
        saved, norm.eps = norm.eps, eps
        try:
            return group_norm_frames(x, frames, norm, across_frames)
        finally:
            norm.eps = saved

    monkeypatch.setattr(module, "group_norm_frames", other_eps)


def freeinit_filter_in_float32(monkeypatch) -> None:
    """The Butterworth filter computed in float32 instead of the reference's double: off by a rounding step."""
    def low_pass_filter(shape, kind="butterworth", d_s=0.25, d_t=0.25, order=4):
        t_len, h_len, w_len = shape
        t = torch.arange(t_len, dtype=torch.float32).view(-1, 1, 1)
        h = torch.arange(h_len, dtype=torch.float32).view(1, -1, 1)
        w = torch.arange(w_len, dtype=torch.float32).view(1, 1, -1)
        d_square = ((d_s / d_t) * (2 * t / t_len - 1)) ** 2 + (2 * h / h_len - 1) ** 2 + (2 * w / w_len - 1) ** 2
        return 1 / (1 + (d_square / d_s ** 2) ** order)

    monkeypatch.setattr(freeinit, "low_pass_filter", low_pass_filter)


def freeinit_mix_rearranged(monkeypatch) -> None:
    """x·L + n·(1 − L) written as x·L + n − n·L: the same algebra, other roundings."""
    def freq_mix_3d(x, noise, lpf):
        dims = (-3, -2, -1)
        x_freq = fft.fftshift(fft.fftn(x, dim=dims), dim=dims)
        noise_freq = fft.fftshift(fft.fftn(noise, dim=dims), dim=dims)
        mixed = x_freq * lpf + noise_freq - noise_freq * lpf
        return fft.ifftn(fft.ifftshift(mixed, dim=dims), dim=dims).real

    monkeypatch.setattr(freeinit, "freq_mix_3d", freq_mix_3d)


def densepose_dict_export_fed_rgb(monkeypatch) -> None:
    """The exporter's own (dict) export handed RGB instead of BGR."""
    call = DensePoseModel.__call__
    monkeypatch.setattr(DensePoseModel, "__call__",
                        lambda self, f: call(self, f.flip(-1) if self.signature == "dict" else f))


def bf16_motion_residual_scaled(monkeypatch, factor: float = 1.05) -> None:
    """A bf16-only bug: the motion modules' update scaled by ``factor`` when they run in bf16 (float32 untouched)."""
    from ...animapose.motion.module import MotionModule

    forward = MotionModule.forward

    def scaled(self, x, *args, **kwargs):
        out = forward(self, x, *args, **kwargs)
        return x + (out - x) * factor if out.dtype == torch.bfloat16 else out

    monkeypatch.setattr(MotionModule, "forward", scaled)
