"""Motion amount controls: multivals (a constant, one value per frame, or a per-frame spatial mask) and
keyframes that change them by sampling percent.

Two controls take multivals, with the leading pack's (AnimateDiff-Evolved's) meanings:

- ``effect``: blends what the motion modules add, ``x + e * module(x)`` (``module(x)`` being the module's output
  minus its input). It is the Apply node's ``motion_scale``: 1 is the original AnimateDiff, 0 the image model.
- ``scale``: multiplies the keys inside every temporal attention (``k = s * to_k(x)``), i.e. it sharpens (> 1) or
  flattens (< 1) how strongly frames attend to each other. A per-frame value scales that frame's keys.

A constant multival takes exactly the code path of a plain float (bitwise the same result); only per-frame or
masked values build tensors, once per sampling, window and resolution. Pure torch; no ComfyUI import.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ...errors import AnimaPoseError
from .. import MAX_FRAMES

MULTIVAL_NODE = "AnimateDiff Motion Multival"
KEYFRAME_NODE = "AnimateDiff Motion Keyframe"
# The range of the node's 'value' widget; the per-frame factors typed as text get the same range.
VALUE_MIN, VALUE_MAX = -10.0, 10.0

_POINT = re.compile(r"^\s*(-?\d+)\s*:\s*(-?[0-9.eE+-]+)\s*$")


def parse_per_frame(text: str, input_name: str = "per_frame") -> tuple[list[float] | None, list[tuple[int, float]] | None]:
    """``"1, 0.8, 0.5"`` (one value per frame) or ``"0: 1.0, 16: 0.5"`` (keyframes by frame, linearly
    interpolated, held before the first and after the last). Returns (list, None), (None, points) or (None, None)
    for an empty text. Separators: commas or new lines. Values follow the 'value' widget's range, frames and counts
    the longest clip a frames widget allows; whether they fit the clip being sampled is checked before sampling
    (``Multival.check``). The node runs this when the prompt is queued and again when it executes."""
    parts = [p.strip() for p in re.split(r"[,\n]", text or "") if p.strip()]
    if not parts:
        return None, None
    if len(parts) > MAX_FRAMES:
        raise AnimaPoseError(input_name, f"{len(parts)} items, more than the longest clip ({MAX_FRAMES} frames)",
                             "give at most one value per frame, or a few keyframes like '0: 1.0, 16: 0.5'",
                             node=MULTIVAL_NODE)
    if any(":" in p for p in parts):
        points = []
        for n, p in enumerate(parts, 1):
            m = _POINT.match(p)
            if not m:
                raise AnimaPoseError(input_name, f"item {n} ('{_short(p)}') is not 'frame: value'",
                                     "write keyframes like '0: 1.0, 16: 0.5', or plain values like '1.0, 0.8, 0.5'",
                                     node=MULTIVAL_NODE)
            frame, value = frame_number(m.group(1)), _number(m.group(2), n, p, input_name)
            if frame is None or not 0 <= frame < MAX_FRAMES:
                raise AnimaPoseError(input_name, f"item {n} ('{_short(p)}') names a frame outside 0..{MAX_FRAMES - 1}",
                                     f"frames count from 0 and a clip has at most {MAX_FRAMES} frames",
                                     node=MULTIVAL_NODE)
            if any(f == frame for f, _ in points):
                raise AnimaPoseError(input_name, f"frame {frame} is given twice (item {n})",
                                     "give each frame at most one value", node=MULTIVAL_NODE)
            points.append((frame, value))
        return None, sorted(points)
    return [_number(p, n, p, input_name) for n, p in enumerate(parts, 1)], None


def _number(text: str, n: int, item: str, input_name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if value != value or value in (float("inf"), float("-inf")):
        raise AnimaPoseError(input_name, f"item {n} ('{_short(item)}') is not a finite number",
                             "use numbers like 1.0 or 0.5", node=MULTIVAL_NODE)
    if not VALUE_MIN <= value <= VALUE_MAX:
        raise AnimaPoseError(input_name, f"item {n} ('{_short(item)}') is {value:g}, outside {VALUE_MIN:g}..{VALUE_MAX:g}, "
                             "the range of the node's 'value' widget",
                             f"use factors between {VALUE_MIN:g} and {VALUE_MAX:g}", node=MULTIVAL_NODE)
    return value


def frame_number(digits: str) -> int | None:
    """A frame number typed as text, or None when it has too many digits to be one (Python refuses to convert
    integers of more than 4300 digits, and no clip comes near 10 digits)."""
    return int(digits) if len(digits.lstrip("+-")) <= 9 else None


def _short(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."


def interpolate_points(points: list[tuple[int, float]], frames: int) -> torch.Tensor:
    """Linear between keyframes, held before the first and after the last; shape (frames,), float32."""
    out = torch.empty(frames, dtype=torch.float32)
    for i in range(frames):
        if i <= points[0][0]:
            out[i] = points[0][1]
        elif i >= points[-1][0]:
            out[i] = points[-1][1]
        else:
            for (fa, va), (fb, vb) in zip(points, points[1:]):
                if fa <= i <= fb:
                    t = (i - fa) / (fb - fa)
                    out[i] = (1 - t) * va + t * vb
                    break
    return out


@dataclass(eq=False)
class Multival:
    """``value`` times an optional per-frame list (or frame keyframes) times an optional (frames, H, W) mask."""

    value: float = 1.0
    frame_list: list[float] | None = None
    frame_points: list[tuple[int, float]] | None = None
    mask: torch.Tensor | None = None

    @property
    def constant(self) -> bool:
        return self.frame_list is None and self.frame_points is None and self.mask is None

    def check(self, frames: int, input_name: str = "motion_scale") -> None:
        """Raises when the per-frame parts do not fit a clip of ``frames`` frames (before any sampling work)."""
        if self.frame_list is not None and len(self.frame_list) not in (1, frames):
            raise AnimaPoseError("per_frame", f"{len(self.frame_list)} values for a clip of {frames} frames",
                                 f"give exactly {frames} values (one per frame), or keyframes like "
                                 f"'0: 1.0, {frames - 1}: 0.5'", node=MULTIVAL_NODE)
        if self.frame_points is not None and self.frame_points[-1][0] >= frames:
            raise AnimaPoseError("per_frame", f"keyframe {self.frame_points[-1][0]} is beyond the clip's last frame "
                                 f"({frames - 1})", f"use frames 0..{frames - 1}", node=MULTIVAL_NODE)
        if self.mask is not None and self.mask.shape[0] not in (1, frames):
            raise AnimaPoseError("mask", f"the mask has {self.mask.shape[0]} frames but the clip has {frames}",
                                 f"give a mask of 1 or {frames} frames (a batch of {frames} masks)",
                                 node=MULTIVAL_NODE)

    def frame_table(self, frames: int) -> torch.Tensor | None:
        """The per-frame factor (value included), shape (frames,), or None when there is none."""
        if self.frame_list is not None:
            t = torch.tensor(self.frame_list, dtype=torch.float32)
            return (t.expand(frames) if t.numel() == 1 else t) * self.value
        if self.frame_points is not None:
            return interpolate_points(self.frame_points, frames) * self.value
        return None

    def describe(self) -> str:
        parts = [f"{self.value:g}"]
        if self.frame_list is not None:
            parts.append(f"{len(self.frame_list)} per-frame values")
        if self.frame_points is not None:
            parts.append(f"keyframes at frames {', '.join(str(f) for f, _ in self.frame_points)}")
        if self.mask is not None:
            parts.append(f"mask of {self.mask.shape[0]} frame(s)")
        return " x ".join(parts)


def as_multival(value) -> Multival:
    return value if isinstance(value, Multival) else Multival(float(value))


@dataclass
class MotionKeyframe:
    """From ``start_percent`` of sampling on (until the next keyframe), these effect and scale values apply."""

    start_percent: float
    effect: Multival
    scale: Multival


def add_keyframe(previous: list[MotionKeyframe] | None, keyframe: MotionKeyframe) -> list[MotionKeyframe]:
    """A new sorted list; two keyframes at the same percent are an error (which would win is not obvious)."""
    frames = list(previous or [])
    if any(abs(k.start_percent - keyframe.start_percent) < 1e-9 for k in frames):
        raise AnimaPoseError("start_percent", f"another keyframe in the chain already starts at "
                             f"{keyframe.start_percent:g}", "give each keyframe its own start_percent",
                             node=KEYFRAME_NODE)
    return sorted([*frames, keyframe], key=lambda k: k.start_percent)


# -- evaluation per UNet call ---------------------------------------------------------------------------------------

@dataclass(eq=False)
class ResolvedControls:
    """The multivals of one stage, expanded for one sampling of ``frames`` frames, with per-call caches."""

    frames: int
    cache: dict = field(default_factory=dict)

    def effect(self, mv: Multival, index: list[int], chunks: int, h: int, w: int, device, dtype):
        """A float for a constant multival, else a (chunks*len(index), 1, 1|h, 1|w) tensor."""
        if mv.constant:
            return mv.value
        key = ("effect", id(mv), tuple(index), chunks, h, w, device, dtype)
        if key not in self.cache:
            t = _frames_by_pixels(mv, self.frames, index, h, w)  # (f, 1, h|1, w|1)
            self.cache[key] = t.repeat(chunks, 1, 1, 1).to(device=device, dtype=dtype)
        return self.cache[key]

    def key_scale(self, mv: Multival, index: list[int], chunks: int, h: int, w: int, device, dtype):
        """None for a constant 1, a float for another constant, else a (chunks*h*w | 1, f, 1) tensor matching the
        temporal attention's (sequences, frames, channels) keys (sequence = clip * h * w + pixel)."""
        if mv.constant:
            return None if mv.value == 1.0 else mv.value
        key = ("scale", id(mv), tuple(index), chunks, h, w, device, dtype)
        if key not in self.cache:
            t = _frames_by_pixels(mv, self.frames, index, h, w)  # (f, 1, h|1, w|1)
            f = t.shape[0]
            if t.shape[-1] == 1 and t.shape[-2] == 1:
                out = t.reshape(1, f, 1)
            else:
                out = t.reshape(f, h * w).transpose(0, 1).repeat(chunks, 1).unsqueeze(-1)
            self.cache[key] = out.to(device=device, dtype=dtype)
        return self.cache[key]


def _frames_by_pixels(mv: Multival, frames: int, index: list[int], h: int, w: int) -> torch.Tensor:
    idx = torch.tensor(index, dtype=torch.long)
    out = torch.full((len(index), 1, 1, 1), float(mv.value), dtype=torch.float32)
    table = mv.frame_table(frames)
    if table is not None:
        out = table[idx].reshape(-1, 1, 1, 1)
    if mv.mask is not None:
        mask = mv.mask.float()
        if mask.ndim == 2:
            mask = mask.unsqueeze(0)
        mask = mask.expand(frames, -1, -1) if mask.shape[0] == 1 else mask
        m = mask[idx].unsqueeze(1)
        if m.shape[-2:] != (h, w):
            m = F.interpolate(m, size=(h, w), mode="bilinear", align_corners=False)
        out = out * m
    return out
