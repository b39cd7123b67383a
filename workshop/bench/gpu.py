"""The GPU run (not a test): both papers at their real shapes on one CUDA device, in fp16 and bf16 with torch SDPA,
next to diffusers and the FLOP floor of the same work; writes the table to artifacts/bench_gpu.md and JSON beside it.

- AnimateDiff: 16 frames, 512x512, 25 Euler steps, CFG 7.5, SD1.5's real shapes (the "full" fixture: 860 M UNet and
  the real-width v2 motion module; random weights), the pack (ComfyUI + animapose) against diffusers'
  AnimateDiffPipeline on the same weights.
- DreamPose: 8 frames at 640x512 (W 512 x H 640), 25 Euler steps, dual CFG s_I 8 / s_p 3, SD1.4's real shapes (the
  "full" DreamPose UNet fixture), the pack's sample_frames (1 and 8 frames per UNet call) against the official-style
  loop (diffusers UNet, one frame at a time, one batch-3 call per step).

Every variant is timed (median of ``--repeats`` interleaved runs after a warm-up that also gives the latents); the
error of the latents is against the other side in the same dtype. FLOP floor: FLOPs of the run (torch's
FlopCounterMode) over the GPU's datasheet peak, so no real run can be faster.

Run unchanged on a machine with one CUDA GPU: ``python -m comfyui_animapose.workshop.bench.gpu`` (fixtures are built on the first run,
about 2-3 minutes of it; the whole run is meant to take under 10 minutes). ``--device cpu --tiny`` is a smoke run of
the same code at toy sizes (bf16 only by default: CPUs without fp16 units run fp16 at a crawl).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

from . import animatediff as ba
from . import common as bc
from . import dreampose as bd
from . import precision as bp

log = bc.log
# Dense fp16/bf16 tensor-core peaks from NVIDIA's datasheets (no sparsity), by a substring of the device name.
PEAKS_TFLOPS = {"H200": 989.4, "H100": 989.4, "A100": 312.0, "L40S": 362.1, "L4": 121.0, "A10": 125.0,
                "4090": 165.2, "3090": 71.0, "V100": 125.0, "T4": 65.0}


def peak_tflops(args) -> float | None:
    if args.peak_tflops:
        return args.peak_tflops
    if args.device == "cpu":
        return None
    import torch

    name = torch.cuda.get_device_name(args.device)
    return next((v for k, v in PEAKS_TFLOPS.items() if k in name), None)


def floor_s(flops: float, peak: float | None) -> float | None:
    return flops / (peak * 1e12) if peak else None


def timing_rows(label: str, times: dict, errs: dict, flops: float, peak: float | None, per: int = 1) -> list[list]:
    rows = []
    floor = floor_s(flops, peak)
    for name, t in times.items():
        s = bc.stats(t["wall"])
        rows.append([label, name, f"{s['median']:.2f} s", f"{s['median'] / per:.3f} s",
                     f"{flops / s['median'] / 1e12:.3g}", f"{floor:.2f} s" if floor else "-",
                     f"{s['median'] / floor:.1f}x" if floor else "-", errs.get(name, "")])
    return rows


# -- AnimateDiff ---------------------------------------------------------------------------------------------------------

def animatediff(args, dtype: str, peak) -> tuple[dict, list]:
    job = ba.Job(args.ad_profile, args.ad_frames, args.ad_size, args.ad_steps, cfg=7.5, norm="diffusers")
    log.info("AnimateDiff %s: %s", dtype, job.describe())
    pack = bd.with_sdpa(bp.pack_animatediff(args.ad_profile, dtype))
    runs = {f"pack {dtype}": ba.comfy_runner(pack, job),
            f"diffusers {dtype}": bp.diffusers_animatediff(pack, args.ad_profile, dtype, job, args.device)}
    first = {}
    for name, run in runs.items():
        w, _, _, first[name] = bc.timed(run)
        log.info("  warm-up %s: %.2f s", name, w)
    pack_run = runs[f"pack {dtype}"]
    flops = bc.count_flops(lambda: pack_run(1)) * job.steps
    times = bc.interleaved(runs, args.repeats, warmup=0, label=f"AnimateDiff {dtype}")
    err = bp.errors(first[f"pack {dtype}"], first[f"diffusers {dtype}"])
    errs = {f"pack {dtype}": f"{err['max']:.1e} / {err['rms']:.1e} vs diffusers"}
    del runs, pack
    _free(args)
    return ({"job": asdict(job), "times": times, "flops": flops, "error_vs_diffusers": err},
            timing_rows(f"AnimateDiff {dtype}", times, errs, flops, peak, job.frames))


# -- DreamPose ------------------------------------------------------------------------------------------------------------

def dreampose(args, dtype: str, peak) -> tuple[dict, list]:
    base = bd.Job(args.dp_height, args.dp_width, args.dp_frames, args.dp_steps, 0, args.device, dtype, args.tokens,
                  "sdpa", args.dp_profile)
    log.info("DreamPose %s: %s", dtype, base.describe())
    jobs = {"official-style " + dtype: base}
    for fpb in sorted({1, args.dp_frames}):
        jobs[f"pack {dtype}, {fpb} frame(s)/call"] = replace(base, fpb=fpb)
    shared: dict = {}
    runs = {name: bd.build(j, shared) for name, j in jobs.items()}
    first = {}
    for name, run in runs.items():
        w, _, _, first[name] = bc.timed(run)
        log.info("  warm-up %s: %.2f s", name, w)
    ref = first["official-style " + dtype]
    errs = {}
    for name, x in first.items():
        if name.startswith("pack"):
            e = bp.errors(x, ref)
            errs[name] = f"{e['max']:.1e} / {e['rms']:.1e} vs official-style"
    times = bc.interleaved(runs, args.repeats, warmup=0, label=f"DreamPose {dtype}")
    flops = bd.unet_call_flops(args.dp_profile, args.dp_height, args.dp_width) * args.dp_steps * args.dp_frames
    del runs, shared
    _free(args)
    return ({"jobs": {k: asdict(j) for k, j in jobs.items()}, "times": times, "flops": flops, "errors": errs},
            timing_rows(f"DreamPose {dtype}", times, errs, flops, peak, args.dp_frames))


def _free(args) -> None:
    import comfy.model_management

    comfy.model_management.unload_all_models()
    comfy.model_management.soft_empty_cache()
    bc.trim_heap()


# -- main ----------------------------------------------------------------------------------------------------------------

def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog=f"python -m {__spec__.name}", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu (with --tiny: a smoke run)")
    ap.add_argument("--tiny", action="store_true", help="toy sizes and fixtures, 2 steps, 1 round")
    ap.add_argument("--dtypes", nargs="+", choices=["fp16", "bf16"], help="default fp16 bf16 (cpu: bf16)")
    ap.add_argument("--repeats", type=int, help="timed rounds after the warm-up (default 3; tiny 1)")
    ap.add_argument("--only", choices=["animatediff", "dreampose", "scale-out"],
                    help="run one of the two; 'scale-out': the distributed DreamPose sampler with one and two local "
                         "Ray workers on this GPU (workshop/bench/scale_out.py at real shapes)")
    ap.add_argument("--peak-tflops", type=float, help="the GPU's dense fp16/bf16 peak, if its name is not known")
    ap.add_argument("--out", type=Path, default=bc.REPO / "artifacts" / "bench_gpu.md")
    args = ap.parse_args(argv)
    t = args.tiny
    args.dtypes = args.dtypes or (["bf16"] if args.device == "cpu" else ["fp16", "bf16"])
    args.repeats = args.repeats or (1 if t else 3)
    args.ad_profile, args.ad_frames, args.ad_size, args.ad_steps = ("small", 2, 64, 2) if t else ("full", 16, 512, 25)
    args.dp_profile, args.dp_frames, args.dp_steps = ("tiny", 2, 2) if t else ("full", 8, 25)
    args.dp_height, args.dp_width = (80, 64) if t else bd.OFFICIAL_HW
    if t and args.out.name == "bench_gpu.md":
        args.out = args.out.with_name("bench_gpu_tiny.md")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.only == "scale-out":
        from . import scale_out

        real = ["--profile", "tiny", "--size", "64x80", "--steps", "2"] if args.tiny else [
            "--profile", "full", "--size", "512x640", "--steps", "25", "--frames", "8"]
        return scale_out.main(["--device", args.device, *real, "--out", str(args.out.with_name("bench_scale_out_gpu.md"))])
    bc.setup_logging()
    bc.bootstrap_comfy(cpu=args.device == "cpu")
    import torch

    machine = bc.machine_info()
    if args.device != "cpu":
        if not torch.cuda.is_available():
            print("no CUDA device: run with --device cpu --tiny for a smoke run", file=sys.stderr)
            return 2
        machine["gpu"] = torch.cuda.get_device_name(args.device)
    peak = peak_tflops(args)
    t0 = time.perf_counter()
    record = {"machine": machine, "peak_tflops": peak, "args": {k: str(v) for k, v in vars(args).items()}}
    rows: list[list] = []
    with tempfile.TemporaryDirectory() as tmp:
        args.tokens = str(Path(tmp) / "tokens.pt")
        if args.only != "animatediff":
            bd.make_tokens(Path(args.tokens))
        for dtype in args.dtypes:
            for name, fn in (("animatediff", animatediff), ("dreampose", dreampose)):
                if args.only in (None, name):
                    record[f"{name} {dtype}"], r = fn(args, dtype, peak)
                    rows += r
                    log.info("%s %s done (%.0f s so far)", name, dtype, time.perf_counter() - t0)
    record["wall_s"] = time.perf_counter() - t0
    gpu = machine.get("gpu", "none (CPU smoke run)")
    text = "\n".join(bc.header_lines(machine) + [f"GPU: {gpu}; peak used for the floor: "
                                                 f"{f'{peak:g} TFLOP/s' if peak else 'unknown (--peak-tflops)'}; "
                                                 f"whole run {record['wall_s'] / 60:.1f} min", ""]) + bc.table(
        "Real shapes on one device (SDPA attention on both sides; random weights)" if not args.tiny else
        "Smoke run at toy sizes (not figures)",
        ["workload", "variant", "run (median)", "per frame", "TFLOP/s", "FLOP floor", "vs floor",
         "latent error (max / rms)"], rows,
        [f"AnimateDiff: {args.ad_frames} frames {args.ad_size}x{args.ad_size}, {args.ad_steps} Euler steps, CFG 7.5, "
         f"{args.ad_profile} fixture; DreamPose: {args.dp_frames} frames {args.dp_width}x{args.dp_height} (WxH), "
         f"{args.dp_steps} Euler steps, s_I 8 / s_p 3, {args.dp_profile} UNet fixture.",
         "FLOP floor: the run's FLOPs (FlopCounterMode; AnimateDiff counted on one pack step, DreamPose on the "
         "diffusers UNet on the meta device) over the peak; 'vs floor' = time / floor."])
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    bc.write_json(args.out.with_suffix(".json"), record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
