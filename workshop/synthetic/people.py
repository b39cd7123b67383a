"""Synthetic people: 2D articulated figures with DensePose-style UV maps that are exact by construction.

A figure is a skeleton of joints and a list of parts (head, torso, upper arms, forearms, thighs, shins), each a
capsule: a segment ``a -> b`` with a radius. For a pixel inside a part, U is the position along the segment (0 at
``a``, 1 at ``b``) and V the position across it (0 on the left edge, 1 on the right edge, seen from ``a`` to ``b``),
both mapped into [UV_MIN, 1] so that no body pixel reads as background; the background is 0. Where parts overlap the
one drawn last (nearest to the viewer) wins, for the colour, the UV and the part index alike, so the UV map, the part
map and the picture always agree pixel for pixel.

Subjects differ in skin, shirt and trouser colours, sleeve length and an optional striped shirt (stripes follow the
torso's U). Motions: ``walk`` (legs and arms swing while the figure crosses the frame), ``wave`` (one arm raised, the
forearm swinging) and ``turn`` (the body turns about its vertical axis: shoulders and hips narrow and widen, the
limbs swap sides); the temporal clips (``motion_clips``) add ``swing`` (standing, arms swinging in opposition).

``write_ubc_dataset`` writes videos in the UBC-Fashion layout the DreamPose stage-1 command line reads:
``ROOT/<video>/frame_N.png`` with ``frame_N_densepose.npy`` ((2, H, W) float64 UV) beside each frame.

Plain numpy; nothing here imports torch or ComfyUI.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

UV_MIN = 0.02
BACKGROUND = (0.92, 0.91, 0.89)  # the light studio backdrop of UBC-Fashion
MOTIONS = ("walk", "wave", "turn")
# the motions of the temporal training clips (``motion_clips``): poses that change smoothly from frame to frame
CLIP_MOTIONS = ("walk", "turn", "swing")
CLIP_CYCLES = 0.5  # cycles of a motion over a training clip: a walk's stride or a swing takes two clips
PARTS = ("head", "torso", "upper_arm_l", "forearm_l", "upper_arm_r", "forearm_r", "thigh_l", "shin_l", "thigh_r",
         "shin_r")
PART_INDEX = {name: k + 1 for k, name in enumerate(PARTS)}  # 0 is the background
# Which clothing each part shows (forearms depend on the sleeves).
SHIRT_PARTS = ("torso", "upper_arm_l", "upper_arm_r")
TROUSER_PARTS = ("thigh_l", "shin_l", "thigh_r", "shin_r")

# Distinct, saturated clothing colours: a subject draws its shirt and trousers from here.
PALETTE = np.array([
    (0.80, 0.15, 0.15), (0.15, 0.55, 0.20), (0.15, 0.25, 0.75), (0.90, 0.70, 0.10), (0.55, 0.20, 0.65),
    (0.10, 0.60, 0.65), (0.90, 0.45, 0.10), (0.20, 0.20, 0.25), (0.85, 0.35, 0.60), (0.45, 0.30, 0.15),
    (0.55, 0.75, 0.20), (0.30, 0.45, 0.90),
])
SKINS = np.array([(0.93, 0.76, 0.62), (0.80, 0.60, 0.45), (0.55, 0.38, 0.26), (0.98, 0.84, 0.72)])


@dataclass(frozen=True)
class Subject:
    """A person's look: colours in [0, 1] RGB."""

    shirt: tuple[float, float, float]
    trousers: tuple[float, float, float]
    skin: tuple[float, float, float]
    long_sleeves: bool = True
    stripes: int = 0  # stripes across the torso (0: plain); they darken the shirt by STRIPE_SHADE

    @property
    def clothing(self) -> dict[str, np.ndarray]:
        return {"shirt": np.array(self.shirt), "trousers": np.array(self.trousers)}


STRIPE_SHADE = 0.7


def make_subject(seed: int) -> Subject:
    """A subject drawn from ``seed``: shirt and trousers of two different palette colours."""
    g = np.random.default_rng(seed)
    shirt, trousers = g.choice(len(PALETTE), 2, replace=False)
    return Subject(tuple(PALETTE[shirt]), tuple(PALETTE[trousers]), tuple(SKINS[g.integers(len(SKINS))]),
                   long_sleeves=bool(g.integers(2)), stripes=int(g.choice([0, 0, 3])))


