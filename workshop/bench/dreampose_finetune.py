"""Time and peak memory of DreamPose subject finetuning, one stage per process (docs/benchmarks.md).

    python -m comfyui_animapose.workshop.bench.dreampose_finetune --stage unet --width 64 --height 80 --steps 3
    python -m comfyui_animapose.workshop.bench.dreampose_finetune --stage vae --width 512 --height 640 --steps 3

Uses the random-weight fixtures: the DreamPose UNet of ``--profile`` (``small``: SD1.x block layout at 320 channels,
111 M parameters; ``full``: SD1.4's 860 M), the full-size SD VAE, a 2-layer CLIP ViT-B/32 and the 576x720 subject
photo with a UV map. Reports the time to load, the setup (copies, reference features) plus first step, the median of
the later steps, the projection to the paper's step count (500 / 1500), the peak RSS during the stage relative to
and including the loaded models, and how much CPU other processes took meanwhile (the timings are only as good as
that number is low).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from .common import PeakRSS, bootstrap_comfy, header_lines, machine_info, rss_mib, setup_logging

PAPER_STEPS = {"unet": 500, "vae": 1500}


def _busy_s() -> float:
    """CPU seconds all cores spent busy since boot, from /proc/stat."""
    vals = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(vals) - vals[3] - vals[4]) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    p = argparse.ArgumentParser(prog=f"python -m {__spec__.name}", description=__doc__.split("\n\n")[0])
    p.add_argument("--stage", choices=["unet", "vae"], required=True)
    p.add_argument("--profile", choices=["tiny", "small", "full"], default="small")
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--height", type=int, default=80)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--no-checkpointing", action="store_true")
    p.add_argument("--json", type=Path, help="also write the record here")
    args = p.parse_args()
    setup_logging()
    bootstrap_comfy()
    import numpy as np
    import torch
    from PIL import Image

    from ...animapose.dreampose import checkpoint, finetune
    from ...animapose.dreampose.pipeline import PoseSequence, load_clip_b32
    from ...animapose.dreampose.poses import load_uv_folder
    from ..fixtures import dreampose as fx

    info = machine_info()
    started = time.perf_counter()
    with torch.inference_mode():
        vae = checkpoint.read_vae(str(fx.dreampose_vae_file()))
        photo = torch.from_numpy(np.asarray(Image.open(fx.subject_image_file()).convert("RGB"),
                                            dtype=np.float32) / 255.0)[None]
        if args.stage == "unet":
            model = checkpoint.load_unet(str(fx.dreampose_unet_file(args.profile)))
            adapter = checkpoint.read_adapter(str(fx.dreampose_adapter_file()))
            clip = load_clip_b32(str(fx.tiny_clip_b32_folder()), "clip")
            poses = PoseSequence(load_uv_folder(str(fx.uv_sequence_folder(1, 80, 64, seed=7))), "poses")
    load_s = time.perf_counter() - started
    settings = finetune.StageSettings(steps=args.steps, learning_rate=1e-5, width=args.width, height=args.height,
                                      precision=args.precision, gradient_checkpointing=not args.no_checkpointing)
    stamps = []
    busy, cpu = _busy_s(), time.process_time()
    with PeakRSS() as peak, torch.inference_mode():
        t0 = time.perf_counter()
        progress = lambda step, total, loss: stamps.append(time.perf_counter())
        if args.stage == "unet":
            finetune.finetune_unet(model, adapter, clip, vae, photo, poses, settings, progress)
        else:
            finetune.finetune_vae_decoder(vae, photo, settings, progress)
        total_s = time.perf_counter() - t0
    wall = total_s
    foreign = max(0.0, (_busy_s() - busy) - (time.process_time() - cpu)) / wall
    first = stamps[0] - t0
    later = [b - a for a, b in zip(stamps, stamps[1:])]
    per_step = statistics.median(later) if later else first
    record = {
        "machine": info, "stage": args.stage, "profile": args.profile, "size": f"{args.width}x{args.height}",
        "steps": args.steps, "precision": args.precision, "gradient_checkpointing": not args.no_checkpointing,
        "load_s": round(load_s, 2), "setup_and_first_step_s": round(first, 2), "per_step_s": round(per_step, 3),
        "stage_s": round(total_s, 2),
        "projected_paper_steps_s": round(first + per_step * (PAPER_STEPS[args.stage] - 1), 1),
        "rss_loaded_mib": round(peak.baseline), "peak_rss_mib": round(peak.peak),
        "peak_over_loaded_mib": round(peak.peak - peak.baseline), "rss_after_mib": round(rss_mib()),
        "others_cpu_cores": round(foreign, 2),
    }
    for line in header_lines(info):
        print(line)
    print(json.dumps({k: v for k, v in record.items() if k != "machine"}))
    if args.json:
        args.json.write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
