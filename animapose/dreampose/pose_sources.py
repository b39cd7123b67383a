"""Where a DensePose UV sequence comes from: a folder of ``.npy`` files or a ``.zip`` archive of them, always inside
ComfyUI's input directory.

The node lists the choices (``list_pose_sources``), checks the picked one when the prompt is queued
(``check_pose_source``) and loads it (``load_pose_source``). Each of them is a guard of its own, not only the combo
check: a value is a path relative to the input directory, resolved with its links followed (``animapose.paths``),
so absolute paths, ``..`` and links that lead out of the input directory are refused before anything is opened, and
so is a file of a picked folder that is such a link. Links that stay inside the input directory are followed.

What a sequence may cost is known from the ``.npy`` headers before any data is read, and limited: each map at most
``MAX_SIDE`` pixels a side, at most ``MAX_FRAMES`` maps, and the (N, 2, H, W) float32 tensor the loader returns at
most ``MAX_POSE_BYTES``. Every file must be exactly as long as its header says (header + 2 x H x W x itemsize), so a
small archive can never unpack to more than the poses it declares. Archives are read in memory (never extracted,
so member names cannot write anywhere), and each array then goes through the same value checks as a folder's files
(``poses.check_uv_array``).
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import posixpath
import zipfile
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import AnimaPoseError
from ..paths import is_inside, open_inside, resolve_inside
from .poses import UV_FIX, check_uv_array, natural_key, warn_on_gaps

ARCHIVE_EXTENSIONS = (".zip",)
# Folders are searched this deep below the input directory (input/poses/dance_1 is depth 2).
MAX_DEPTH = 2
# A pose map is at most a 4K video frame a side; DreamPose itself works at 512x640.
MAX_SIDE = 4096
MAX_FRAMES = 20_000
# The float32 sequence the loader returns (frames x 2 x H x W x 4 bytes).
MAX_POSE_BYTES = 4 * 2**30
# np.save writes headers of a few hundred bytes and numpy refuses headers over 10000; only this much is read to
# parse one, whatever length the file declares.
_HEADER_READ = 2**16
_MAX_ITEMSIZE = 8
# The most one file may hold: a float64 map of MAX_SIDE x MAX_SIDE and its header. Larger zip members are refused
# from the archive's directory, before any byte of them is unpacked.
MAX_MEMBER_BYTES = _HEADER_READ + 2 * MAX_SIDE * MAX_SIDE * _MAX_ITEMSIZE

_FIX_PICK = ("pick a folder of frame_N_densepose.npy files (or a .zip of them) inside ComfyUI's input folder from the "
             "list, or upload an archive with the node's button; press R after adding files")
_FIX_EXPORT = "export the pose files again with np.save (zip them again for an archive)"
_FIX_SIZE = ("export the UV maps at the video's size or smaller (DreamPose works at 512x640), or split a long "
             "sequence into parts")


@dataclass(frozen=True)
class _Map:
    """One pose map as its header describes it; ``where`` is its file path or zip member."""
    name: str
    where: object
    shape: tuple
    fortran: bool
    dtype: np.dtype
    size: int


def _has_npy(path: str) -> bool:
    try:
        with os.scandir(path) as it:
            return any(e.name.lower().endswith(".npy") and e.is_file() for e in it)
    except OSError:
        return False


def list_pose_sources(input_dir: str) -> list[str]:
    """Folders (holding at least one ``.npy`` file) and ``.zip`` archives under ``input_dir``, as relative POSIX paths,
    sorted; hidden entries and links leading out of ``input_dir`` are skipped."""
    found: list[str] = []

    def walk(path: str, rel: str, depth: int) -> None:
        try:
            entries = sorted(os.scandir(path), key=lambda e: natural_key(e.name))
        except OSError:
            return
        for e in entries:
            if e.name.startswith(".") or not is_inside(input_dir, e.path):
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
    """The real path of a pose folder or archive named relative to ``input_dir``; refuses anything that would
    leave it (absolute paths, ``..``, drive letters, links leading out) and names that do not exist."""
    if not isinstance(value, str) or not value.strip():
        raise AnimaPoseError(input_name, "no pose folder is given", _FIX_PICK)
    path = resolve_inside(input_dir, value, input_name, _FIX_PICK)
    if not os.path.exists(path):
        raise AnimaPoseError(input_name, f"'{value}' does not exist in ComfyUI's input folder", _FIX_PICK)
    if os.path.isfile(path) and not path.lower().endswith(ARCHIVE_EXTENSIONS):
        raise AnimaPoseError(input_name, f"'{value}' is a file, not a folder or a .zip archive of .npy files",
                             _FIX_PICK)
    if not os.path.isdir(path) and not os.path.isfile(path):
        raise AnimaPoseError(input_name, f"'{value}' is neither a folder nor a file", _FIX_PICK)
    return path


def check_pose_source(input_dir: str, value: str, input_name: str = "folder") -> int:
    """Cheap check before anything runs: the folder or archive holds ``.npy`` files, and each one's header (read
    without the data) says (2, H, W) floats of one size within the limits. Returns the number of frames."""
    path = resolve_pose_source(input_dir, value, input_name)
    if os.path.isdir(path):
        return len(_scan_folder(input_dir, path, input_name))
    with _open_archive(input_dir, path, input_name) as zf:
        return len(_scan_archive(zf, os.path.basename(path), input_name))


def load_pose_source(input_dir: str, value: str, input_name: str = "folder") -> torch.Tensor:
    """The UV maps of the folder or archive ``value`` names inside ``input_dir``, in natural frame order
    (frame_2 before frame_10): (N, 2, H, W) float32. Reads the ``*_densepose.npy`` files when there are any (the
    official layout keeps other arrays beside them), otherwise every ``.npy`` file. Pickled arrays are refused."""
    path = resolve_pose_source(input_dir, value, input_name)
    if os.path.isdir(path):
        maps = _scan_folder(input_dir, path, input_name)
        out = np.empty((len(maps), *maps[0].shape), np.float32)
        for i, m in enumerate(maps):
            with open_inside(input_dir, m.where, input_name, m.name) as fh:
                out[i] = _read_map(fh, m, os.fstat(fh.fileno()).st_size, input_name)
    else:
        with _open_archive(input_dir, path, input_name) as zf:
            maps = _scan_archive(zf, os.path.basename(path), input_name)
            out = np.empty((len(maps), *maps[0].shape), np.float32)
            for i, m in enumerate(maps):
                with _member(zf, m.where, m.name, input_name) as fh:
                    out[i] = _read_map(fh, m, m.where.file_size, input_name)
    warn_on_gaps([m.name for m in maps])
    return torch.from_numpy(out)


# -- headers ------------------------------------------------------------------------------------------------------

def _scan_folder(input_dir: str, path: str, input_name: str) -> list[_Map]:
    name = os.path.basename(path)
    try:
        files = sorted((n for n in os.listdir(path) if n.lower().endswith(".npy")), key=natural_key)
    except OSError as e:
        raise AnimaPoseError(input_name, f"'{name}' could not be listed ({e.strerror})", _FIX_PICK) from e
    files = [n for n in files if n.lower().endswith("_densepose.npy")] or files
    if not files:
        raise AnimaPoseError(input_name, f"'{name}' holds no .npy files", UV_FIX)
    _check_count(len(files), name, input_name)
    maps = []
    for f in files:
        with open_inside(input_dir, os.path.join(path, f), input_name, f) as fh:
            size = os.fstat(fh.fileno()).st_size
            maps.append(_map_of(f, os.path.join(path, f), _read_header(fh, f, size, input_name), size, input_name))
    return _check_sequence(maps, name, input_name)


@contextlib.contextmanager
def _open_archive(input_dir: str, path: str, input_name: str):
    name = os.path.basename(path)
    with open_inside(input_dir, path, input_name, name) as fh:
        try:
            zf = zipfile.ZipFile(fh)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
            raise AnimaPoseError(input_name, f"'{name}' is not a readable .zip archive ({e})",
                                 "zip the frame_N_densepose.npy files again") from e
        with zf:
            yield zf


@contextlib.contextmanager
def _member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, shown: str, input_name: str):
    try:
        fh = zf.open(info)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, RuntimeError) as e:
        # RuntimeError: an encrypted member; NotImplementedError: an unknown compression
        raise AnimaPoseError(input_name, f"'{shown}' in the archive could not be opened ({e})",
                             "zip the frame_N_densepose.npy files again, unencrypted (deflate or store)") from e
    with fh:
        yield fh


def _scan_archive(zf: zipfile.ZipFile, name: str, input_name: str) -> list[_Map]:
    members = [m for m in zf.infolist() if not m.is_dir() and m.filename.lower().endswith(".npy")
               and not posixpath.basename(m.filename).startswith((".", "__MACOSX"))
               and "__MACOSX/" not in m.filename]
    members = [m for m in members if m.filename.lower().endswith("_densepose.npy")] or members
    if not members:
        raise AnimaPoseError(input_name, f"the archive '{name}' holds no .npy files", UV_FIX + " (zip them)")
    _check_count(len(members), name, input_name)
    members.sort(key=lambda m: natural_key(posixpath.basename(m.filename)))
    for m in members:
        # from the archive's directory alone: nothing of a member this large is unpacked
        if m.file_size > MAX_MEMBER_BYTES:
            raise AnimaPoseError(input_name, f"'{m.filename}' in '{name}' unpacks to {m.file_size / 2**20:,.0f} MB; "
                                 f"one pose map of at most {MAX_SIDE}x{MAX_SIDE} needs at most "
                                 f"{MAX_MEMBER_BYTES // 2**20} MB", _FIX_SIZE)
    maps = []
    for m in members:
        shown = posixpath.basename(m.filename)
        with _member(zf, m, shown, input_name) as fh:
            maps.append(_map_of(shown, m, _read_header(fh, shown, m.file_size, input_name), m.file_size, input_name))
    return _check_sequence(maps, name, input_name)


def _check_count(count: int, name: str, input_name: str) -> None:
    if count > MAX_FRAMES:
        raise AnimaPoseError(input_name, f"'{name}' holds {count} pose maps; at most {MAX_FRAMES} are read",
                             "split the sequence into parts")


def _read_header(fh, shown: str, size: int, input_name: str) -> tuple[tuple, bool, np.dtype, int]:
    """(shape, fortran order, dtype, data offset) from at most ``_HEADER_READ`` bytes of the file."""
    try:
        head = io.BytesIO(fh.read(min(size, _HEADER_READ)))
        version = np.lib.format.read_magic(head)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(head)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(head)
        else:
            raise ValueError(f"unknown .npy version {version}")
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise AnimaPoseError(input_name, f"'{shown}' is not a readable .npy file ({_first_line(e)})",
                             _FIX_EXPORT) from e
    return tuple(shape), bool(fortran), dtype, head.tell()


def _first_line(e: Exception) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0]


def _map_of(shown: str, where, header: tuple, size: int, input_name: str) -> _Map:
    shape, fortran, dtype, offset = header
    if dtype.hasobject:
        raise AnimaPoseError(input_name, f"'{shown}' holds pickled Python objects, which are refused for safety",
                             "save the UV map as a plain numeric array with np.save")
    if len(shape) != 3 or shape[0] != 2 or not np.issubdtype(dtype, np.floating):
        raise AnimaPoseError(input_name, f"'{shown}' holds {dtype} of shape {list(shape)}; DreamPose reads float "
                             "UV maps of shape (2, H, W)", UV_FIX)
    if dtype.itemsize > _MAX_ITEMSIZE:
        raise AnimaPoseError(input_name, f"'{shown}' holds {dtype} values", "save the UV maps as float32")
    h, w = shape[1:]
    if not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE):
        raise AnimaPoseError(input_name, f"'{shown}' is a {w}x{h} pose map; pose maps have 1 to {MAX_SIDE} pixels "
                             "a side", _FIX_SIZE)
    needed = offset + math.prod(shape) * dtype.itemsize
    if size != needed:
        raise AnimaPoseError(input_name, f"'{shown}' is {size:,} bytes but its header describes {needed:,} "
                             f"({dtype} of shape {list(shape)})", _FIX_EXPORT)
    return _Map(shown, where, shape, fortran, dtype, size)


def _check_sequence(maps: list[_Map], name: str, input_name: str) -> list[_Map]:
    first = maps[0]
    for m in maps[1:]:
        if m.shape != first.shape:
            raise AnimaPoseError(input_name, f"'{m.name}' is {m.shape[2]}x{m.shape[1]} but '{first.name}' is "
                                 f"{first.shape[2]}x{first.shape[1]}; all pose maps of a sequence must have one size",
                                 "export every frame's UV map at the same resolution")
    total = len(maps) * math.prod(first.shape) * 4
    if total > MAX_POSE_BYTES:
        raise AnimaPoseError(input_name, f"'{name}' holds {len(maps)} pose maps of {first.shape[2]}x{first.shape[1]}, "
                             f"{total / 2**30:.1f} GB as float32; at most {MAX_POSE_BYTES // 2**30} GB are loaded",
                             _FIX_SIZE)
    return maps


# -- data ---------------------------------------------------------------------------------------------------------

def _read_map(fh, planned: _Map, size: int, input_name: str) -> np.ndarray:
    """The float32 (2, H, W) of one file, read only if its header still says what the scan saw."""
    shape, fortran, dtype, _ = header = _read_header(fh, planned.name, size, input_name)
    if (shape, fortran, dtype, size) != (planned.shape, planned.fortran, planned.dtype, planned.size):
        _map_of(planned.name, planned.where, header, size, input_name)  # names what is wrong now, if anything is
        raise AnimaPoseError(input_name, f"'{planned.name}' changed while the sequence was read",
                             "queue the prompt again once the files are complete")
    try:
        fh.seek(0)
        arr = np.lib.format.read_array(fh, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise AnimaPoseError(input_name, f"'{planned.name}' could not be read ({_first_line(e)})", _FIX_EXPORT) from e
    return check_uv_array(arr, planned.name, input_name)
