"""Per-sequence steps around the per-frame estimate: which person, frames without one, temporal smoothing and
alignment of the driving body to the subject's.

Every function takes and returns the estimate as ``labels`` (N, H, W) integers (0 = background, 1..24 = body part) and
``uv`` (N, 2, H, W) float (0 wherever the label is 0), so background and part boundaries stay known throughout.
"""

from __future__ import annotations

import dataclasses
import math

import torch

PERSON_CHOICES = ("largest", "highest score", "first")
MISSING_CHOICES = ("error", "nearest")


def choose_person(boxes: torch.Tensor, scores: torch.Tensor | None, choice: str) -> int | None:
    """Row of the chosen detection, or None when there is none.

    - ``largest``: the largest box area (the dancer, not a passer-by in the background);
    - ``highest score``: the most confident detection; exports without scores list rows in decreasing score order
      (detectron2's NMS output), so that is row 0;
    - ``first``: row 0, what DreamPose's official ``utils/densepose.py`` took (``pred_densepose[0]``).
    """
    if choice not in PERSON_CHOICES:
        raise ValueError(f"person must be one of {PERSON_CHOICES}, not {choice!r}")
    n = boxes.shape[0]
    if n == 0:
        return None
    if choice == "largest":
        wh = (boxes[:, 2:] - boxes[:, :2]).clamp(min=0)
        return int((wh[:, 0] * wh[:, 1]).argmax())
    if choice == "highest score" and scores is not None:
        return int(scores.argmax())
    return 0


def nearest_sources(found: list[bool]) -> list[int]:
    """For each frame, the nearest frame with a detection (itself when it has one; the earlier one on a tie)."""
    have = [i for i, f in enumerate(found) if f]
    if not have:
        raise ValueError("no frame has a detection")
    return [min(have, key=lambda j: (abs(j - i), j)) for i in range(len(found))]


def fill_missing(labels: torch.Tensor, uv: torch.Tensor, found: list[bool]) -> tuple[torch.Tensor, torch.Tensor,
                                                                                     list[tuple[int, int]]]:
    """Frames without a detection take the pose of the nearest frame that has one. Returns the filled maps and the
    (frame, source frame) pairs that were filled."""
    sources = nearest_sources(found)
    index = torch.tensor(sources)
    filled = [(i, s) for i, s in enumerate(sources) if i != s]
    return labels[index].clone(), uv[index].clone(), filled


def smooth_uv(labels: torch.Tensor, uv: torch.Tensor, radius: int, sigma: float | None = None) -> torch.Tensor:
    """Temporal smoothing of U and V that never mixes foreground with background, nor one body part with another.

    Each foreground pixel of frame t becomes the Gaussian-weighted mean (``sigma`` frames, radius/2 by default) of
    the same pixel in frames t-radius..t+radius, counting only frames where that pixel has the same part label as in
    frame t. Background pixels stay 0 and the labels (so the silhouette and its edges) are unchanged; only the UV
    values inside a part lose their frame-to-frame jitter. Part charts are separate UV patches, so averaging across
    parts would produce coordinates that belong to neither.
    """
    if radius <= 0:
        return uv
    sigma = sigma if sigma is not None else max(radius / 2.0, 0.5)
    n = uv.shape[0]
    out = torch.zeros_like(uv)
    for t in range(n):
        fg = labels[t] > 0
        acc = torch.zeros_like(uv[t])
        total = torch.zeros_like(uv[t][0])
        for k in range(-radius, radius + 1):
            s = t + k
            if s < 0 or s >= n:
                continue
            w = math.exp(-(k * k) / (2 * sigma * sigma))
            same = ((labels[s] == labels[t]) & fg).to(uv.dtype) * w
            acc += uv[s] * same
            total += same
        out[t] = torch.where(fg, acc / total.clamp(min=1e-12), torch.zeros((), dtype=uv.dtype))
    return out


def jitter(labels: torch.Tensor, uv: torch.Tensor) -> float:
    """Mean absolute frame-to-frame change of U and V over pixels that keep their part label between the two frames
    (the flicker a video model sees), for measuring smoothing."""
    same = (labels[1:] == labels[:-1]) & (labels[1:] > 0)
    diff = (uv[1:] - uv[:-1]).abs().sum(1)
    return float(diff[same].mean() / 2) if bool(same.any()) else 0.0


@dataclasses.dataclass
class Alignment:
    """q = scale * p + shift maps a driving-frame pixel position p (x, y) to the output canvas (the subject's size)."""

    scale: float
    shift_x: float
    shift_y: float
    height: int
    width: int
    driving_box: tuple[float, float, float, float]
    subject_box: tuple[float, float, float, float]

    def describe(self) -> str:
        d, s = self.driving_box, self.subject_box
        return (f"aligned to the subject: scale {self.scale:.3f}, shift ({self.shift_x:+.1f}, {self.shift_y:+.1f}) px, "
                f"canvas {self.width}x{self.height}; body box {_box_text(d)} -> {_box_text(s)}")


def _box_text(b) -> str:
    return f"[{b[0]:.0f},{b[1]:.0f} .. {b[2]:.0f},{b[3]:.0f}]"


def body_box(mask: torch.Tensor) -> tuple[float, float, float, float] | None:
    """Pixel extent (x0, y0, x1, y1; x1 and y1 exclusive) of a (H, W) foreground mask, or None when it is empty."""
    ys = torch.nonzero(mask.any(1)).flatten()
    xs = torch.nonzero(mask.any(0)).flatten()
    if len(ys) == 0:
        return None
    return float(xs[0]), float(ys[0]), float(xs[-1] + 1), float(ys[-1] + 1)


def alignment(driving_mask: torch.Tensor, subject_mask: torch.Tensor) -> Alignment | None:
    """The scale (from the box heights, so proportions are kept) and shift (box centres coincide) that put the
    driving body where the subject's body is, on a canvas of the subject's size. None when either mask is empty."""
    d, s = body_box(driving_mask), body_box(subject_mask)
    if d is None or s is None:
        return None
    scale = (s[3] - s[1]) / (d[3] - d[1])
    shift_x = (s[0] + s[2]) / 2 - scale * (d[0] + d[2]) / 2
    shift_y = (s[1] + s[3]) / 2 - scale * (d[1] + d[3]) / 2
    return Alignment(scale, shift_x, shift_y, subject_mask.shape[0], subject_mask.shape[1], d, s)


def apply_alignment(labels: torch.Tensor, uv: torch.Tensor, a: Alignment) -> tuple[torch.Tensor, torch.Tensor]:
    """Resamples every frame onto the subject's canvas with nearest-neighbour lookups, so no UV value is blended with
    a neighbour's (a bilinear resize would mix parts and pull edges towards 0)."""
    n, h, w = labels.shape
    qy = torch.arange(a.height, dtype=torch.float64) + 0.5
    qx = torch.arange(a.width, dtype=torch.float64) + 0.5
    py = torch.floor((qy - a.shift_y) / a.scale).long()
    px = torch.floor((qx - a.shift_x) / a.scale).long()
    inside = ((py >= 0) & (py < h))[:, None] & ((px >= 0) & (px < w))[None, :]
    iy = py.clamp(0, h - 1)[:, None].expand(a.height, a.width)
    ix = px.clamp(0, w - 1)[None, :].expand(a.height, a.width)
    out_labels = labels[:, iy, ix] * inside
    out_uv = uv[:, :, iy, ix] * inside
    return out_labels, out_uv
