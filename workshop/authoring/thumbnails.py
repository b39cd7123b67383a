"""Template thumbnails: a 2x2 grid of frames from a workflow's own output (animated WEBP/PNG/GIF via Pillow, video
via PyAV, which ComfyUI itself uses), saved as ``workflows/<template name>.jpg`` where the Templates dialog asks for
it. ``workshop/demo/job.py`` calls ``make_thumbnail`` after each workflow ran."""

from __future__ import annotations

import logging
from pathlib import Path

from PIL import Image, ImageSequence

log = logging.getLogger(__name__)

CELL = 192  # pixels per frame cell; the card shows the picture at about 220 px
GRID = 2
VIDEO_EXT = {".mp4", ".webm", ".mov", ".mkv"}


def _frames(path: Path) -> list[Image.Image]:
    if path.suffix.lower() in VIDEO_EXT:
        import av

        with av.open(str(path)) as container:
            return [f.to_image() for f in container.decode(video=0)]
    with Image.open(path) as im:
        return [f.convert("RGB") for f in ImageSequence.Iterator(im)]


def _fit(frame: Image.Image, size: int) -> Image.Image:
    frame = frame.convert("RGB")
    scale = size / max(frame.size)
    frame = frame.resize((max(1, round(frame.width * scale)), max(1, round(frame.height * scale))), Image.LANCZOS)
    cell = Image.new("RGB", (size, size), (24, 24, 28))
    cell.paste(frame, ((size - frame.width) // 2, (size - frame.height) // 2))
    return cell


def make_thumbnail(outputs: list[Path], dest: Path) -> Path | None:
    """A frame grid from the output with the most frames (a video before an animation of as many frames)."""
    best: list[Image.Image] = []
    best_key = (0, False)
    for path in outputs:
        try:
            frames = _frames(path)
        except Exception as e:
            log.info("thumbnail: cannot read %s (%s)", path, e)
            continue
        # most frames; on a tie the video (the workflow's result) before an animated side output such as a preview
        key = (len(frames), path.suffix.lower() in VIDEO_EXT)
        if key > best_key:
            best, best_key = frames, key
    if not best:
        return None
    n = GRID * GRID
    picks = [best[round(i * (len(best) - 1) / max(1, n - 1))] for i in range(n)]
    sheet = Image.new("RGB", (CELL * GRID, CELL * GRID))
    for i, frame in enumerate(picks):
        sheet.paste(_fit(frame, CELL), ((i % GRID) * CELL, (i // GRID) * CELL))
    dest.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(dest, "JPEG", quality=82, optimize=True)
    return dest
