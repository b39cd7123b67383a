"""Reading model files safely: safetensors, or ``.ckpt/.pth/.pt/.bin`` through ``torch.load(weights_only=True)``.

A file that needs pickled code, a truncated download or a file that holds no tensors becomes an
``AnimaPoseError`` naming the input and the fix, never a bare stack trace from deep inside torch.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import re
import zipfile

import torch

from .errors import AnimaPoseError
from .numerics import check_finite_weights

log = logging.getLogger(__name__)

SAFETENSORS_EXTENSIONS = (".safetensors", ".sft")


def load_state_dict(path: str, input_name: str, what: str = "model file") -> dict[str, torch.Tensor]:
    """All tensors of a model file, unwrapped from a ``state_dict`` container, on the CPU."""
    if not os.path.isfile(path):
        raise AnimaPoseError(input_name, f"{what} '{path}' does not exist", "pick a file that is listed by the node")
    if os.path.getsize(path) == 0:
        raise AnimaPoseError(input_name, f"{what} '{os.path.basename(path)}' is empty (0 bytes)",
                             "download the file again")
    if path.lower().endswith(SAFETENSORS_EXTENSIONS):
        sd = _load_safetensors(path, input_name, what)
    else:
        sd = _load_pickle_weights_only(path, input_name, what)
    sd = _unwrap(sd)
    tensors = {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise AnimaPoseError(input_name, f"'{os.path.basename(path)}' holds no tensors, so it is not a {what}",
                             f"choose a {what}")
    check_finite_weights(tensors, path, input_name, what)
    return tensors


# What a file that is not a PyTorch checkpoint usually is, from its first bytes (a renamed download, say).
_SIGNATURES = ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
               (b"RIFF", "a WEBP image or a WAV/AVI file"), (b"%PDF", "a PDF document"), (b"\x1f\x8b", "a gzip archive"),
               (b"<", "an HTML or XML page (often a download site's error page)"), (b"{", "a JSON or text file"))


def _not_pytorch(path: str) -> str | None:
    """What the file is when it cannot be a PyTorch checkpoint (neither a zip archive nor a pickle), else None."""
    with open(path, "rb") as f:
        head = f.read(16)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"\x80"):
        return None
    if len(head) >= 10 and head[8:10] == b'{"':
        return "a safetensors file with the wrong extension"
    for magic, kind in _SIGNATURES:
        if head.startswith(magic):
            return kind
    return "a file of another kind"


def _load_safetensors(path: str, input_name: str, what: str) -> dict:
    import safetensors.torch

    try:
        return safetensors.torch.load_file(path, device="cpu")
    except Exception as e:  # safetensors raises its own SafetensorError, OSError or ValueError for bad headers
        raise AnimaPoseError(
            input_name,
            f"'{os.path.basename(path)}' could not be read as safetensors ({type(e).__name__}: {_first_sentence(e)}); "
            "the file is truncated or is not a safetensors file",
            "download the file again and check its size against the release page",
        ) from e


def _load_pickle_weights_only(path: str, input_name: str, what: str) -> dict:
    kind = _not_pytorch(path)
    if kind is not None:
        fix = ("rename it to .safetensors" if kind.startswith("a safetensors") else
               f"choose a {what}; if this was meant to be one, download it again")
        raise AnimaPoseError(input_name, f"'{os.path.basename(path)}' is {kind}, not a PyTorch checkpoint", fix)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(e))
        holds = f"Python objects ({found.group(1)})" if found else "Python objects besides tensors"
        raise AnimaPoseError(
            input_name,
            f"'{os.path.basename(path)}' holds {holds} that only pickled code can rebuild; loading it that way is "
            "refused for safety (torch.load weights_only=True)",
            "use the .safetensors release of this file, or convert it to safetensors in a trusted environment",
        ) from e
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as e:
        raise AnimaPoseError(
            input_name,
            f"'{os.path.basename(path)}' could not be read ({type(e).__name__}: {_first_sentence(e)}); "
            "the file is truncated or is not a PyTorch checkpoint",
            "download the file again and check its size against the release page",
        ) from e
    if not isinstance(obj, dict):
        raise AnimaPoseError(input_name, f"'{os.path.basename(path)}' holds a {type(obj).__name__}, not a state dict",
                             f"choose a {what}")
    return obj


def _first_sentence(e: Exception, limit: int = 120) -> str:
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    text = text.split(". ")[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _unwrap(sd: dict) -> dict:
    # Training scripts wrap weights as {"state_dict": ...} (AnimateDiff) or {"module": ...} (DeepSpeed);
    # AnimateDiff's SparseCtrl loader also accepts {"controlnet": ...}.
    for key in ("state_dict", "module", "controlnet"):
        inner = sd.get(key)
        if isinstance(inner, dict) and any(isinstance(v, torch.Tensor) for v in inner.values()):
            return inner
    # CameraCtrl's release (CameraCtrl.ckpt) keeps its two parts side by side; AnimateDiff-Evolved's pruned file
    # is their union.
    parts = [sd[k] for k in ("pose_encoder_state_dict", "attention_processor_state_dict") if isinstance(sd.get(k), dict)]
    if parts:
        return {k: v for part in parts for k, v in part.items()}
    return sd


def strip_prefix(sd: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Drops ``prefix`` (e.g. DDP's ``module.``) when every key carries it."""
    if sd and all(k.startswith(prefix) for k in sd):
        return {k[len(prefix):]: v for k, v in sd.items()}
    return sd


_sha_cache: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str) -> str:
    """sha256 of a file, cached per (path, size, mtime) so a re-queued workflow does not hash gigabytes again."""
    st = os.stat(path)
    key = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
    if key not in _sha_cache:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
        _sha_cache[key] = h.hexdigest()
    return _sha_cache[key]