@dataclass
class Pose:
    """Figure placement and joint angles. Lengths are in units of the frame height; angles in radians, 0 pointing
    down, positive towards the figure's left (the viewer's right)."""

    x: float = 0.5  # pelvis position (fraction of width / height)
    y: float = 0.55
    scale: float = 1.0
    turn: float = 0.0  # rotation about the vertical axis: 0 facing the viewer, pi/2 side-on
    arm_l: tuple[float, float] = (0.15, 0.0)  # (upper arm angle, elbow bend)
    arm_r: tuple[float, float] = (-0.15, 0.0)
    leg_l: tuple[float, float] = (0.05, 0.0)  # (thigh angle, knee bend)
    leg_r: tuple[float, float] = (-0.05, 0.0)
    extra: dict = field(default_factory=dict)


# -- geometry --------------------------------------------------------------------------------------------------

def _direction(angle: float) -> np.ndarray:
    return np.array([math.sin(angle), math.cos(angle)])  # (x, y) in image coordinates, y down


def part_segments(pose: Pose, hw: tuple[int, int]) -> list[tuple[str, np.ndarray, np.ndarray, float]]:
    """[(part, a, b, radius)] in pixels, in drawing order (farthest first)."""
    h, w = hw
    s = pose.scale * h
    width = abs(math.cos(pose.turn))  # how much of the shoulder and hip width faces the viewer
    side = 1.0 if math.cos(pose.turn) >= 0 else -1.0  # the figure's left is on the viewer's right when facing
    pelvis = np.array([pose.x * w, pose.y * h])
    neck = pelvis + np.array([0.0, -0.27 * s])
    shoulder_l = neck + np.array([side * 0.085 * s * width, 0.02 * s])
    shoulder_r = neck + np.array([-side * 0.085 * s * width, 0.02 * s])
    hip_l = pelvis + np.array([side * 0.05 * s * width, 0.0])
    hip_r = pelvis + np.array([-side * 0.05 * s * width, 0.0])
    mirror = side  # angles flip with the figure when it faces away
    torso_r = 0.075 * s * (0.55 + 0.45 * width)
    limbs = {}
    for name, root, (a1, bend), l1, l2, r in (
            ("arm_l", shoulder_l, pose.arm_l, 0.15, 0.14, 0.028), ("arm_r", shoulder_r, pose.arm_r, 0.15, 0.14, 0.028),
            ("leg_l", hip_l, pose.leg_l, 0.22, 0.22, 0.036), ("leg_r", hip_r, pose.leg_r, 0.22, 0.22, 0.036)):
        joint = root + _direction(mirror * a1) * l1 * s
        end = joint + _direction(mirror * (a1 + bend)) * l2 * s
        limbs[name] = (root, joint, end, r * s)
    head_top = neck + np.array([0.0, -0.13 * s])
    segments = {
        "head": (neck + np.array([0.0, -0.05 * s]), head_top, 0.05 * s),
        "torso": (neck + np.array([0.0, 0.02 * s]), pelvis + np.array([0.0, 0.02 * s]), torso_r),
    }
    for limb, (upper, lower) in (("arm_l", ("upper_arm_l", "forearm_l")), ("arm_r", ("upper_arm_r", "forearm_r")),
                                 ("leg_l", ("thigh_l", "shin_l")), ("leg_r", ("thigh_r", "shin_r"))):
        root, joint, end, r = limbs[limb]
        segments[upper] = (root, joint, r)
        segments[lower] = (joint, end, r * 0.9)
    # The limbs on the far side are drawn before the torso, the near ones after it. Facing the viewer both sides
    # are equally near: the legs go first (the torso overlaps the hips), the arms last.
    far, near = ("l", "r") if math.sin(pose.turn) > 0 else ("r", "l")
    if abs(math.sin(pose.turn)) < 0.3:
        order = ["thigh_l", "shin_l", "thigh_r", "shin_r", "torso", "head", "upper_arm_l", "forearm_l",
                 "upper_arm_r", "forearm_r"]
    else:
        order = [f"upper_arm_{far}", f"forearm_{far}", f"thigh_{far}", f"shin_{far}", "torso", "head",
                 f"thigh_{near}", f"shin_{near}", f"upper_arm_{near}", f"forearm_{near}"]
    return [(name, *segments[name]) for name in order]


def _capsule_uv(px: np.ndarray, py: np.ndarray, a: np.ndarray, b: np.ndarray, r: float):
    """(inside, U, V) of pixel centres (px, py) for the capsule a -> b of radius r."""
    d = b - a
    length2 = float(d @ d) or 1e-12
    t = ((px - a[0]) * d[0] + (py - a[1]) * d[1]) / length2
    tc = np.clip(t, 0.0, 1.0)
    cx, cy = a[0] + tc * d[0], a[1] + tc * d[1]
    dist = np.hypot(px - cx, py - cy)
    inside = dist <= r
    # signed distance across the segment axis (positive to the right of a -> b in image coordinates)
    across = ((px - a[0]) * d[1] - (py - a[1]) * d[0]) / math.sqrt(length2)
    u = UV_MIN + (1 - UV_MIN) * tc
    v = UV_MIN + (1 - UV_MIN) * np.clip((across / r + 1) / 2, 0.0, 1.0)
    return inside, u, v


