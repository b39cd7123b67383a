#!/usr/bin/env python
"""Measures the DreamPose paper's claims on the tiny DreamPose trained on synthetic people (docs/tiny-dreampose.md).

    python -m comfyui_animapose.workshop.demo.measure_claims --seeds 0 1 2 3 4 5 [--strip docs/demo/dreampose_synthetic_strip.png]
        [--no-finetune | --only-finetune]

Widens the model shipped in ``demo_models/`` into the fixture cache first (a checkout without it trains it with
``workshop/demo/train_dreampose.py``). Per seed it draws a training subject, another subject, a held-out subject, a
motion and the noise, and measures (see ``workshop/demo/dreampose_claims.py``): pose IoU with the poses and with a
zero pose, clothing colour error with the subject's photo, another subject's photo and three photos' averaged tokens
(the pack's multi_image="average"), IoU at s_p = 1 vs 3, colour error at s_I = 1 vs 3, the held-out subject's colour
error before and after subject finetuning (2a on its photo, 2a on three photos, 2b alone, 2a + 2b), and flicker with
the 5-frame and the 1-frame pose window. Every colour error comes against the real frames' VAE round trip (no suffix)
and against the real frames (``_real``). Prints one JSON line per seed, then min / mean / max of each figure. Run it
with ``OMP_NUM_THREADS=1`` on a shared CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def frame_strip(dp, path: Path) -> None:
    """Rows: driving UV (U red, V green), the subject's real frames, DreamPose's output; the photo on the left."""
    from PIL import Image

    from ..synthetic import people
    from . import dreampose_claims as dc

    subject = people.make_subject(2)
    drive = people.make_video(subject, "walk", 6, dc.HW, seed=10_002)
    photo = people.make_video(subject, "turn", 1, dc.HW, seed=20_002).images
    gen = dp.generate(dp.conditioning(("strip", 0), photo), drive.uv, seed=7)
    uv_rgb = np.concatenate([drive.uv.transpose(0, 2, 3, 1), np.zeros((*drive.uv.shape[:1], *dc.HW, 1))], -1)
    blank = np.ones((*dc.HW, 3))
    rows = [np.concatenate([blank, *uv_rgb], 1), np.concatenate([photo[0], *drive.images], 1),
            np.concatenate([blank, *gen.frames], 1)]
    grid = people.to_uint8(np.concatenate(rows, 0))
    Image.fromarray(grid).resize((grid.shape[1] * 3, grid.shape[0] * 3), Image.NEAREST).save(path)


def main() -> int:
    ap = argparse.ArgumentParser(prog=f"python -m {__spec__.name}", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    only = ap.add_mutually_exclusive_group()
    only.add_argument("--no-finetune", action="store_true", help="leave out the finetuning trial")
    only.add_argument("--only-finetune", action="store_true", help="run the finetuning trial only")
    ap.add_argument("--strip", type=Path, help="also write the frame strip of docs/tiny-dreampose.md here")
    args = ap.parse_args()
    from .. import comfy_env

    comfy_env.bootstrap()
    from ..fixtures.dreampose_trained import trained_dreampose_folder
    from . import dreampose_claims as dc

    started = time.monotonic()
    dp = dc.TrainedDreamPose(trained_dreampose_folder())
    print(json.dumps({"vae_ceiling": dc.vae_ceiling(dp)}), flush=True)
    if args.strip:
        frame_strip(dp, args.strip)
    rows = []
    for seed in args.seeds:
        r = dc.measure(dp, seed, finetune=not args.no_finetune, others=not args.only_finetune)
        rows.append(r)
        print(json.dumps({"seed": seed, **{k: round(v, 4) for k, v in r.items()}}), flush=True)
    print("figure: min / mean / max over seeds")
    for key in rows[0]:
        values = np.array([r[key] for r in rows])
        print(f"  {key}: {values.min():.4f} / {values.mean():.4f} / {values.max():.4f}")
    print(f"{time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
