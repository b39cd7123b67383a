"""The frame loop of the DensePose UV estimator: photos in, DreamPose's UV layout out.

The caller (the node) supplies the device and dtype ComfyUI's model management picked, a progress callback and the
interrupt check; nothing here imports ComfyUI.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Callable

import torch

from ..dreampose.poses import near_viridis
from ..errors import AnimaPoseError
from .convert import person_canvas
from .model import DensePoseModel
from .sequence import MISSING_CHOICES, PERSON_CHOICES, choose_person, fill_missing, smooth_uv

log = logging.getLogger(__name__)

# Frames moved to the device together (the exports take one frame per call, so this only batches the transfers).
CHUNK = 16
_PHOTO_FIX = ("connect the video frames or photos themselves (e.g. LoadVideo -> GetVideoComponents 'images', or "
              "LoadImage), not a rendered pose image")


@dataclasses.dataclass
class Estimate:
    labels: torch.Tensor  # (N, H, W) uint8 part index (1..24), 0 = background
    uv: torch.Tensor  # (N, 2, H, W) float32 in [0, 1], 0 on the background
    found: list[bool]  # which frames had a detection
    filled: list[tuple[int, int]]  # (frame, source frame) pairs filled from a neighbour


def to_uint8_rgb(images: torch.Tensor) -> torch.Tensor:
    """ComfyUI IMAGE (N, H, W, C) floats in [0, 1] -> (N, H, W, 3) uint8."""
    return (images[..., :3].float().clamp(0, 1) * 255).round().to(torch.uint8)


def check_photos(images: torch.Tensor, input_name: str = "images") -> None:
    """Refuses pose renders fed where photos belong; the message says what the pictures look like."""
    if images.ndim != 4 or images.shape[-1] not in (3, 4) or images.shape[0] == 0:
        raise AnimaPoseError(input_name, f"expected an IMAGE batch [frames, height, width, 3], got "
                             f"{list(images.shape)}", "connect an IMAGE output (video frames or photos)")
    # A few frames spread over the batch are enough to name the kind of picture and keep long videos cheap.
    pick = torch.linspace(0, images.shape[0] - 1, min(images.shape[0], 8)).round().long().unique()
    rgb = images[pick, ..., :3].float().clamp(0, 1)
    px = rgb.reshape(-1, 3)
    if len(px) > 200_000:
        px = px[torch.linspace(0, len(px) - 1, 200_000).long()]
    problem = _render_kind(px)
    if problem:
        raise AnimaPoseError(input_name, f"the pictures look like {problem}; the DensePose estimator expects photos "
                             "or video frames of a person", _PHOTO_FIX)


def _render_kind(px: torch.Tensor) -> str | None:
    blue = px[:, 2]
    if px.amax() > 0.05 and blue.mean() <= 0.02 and (blue > 0.1).float().mean() <= 0.002:
        return "a DensePose UV map (U in red, V in green, blue empty), i.e. already a pose"
    if near_viridis(px).float().mean() >= 0.9:
        return ("a Viridis colour-mapped DensePose render (e.g. comfyui_controlnet_aux's DensePose Estimator "
                "output)")
    dark = px.amax(1) <= 0.05
    fg = px[~dark]
    if dark.float().mean() >= 0.5 and len(fg) > 0:
        pure_hue = (fg.amin(1) <= 0.03) & (fg.amax(1) >= 0.3)
        if pure_hue.float().mean() >= 0.8:
            return "an OpenPose/DWPose skeleton render (coloured limbs on black)"
    quant = (px * 255).round().long()
    codes = quant[:, 0] * 65536 + quant[:, 1] * 256 + quant[:, 2]
    counts = torch.unique(codes, return_counts=True)[1]
    if counts.sort(descending=True).values[:30].sum() >= 0.97 * len(codes):
        return "a flat colour-mapped render (e.g. a DensePose Parula part map or a segmentation map)"
    return None


def estimate(model: DensePoseModel, images: torch.Tensor, person: str = "largest", missing: str = "error",
             smoothing: int = 0, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
             offload_device: torch.device | str = "cpu", progress: Callable[[int], None] | None = None,
             interrupt: Callable[[], None] | None = None, input_name: str = "images",
             check: bool = True) -> Estimate:
    """DensePose labels and UV of the chosen person in every frame, at the frames' size."""
    if person not in PERSON_CHOICES:
        raise AnimaPoseError("person", f"'{person}' is not one of {PERSON_CHOICES}", "pick one of the listed choices")
    if missing not in MISSING_CHOICES:
        raise AnimaPoseError("missing", f"'{missing}' is not one of {MISSING_CHOICES}", "pick one of the choices")
    if check:
        check_photos(images, input_name)
    n, height, width = images.shape[:3]
    # uint8: part indices fit, and a long video at full HD would need 8x the memory as int64
    labels = torch.zeros(n, height, width, dtype=torch.uint8)
    uv = torch.zeros(n, 2, height, width, dtype=torch.float32)
    found = [False] * n
    model.to(device, dtype)
    try:
        for start in range(0, n, CHUNK):
            chunk = to_uint8_rgb(images[start:start + CHUNK]).to(device)
            for j in range(chunk.shape[0]):
                if interrupt is not None:
                    interrupt()
                det = model(chunk[j])
                index = choose_person(det.boxes, det.scores, person)
                if index is not None:
                    lab, frame_uv = person_canvas(det.boxes, det.coarse, det.fine, det.u, det.v, index, height, width)
                    labels[start + j] = lab.to(torch.uint8).cpu()
                    uv[start + j] = frame_uv.float().cpu()
                    found[start + j] = bool((lab > 0).any())
                if progress is not None:
                    progress(1)
    finally:
        model.to(offload_device, model.stored_dtype if torch.device(offload_device).type != "cpu" else torch.float32)
    if not any(found):
        raise AnimaPoseError(input_name, f"no person was found in any of the {n} frames",
                             "use a video or photo that shows a person (full body, not too small), or another "
                             "DensePose model")
    filled: list[tuple[int, int]] = []
    if not all(found):
        if missing == "error":
            gaps = [i for i, f in enumerate(found) if not f]
            shown = ", ".join(str(i) for i in gaps[:12]) + (", ..." if len(gaps) > 12 else "")
            raise AnimaPoseError(input_name, f"no person was found in {len(gaps)} of {n} frames (frames {shown}, "
                                 "counted from 0)", "set 'missing' to 'nearest' to give those frames the pose of the "
                                 "nearest frame with a person, or cut them from the video")
        labels, uv, filled = fill_missing(labels, uv, found)
        log.info("DensePose: %d frames without a person filled from their nearest neighbour", len(filled))
    if smoothing > 0:
        uv = smooth_uv(labels, uv, smoothing)
    return Estimate(labels, uv.clamp(0, 1), found, filled)
