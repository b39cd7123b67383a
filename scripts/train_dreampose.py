#!/usr/bin/env python
"""DreamPose stage 1 (dataset-level) training from the command line; see ``animapose/dreampose/training.py``.

    python scripts/train_dreampose.py --data UBC_train --clip models/clip_vision/clip-vit-base-patch32 \\
        --base models/checkpoints/sd-v1-4.ckpt --output models/dreampose

A thin wrapper: it parses the arguments (so ``--help`` needs nothing else), imports ComfyUI from ``--comfyui``,
``$ANIMAPOSE_COMFYUI`` or the ComfyUI this pack is installed in, and runs the training.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from animapose.dreampose.training import build_parser, config_from_args, train_stage1  # noqa: E402
from animapose.errors import AnimaPoseError  # noqa: E402


def comfyui_folder(given: str | None) -> Path:
    for candidate in (given, os.environ.get("ANIMAPOSE_COMFYUI"),
                      REPO.parents[1] if REPO.parent.name == "custom_nodes" else None):
        if candidate and (Path(candidate) / "comfy" / "model_management.py").is_file():
            return Path(candidate)
    raise SystemExit("ComfyUI not found: pass --comfyui PATH or set ANIMAPOSE_COMFYUI")


def import_comfy(folder: Path, cpu: bool) -> None:
    """ComfyUI's modules on the path, its own argument parsing off, the device chosen before anything loads."""
    sys.path.insert(0, str(folder))
    import comfy.options

    comfy.options.enable_args_parsing(False)
    import comfy.cli_args
    import torch

    comfy.cli_args.args.cpu = cpu or not (torch.cuda.is_available() or torch.backends.mps.is_available())
    import comfy.model_management  # noqa: F401  (settles the device now)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    try:
        config = config_from_args(args)
        import_comfy(comfyui_folder(args.comfyui), args.cpu)
        result = train_stage1(config)
    except AnimaPoseError as e:
        logging.error("%s", e)
        return 2
    for path in result.files:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
