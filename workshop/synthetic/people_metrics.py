"""Measuring generated people against the poses and the subject that drove them.

- ``silhouette``: the figure's pixels, where a frame differs from the (known or estimated) plain backdrop.
- ``iou``: intersection over union of two masks; ``pose_iou`` compares generated frames with the driving UV masks.
- ``region_colours`` / ``colour_error``: the mean colour of a frame inside given regions (e.g. the driving pose's
  shirt and trouser parts) and its RGB distance to the subject's clothing colours.
- ``flicker``: frame-to-frame change that the pose change does not explain: the mean absolute change of consecutive
  frames over the pixels where the driving UV map did not change (background that stayed background, body pixels
  that kept their surface coordinates).

Plain numpy; inputs are (H, W, 3) / (N, H, W, 3) RGB in [0, 1], (H, W) boolean masks and (N, 2, H, W) UV maps.
"""

from __future__ import annotations

import numpy as np

SILHOUETTE_THRESHOLD = 0.12  # a pixel is figure when some channel differs from the backdrop by more than this


def backdrop_colour(image: np.ndarray) -> np.ndarray:
    """The backdrop's colour: the median of the frame's border pixels (the figure seldom touches the border)."""
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    return np.median(border, axis=0)


def silhouette(image: np.ndarray, background=None, threshold: float = SILHOUETTE_THRESHOLD) -> np.ndarray:
    """(H, W) bool: pixels whose colour differs from the backdrop by more than ``threshold`` in some channel."""
    bg = backdrop_colour(image) if background is None else np.asarray(background, dtype=np.float64)
    return np.abs(image.astype(np.float64) - bg).max(axis=-1) > threshold


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def uv_mask(uv: np.ndarray) -> np.ndarray:
    """(..., H, W) bool body mask of UV maps (..., 2, H, W): any channel non-zero."""
    return (np.asarray(uv) > 0).any(axis=-3)


def pose_iou(frames: np.ndarray, uv: np.ndarray, background=None) -> np.ndarray:
    """Per-frame IoU between the generated figure's silhouette and the driving UV mask. ``uv`` must be at the
    frames' size."""
    return np.array([iou(silhouette(f, background), m) for f, m in zip(frames, uv_mask(uv))])


def region_colours(image: np.ndarray, regions: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """{region: mean RGB of ``image`` inside it} (NaN for an empty region)."""
    out = {}
    for name, mask in regions.items():
        out[name] = image[mask].mean(axis=0) if mask.any() else np.full(3, np.nan)
    return out


def colour_error(image: np.ndarray, regions: dict[str, np.ndarray], colours: dict[str, np.ndarray]) -> float:
    """Mean over the regions of the RGB distance between the image's mean colour there and the wanted colour."""
    got = region_colours(image, regions)
    d = [np.linalg.norm(got[k] - np.asarray(colours[k])) for k in colours if k in got and not np.isnan(got[k]).any()]
    return float(np.mean(d)) if d else float("nan")


def erode(mask: np.ndarray, steps: int = 1) -> np.ndarray:
    """4-neighbour binary erosion: keeps pixels whose neighbours are all inside (measures colour away from edges)."""
    m = mask.copy()
    for _ in range(steps):
        p = np.pad(m, 1, constant_values=False)
        m = m & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return m


def static_pixels(uv: np.ndarray, tolerance: float = 1e-3) -> np.ndarray:
    """(N-1, H, W) bool: pixels whose UV (and so body/background status) did not change from frame k to k+1."""
    uv = np.asarray(uv, dtype=np.float64)
    return (np.abs(uv[1:] - uv[:-1]) <= tolerance).all(axis=1)


def flicker(frames: np.ndarray, uv: np.ndarray, tolerance: float = 1e-3) -> float:
    """Mean absolute frame-to-frame change (over RGB, in [0, 1] units) on the pixels the pose change leaves alone."""
    frames = np.asarray(frames, dtype=np.float64)
    keep = static_pixels(uv, tolerance)
    change = np.abs(frames[1:] - frames[:-1]).mean(axis=-1)
    return float(change[keep].mean()) if keep.any() else float("nan")


def dilate(mask: np.ndarray, steps: int = 1) -> np.ndarray:
    """4-neighbour binary dilation over the last two axes (a stack of masks dilates each on its own)."""
    m = np.asarray(mask, dtype=bool).copy()
    pad = [(0, 0)] * (m.ndim - 2) + [(1, 1), (1, 1)]
    for _ in range(steps):
        p = np.pad(m, pad, constant_values=False)
        m = m | p[..., :-2, 1:-1] | p[..., 2:, 1:-1] | p[..., 1:-1, :-2] | p[..., 1:-1, 2:]
    return m


def background_flicker(frames: np.ndarray, uv: np.ndarray, margin: int = 4) -> float:
    """Mean absolute frame-to-frame change (RGB, [0, 1] units) of the backdrop: pixels farther than ``margin`` from
    the body in both frames, so the pose change (and the blur a coarse latent puts around the body) is left out."""
    frames = np.asarray(frames, dtype=np.float64)
    body = uv_mask(uv)
    away = ~(dilate(body[1:], margin) | dilate(body[:-1], margin))
    change = np.abs(frames[1:] - frames[:-1]).mean(axis=-1)
    return float(change[away].mean()) if away.any() else float("nan")


def colour_flicker(frames: np.ndarray, regions: list[dict[str, np.ndarray]]) -> float:
    """Mean frame-to-frame change of the subject's colours: the RGB distance between consecutive frames' mean
    colours of each garment, each frame's colour taken inside its own pose's region (so the pose change is
    discounted). ``regions`` holds per frame ``{"shirt": mask, "trousers": mask}`` of the driving pose."""
    colours = [region_colours(f, r) for f, r in zip(frames, regions)]
    d = [np.linalg.norm(b[k] - a[k]) for a, b in zip(colours[:-1], colours[1:]) for k in a
         if k in b and not (np.isnan(a[k]).any() or np.isnan(b[k]).any())]
    return float(np.mean(d)) if d else float("nan")
