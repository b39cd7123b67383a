#!/usr/bin/env python
"""Trains rightward MotionLoRAs on the demo models and measures whether they move the demo object right.

``--mode motion_module`` finetunes the whole demo module on the same clips instead (the upper bound of what a LoRA on
it could learn); ``--travel 1 1`` makes every clip cross the frame from edge to edge.

Each configuration is one run of the pack's motion trainer (``MotionRun`` + ``train_run``, the node's loss, schedule
and loop; ``workshop.demo.motion.direction_run``) on synthetic clips that all move right, on the narrow twins of
the demo files. At each ``--measure-at`` update count the LoRA so far is snapshotted (through the loop's progress
callback, so the run itself is not interrupted) and clips are sampled with it over ``--seeds`` seeds (the demo's
settings: 64x64, 16 frames, DDIM 10 steps, cfg 5; seeds ``--first-seed`` on), next to the base module on the same
seeds; ``clip_metrics``' horizontal displacement (dx > 0: moved right) is printed per configuration as JSON lines.

``--probe`` prints, after the run, the denoiser's loss on held-out rightward clips against the same clips reversed at
several timesteps, with and without the LoRA (``workshop.demo.motion.direction_probe``): whether the run learned
the direction at all, and at which noise levels.

``--save`` writes the last snapshot of the (single) configuration into demo_models/ as the narrow fp16 MotionLoRA
(official key layout) with a json training record. Run single-threaded: OMP_NUM_THREADS=1.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time

from .. import comfy_env
from ..env import REPO


def dx_figures(dxs: list[float]) -> dict:
    return {"median_dx": round(statistics.median(dxs), 4), "right": sum(dx > 0.05 for dx in dxs),
            "dx": [round(dx, 4) for dx in dxs]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog=f"python -m {__spec__.name}", description=__doc__)
    p.add_argument("--measure-at", type=int, nargs="+", default=[500, 1500, 3000],
                   help="update counts at which the LoRA is measured; the run trains to the largest")
    p.add_argument("--clips", type=int, nargs="+", default=[32])
    p.add_argument("--lr", type=float, nargs="+", default=[1e-3])
    p.add_argument("--rank", type=int, nargs="+", default=[8])
    p.add_argument("--min-timestep", type=int, nargs="+", default=[0],
                   help="train on timesteps from [this, 1000) only (MotionTrainSettings.min_timestep; 0: uniform)")
    p.add_argument("--seed", type=int, default=0, help="training seed (clips, LoRA init, draws)")
    p.add_argument("--seeds", type=int, default=6, help="how many sampling seeds")
    p.add_argument("--first-seed", type=int, default=0, help="the first sampling seed (6: the held-out seeds)")
    p.add_argument("--mode", choices=["motion_lora", "motion_module"], default="motion_lora",
                   help="train a MotionLoRA on the demo module, or finetune the whole module")
    p.add_argument("--travel", type=float, nargs=2, metavar=("LOW", "HIGH"), default=None,
                   help="the clips' share of the frame, drawn from [LOW, HIGH] (default 0.45 0.65; 1 1: edge to edge)")
    p.add_argument("--prompt", default="a red circle moving in a circle")
    p.add_argument("--probe", action="store_true", help="after each run, print the forward/reversed loss probe")
    p.add_argument("--save", action="store_true", help="write the last snapshot into demo_models/ (one config)")
    args = p.parse_args(argv)
    comfy_env.bootstrap()
    import torch

    from ...animapose.training import motion as mt
    from ...animapose.training.loop import training_mode
    from ..synthetic import demo
    from ..synthetic.analyse import clip_metrics
    from . import motion as dm

    configs = list(itertools.product(args.clips, args.lr, args.rank, args.min_timestep))
    if args.save and (len(configs) != 1 or args.mode != "motion_lora"):
        p.error("--save takes one MotionLoRA configuration")
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    models = dm.load()
    t0 = time.monotonic()
    base = [clip_metrics(dm.sample(models, args.prompt, s))["displacement"][0] for s in seeds]
    print(json.dumps({"base": dx_figures(base), "sample_seconds": round(time.monotonic() - t0)}), flush=True)
    steps = max(args.measure_at)
    for clips, lr, rank, low in configs:
        snaps = {}
        with training_mode():
            run = dm.direction_run(models, clips=clips, steps=steps, rank=rank, learning_rate=lr, seed=args.seed,
                                  min_timestep=low, mode=args.mode, travel=args.travel)

            def snapshot(step, _total, _loss):
                if step in args.measure_at:
                    snaps[step] = (dm.trained_motion(models, run, f"moving right, {step} updates"),
                                   time.monotonic() - t_train)

            t_train = time.monotonic()
            result = mt.train_run(run, "direction MotionLoRA", progress=snapshot, log_every=10 ** 9)
        losses = result.losses
        for step in sorted(snaps):
            trained, seconds = snaps[step]
            dxs = [clip_metrics(dm.sample(models, args.prompt, s, motion_model=trained))["displacement"][0]
                   for s in seeds]
            first, last = losses[:20], losses[max(0, step - 20):step]
            print(json.dumps({"mode": args.mode, "travel": args.travel, "clips": clips, "lr": lr, "rank": rank,
                              "min_timestep": low, "steps": step, "train_seconds": round(seconds),
                              "loss_first_last_20": [round(sum(first) / len(first), 4),
                                                     round(sum(last) / len(last), 4)],
                              "base_median_dx": round(statistics.median(base), 4),
                              "base_right": sum(dx > 0.05 for dx in base), "lora": dx_figures(dxs)}), flush=True)
        if args.probe:
            with training_mode():
                for row in dm.direction_probe(run):
                    print(json.dumps({"probe": row}), flush=True)
        if args.save:
            seconds = snaps[steps][1]
            mt.save_motion_lora(result.lora_pairs, REPO / "demo_models" / demo.LORA_FILE, dtype=torch.float16)
            first, last = losses[:20], losses[-20:]
            record = {"seed": args.seed, "motion": "moving right", "shapes": ["circle", "square"], "clips": clips,
                      "clips_seed": 1000 + args.seed, "steps": steps, "lr": lr, "rank": rank, "min_timestep": low,
                      "batch": 1,
                      "loss_first_last_20": [round(sum(first) / len(first), 4), round(sum(last) / len(last), 4)],
                      "seconds": round(seconds)}
            (REPO / "demo_models" / demo.LORA_META_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
