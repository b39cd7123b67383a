"""A seeded synthetic animation dataset: short clips of one simple shape in one colour moving along a smooth path on
a plain background, each with a caption naming colour, shape and motion ("a red circle moving right").

Everything is drawn from one ``numpy.random.Generator``: the same seed gives bitwise the same clips. Shapes are
rendered from signed distances with a one-pixel soft edge (anti-aliased, no supersampling needed). Paths:
- linear: across the frame in one of four directions at constant speed ("moving right/left/up/down");
- bouncing: a straight diagonal path reflected at the walls ("bouncing");
- circular: around a centre at constant angular speed ("moving in a circle").
The layout on disk (``write_dataset``) is the one the training CLI reads: ``ROOT/<clip>/frame_NNNN.png`` plus a
``caption.txt`` per clip folder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

COLOURS = {"red": (0.90, 0.12, 0.10), "green": (0.10, 0.75, 0.20), "blue": (0.12, 0.30, 0.95),
           "yellow": (0.95, 0.85, 0.10)}
SHAPES = ("circle", "square", "triangle")
LINEAR = {"right": (1.0, 0.0), "left": (-1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0)}
MOTIONS = tuple(f"moving {d}" for d in LINEAR) + ("bouncing", "moving in a circle")
BACKGROUNDS = {"white": (0.96, 0.96, 0.96), "light gray": (0.78, 0.78, 0.78), "dark gray": (0.22, 0.22, 0.22)}


@dataclass
class ClipSpec:
    shape: str
    colour: str
    motion: str
    background: str
    radius: float  # pixels
    path: np.ndarray  # (frames, 2) centre x, y in pixels

    @property
    def caption(self) -> str:
        return f"a {self.colour} {self.shape} {self.motion}"


LINEAR_TRAVEL = (0.45, 0.65)  # a linear path covers this share (drawn uniformly) of the span its centre can reach


def _path(motion: str, frames: int, size: int, radius: float, rng: np.random.Generator,
          travel: tuple[float, float] = LINEAR_TRAVEL) -> np.ndarray:
    lo, hi = radius + 1.0, size - radius - 1.0
    t = np.arange(frames, dtype=np.float64)
    if motion.startswith("moving ") and motion[7:] in LINEAR:
        dx, dy = LINEAR[motion[7:]]
        travel = rng.uniform(*travel) * (hi - lo)
        along0 = rng.uniform(lo, max(lo, hi - travel))  # start so the whole path stays inside (max: rounding at 1)
        across = rng.uniform(lo + 0.15 * (hi - lo), hi - 0.15 * (hi - lo))
        s = along0 + travel * t / max(frames - 1, 1)
        if dx:
            x = s if dx > 0 else (lo + hi) - s
            return np.stack([x, np.full(frames, across)], 1)
        y = s if dy > 0 else (lo + hi) - s
        return np.stack([np.full(frames, across), y], 1)
    if motion == "bouncing":
        speed = rng.uniform(0.045, 0.065) * size
        angle = rng.uniform(0, 2 * math.pi)
        p0 = rng.uniform(lo, hi, 2)
        raw = p0[None] + t[:, None] * speed * np.array([math.cos(angle), math.sin(angle)])[None]
        span = hi - lo
        folded = np.mod(raw - lo, 2 * span)  # reflection at both walls: a triangle wave
        return lo + np.where(folded > span, 2 * span - folded, folded)
    if motion == "moving in a circle":
        r = rng.uniform(0.18, 0.26) * size
        cx, cy = rng.uniform(lo + r, hi - r, 2) if hi - lo > 2 * r else (size / 2, size / 2)
        phase = rng.uniform(0, 2 * math.pi)
        direction = rng.choice([-1.0, 1.0])
        a = phase + direction * 2 * math.pi * t / frames * rng.uniform(0.5, 0.75)
        return np.stack([cx + r * np.cos(a), cy + r * np.sin(a)], 1)
    raise ValueError(f"unknown motion {motion!r}; one of {MOTIONS}")


def _distance(shape: str, x: np.ndarray, y: np.ndarray, cx: float, cy: float, r: float) -> np.ndarray:
    dx, dy = x - cx, y - cy
    if shape == "circle":
        return np.hypot(dx, dy) - r
    if shape == "square":
        h = 0.85 * r  # about the circle's area
        return np.maximum(np.abs(dx), np.abs(dy)) - h
    if shape == "triangle":  # equilateral, apex up: the intersection of three half-planes (exact along the edges)
        big = 1.25 * r  # circumradius; about the circle's area
        k = math.sqrt(3.0) / 2
        edges = [dy, k * dx - 0.5 * dy, -k * dx - 0.5 * dy]  # outward normals: bottom, right, left (y grows down)
        return np.maximum.reduce(edges) - big / 2
    raise ValueError(f"unknown shape {shape!r}; one of {SHAPES}")


def render(spec: ClipSpec, size: int) -> np.ndarray:
    """(frames, size, size, 3) float32 in [0, 1]."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    bg = np.array(BACKGROUNDS[spec.background], dtype=np.float64)
    fg = np.array(COLOURS[spec.colour], dtype=np.float64)
    out = np.empty((len(spec.path), size, size, 3), dtype=np.float32)
    for f, (cx, cy) in enumerate(spec.path):
        cover = np.clip(0.5 - _distance(spec.shape, xs, ys, cx, cy, spec.radius), 0.0, 1.0)[..., None]
        out[f] = (bg * (1 - cover) + fg * cover).astype(np.float32)
    return out


