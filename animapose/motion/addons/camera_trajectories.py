"""Camera trajectories for CameraCtrl: RealEstate10K pose files, preset moves, and their Plücker embeddings.

A pose file (CameraCtrl's ``assets/pose_files/*.txt``, RealEstate10K's format) has the source video's URL on its
first line, then one line per frame: ``timestamp fx fy cx cy 0 0`` followed by the 3x4 world-to-camera matrix,
row by row (19 numbers). The intrinsics are normalised by the width and height of the video the poses came from
(RealEstate10K clips are 1280x720, CameraCtrl's ``--original_pose_width/height`` defaults).

The embedding follows CameraCtrl's ``inference.py`` (``get_relative_pose`` and ``ray_condition``): the focal
length along the axis that the sample's aspect ratio crops is rescaled, poses are made relative to the first
frame (which becomes the identity), and each pixel centre ``(u + 0.5, v + 0.5)`` gets the unit ray direction
``d = R @ normalize(((u - cx) / fx, (v - cy) / fy, 1))`` and moment ``o x d`` (``o`` the camera centre), giving
6 channels per pixel: ``(o x d, d)``. Camera axes are OpenCV's: x right, y down, z forward.

Pure torch; no ComfyUI import.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass

import torch

from ...errors import AnimaPoseError
from ...paths import is_inside, open_inside, resolve_inside
from .. import MAX_FRAMES

# RealEstate10K's video size (CameraCtrl inference.py --original_pose_width/--original_pose_height defaults).
POSE_WIDTH = 1280
POSE_HEIGHT = 720
# Intrinsics of the presets: a typical RealEstate10K camera (square pixels at 1280x720, principal point centred).
PRESET_FX = 0.474812461
PRESET_FY = 0.844111024
POSE_FILE_EXTENSIONS = (".txt",)
_FIELDS = 19
TRAJECTORY_NODE = "CameraCtrl Camera Move (pan/zoom/orbit)"
# The largest intrinsic or matrix entry a pose file may hold. The preset moves stay far inside it (at the speed
# widget's limit of 10 a 4096-frame zoom travels 8192 scene units); RealEstate10K scenes span a few units and
# its intrinsics are fractions of the frame. Larger numbers only overflow the camera encoder (black frames).
POSE_VALUE_LIMIT = 1e4
# How far R @ R.T of a pose's rotation may stray from the identity: pose files print about 9 digits, so real
# rotations are orthonormal to ~1e-8; a looser bound keeps hand-edited files usable while refusing a scaled or
# sheared matrix (whose rays would not be unit vectors).
ROTATION_TOLERANCE = 1e-3

# Per frame at speed 1: slides move 0.1 scene units (RealEstate10K scenes span a few units), zooms 0.2 along the
# view axis, turns 2 degrees; orbits circle a point 2 units ahead by 2 degrees.
STEP = 0.1
ZOOM_STEP = 0.2
TURN_DEGREES = 2.0
ORBIT_RADIUS = 2.0

# name -> (kind, axis or direction). Slides translate the camera; turns rotate it about its own axes.
PRESETS: dict[str, tuple[str, tuple[float, float, float]]] = {
    "static": ("slide", (0.0, 0.0, 0.0)),
    "pan left": ("slide", (-1.0, 0.0, 0.0)),
    "pan right": ("slide", (1.0, 0.0, 0.0)),
    "pan up": ("slide", (0.0, -1.0, 0.0)),
    "pan down": ("slide", (0.0, 1.0, 0.0)),
    "zoom in": ("zoom", (0.0, 0.0, 1.0)),
    "zoom out": ("zoom", (0.0, 0.0, -1.0)),
    "orbit left": ("orbit", (0.0, 1.0, 0.0)),
    "orbit right": ("orbit", (0.0, -1.0, 0.0)),
    "turn left": ("turn", (0.0, -1.0, 0.0)),
    "turn right": ("turn", (0.0, 1.0, 0.0)),
    "tilt up": ("turn", (1.0, 0.0, 0.0)),
    "tilt down": ("turn", (-1.0, 0.0, 0.0)),
    "roll clockwise": ("turn", (0.0, 0.0, 1.0)),
    "roll anticlockwise": ("turn", (0.0, 0.0, -1.0)),
}
PRESET_NAMES = list(PRESETS)


@dataclass(frozen=True)
class CameraTrajectory:
    """Per-frame normalised intrinsics ``(frames, 4)`` = fx fy cx cy and world-to-camera matrices
    ``(frames, 3, 4)`` (float64), with the size of the video the intrinsics were normalised by. ``exact``: made
    for a clip of exactly ``frames`` frames (a preset, whose 'frames' widget says the clip's length), so a latent
    of another length is refused; a pose file may be longer than the clip, which then follows its first poses."""

    intrinsics: torch.Tensor
    w2c: torch.Tensor
    pose_width: int = POSE_WIDTH
    pose_height: int = POSE_HEIGHT
    source: str = ""
    exact: bool = False

    @property
    def frames(self) -> int:
        return self.w2c.shape[0]

    def describe(self) -> str:
        what = f"{self.source or 'camera trajectory'} ({self.frames} frames)"
        return what if self.exact else what + "; a shorter clip follows its first poses"

    def check_clip(self, frames: int, node: str, input_name: str = "camera") -> None:
        """Before sampling ``frames`` frames: a preset must be made for exactly that many (like Prompt Travel's
        frames), a pose file must hold at least that many poses."""
        if self.exact and self.frames != frames:
            raise AnimaPoseError(input_name, f"the camera move was made for {self.frames} frames but the latent has "
                                 f"{frames}", f"set 'frames' of '{TRAJECTORY_NODE}' to {frames} (the latent's batch "
                                 "size)", node=node)
        if self.frames < frames:
            raise AnimaPoseError(input_name, f"the camera trajectory has {self.frames} frames but the latent has "
                                 f"{frames}", f"use a pose file with at least {frames} poses, or sample at most "
                                 f"{self.frames} frames", node=node)

    def plucker(self, height: int, width: int, index: list[int] | None = None) -> torch.Tensor:
        """``(frames, 6, height, width)`` float32 embedding of the frames ``index`` (all by default), relative to
        the first of them: a context window is embedded as if it were a clip of its own."""
        index = list(range(self.frames)) if index is None else list(index)
        return plucker_embedding(self.intrinsics[index], self.w2c[index], height, width, self.pose_width,
                                 self.pose_height)


def _rotation(axis: tuple[float, float, float], radians: float) -> torch.Tensor:
    """Rotation by ``radians`` about a unit ``axis`` (Rodrigues), float64."""
    a = torch.tensor(axis, dtype=torch.float64)
    if float(a.norm()) == 0.0 or radians == 0.0:
        return torch.eye(3, dtype=torch.float64)
    a = a / a.norm()
    k = torch.tensor([[0.0, -a[2], a[1]], [a[2], 0.0, -a[0]], [-a[1], a[0], 0.0]], dtype=torch.float64)
    return torch.eye(3, dtype=torch.float64) + math.sin(radians) * k + (1 - math.cos(radians)) * (k @ k)


def preset_trajectory(name: str, frames: int, speed: float = 1.0) -> CameraTrajectory:
    """A preset camera move of ``frames`` frames; frame 0 is the identity, ``speed`` scales every step."""
    if name not in PRESETS:
        raise AnimaPoseError("preset", f"'{name}' is not a camera preset", f"pick one of {', '.join(PRESET_NAMES)}")
    if frames < 1:
        raise AnimaPoseError("frames", f"{frames} frames", "use at least one frame")
    kind, axis = PRESETS[name]
    c2w = torch.eye(4, dtype=torch.float64).repeat(frames, 1, 1)
    direction = torch.tensor(axis, dtype=torch.float64)
    for i in range(frames):
        if kind in ("slide", "zoom"):
            c2w[i, :3, 3] = direction * (i * speed * (STEP if kind == "slide" else ZOOM_STEP))
        elif kind == "turn":
            c2w[i, :3, :3] = _rotation(axis, math.radians(i * speed * TURN_DEGREES))
        else:  # orbit: rotate about the vertical axis through the point ORBIT_RADIUS ahead, keep looking at it
            rot = _rotation(axis, math.radians(i * speed * TURN_DEGREES))
            target = torch.tensor([0.0, 0.0, ORBIT_RADIUS], dtype=torch.float64)
            c2w[i, :3, :3] = rot
            c2w[i, :3, 3] = target - rot @ target
    w2c = torch.linalg.inv(c2w)[:, :3, :]
    intrinsics = torch.tensor([[PRESET_FX, PRESET_FY, 0.5, 0.5]], dtype=torch.float64).repeat(frames, 1)
    return CameraTrajectory(intrinsics, w2c, POSE_WIDTH, POSE_HEIGHT, f"{name} x{speed:g}", exact=True)


def parse_pose_text(text: str, source: str = "pose file", pose_width: int = POSE_WIDTH,
                    pose_height: int = POSE_HEIGHT, input_name: str = "pose_file") -> CameraTrajectory:
    """A trajectory from the text of a RealEstate10K-style pose file (the first line, the video URL, is
    skipped as CameraCtrl's ``inference.py`` does). The numbers get the limits of the preset moves they replace:
    at most 4096 poses (the frames widget), finite intrinsics and matrix entries within ``POSE_VALUE_LIMIT``,
    positive focal lengths and proper rotations. The timestamp and the two unused columns are not read."""
    fix = ("use a CameraCtrl / RealEstate10K pose file: a URL line, then per frame 'timestamp fx fy cx cy 0 0' and "
           "the 12 numbers of the 3x4 world-to-camera matrix")
    lines = [line for line in text.splitlines()[1:] if line.strip()]
    if not lines:
        raise AnimaPoseError(input_name, f"{source} has no pose lines after its first (URL) line", fix)
    if len(lines) > MAX_FRAMES:
        raise AnimaPoseError(input_name, f"{source} has {len(lines)} poses, more than the longest clip ({MAX_FRAMES} "
                             "frames)", f"keep at most {MAX_FRAMES} pose lines", node=TRAJECTORY_NODE)
    rows = []
    for n, line in enumerate(lines, start=2):
        parts = line.split()
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise AnimaPoseError(input_name, f"{source} line {n} is not a list of numbers ('{line[:40]}')", fix) from None
        if len(values) != _FIELDS:
            raise AnimaPoseError(input_name, f"{source} line {n} has {len(values)} numbers, not {_FIELDS}", fix)
        used = values[1:5] + values[7:]
        if not all(math.isfinite(v) for v in used):
            raise AnimaPoseError(input_name, f"{source} line {n} holds NaN or infinity", fix)
        if max(abs(v) for v in used) > POSE_VALUE_LIMIT:
            raise AnimaPoseError(input_name, f"{source} line {n} holds {max(used, key=abs):g}, beyond the "
                                 f"{POSE_VALUE_LIMIT:g} allowed for intrinsics and matrix entries (it would overflow "
                                 "the camera encoder)", "use poses in scene units (RealEstate10K scenes span a few "
                                 "units) and intrinsics as fractions of the frame", node=TRAJECTORY_NODE)
        rows.append(values)
    data = torch.tensor(rows, dtype=torch.float64)
    intrinsics = data[:, 1:5]
    if (intrinsics[:, :2] <= 0).any():
        raise AnimaPoseError(input_name, f"{source} has a focal length of 0 or less", fix)
    w2c = data[:, 7:].reshape(-1, 3, 4)
    rotation = w2c[:, :, :3]
    if (torch.linalg.det(rotation).abs() < 1e-8).any():
        raise AnimaPoseError(input_name, f"{source} has a singular rotation matrix", fix)
    eye = torch.eye(3, dtype=torch.float64)
    stray = (rotation @ rotation.transpose(1, 2) - eye).abs().amax(dim=(1, 2))
    bad = (stray > ROTATION_TOLERANCE) | (torch.linalg.det(rotation) < 0)
    if bad.any():
        n = int(bad.nonzero()[0, 0]) + 2
        raise AnimaPoseError(input_name, f"{source} line {n}: the 3x3 part of its matrix is not a rotation (scaled, "
                             "sheared or mirrored)", fix, node=TRAJECTORY_NODE)
    return CameraTrajectory(intrinsics, w2c, pose_width, pose_height, source)


def list_pose_files(input_dir: str, max_depth: int = 2) -> list[str]:
    """The pose files (``*.txt``) in ComfyUI's input folder and its sub-folders, as '/'-separated relative paths;
    hidden entries and links leading out of the folder are skipped."""
    found = []

    def walk(path: str, rel: str, depth: int):
        try:
            entries = sorted(os.scandir(path), key=lambda e: e.name)
        except OSError:
            return
        for e in entries:
            if e.name.startswith(".") or not is_inside(input_dir, e.path):
                continue
            sub = f"{rel}/{e.name}" if rel else e.name
            if e.is_file() and e.name.lower().endswith(POSE_FILE_EXTENSIONS):
                found.append(sub)
            elif e.is_dir() and depth < max_depth:
                walk(e.path, sub, depth + 1)

    walk(input_dir, "", 1)
    return found


def load_pose_file(input_dir: str, name: str, pose_width: int = POSE_WIDTH, pose_height: int = POSE_HEIGHT,
                   input_name: str = "pose_file") -> CameraTrajectory:
    """A pose file named relative to ``input_dir``; anything that would leave the folder is refused."""
    fix = "pick a .txt pose file inside ComfyUI's input folder from the list (press R after adding one)"
    path = resolve_inside(input_dir, name, input_name, fix)
    if not os.path.isfile(path) or not path.lower().endswith(POSE_FILE_EXTENSIONS):
        raise AnimaPoseError(input_name, f"'{name}' is not a .txt file in ComfyUI's input folder", fix)
    try:
        with open_inside(input_dir, path, input_name, name) as raw, io.TextIOWrapper(raw, encoding="utf-8") as f:
            content = f.read(4_000_000)
    except (OSError, UnicodeDecodeError) as e:
        raise AnimaPoseError(input_name, f"'{name}' could not be read as text ({type(e).__name__})", fix) from e
    return parse_pose_text(content, f"'{name}'", pose_width, pose_height, input_name)


def relative_c2w(w2c: torch.Tensor) -> torch.Tensor:
    """``(frames, 4, 4)`` camera-to-world matrices relative to the first frame (``w2c[0] @ c2w[i]``), float64."""
    full = torch.eye(4, dtype=torch.float64).repeat(w2c.shape[0], 1, 1)
    full[:, :3, :] = w2c.to(torch.float64)
    c2w = torch.linalg.inv(full)
    return full[0] @ c2w


def pixel_intrinsics(intrinsics: torch.Tensor, height: int, width: int, pose_width: int,
                     pose_height: int) -> torch.Tensor:
    """``(frames, 4)`` fx fy cx cy in pixels of a ``width`` x ``height`` sample: the focal length along the
    axis the aspect ratio crops is rescaled as the pose video would be resized to cover the sample."""
    k = intrinsics.to(torch.float64).clone()
    if pose_width / pose_height > width / height:
        k[:, 0] = height * pose_width / pose_height * k[:, 0] / width
    else:
        k[:, 1] = width / (pose_width / pose_height) * k[:, 1] / height
    scale = torch.tensor([width, height, width, height], dtype=torch.float64)
    return (k * scale).to(torch.float32)


def plucker_embedding(intrinsics: torch.Tensor, w2c: torch.Tensor, height: int, width: int,
                      pose_width: int = POSE_WIDTH, pose_height: int = POSE_HEIGHT) -> torch.Tensor:
    """``(frames, 6, height, width)`` float32: per pixel the moment ``o x d`` and the unit ray direction ``d``."""
    k = pixel_intrinsics(intrinsics, height, width, pose_width, pose_height)
    c2w = relative_c2w(w2c).to(torch.float32)
    v, u = torch.meshgrid(torch.arange(height, dtype=torch.float32) + 0.5,
                          torch.arange(width, dtype=torch.float32) + 0.5, indexing="ij")
    fx, fy, cx, cy = (k[:, i, None, None] for i in range(4))
    dirs = torch.stack([(u - cx) / fx, (v - cy) / fy, torch.ones_like(u - cx)], dim=-1)  # f h w 3
    dirs = dirs / dirs.norm(dim=-1, keepdim=True)
    rays_d = torch.einsum("fhwj,fij->fhwi", dirs, c2w[:, :3, :3])
    rays_o = c2w[:, None, None, :3, 3].expand_as(rays_d)
    moment = torch.linalg.cross(rays_o, rays_d, dim=-1)
    return torch.cat([moment, rays_d], dim=-1).permute(0, 3, 1, 2).contiguous()
