"""Importing the real ``comfy`` package in-process, on the CPU.

ComfyUI's tree is put on ``sys.path`` (it is not an installed package); the pack itself is imported as
``comfyui_animapose`` (the editable install provisioning makes), and the repository root is never on the path, so
``import nodes`` always means ComfyUI's ``nodes.py``. ``comfy.model_management`` asserts CUDA at import unless
``--cpu`` was parsed, so the flag is set on ``comfy.cli_args.args`` before anything reaches it. Idempotent.
"""

from __future__ import annotations

import logging
import sys

from .env import COMFYUI, comfyui_available

_done = False


def bootstrap(cpu: bool = True) -> None:
    """``cpu=False`` leaves the device to ComfyUI (CUDA when there is one), for the GPU benchmark."""
    global _done
    if _done:
        return
    if not comfyui_available():
        raise RuntimeError(f"ComfyUI not found at {COMFYUI}; run scripts/provision.sh first")
    if str(COMFYUI) not in sys.path:
        sys.path.insert(0, str(COMFYUI))
    # cli_args parses sys.argv only when comfy.options says so; keep the caller's argv away from it.
    import comfy.options

    comfy.options.enable_args_parsing(False)
    import comfy.cli_args

    comfy.cli_args.args.cpu = cpu
    import comfy.model_management

    logging.getLogger().setLevel(logging.INFO)
    _done = True
