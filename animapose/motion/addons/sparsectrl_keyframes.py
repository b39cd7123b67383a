"""Which frames SparseCtrl's hint images land on: the frame numbers typed into 'AnimateDiff SparseCtrl Keyframes'
and their placement on a clip. Pure; no ComfyUI import, so the node checks what it can when the prompt is queued
with the same parser it runs with. What depends on other nodes (the clip's frame count, known only to the sampler,
and the number of hint images, given to 'Apply ControlNet') is checked by ``keyframe_plan`` during sampling, and
its errors still name this node, which owns the numbers."""

from __future__ import annotations

import logging

from ...errors import AnimaPoseError
from .. import MAX_FRAMES

log = logging.getLogger(__name__)

KEYFRAMES_NODE = "AnimateDiff SparseCtrl Keyframes"
APPLY_NODE = "Apply ControlNet"
INPUT = "frame_indices"


def parse_frame_indices(text: str) -> list[int] | None:
    """``"0, 15"`` -> [0, 15]; negative numbers count from the clip's end; empty -> None (spread evenly). Each
    number must be able to name a frame of the longest clip (-4096..4095), and no number may repeat."""
    if not (text or "").strip():
        return None
    fix = "enter frame numbers separated by commas, e.g. '0, 15' (or '0, -1' for first and last)"
    parts = [part.strip() for part in text.replace(";", ",").split(",") if part.strip()]
    if len(parts) > MAX_FRAMES:
        raise AnimaPoseError(INPUT, f"{len(parts)} frame numbers, more than the longest clip ({MAX_FRAMES} frames) has",
                             "give one frame number per hint image", node=KEYFRAMES_NODE)
    indices = []
    for n, part in enumerate(parts, 1):
        shown = part if len(part) <= 20 else part[:17] + "..."
        digits = part.lstrip("+-")
        if not digits.isdigit() or not digits.isascii() or part.count("-") + part.count("+") > 1:
            raise AnimaPoseError(INPUT, f"item {n} ('{shown}') is not a whole number", fix, node=KEYFRAMES_NODE)
        if len(digits) > 9 or not -MAX_FRAMES <= int(part) < MAX_FRAMES:
            raise AnimaPoseError(INPUT, f"item {n} ({shown}) is outside -{MAX_FRAMES}..{MAX_FRAMES - 1}: no clip has "
                                 "that frame", "use frame numbers of your clip: 0 is the first, -1 the last",
                                 node=KEYFRAMES_NODE)
        index = int(part)
        if index in indices:
            raise AnimaPoseError(INPUT, f"frame {index} is listed twice (items {indices.index(index) + 1} and {n})",
                                 "give each hint image its own frame", node=KEYFRAMES_NODE)
        indices.append(index)
    return indices


def keyframe_plan(indices: list[int] | None, images: int, frames: int) -> list[tuple[int, int]]:
    """(hint row, frame) pairs for a clip of ``frames``. Runs during sampling, where the clip's length and the
    number of hint images are known; the errors name the keyframes node and its input."""
    if indices is None:
        if images == 1:
            return [(0, 0)]
        count = min(images, frames)
        return [(r, round(r * (frames - 1) / (count - 1))) for r in range(count)] if count > 1 else [(0, 0)]
    if len(indices) > images:
        raise AnimaPoseError(INPUT, f"{len(indices)} frame numbers but only {images} hint image(s) reached the "
                             f"{APPLY_NODE} node", "give one hint image per frame number (batch the images), or "
                             "remove frame numbers", node=KEYFRAMES_NODE)
    plan = []
    used: dict[int, int] = {}
    for row, index in enumerate(indices):
        frame = index + frames if index < 0 else index
        if not 0 <= frame < frames:
            raise AnimaPoseError(INPUT, f"frame {index} is outside the clip of {frames} frames (the latent's batch "
                                 "size)", f"use frame numbers from 0 to {frames - 1}, or -1 to -{frames} counted from "
                                 "the end", node=KEYFRAMES_NODE)
        if frame in used:
            raise AnimaPoseError(INPUT, f"{indices[used[frame]]} and {index} both name frame {frame} of the "
                                 f"{frames}-frame clip, so one hint image would be lost",
                                 "give each hint image its own frame", node=KEYFRAMES_NODE)
        used[frame] = row
        plan.append((row, frame))
    if len(indices) < images:
        log.warning("SparseCtrl: %d hint images for %d frame numbers; the extra images are unused", images, len(indices))
    return plan
