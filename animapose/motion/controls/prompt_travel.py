"""Prompt travel: a keyframed prompt schedule (``0: a cat`` / ``16: a dog``) as per-frame CONDITIONING.

Each keyframe's prompt is encoded once; every frame gets the linear interpolation of its two neighbouring
keyframes' embeddings (``(1 - a) * start + a * end`` with ``a = (frame - start) / (end - start)``, the formula of
diffusers' FreeNoise prompt interpolation), or the earlier one's (``hold``). Frames before the first keyframe hold
its prompt, frames after the last hold the last. Pooled outputs (SDXL's ``y``) are interpolated the same way.

The result is an ordinary CONDITIONING whose tensor has one row per frame. ComfyUI repeats a batch-1 negative to
the frame count and concatenates cond and uncond, so per-frame conditioning survives cond/uncond batching as it
is; inside context windows, ``context.FrameWindowHandler`` hands each window its own frames' rows (of
``c_crossattn`` and ``y``). The dict carries the frame count under ``FRAMES_KEY``, so that a latent of another
length is refused before sampling (ComfyUI would silently cut or repeat the rows).
"""

from __future__ import annotations

import math
import re

import torch

from ...errors import AnimaPoseError
from .. import MAX_FRAMES
from .multival import frame_number

NODE = "AnimateDiff Prompt Travel"
FRAMES_KEY = "animapose_frames"
INTERPOLATIONS = ["linear", "hold"]

# The longest schedule text accepted. CLIP reads 77 tokens at a time: ComfyUI splits a longer prompt into chunks of
# 75 tokens, encodes them in one batch and joins them, so the cost grows with the text. Measured with ComfyUI's
# SD1.5 tokenizer and a CLIP-L on one CPU thread: 20,000 characters of prompt words are 53 chunks (4,081 tokens,
# 13 s, 0.3 GB above the model) and the worst case, a token every two characters, 267 chunks (72 s, 1 GB); a GPU
# takes a fraction of a second. That is far more text than a model follows (a usual schedule is a few hundred to a
# few thousand characters), while a 1 MB prompt made the server grow to 8 GB.
TEXT_LIMIT = 20_000
# The per-frame conditioning tensor may take this much memory (4096 frames of one-chunk SDXL prompts take 2.6 GB).
CONDITIONING_BUDGET = 4 * 1024**3

_LINE = re.compile(r"""^\s*["']?\s*(-?\d+)\s*["']?\s*:\s*(.*?)\s*$""")


