"""The command-line convention both trainers follow (``python -m comfyui_animapose.workshop.train.motion`` and
``... .train.dreampose``): ``--data`` (a folder of videos), ``--output`` (where the files go), ``--base`` (the SD
checkpoint to start from), ``--steps``, ``--lr``, ``--batch-size``, ``--seed``, ``--precision``,
``--no-gradient-checkpointing``, ``--cpu`` and ``--comfyui``; ``--help`` needs nothing but the standard library. A
run imports ComfyUI from ``--comfyui``, ``$ANIMAPOSE_COMFYUI`` or the ComfyUI this pack is installed in, logs as it
trains, prints the files it wrote, then its wall time and peak memory, and exits 2 with the message of a bad input.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import sys
import time
from pathlib import Path
from typing import Callable

from ...animapose.errors import AnimaPoseError
from ..env import REPO


def parser(prog: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"python -m comfyui_animapose.workshop.train.{prog}", description=description,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cpu", action="store_true", help="train on the CPU even when a GPU is present")
    p.add_argument("--comfyui", help="ComfyUI folder (default: $ANIMAPOSE_COMFYUI, or the one this pack is in)")
    return p


def comfyui_folder(given: str | None) -> Path:
    for candidate in (given, os.environ.get("ANIMAPOSE_COMFYUI"),
                      REPO.parents[1] if REPO.parent.name == "custom_nodes" else None):
        if candidate and (Path(candidate) / "comfy" / "model_management.py").is_file():
            return Path(candidate)
    raise SystemExit("ComfyUI not found: pass --comfyui PATH or set ANIMAPOSE_COMFYUI")


def import_comfy(folder: Path, cpu: bool) -> None:
    """ComfyUI's modules on the path, its own argument parsing off, the device chosen before anything loads."""
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    import comfy.options

    comfy.options.enable_args_parsing(False)
    import comfy.cli_args
    import torch

    comfy.cli_args.args.cpu = cpu or not (torch.cuda.is_available() or torch.backends.mps.is_available())
    import comfy.model_management


def main(p: argparse.ArgumentParser, train: Callable[[argparse.Namespace], list[Path]],
         argv: list[str] | None = None) -> int:
    """Parses, imports ComfyUI, trains; prints the files written, the wall time and the peak memory."""
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    started = time.monotonic()
    try:
        import_comfy(comfyui_folder(args.comfyui), args.cpu)
        files = train(args)
    except AnimaPoseError as e:
        logging.error("%s", e)
        return 2
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for path in files:
        print(path)
    print(f"time {time.monotonic() - started:.0f} s, peak memory {peak:.0f} MiB")
    return 0
