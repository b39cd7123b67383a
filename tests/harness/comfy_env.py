"""Importing the real ``comfy`` package in-process, on the CPU.

``comfy.model_management`` asserts CUDA at import unless ``--cpu`` was parsed, so the flag is set on
``comfy.cli_args.args`` before anything reaches it. Idempotent.
"""

from __future__ import annotations

import logging
import sys

from .env import COMFYUI, REPO, comfyui_available

_done = False


def bootstrap() -> None:
    global _done
    if _done:
        return
    if not comfyui_available():
        raise RuntimeError(f"ComfyUI not found at {COMFYUI}; run scripts/provision.sh first")
    for p in (str(COMFYUI), str(REPO)):
        if p not in sys.path:
            sys.path.insert(0, p)
    # cli_args parses sys.argv only when comfy.options says so; keep pytest's argv away from it.
    import comfy.options

    comfy.options.enable_args_parsing(False)
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    import comfy.model_management  # noqa: F401  (asserts the device choice now, not inside a test)

    logging.getLogger().setLevel(logging.INFO)
    _done = True
