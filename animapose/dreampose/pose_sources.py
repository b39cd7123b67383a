"""Where a DensePose UV sequence comes from: a folder of ``.npy`` files or a ``.zip`` archive of them, always inside
ComfyUI's input directory.

The node lists the choices (``list_pose_sources``) and resolves the picked one (``resolve_pose_source``). The
resolver is a guard of its own, not only the combo check: a value is a path relative to the input directory, so
absolute paths and ``..`` components are refused before anything is opened. Symlinks the owner of the machine put
into the input directory are followed on purpose (the check is on the path as written, like ComfyUI's own input
paths), so a shared pose library can be linked in.

Archives are read in memory (never extracted, so member names cannot write anywhere) with size limits, and each
array goes through the same checks as a folder's files (``poses._check_uv_array``).
"""

from __future__ import annotations

import io
import os
import posixpath
import zipfile

import numpy as np
import torch

from ..errors import AnimaPoseError
from .poses import _UV_FIX, _check_uv_array, _natural_key, _warn_on_gaps, load_uv_folder

ARCHIVE_EXTENSIONS = (".zip",)
# Folders are searched this deep below the input directory (input/poses/dance_1 is depth 2).
MAX_DEPTH = 2
# Limits for archives (a zip bomb must not fill the memory): per member and in all.
MAX_MEMBER_BYTES = 512 * 2**20
MAX_TOTAL_BYTES = 4 * 2**30

_FIX_PICK = ("pick a folder of frame_N_densepose.npy files (or a .zip of them) inside ComfyUI's input folder from the "
             "list, or upload an archive with the node's button; press R after adding files")


def _has_npy(path: str) -> bool:
    try:
        with os.scandir(path) as it:
            return any(e.name.lower().endswith(".npy") and e.is_file() for e in it)
    except OSError:
        return False


def list_pose_sources(input_dir: str) -> list[str]:
    """Folders (holding at least one ``.npy`` file) and ``.zip`` archives under ``input_dir``, as relative POSIX paths,
    sorted; hidden entries are skipped."""
    found: list[str] = []

    def walk(path: str, rel: str, depth: int) -> None:
        try:
            entries = sorted(os.scandir(path), key=lambda e: _natural_key(e.name))
        except OSError:
            return
        for e in entries:
            if e.name.startswith("."):
                continue
            sub = f"{rel}/{e.name}" if rel else e.name
            try:
                if e.is_dir():
                    if _has_npy(e.path):
                        found.append(sub)
                    if depth < MAX_DEPTH:
                        walk(e.path, sub, depth + 1)
                elif e.is_file() and e.name.lower().endswith(ARCHIVE_EXTENSIONS):
                    found.append(sub)
            except OSError:
                continue

    walk(input_dir, "", 1)
    return found


def resolve_pose_source(input_dir: str, value: str, input_name: str = "folder") -> str:
    """The full path of a pose folder or archive named relative to ``input_dir``; refuses anything that would
    leave it (absolute paths, ``..``, drive letters) and names that do not exist."""
    if not isinstance(value, str) or not value.strip():
        raise AnimaPoseError(input_name, "no pose folder is given", _FIX_PICK)
    text = value.replace("\\", "/")
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if os.path.isabs(value) or text.startswith("/") or (len(text) > 1 and text[1] == ":") or ".." in parts:
        raise AnimaPoseError(input_name, f"'{value}' points outside ComfyUI's input folder (absolute paths and '..' "
                             "are refused)", _FIX_PICK)
    base = os.path.abspath(input_dir)
    path = os.path.normpath(os.path.join(base, *parts)) if parts else base
    if path == base or os.path.commonpath([base, path]) != base:
        raise AnimaPoseError(input_name, f"'{value}' is not a folder inside ComfyUI's input folder", _FIX_PICK)
    if not os.path.exists(path):
        raise AnimaPoseError(input_name, f"'{value}' does not exist in ComfyUI's input folder", _FIX_PICK)
    if os.path.isfile(path) and not path.lower().endswith(ARCHIVE_EXTENSIONS):
        raise AnimaPoseError(input_name, f"'{value}' is a file, not a folder or a .zip archive of .npy files",
                             _FIX_PICK)
    return path