@dataclass
class Rendering:
    image: np.ndarray  # (H, W, 3) float32 RGB in [0, 1]
    uv: np.ndarray  # (2, H, W) float32, 0 on the background
    parts: np.ndarray  # (H, W) int, 0 background, PART_INDEX otherwise

    @property
    def mask(self) -> np.ndarray:
        return self.parts > 0

    def clothing_masks(self) -> dict[str, np.ndarray]:
        """{"shirt": mask, "trousers": mask} of the pixels showing each garment's own colour (stripes excluded)."""
        shirt = np.isin(self.parts, [PART_INDEX[p] for p in SHIRT_PARTS])
        return {"shirt": shirt, "trousers": np.isin(self.parts, [PART_INDEX[p] for p in TROUSER_PARTS])}


def render(pose: Pose, subject: Subject, hw: tuple[int, int] = (80, 64),
           background: tuple[float, float, float] = BACKGROUND) -> Rendering:
    """The picture, UV map and part map of one figure at (height, width) ``hw``."""
    h, w = hw
    py, px = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5
    image = np.empty((h, w, 3))
    image[:] = background
    uv = np.zeros((2, h, w))
    parts = np.zeros((h, w), dtype=np.int64)
    colours = {p: np.array(subject.shirt) for p in SHIRT_PARTS}
    colours.update({p: np.array(subject.trousers) for p in TROUSER_PARTS})
    colours["head"] = np.array(subject.skin)
    for p in ("forearm_l", "forearm_r"):
        colours[p] = np.array(subject.shirt if subject.long_sleeves else subject.skin)
    for name, a, b, r in part_segments(pose, hw):
        inside, u, v = _capsule_uv(px, py, a, b, r)
        colour = np.broadcast_to(colours[name], (h, w, 3))
        if name == "torso" and subject.stripes:
            # stripes across the torso: the darker half-periods of a wave along U
            dark = np.sin(2 * math.pi * subject.stripes * (u - UV_MIN) / (1 - UV_MIN)) > 0.5
            colour = np.where(dark[..., None], colour * STRIPE_SHADE, colour)
        image[inside] = colour[inside]
        uv[0][inside], uv[1][inside] = u[inside], v[inside]
        parts[inside] = PART_INDEX[name]
    return Rendering(image.astype(np.float32), uv.astype(np.float32), parts)


# -- motions ---------------------------------------------------------------------------------------------------

def motion_pose(motion: str, t: float, phase: float = 0.0, x0: float = 0.5, scale: float = 0.95) -> Pose:
    """The pose of ``motion`` at time ``t`` (in cycles; one cycle is a stride, a wave or a half turn)."""
    a = 2 * math.pi * t + phase
    if motion == "walk":
        swing = 0.45 * math.sin(a)
        x = x0 + 0.18 * math.sin(2 * math.pi * t / 4.0 + phase)  # crosses the frame slowly
        return Pose(x=x, y=0.55, scale=scale, turn=0.0,
                    arm_l=(-0.8 * swing + 0.1, 0.25), arm_r=(0.8 * swing - 0.1, 0.25),
                    leg_l=(swing, max(0.0, -0.7 * math.sin(a + 0.8))), leg_r=(-swing, max(0.0, 0.7 * math.sin(a + 0.8))))
    if motion == "wave":
        return Pose(x=x0 + 0.02 * math.sin(a), y=0.55, scale=scale, turn=0.0,
                    arm_l=(2.4 + 0.15 * math.sin(a), 0.6 * math.sin(a)), arm_r=(-0.15, 0.1),
                    leg_l=(0.08, 0.0), leg_r=(-0.08, 0.0))
    if motion == "swing":  # standing, both arms swinging forward and back in opposition, knees flexing a little
        swing = 0.7 * math.sin(a)
        bend = 0.15 * (1 + math.sin(a))
        return Pose(x=x0, y=0.55, scale=scale, turn=0.0,
                    arm_l=(swing + 0.1, 0.3 + 0.2 * math.sin(a)), arm_r=(-swing - 0.1, 0.3 - 0.2 * math.sin(a)),
                    leg_l=(0.08, bend), leg_r=(-0.08, bend))
    if motion == "turn":
        return Pose(x=x0, y=0.55, scale=scale, turn=math.pi * t + phase,
                    arm_l=(0.3 + 0.1 * math.sin(a), 0.2), arm_r=(-0.3 - 0.1 * math.sin(a), 0.2),
                    leg_l=(0.08, 0.0), leg_r=(-0.08, 0.0))
    raise ValueError(f"motion must be one of {MOTIONS + ('swing',)}, not {motion!r}")