def random_spec(rng: np.random.Generator, frames: int = 16, size: int = 64, shape: str | None = None,
                colour: str | None = None, motion: str | None = None, background: str | None = None,
                motions: tuple[str, ...] = MOTIONS, shapes: tuple[str, ...] = SHAPES,
                travel: tuple[float, float] = LINEAR_TRAVEL) -> ClipSpec:
    """One clip's description; unspecified attributes drawn from ``rng`` (always the same number of draws, so a fixed
    attribute does not shift the others); ``motions`` / ``shapes`` limit the paths and shapes drawn; ``travel``: the
    range a linear path's share of the frame is drawn from ((1, 1): from one edge to the other)."""
    picks = (rng.choice(list(shapes)), rng.choice(list(COLOURS)), rng.choice(list(motions)), rng.choice(list(BACKGROUNDS)))
    shape, colour = shape or str(picks[0]), colour or str(picks[1])
    motion, background = motion or str(picks[2]), background or str(picks[3])
    radius = float(rng.uniform(0.14, 0.18) * size)
    return ClipSpec(shape, colour, motion, background, radius, _path(motion, frames, size, radius, rng, travel))


def make_clips(count: int, seed: int, frames: int = 16, size: int = 64, **fixed) -> list[tuple[torch.Tensor, str,
                                                                                                   ClipSpec]]:
    """``count`` clips as (IMAGE (frames, size, size, 3), caption, spec); ``fixed`` pins shape/colour/motion/
    background (e.g. ``motion="moving right"`` for a MotionLoRA's training set)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        spec = random_spec(rng, frames, size, **fixed)
        out.append((torch.from_numpy(render(spec, size)), spec.caption, spec))
    return out


def write_dataset(root, count: int, seed: int, frames: int = 16, size: int = 64, **fixed) -> Path:
    """``ROOT/clip_NNNN/frame_NNNN.png`` and ``caption.txt``, the layout ``read_dataset`` and the CLI read."""
    from PIL import Image

    root = Path(root)
    for k, (clip, caption, _) in enumerate(make_clips(count, seed, frames, size, **fixed)):
        folder = root / f"clip_{k:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        for f, frame in enumerate(clip):
            Image.fromarray((frame.numpy() * 255 + 0.5).astype(np.uint8)).save(folder / f"frame_{f:04d}.png")
        (folder / "caption.txt").write_text(caption + "\n")
    return root


def read_dataset(root, size: tuple[int, int] | None = None) -> list[tuple[torch.Tensor, str]]:
    """[(IMAGE (frames, H, W, 3), caption)] for every folder under ``root`` holding PNG frames (sorted by name) and
    optionally a caption.txt (else the caption is empty); ``size`` (h, w) resizes every frame."""
    from PIL import Image

    root = Path(root)
    out = []
    for folder in sorted([root, *[p for p in root.rglob("*") if p.is_dir()]]):
        pngs = sorted(folder.glob("*.png"))
        if not pngs:
            continue
        frames = []
        for p in pngs:
            with Image.open(p) as im:
                im = im.convert("RGB")
                if size is not None and im.size != (size[1], size[0]):
                    im = im.resize((size[1], size[0]), Image.BICUBIC)
                frames.append(np.asarray(im, dtype=np.float32) / 255.0)
        caption_file = folder / "caption.txt"
        caption = caption_file.read_text().strip() if caption_file.is_file() else ""
        out.append((torch.from_numpy(np.stack(frames)), caption))
    return out