def _archive_members(zf: zipfile.ZipFile, name: str, input_name: str) -> list[zipfile.ZipInfo]:
    members = [m for m in zf.infolist() if not m.is_dir() and m.filename.lower().endswith(".npy")
               and not posixpath.basename(m.filename).startswith((".", "__MACOSX"))
               and "__MACOSX/" not in m.filename]
    densepose = [m for m in members if m.filename.lower().endswith("_densepose.npy")]
    members = densepose or members
    if not members:
        raise AnimaPoseError(input_name, f"the archive '{name}' holds no .npy files", _UV_FIX + " (zip them)")
    big = [m for m in members if m.file_size > MAX_MEMBER_BYTES]
    if big or sum(m.file_size for m in members) > MAX_TOTAL_BYTES:
        raise AnimaPoseError(input_name, f"the archive '{name}' unpacks to more than "
                             f"{MAX_TOTAL_BYTES // 2**30} GB (or one file over {MAX_MEMBER_BYTES // 2**20} MB)",
                             "zip only the UV maps (2, H, W) of the frames")
    return sorted(members, key=lambda m: _natural_key(posixpath.basename(m.filename)))


def check_pose_source(path: str, input_name: str = "folder") -> int:
    """Cheap check before anything runs: the folder or archive holds ``.npy`` files, and each one's header (read
    without the data) says (2, H, W) floats of one size. Returns the number of frames."""
    name = os.path.basename(path)
    headers = []
    if os.path.isdir(path):
        files = sorted((n for n in os.listdir(path) if n.lower().endswith(".npy")), key=_natural_key)
        files = [n for n in files if n.lower().endswith("_densepose.npy")] or files
        if not files:
            raise AnimaPoseError(input_name, f"'{name}' holds no .npy files", _UV_FIX)
        for f in files:
            try:
                with open(os.path.join(path, f), "rb") as fh:
                    headers.append((f, _npy_header(fh)))
            except (OSError, ValueError) as e:
                raise AnimaPoseError(input_name, f"'{f}' is not a readable .npy file ({e})",
                                     "export the pose file again") from e
    else:
        try:
            with zipfile.ZipFile(path) as zf:
                for m in _archive_members(zf, name, input_name):
                    with zf.open(m) as fh:
                        headers.append((m.filename, _npy_header(fh)))
        except (zipfile.BadZipFile, OSError, ValueError) as e:
            raise AnimaPoseError(input_name, f"'{name}' is not a readable .zip of .npy files ({e})",
                                 "zip the frame_N_densepose.npy files again") from e
    first = None
    for f, (shape, dtype) in headers:
        if len(shape) != 3 or shape[0] != 2 or not np.issubdtype(dtype, np.floating):
            raise AnimaPoseError(input_name, f"'{f}' holds {dtype} of shape {list(shape)}; DreamPose reads float "
                                 "UV maps of shape (2, H, W)", _UV_FIX)
        if first is not None and shape != first[1]:
            raise AnimaPoseError(input_name, f"'{f}' is {shape[2]}x{shape[1]} but '{first[0]}' is "
                                 f"{first[1][2]}x{first[1][1]}; all pose maps of a sequence must have one size",
                                 "export every frame's UV map at the same resolution")
        first = first or (f, shape)
    return len(headers)


def _npy_header(fh) -> tuple[tuple, np.dtype]:
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
    else:
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
    return tuple(shape), dtype


def load_uv_archive(path: str, input_name: str = "folder") -> torch.Tensor:
    """The UV maps of a ``.zip`` of ``.npy`` files in natural frame order: (N, 2, H, W) float32, same checks as a
    folder. Pickled arrays are refused."""
    name = os.path.basename(path)
    frames, names = [], []
    try:
        with zipfile.ZipFile(path) as zf:
            for m in _archive_members(zf, name, input_name):
                member = posixpath.basename(m.filename)
                try:
                    arr = np.load(io.BytesIO(zf.read(m)), allow_pickle=False)
                except ValueError as e:
                    raise AnimaPoseError(input_name, f"'{member}' in '{name}' holds pickled Python objects, which "
                                         "are refused for safety", "save the UV map as a plain numeric array with "
                                         "np.save") from e
                frames.append(_check_uv_array(arr, member, input_name))
                names.append(member)
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise AnimaPoseError(input_name, f"'{name}' is not a readable .zip archive ({e})",
                             "zip the frame_N_densepose.npy files again") from e
    for member, arr in zip(names, frames):
        if arr.shape != frames[0].shape:
            raise AnimaPoseError(input_name, f"'{member}' is {arr.shape[2]}x{arr.shape[1]} but '{names[0]}' is "
                                 f"{frames[0].shape[2]}x{frames[0].shape[1]}; all pose maps of a sequence must have "
                                 "one size", "export every frame's UV map at the same resolution")
    _warn_on_gaps(names)
    return torch.from_numpy(np.stack(frames)).float()


def load_pose_source(input_dir: str, value: str, input_name: str = "folder") -> torch.Tensor:
    """Resolves ``value`` inside ``input_dir`` and loads the folder or archive."""
    path = resolve_pose_source(input_dir, value, input_name)
    if os.path.isdir(path):
        return load_uv_folder(path, input_name)
    return load_uv_archive(path, input_name)