def parse_schedule(text: str, frames: int | None, input_name: str = "text") -> list[tuple[int, str]]:
    """``frame: prompt`` per line (``"16": "a dog",`` as FizzNodes writes it works too; ``#`` starts a comment
    line). Returns the keyframes sorted by frame; every problem names its line. ``frames`` None (not known yet,
    when the prompt is queued with a linked 'frames') checks the frames against the longest clip."""
    check_text(text, input_name)
    limit = MAX_FRAMES if frames is None else frames
    points: dict[int, tuple[int, str]] = {}
    for n, raw in enumerate((text or "").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#") or line in ("{", "}"):
            continue
        m = _LINE.match(line)
        if not m:
            raise AnimaPoseError(input_name, f"line {n} ('{_short(line)}') is not 'frame: prompt'",
                                 "write one keyframe per line, e.g. '0: a cat' and '16: a dog'", node=NODE)
        frame = frame_number(m.group(1))
        prompt = m.group(2).rstrip(",").strip()
        if len(prompt) >= 2 and prompt[0] == prompt[-1] and prompt[0] in "\"'":
            prompt = prompt[1:-1]
        if not prompt.strip():
            raise AnimaPoseError(input_name, f"line {n} ('{_short(line)}') has no prompt after the frame number",
                                 "write the prompt after the colon, e.g. '0: a cat'", node=NODE)
        if frame is None or not 0 <= frame < limit:
            raise AnimaPoseError(input_name, f"line {n} puts a prompt at frame {_short(m.group(1))}, outside the "
                                 f"clip's frames 0..{limit - 1}", f"use frames 0..{limit - 1}, or raise 'frames' to the "
                                 "latent's frame count", node=NODE)
        if frame in points:
            raise AnimaPoseError(input_name, f"line {n} gives frame {frame} a second prompt (line {points[frame][0]} "
                                 "already did)", "give each frame at most one prompt", node=NODE)
        points[frame] = (n, prompt)
    if not points:
        raise AnimaPoseError(input_name, "the schedule has no 'frame: prompt' lines",
                             "write at least one line like '0: a cat'", node=NODE)
    return [(f, p) for f, (_, p) in sorted(points.items())]


def check_text(text, input_name: str = "text") -> None:
    """What the tokenizer can read: text (not another type), every character encodable as UTF-8 (a lone UTF-16
    surrogate such as '\\ud800', which JSON can carry, makes the tokenizer fail with a bare TypeError), and at most
    ``TEXT_LIMIT`` characters."""
    if not isinstance(text, str):
        raise AnimaPoseError(input_name, f"{type(text).__name__} is not text", "enter the schedule as text", node=NODE)
    if len(text) > TEXT_LIMIT:
        raise AnimaPoseError(input_name, f"the schedule is {len(text):,} characters long, more than the {TEXT_LIMIT:,} "
                             "accepted (CLIP reads 75 tokens at a time; longer text only costs memory and time)",
                             "shorten the prompts: a keyframe's prompt is usually a sentence or two", node=NODE)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        line = text.count("\n", 0, e.start) + 1
        column = e.start - (text.rfind("\n", 0, e.start) + 1) + 1
        raise AnimaPoseError(input_name, f"line {line}, character {column} is U+{ord(text[e.start]):04X}, half of a "
                             "UTF-16 surrogate pair, which is not a character and cannot be tokenized",
                             "delete that character, or send the text as proper UTF-8 (a client that escapes emoji "
                             "must send both halves of the pair)", node=NODE) from None


def _short(line: str) -> str:
    return line if len(line) <= 60 else line[:57] + "..."


def frame_weights(keyframes: list[int], frames: int, interpolation: str = "linear") -> list[tuple[int, int, float]]:
    """For each frame, (index of start keyframe, index of end keyframe, alpha)."""
    out = []
    for i in range(frames):
        if i <= keyframes[0]:
            out.append((0, 0, 0.0))
        elif i >= keyframes[-1]:
            out.append((len(keyframes) - 1, len(keyframes) - 1, 0.0))
        else:
            k = max(j for j, f in enumerate(keyframes) if f <= i)
            if interpolation == "hold" or keyframes[k] == i:
                out.append((k, k, 0.0))
            else:
                out.append((k, k + 1, (i - keyframes[k]) / (keyframes[k + 1] - keyframes[k])))
    return out


def interpolate(tensors: list[torch.Tensor], keyframes: list[int], frames: int, interpolation: str) -> torch.Tensor:
    """Per-frame rows from one (1, ...) tensor per keyframe: shape (frames, ...)."""
    rows = []
    for a, b, alpha in frame_weights(keyframes, frames, interpolation):
        if a == b:
            rows.append(tensors[a])
        else:
            rows.append((1 - alpha) * tensors[a] + alpha * tensors[b])
    return torch.cat(rows, dim=0)


def _match_lengths(conds: list[torch.Tensor]) -> list[torch.Tensor]:
    """Prompts past 77 tokens encode to longer sequences; repeating a sequence to a common length does not change
    what cross-attention computes from it (ComfyUI pads the same way when batching conds)."""
    length = math.lcm(*[c.shape[1] for c in conds])
    return [c.repeat(1, length // c.shape[1], 1) if c.shape[1] != length else c for c in conds]


def check_conditioning_size(conds: list[torch.Tensor], frames: int) -> None:
    """Before the per-frame rows are built: prompts of different lengths are repeated to their least common multiple
    (2, 3 and 5 chunks of 77 tokens become 30 chunks each), and every frame gets a row of that length."""
    lengths = sorted({c.shape[1] for c in conds})
    common = math.lcm(*lengths)
    first = conds[0]
    size = frames * common * first.shape[-1] * first.element_size()
    if size > CONDITIONING_BUDGET:
        shown = ", ".join(map(str, lengths))
        raise AnimaPoseError("text", f"the prompts encode to {shown} tokens; repeated to their common length "
                             f"({common} tokens) for {frames} frames they would take {size / 1024**3:.1f} GB, more "
                             f"than the {CONDITIONING_BUDGET / 1024**3:.0f} GB allowed",
                             "shorten the long prompts to one chunk (about 75 tokens) each, or give them equal "
                             "lengths, or use fewer frames", node=NODE)


def encode_schedule(clip, schedule: list[tuple[int, str]], frames: int, interpolation: str = "linear") -> list:
    """CONDITIONING with one row per frame (cross-attention and pooled output)."""
    if interpolation not in INTERPOLATIONS:
        raise AnimaPoseError("interpolation", f"'{interpolation}' is not one of {INTERPOLATIONS}",
                             "pick linear or hold", node=NODE)
    cache: dict[str, tuple[torch.Tensor, dict]] = {}
    for _, prompt in schedule:
        if prompt not in cache:
            cache[prompt] = clip.encode_from_tokens_scheduled(clip.tokenize(prompt))[0]
    keyframes = [f for f, _ in schedule]
    conds = [cache[p][0] for _, p in schedule]
    check_conditioning_size(conds, frames)
    conds = _match_lengths(conds)
    extra = dict(cache[schedule[0][1]][1])
    pooled = [cache[p][1].get("pooled_output") for _, p in schedule]
    out_cond = interpolate(conds, keyframes, frames, interpolation)
    if all(isinstance(p, torch.Tensor) for p in pooled) and len({tuple(p.shape) for p in pooled}) == 1:
        extra["pooled_output"] = interpolate(pooled, keyframes, frames, interpolation)
    extra[FRAMES_KEY] = frames
    return [[out_cond, extra]]


def check_conditioning_frames(guider, frames: int) -> None:
    """Before sampling: per-frame conditioning made for another frame count would be cut or repeated silently."""
    for name, conds in (getattr(guider, "conds", None) or {}).items():
        for c in conds or []:
            n = c.get(FRAMES_KEY) if isinstance(c, dict) else None
            if n is not None and n != frames:
                raise AnimaPoseError("frames", f"the {name} prompt schedule has {n} frames but the latent has {frames}",
                                     f"set 'frames' to {frames} (the latent's batch size), or make the latent {n} "
                                     "frames long", node=NODE)
