#!/usr/bin/env python
"""PNG strips of demo clips for the README and docs/demo-models.md, and the coherence figures behind the demo-model tests' thresholds.

For each prompt and seed, one clip of 16 frames (64x64) is sampled from the trained demo models through ComfyUI's
sampler, with the motion module and without it (the image model alone, same noise); every 2nd frame goes into the
strip, the clip with motion above the one without. ``clip_metrics`` of every clip are printed as JSON (median and range
per condition), the figures workshop/thresholds.py cites.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from .. import comfy_env
from ..env import REPO


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog=f"python -m {__spec__.name}", description=__doc__)
    p.add_argument("--output", type=Path, default=REPO / "docs" / "demo")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--strip-seeds", type=int, default=1, help="seeds drawn into the PNG strips")
    p.add_argument("--prompts", nargs="*", default=["a red circle moving right", "a blue square moving in a circle"])
    p.add_argument("--long-frames", type=int, default=48,
                   help="also sample clips this long in 16-frame context windows (0: skip), every 4th frame drawn")
    p.add_argument("--models", type=Path, help="folder of narrow demo weights to measure (default: demo_models/)")
    args = p.parse_args(argv)
    comfy_env.bootstrap()
    import numpy as np
    from PIL import Image

    from ..synthetic.analyse import clip_metrics, shape_from_fill
    from . import motion as dm

    models = dm.load(args.models)
    args.output.mkdir(parents=True, exist_ok=True)
    figures = {"motion": [], "still": [], "long": []}
    for prompt in args.prompts:
        for seed in range(args.seeds):
            rows = []
            for kind in ("motion", "still"):
                clip = dm.sample(models, prompt, seed, motion=kind == "motion")
                m = clip_metrics(clip)
                figures[kind].append({"prompt": prompt, "seed": seed, **m})
                rows.append(np.concatenate(list(clip[::2].numpy()), axis=1))
            if args.long_frames:
                clip = dm.sample(models, prompt, seed, frames=args.long_frames, context_length=dm.FRAMES)
                figures["long"].append({"prompt": prompt, "seed": seed, **clip_metrics(clip)})
                if seed < args.strip_seeds:
                    strip = (np.concatenate(list(clip[::4].numpy()), axis=1) * 255 + 0.5).astype(np.uint8)
                    name = prompt.replace(" ", "_") + f"_{args.long_frames}frames_seed{seed}.png"
                    Image.fromarray(strip).resize((strip.shape[1] * 2, strip.shape[0] * 2), Image.NEAREST).save(
                        args.output / name)
            if seed < args.strip_seeds:
                strip = (np.concatenate(rows, axis=0) * 255 + 0.5).astype(np.uint8)
                name = prompt.replace(" ", "_") + f"_seed{seed}.png"
                Image.fromarray(strip).resize((strip.shape[1] * 2, strip.shape[0] * 2), Image.NEAREST).save(
                    args.output / name)
    summary = {}
    for kind, rows in figures.items():
        if not rows:
            continue
        summary[kind] = {}
        for key in ("iou", "area_cv", "colour_spread", "jerk"):
            values = [r[key] for r in rows]
            summary[kind][key] = [round(min(values), 3), round(statistics.median(values), 3), round(max(values), 3)]
        hits = [r["colour"] == r["prompt"].split()[1] for r in rows]
        summary[kind]["colour_hit_rate"] = round(sum(hits) / len(hits), 3)
        shapes = [shape_from_fill(r["fill"]) == r["prompt"].split()[2] for r in rows]
        summary[kind]["shape_hit_rate"] = round(sum(shapes) / len(shapes), 3)
    print(json.dumps({"summary (min, median, max)": summary, "clips": figures}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