@dataclass
class Video:
    subject: Subject
    motion: str
    frames: list[Rendering]

    @property
    def uv(self) -> np.ndarray:
        """(N, 2, H, W) UV of every frame."""
        return np.stack([f.uv for f in self.frames])

    @property
    def images(self) -> np.ndarray:
        """(N, H, W, 3) pictures (a ComfyUI IMAGE batch as numpy)."""
        return np.stack([f.image for f in self.frames])


def make_video(subject: Subject, motion: str, frames: int = 8, hw: tuple[int, int] = (80, 64), seed: int = 0,
               cycles: float = 1.0) -> Video:
    """``frames`` frames of ``motion`` over ``cycles`` cycles, with a seeded phase and position."""
    g = np.random.default_rng(seed)
    phase = float(g.uniform(0, 2 * math.pi)) if motion != "turn" else float(g.uniform(0, math.pi))
    x0 = float(g.uniform(0.4, 0.6))
    scale = float(g.uniform(0.9, 1.0))
    poses = [motion_pose(motion, cycles * k / max(frames, 1), phase, x0, scale) for k in range(frames)]
    return Video(subject, motion, [render(p, subject, hw) for p in poses])


def write_video(video: Video, folder: str) -> None:
    """``frame_N.png`` + ``frame_N_densepose.npy`` (float64, as DreamPose's utils/densepose.py saves) per frame."""
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    for k, frame in enumerate(video.frames):
        Image.fromarray(to_uint8(frame.image)).save(os.path.join(folder, f"frame_{k}.png"))
        np.save(os.path.join(folder, f"frame_{k}_densepose.npy"), frame.uv.astype(np.float64))


def to_uint8(image: np.ndarray) -> np.ndarray:
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8)


def dataset_videos(videos: int, frames: int, hw: tuple[int, int] = (80, 64), seed: int = 0) -> list[Video]:
    """``videos`` videos, each a new subject (seed + k) in motion k mod 3 (walk, wave, turn)."""
    return [make_video(make_subject(seed + k), MOTIONS[k % len(MOTIONS)], frames, hw, seed=seed + 1000 + k)
            for k in range(videos)]


def write_ubc_dataset(root: str, videos: int = 12, frames: int = 8, hw: tuple[int, int] = (80, 64),
                      seed: int = 0) -> list[Video]:
    """The UBC-Fashion layout: ``root/video_KKK/frame_N.png`` + ``frame_N_densepose.npy``."""
    out = dataset_videos(videos, frames, hw, seed)
    for k, video in enumerate(out):
        write_video(video, os.path.join(root, f"video_{k:03d}"))
    return out


@dataclass
class MotionClip:
    """A short clip with continuous motion for temporal training: every frame's picture and exact UV, and a photo of
    the subject in another pose (the DreamPose reference picture) with its UV map."""

    video: Video
    photo: np.ndarray  # (H, W, 3)
    photo_uv: np.ndarray  # (2, H, W)


def motion_clips(count: int, frames: int = 8, hw: tuple[int, int] = (80, 64), seed: int = 0,
                 subjects: int | None = None, subject_seed: int = 0, cycles: float = CLIP_CYCLES) -> list[MotionClip]:
    """``count`` seeded clips of ``CLIP_MOTIONS`` in turn, each ``cycles`` of its motion over ``frames`` frames (a new
    phase and position per clip). Subjects are ``make_subject(subject_seed + k % subjects)`` (the tiny DreamPose's
    training subjects for ``subject_seed`` 0 and ``subjects`` 24); the photo is frame 0 of the subject's ``turn`` drawn
    with another seed, as the DreamPose claims harness photographs its subjects."""
    subjects = subjects or count
    out = []
    for k in range(count):
        s = subject_seed + k % subjects
        subject = make_subject(s)
        video = make_video(subject, CLIP_MOTIONS[k % len(CLIP_MOTIONS)], frames, hw, seed=seed * 100_003 + 7 + k,
                           cycles=cycles)
        photo = make_video(subject, "turn", 1, hw, seed=20_000 + s).frames[0]
        out.append(MotionClip(video, photo.image, photo.uv))
    return out
