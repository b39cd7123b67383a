"""Measures the object in a generated clip, frame by frame: foreground mask, colour, centroid and size, and from those
whether the clip is coherent (one object keeping its colour and size, moving smoothly) or a set of independent frames.

The background of each frame is the median colour of its border pixels (the synthetic clips and what a model trained
on them draws have plain backgrounds); the foreground is every pixel further than ``threshold`` from it (Euclidean RGB
distance in [0, 1] units). Colours are named by the nearest of the dataset's colours in RGB.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .shapes import COLOURS

FOREGROUND_THRESHOLD = 0.25


@dataclass
class FrameStats:
    area: float  # share of the frame's pixels in the foreground
    centroid: tuple[float, float] | None  # (x, y) in [0, 1] frame units; None without foreground
    colour: tuple[float, float, float] | None  # mean RGB of the foreground
    colour_name: str | None
    fill: float | None  # foreground share of its bounding box (circle ~0.79, square ~1, triangle ~0.5)


def _array(frames) -> np.ndarray:
    if isinstance(frames, torch.Tensor):
        frames = frames.detach().float().cpu().numpy()
    frames = np.asarray(frames, dtype=np.float32)
    if frames.ndim != 4 or frames.shape[-1] < 3:
        raise ValueError("expected frames as (frames, H, W, 3) in [0, 1]")
    return frames[..., :3]


def foreground_masks(frames, threshold: float = FOREGROUND_THRESHOLD) -> np.ndarray:
    """(frames, H, W) boolean masks of the pixels that differ from the frame's border (background) colour."""
    x = _array(frames)
    border = np.concatenate([x[:, 0], x[:, -1], x[:, :, 0], x[:, :, -1]], axis=1)  # (F, 2W+2H, 3)
    background = np.median(border, axis=1)[:, None, None, :]
    return np.linalg.norm(x - background, axis=-1) > threshold


def colour_name(rgb) -> str:
    names = list(COLOURS)
    ref = np.array([COLOURS[n] for n in names])
    return names[int(np.argmin(np.linalg.norm(ref - np.asarray(rgb)[None], axis=1)))]


def analyse_frames(frames, threshold: float = FOREGROUND_THRESHOLD) -> list[FrameStats]:
    x = _array(frames)
    masks = foreground_masks(x, threshold)
    h, w = masks.shape[1:]
    out = []
    for f in range(x.shape[0]):
        m = masks[f]
        n = int(m.sum())
        if n == 0:
            out.append(FrameStats(0.0, None, None, None, None))
            continue
        ys, xs = np.nonzero(m)
        colour = tuple(float(c) for c in x[f][m].mean(0))
        box = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
        out.append(FrameStats(n / (h * w), ((xs.mean() + 0.5) / w, (ys.mean() + 0.5) / h), colour,
                              colour_name(colour), n / box))
    return out


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def clip_metrics(frames, threshold: float = FOREGROUND_THRESHOLD) -> dict:
    """Coherence figures of one clip:
    - ``iou``: mean foreground IoU of consecutive frames (one object moving a little overlaps itself);
    - ``area_cv``: coefficient of variation of the foreground area over the frames (size kept: small);
    - ``jerk``: RMS of the centroid path's second differences, in frame units (smooth path: small);
    - ``colour_spread``: largest RGB distance of a frame's mean colour from the clip's (colour kept: small);
    - ``displacement``: (dx, dy) from the first to the last centroid, frame units (dx > 0: moved right);
    - ``colour`` / ``fill``: the clip's majority colour name and median bounding-box fill;
    - ``present``: share of frames with any foreground."""
    x = _array(frames)
    masks = foreground_masks(x, threshold)
    stats = analyse_frames(x, threshold)
    present = [s for s in stats if s.centroid is not None]
    areas = np.array([s.area for s in stats])
    out = {"present": len(present) / len(stats),
           "iou": float(np.mean([_iou(masks[k], masks[k + 1]) for k in range(len(stats) - 1)])) if len(stats) > 1
           else 1.0,
           "area": float(areas.mean()),
           "area_cv": float(areas.std() / areas.mean()) if areas.mean() > 0 else float("inf")}
    if len(present) >= 3:
        path = np.array([s.centroid for s in present])
        out["jerk"] = float(np.sqrt(np.mean(np.sum(np.diff(path, 2, axis=0) ** 2, axis=1))))
        out["displacement"] = (float(path[-1, 0] - path[0, 0]), float(path[-1, 1] - path[0, 1]))
    else:
        out["jerk"], out["displacement"] = float("inf"), (0.0, 0.0)
    if present:
        colours = np.array([s.colour for s in present])
        mean = colours.mean(0)
        out["colour_spread"] = float(np.max(np.linalg.norm(colours - mean[None], axis=1)))
        names = [s.colour_name for s in present]
        out["colour"] = max(set(names), key=names.count)
        out["fill"] = float(np.median([s.fill for s in present]))
    else:
        out.update(colour_spread=float("inf"), colour=None, fill=None)
    return out


def shape_from_fill(fill: float | None) -> str | None:
    """The dataset shape whose bounding-box fill is nearest (circle pi/4, square 1, triangle 1/2)."""
    if fill is None:
        return None
    ref = {"circle": np.pi / 4, "square": 1.0, "triangle": 0.5}
    return min(ref, key=lambda k: abs(ref[k] - fill))
