"""Labels and verification from ``models_info/``: which release a file is, and whether it is intact.

Formats are always detected from the weights; this only adds what the weights cannot say (the release name,
e.g. AnimateDiff-Lightning versus v2) and catches truncated or altered downloads. A file is matched by its name,
then checked by size and, where the sha256 is known, by hash.
"""

from __future__ import annotations

import json
import logging
import os
from functools import lru_cache
from pathlib import Path

from .checkpoints import file_sha256

log = logging.getLogger(__name__)

MODELS_INFO = Path(__file__).resolve().parents[1] / "models_info"


@lru_cache(maxsize=None)
def entries(kind: str) -> tuple[dict, ...]:
    path = MODELS_INFO / f"{kind}.json"
    data = json.loads(path.read_text())
    return tuple(data["files"])


@lru_cache(maxsize=None)
def known_stems() -> dict[str, str]:
    """{file name without its extension, case-folded: release title} over every catalogue in ``models_info/``."""
    stems = {}
    for path in sorted(MODELS_INFO.glob("*.json")):
        for e in entries(path.stem):
            stem, ext = os.path.splitext(e["file_name"])
            stems.setdefault((stem if ext else e["file_name"]).casefold(), e["title"])
    return stems


def label_file(kind: str, path: str, name: str, catalogue: tuple[dict, ...] | None = None) -> str | None:
    """A label for a known release (None for other files), with a warning line when the file is not intact."""
    base = os.path.basename(name)
    known = [e for e in (entries(kind) if catalogue is None else catalogue) if e["file_name"] == base]
    if not known:
        return None
    e = known[0]
    size = os.path.getsize(path)
    title = f"Known release: {e['title']} ({e['source']})"
    if e.get("size_bytes") and size != e["size_bytes"]:
        log.warning("%s: size %d differs from the released %d bytes", name, size, e["size_bytes"])
        return f"{title}\nWARNING: {size} bytes, the release has {e['size_bytes']}: truncated or a different file"
    if e.get("sha256"):
        if file_sha256(path) != e["sha256"]:
            log.warning("%s: sha256 differs from the release", name)
            return f"{title}\nWARNING: sha256 differs from the release: a different or damaged file"
        return f"{title}, sha256 verified"
    return title + (", size matches" if e.get("size_bytes") else "")
