"""Importing the real ``comfy`` package in-process, on the CPU.

``comfy.model_management`` asserts CUDA at import unless ``--cpu`` was parsed, so the flag is set on
``comfy.cli_args.args`` before anything reaches it. Idempotent.

The repository and ComfyUI both have a top-level ``nodes`` (the pack's package, ComfyUI's ``nodes.py``) and ``tests``.
pytest puts the repository first on ``sys.path`` again before each test module when the checkout's folder name is not
a Python identifier (``comfyui-animapose``, a CI work folder), so ``import nodes`` inside a test would find the pack's.
ComfyUI's ``nodes`` is therefore imported here, with ComfyUI first on the path, and stays in ``sys.modules``; our
``tests`` package is already imported by the time this runs.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from .env import COMFYUI, REPO, comfyui_available

_done = False


def bootstrap() -> None:
    global _done
    if _done:
        return
    if not comfyui_available():
        raise RuntimeError(f"ComfyUI not found at {COMFYUI}; run scripts/provision.sh first")
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    if str(COMFYUI) in sys.path:
        sys.path.remove(str(COMFYUI))
    sys.path.insert(0, str(COMFYUI))
    # cli_args parses sys.argv only when comfy.options says so; keep pytest's argv away from it.
    import comfy.options

    comfy.options.enable_args_parsing(False)
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    import comfy.model_management  # noqa: F401  (asserts the device choice now, not inside a test)

    import nodes

    if Path(nodes.__file__).resolve() != (COMFYUI / "nodes.py").resolve():
        raise RuntimeError(f"`import nodes` found {nodes.__file__}, not ComfyUI's nodes.py in {COMFYUI}")

    logging.getLogger().setLevel(logging.INFO)
    _done = True
