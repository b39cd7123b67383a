"""Files a user picks from a folder the server owns (ComfyUI's input folder): every path is resolved with its links
followed and must stay inside that folder.

A prompt names a file or folder relative to the root, so the text is checked first (no absolute path, drive letter,
``..`` or NUL). Then the real location counts, not the text: a link inside the root may point elsewhere inside it (a
pose library linked into a second sub-folder), but a link that leads out of it, for a folder, for a file inside an
allowed folder, or for any part of the path, is refused, so whoever can place a link cannot make the server read
what lies outside. Readers check again when they open the file (``open_inside``), because the folder can change
between the check when the prompt is queued and the read.

Plain ``os``; no ComfyUI import.
"""

from __future__ import annotations

import io
import os
import stat

from .errors import AnimaPoseError

INPUT_FOLDER = "ComfyUI's input folder"


def _link_fix(label: str) -> str:
    return f"copy the files into {label} (links there may only point to places inside it)"


def is_inside(root: str, path: str) -> bool:
    """Whether ``path``'s real location lies strictly inside ``root``'s (links of both followed)."""
    base = os.path.realpath(root)
    try:
        real = os.path.realpath(path)
    except (OSError, ValueError):
        return False
    return real != base and os.path.commonpath([base, real]) == base


def resolve_inside(root: str, name, input_name: str, fix: str, label: str = INPUT_FOLDER) -> str:
    """The real path of ``name``, a ``/``-separated path relative to ``root``. Refuses an empty name, absolute paths,
    drive letters, ``..``, NUL, the root itself, and any name whose real location (links followed) is outside the
    root. Whether the path exists is left to the caller."""
    if not isinstance(name, str) or not name.strip():
        raise AnimaPoseError(input_name, "no path is given", fix)
    if "\x00" in name:
        raise AnimaPoseError(input_name, f"{name!r} contains a NUL character", fix)
    text = name.replace("\\", "/")
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if os.path.isabs(name) or text.startswith("/") or (len(text) > 1 and text[1] == ":") or ".." in parts:
        raise AnimaPoseError(input_name, f"'{name}' points outside {label} (absolute paths and '..' are refused)",
                             fix)
    if not parts:
        raise AnimaPoseError(input_name, f"'{name}' is {label} itself, not a path inside it", fix)
    base = os.path.realpath(root)
    path = os.path.realpath(os.path.join(base, *parts))
    if path == base or os.path.commonpath([base, path]) != base:
        raise AnimaPoseError(input_name, f"'{name}' leads outside {label} through a link; nothing outside it is "
                             "read", _link_fix(label))
    return path


def require_inside(root: str, path: str, input_name: str, shown: str, label: str = INPUT_FOLDER) -> str:
    """The real path of ``path`` (found inside the root, e.g. a file of a picked folder) when its real location is
    inside the root; ``shown`` names it in the error."""
    if not is_inside(root, path):
        raise AnimaPoseError(input_name, f"'{shown}' is a link that leads outside {label}; nothing outside it is "
                             "read", _link_fix(label))
    return os.path.realpath(path)


def _opened_path(fd: int) -> str | None:
    proc = f"/proc/self/fd/{fd}"
    try:
        return os.readlink(proc)
    except OSError:
        return None


def open_inside(root: str, path: str, input_name: str, shown: str, label: str = INPUT_FOLDER) -> io.BufferedReader:
    """``path`` opened for binary reading when it is a regular file whose real location is inside the root. The
    check is repeated on the opened file (where the system says it is, or that it is the file the path names now),
    so a link swapped in between the check and the open is refused too. FIFOs and devices are refused without
    blocking."""
    real = require_inside(root, path, input_name, shown, label)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(real, flags)
    except OSError as e:
        raise AnimaPoseError(input_name, f"'{shown}' could not be opened ({e.strerror})",
                             "check that the file exists and can be read") from e
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise AnimaPoseError(input_name, f"'{shown}' is not a regular file", "pick a file, not a device or pipe")
        opened = _opened_path(fd)
        if opened is not None:
            moved = not is_inside(root, opened)
        else:
            try:
                moved = not os.path.samestat(st, os.stat(real)) or os.path.realpath(real) != real
            except OSError:
                moved = True
        if moved:
            raise AnimaPoseError(input_name, f"'{shown}' changed into a link that leads outside {label} while it "
                                 "was opened; nothing outside it is read", _link_fix(label))
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
