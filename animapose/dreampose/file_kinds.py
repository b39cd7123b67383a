"""What a weights file in models/dreampose holds (UNet, adapter, VAE, CLIP vision), from its key names alone.

The loaders list the files of their own kind first. Reading the keys is cheap and runs no code:

- ``.safetensors``: the JSON header (its first 8 bytes give its length);
- ``.pth``/``.ckpt``/``.pt``/``.bin`` (PyTorch's zip format): the pickled ``data.pkl`` member is read through the
  zip central directory and walked with ``pickletools.genops``, which decodes opcodes without executing any; the
  key names are the strings in it. Tensor data is never read.

Results are cached by (path, size, mtime), so refreshing the node list does not read files again. Anything that cannot
be read this way is "unknown" and listed after the right kind; the loader's own checks still refuse a wrong file
with a clear error.
"""

from __future__ import annotations

import json
import os
import pickletools
import struct
import zipfile

UNET, ADAPTER, VAE, CLIP_VISION, UNKNOWN = "unet", "adapter", "vae", "clip_vision", "unknown"

_MAX_HEADER = 64 * 2**20  # a safetensors header above this is not a weights file we list
_MAX_PICKLE = 64 * 2**20
_cache: dict[tuple[str, int, int], str] = {}


def _safetensors_keys(path: str) -> list[str] | None:
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            return None
        (n,) = struct.unpack("<Q", raw)
        if n <= 0 or n > _MAX_HEADER:
            return None
        header = json.loads(f.read(n))
    return [k for k in header if k != "__metadata__"] if isinstance(header, dict) else None


def _zip_pickle_keys(path: str) -> list[str] | None:
    if not zipfile.is_zipfile(path):
        return None
    with zipfile.ZipFile(path) as zf:
        pkl = next((i for i in zf.infolist() if i.filename.endswith("/data.pkl") or i.filename == "data.pkl"), None)
        if pkl is None or pkl.file_size > _MAX_PICKLE:
            return None
        data = zf.read(pkl)
    keys = []
    try:
        for op, arg, _ in pickletools.genops(data):
            if isinstance(arg, str) and op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
                keys.append(arg)
    except Exception:
        return keys or None
    return keys


def classify_keys(keys: list[str]) -> str:
    ks = set(k[len("module."):] if k.startswith("module.") else k for k in keys)
    if any(k.startswith("vision_model.") for k in ks):
        return CLIP_VISION
    if {"vae2clip.weight", "linear1.weight"} <= ks:
        return ADAPTER
    if "conv_in.weight" in ks and any(k.startswith(("down_blocks.", "time_embedding.")) for k in ks) \
            and not any(k.startswith(("encoder.", "decoder.")) for k in ks):
        return UNET
    if any(k.startswith(("decoder.", "first_stage_model.decoder.")) for k in ks):
        return VAE
    return UNKNOWN


def file_kind(path: str) -> str:
    """UNET, ADAPTER, VAE, CLIP_VISION or UNKNOWN for one file, from its key names (cached by path+size+mtime)."""
    try:
        st = os.stat(path)
    except OSError:
        return UNKNOWN
    key = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
    if key in _cache:
        return _cache[key]
    try:
        keys = _safetensors_keys(path) if path.lower().endswith(".safetensors") else _zip_pickle_keys(path)
    except (OSError, ValueError, zipfile.BadZipFile, UnicodeDecodeError):
        keys = None
    kind = classify_keys(keys) if keys else UNKNOWN
    _cache[key] = kind
    return kind


def order_by_kind(names: list[str], paths: dict[str, str], kind: str) -> list[str]:
    """``names`` with the files of ``kind`` first, then the unknown ones, then the other kinds (each group keeps its
    order). ``paths`` maps each name to its full path."""
    rank = {kind: 0, UNKNOWN: 1}
    return sorted(names, key=lambda n: rank.get(file_kind(paths[n]) if n in paths else UNKNOWN, 2))
