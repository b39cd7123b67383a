"""PIA's per-frame affinity (how closely each frame follows the input picture): the presets of PIA's own code and
the numbers a user types instead. Pure; no ComfyUI import, so the PIA node checks typed values when the prompt is
queued with the same code that builds the schedule when it runs."""

from __future__ import annotations

import math

from ...errors import AnimaPoseError

PIA_NODE = "AnimateDiff PIA Image (picture to video)"

# The affinity schedules of PIA's inference code (animatediff/utils/util.py RANGE_LIST, also diffusers'
# pipeline_pia.py): index = distance in frames from the conditioning frame, padded with the last value.
AFFINITY_PRESETS: dict[str, list[float]] = {
    "small motion": [1.0, 0.9, 0.85, 0.85, 0.85, 0.8],
    "moderate motion": [1.0, 0.8, 0.8, 0.8, 0.79, 0.78, 0.75],
    "large motion": [1.0, 0.8, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.6, 0.5, 0.5],
    "loop (small motion)": [1.0, 0.9, 0.85, 0.85, 0.85, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.85, 0.85, 0.9, 1.0],
    "loop (moderate motion)": [1.0, 0.8, 0.8, 0.8, 0.79, 0.78, 0.75, 0.75, 0.75, 0.75, 0.75, 0.78, 0.79, 0.8, 0.8, 1.0],
    "loop (large motion)": [1.0, 0.8, 0.7, 0.7, 0.7, 0.7, 0.6, 0.5, 0.5, 0.6, 0.7, 0.7, 0.7, 0.7, 0.8, 1.0],
    "style transfer (small motion)": [0.5, 0.4, 0.4, 0.4, 0.35, 0.3],
    "style transfer (moderate motion)": [0.5, 0.4, 0.4, 0.4, 0.35, 0.35, 0.3, 0.25, 0.2],
    "style transfer (large motion)": [0.5, 0.2],
}
PRESET_NAMES = list(AFFINITY_PRESETS)

# PIA trained its affinity channel on values in 0..1 (1: the frame is the picture); every preset stays inside.
AFFINITY_MIN, AFFINITY_MAX = 0.0, 1.0


def parse_affinity(text: str, frames: int | None = None, input_name: str = "custom_affinity") -> list[float]:
    """Comma-separated affinities, frame 0 first. Each lies in 0..1 and there are at most ``frames`` of them (when
    the frame count is known); fewer are fine: ``affinity_schedule`` repeats the last one, as PIA's own code
    pads its presets."""
    fix = "enter comma-separated numbers between 0 and 1 (frame 0 first), e.g. 1.0, 0.9, 0.85, 0.8"
    parts = [part.strip() for part in text.replace(";", ",").split(",") if part.strip()]
    if not parts:
        raise AnimaPoseError(input_name, "it holds no numbers", fix, node=PIA_NODE)
    if frames is not None and len(parts) > frames:
        raise AnimaPoseError(input_name, f"{len(parts)} values for a clip of {frames} frames (one value per frame at "
                             "most)", f"give at most {frames} values (or raise 'frames'); fewer are padded with the "
                             "last value", node=PIA_NODE)
    values = []
    for n, part in enumerate(parts, 1):
        try:
            value = float(part)
        except ValueError:
            value = math.nan
        shown = part if len(part) <= 40 else part[:37] + "..."
        if not math.isfinite(value):
            raise AnimaPoseError(input_name, f"value {n} ('{shown}') is not a finite number", fix, node=PIA_NODE)
        if not AFFINITY_MIN <= value <= AFFINITY_MAX:
            raise AnimaPoseError(input_name, f"value {n} ({value:g}) is outside {AFFINITY_MIN:g}..{AFFINITY_MAX:g}, "
                                 "the range PIA's affinity was trained on (1: the frame is the picture)", fix,
                                 node=PIA_NODE)
        values.append(value)
    return values


def affinity_schedule(frames: int, preset: str, custom: str = "", cond_frame: int = 0) -> list[float]:
    """Per-frame affinity: ``values[|i - cond_frame|]``, the list padded with its last value (PIA's
    ``prepare_mask_coef_by_statistics``). ``custom`` (comma-separated numbers) replaces the preset when given."""
    if custom.strip():
        values = parse_affinity(custom, frames)
    elif preset in AFFINITY_PRESETS:
        values = AFFINITY_PRESETS[preset]
    else:
        raise AnimaPoseError("affinity", f"'{preset}' is not one of PIA's presets", f"pick one of {PRESET_NAMES}")
    if not 0 <= cond_frame < frames:
        raise AnimaPoseError("frames", f"the picture's frame {cond_frame} is outside a clip of {frames} frames",
                             "use at least one frame")
    padded = list(values) + [values[-1]] * max(0, frames - len(values))
    return [padded[abs(i - cond_frame)] for i in range(frames)]
