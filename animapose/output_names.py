"""The names of the files the pack writes (trained motion modules and MotionLoRAs, DreamPose sets), checked before
any work starts.

Every node that writes files checks its name input with ``check_output_name`` when the prompt is queued and again
when the node starts, so a name that cannot be written fails in a second instead of after hours of training, with
the trained weights lost. A name is a file name, or a path into sub-folders with '/' (as ComfyUI's own save nodes
allow): it must stay inside the model folder (links followed) and is never cut down or changed silently.

The rules keep names portable (a model folder is often shared between Linux, Windows and macOS installs) and keep
the loader lists unambiguous: a name a released model has, or one that another file of the list already has under
another extension, would show the same name twice.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

from .errors import AnimaPoseError
from .known_models import known_stems

# The longest part (folder or file name) and the longest whole name, in UTF-8 bytes: file systems allow 255 bytes
# per part, the saved file adds a counter and an extension (``_00001_adapter.safetensors``: 26), and Windows
# installs often keep their models in long paths already (260 characters in all, by default).
MAX_PART_BYTES = 100
MAX_NAME_BYTES = 150
PUNCTUATION = " _-.+()"
ALLOWED = "letters, digits, spaces and _ - . + ( ), with / between sub-folders"
# Windows opens the device, not a file, for these names, with any extension.
RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}
# What the loaders list (ComfyUI's supported_pt_extensions); a name ending in one would get a second extension.
MODEL_EXTENSIONS = (".safetensors", ".sft", ".ckpt", ".pt", ".pt2", ".pth", ".bin", ".pkl")


def check_output_name(value, input_name: str, roots: Sequence[str] = (), *, optional: bool = False,
                      ext: str | None = None, listed: Iterable[str] = MODEL_EXTENSIONS, label: str = "") -> str:
    """``value`` when files can be written under that name; otherwise an AnimaPoseError with the rule and a fix.

    ``optional``: an empty name (or only spaces) means "do not save" and gives ''. ``roots``: the folders the loader
    lists, the first one being where the files go; without them only the text is checked. With them the name must
    stay inside the first (links followed) in a folder that can be written, and, when ``ext`` (the extension the
    file gets) is given, no file of the same name with another of the ``listed`` extensions may exist in any of them.
    ``label`` names the folder in messages (e.g. ``models/animatediff_models``), never the server's own path.
    """
    if not isinstance(value, str):
        raise AnimaPoseError(input_name, f"{value!r} is not text", "enter a name such as my_motion")
    if not value.strip():
        if optional:
            return ""
        raise AnimaPoseError(input_name, "the name is empty (the files would be called _00001_...)",
                             "enter a name such as my_subject")
    _check_text(value, input_name)
    if roots:
        _check_place(value, input_name, [Path(r) for r in roots], ext, set(listed), label or "the model folder")
    return value


def _shown(value: str, limit: int = 40) -> str:
    """The name for a message: quoted, control and other invisible characters escaped, long names shortened."""
    return repr(value[:limit]) + (f" (and {len(value) - limit} more characters)" if len(value) > limit else "")


def _char(c: str) -> str:
    return f"{c!r} (U+{ord(c):04X})"


def _check_text(value: str, input_name: str) -> None:
    shown = _shown(value)
    if value.startswith("/"):
        raise AnimaPoseError(input_name, f"{shown} is an absolute path; names are relative to the model folder",
                             "enter a plain name such as my_motion, or sub/my_motion for a sub-folder")
    bad = sorted({c for c in value if not (c.isalnum() or c in PUNCTUATION or c == "/")})
    if bad:
        listed = ", ".join(_char(c) for c in bad[:5]) + (", ..." if len(bad) > 5 else "")
        fix = f"use only {ALLOWED}" + (" (not \\)" if "\\" in bad else "")
        raise AnimaPoseError(input_name, f"{shown} contains {listed}", fix)
    size = len(value.encode("utf-8"))
    if size > MAX_NAME_BYTES:
        raise AnimaPoseError(input_name, f"{shown} is {_length(value, size)} long; at most {MAX_NAME_BYTES} are "
                             "allowed (letters outside A-Z count 2 to 4)", "use a shorter name")
    parts = value.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            what = "an empty folder name (//, or / at the end)" if not part else f"the folder part {part!r}"
            raise AnimaPoseError(input_name, f"{shown} has {what}; a name must stay inside the model folder",
                                 "enter a plain name such as my_motion, or sub/my_motion for a sub-folder")
        if part.startswith("."):
            raise AnimaPoseError(input_name, f"{shown} starts a name with a dot, which makes a hidden file or folder "
                                 "(file managers and the shell do not show it)",
                                 f"leave out the dot: {part.lstrip('.')!r}")
        if part != part.strip() or part.endswith("."):
            raise AnimaPoseError(input_name, f"{shown} has a part that starts or ends with a space or ends with a "
                                 "dot (Windows drops those, so another name would be written)",
                                 f"remove them: {part.strip().rstrip('.')!r}")
        part_size = len(part.encode("utf-8"))
        if part_size > MAX_PART_BYTES:
            raise AnimaPoseError(input_name, f"{_shown(part)} is {_length(part, part_size)} long; a folder or file "
                                 f"name may have at most {MAX_PART_BYTES} (letters outside A-Z count 2 to 4)",
                                 "use a shorter name, or sub-folders")
        if part.split(".")[0].casefold() in RESERVED:
            raise AnimaPoseError(input_name, f"{_shown(part)} is a device name on Windows, not a file name",
                                 f"use another name, e.g. {part}_model")
    last = parts[-1]
    extension = next((e for e in MODEL_EXTENSIONS if last.casefold().endswith(e)), None)
    if extension:
        raise AnimaPoseError(input_name, f"{shown} ends with {extension}; the extension is added when saving",
                             f"leave it out: {value[:-len(extension)]!r}")
    release = known_stems().get(last.casefold())
    if release:
        raise AnimaPoseError(input_name, f"{_shown(last)} is the name of a released model ({release}); a file of "
                             "that name would be listed beside (or mistaken for) the release",
                             f"choose another name, e.g. {last}_trained")


def _length(text: str, size: int) -> str:
    return f"{len(text)} characters" if size == len(text) else f"{len(text)} characters ({size} bytes in UTF-8)"


def _check_place(value: str, input_name: str, roots: list[Path], ext: str | None, listed: set[str],
                 label: str) -> None:
    root = roots[0].resolve()
    folder = root
    for part in value.split("/")[:-1]:
        folder = folder / part
        if folder.exists() and not folder.is_dir():
            raise AnimaPoseError(input_name, f"{_shown(value)}: {part!r} in {label} is a file, not a folder",
                                 "choose another sub-folder name")
    # resolve() follows every link that exists, so a sub-folder that links elsewhere is seen for what it is
    if not folder.resolve().is_relative_to(root):
        raise AnimaPoseError(input_name, f"{_shown(value)} leads outside {label} (a sub-folder there is a link "
                             "to another place)", f"choose a sub-folder that is inside {label}")
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not os.access(existing, os.W_OK | os.X_OK):
        raise AnimaPoseError(input_name, f"{label} cannot be written by the server (no permission)",
                             f"make {label} writable for the user ComfyUI runs as, then queue again")
    if ext is None:
        return
    sub, stem = os.path.split(value)
    others = {e.lower() for e in listed} - {ext.lower()}
    for r in roots:
        try:
            names = os.listdir(r / sub)
        except OSError:  # not there (yet): nothing to be listed twice
            continue
        # ComfyUI matches extensions in any case (WALK.CKPT is listed too)
        twin = next((n for n in sorted(names) if os.path.splitext(n)[0] == stem
                     and os.path.splitext(n)[1].lower() in others and (r / sub / n).is_file()), None)
        if twin:
            raise AnimaPoseError(input_name, f"{label} already has {os.path.join(sub, twin)!r}; {value + ext!r} beside "
                                 "it would be listed under the same name", f"choose another name, e.g. {stem}_2")
