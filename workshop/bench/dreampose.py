"""DreamPose benchmark (not a test): prints one table per section and writes the results as JSON.

Sections (all by default; ``--section`` picks some):

- ``time``: seconds per frame of the pack (the DreamPose guider, ComfyUI's ``Guider_DualCFG``, and ``sample_frames``
  with 1 and 4 frames per UNet call, under ComfyUI's selected attention kernel and under torch SDPA) against an
  official-style loop (diffusers ``UNet2DConditionModel`` with the 14-channel ``conv_in``, one frame at a time, one UNet call of batch 3 per step: [black-image tokens + zero pose,
  image + pose, image + zero pose], eps = e0 + s1 (e2 - e0) + s2 (e1 - e2)). The same weights (the small fixture,
  fp32), adapter tokens (computed once), pose windows, shared noise, s_I 8 / s_p 3 and sampler on both sides: Euler,
  ComfyUI's ``normal`` schedule with SD1.x betas against diffusers' ``EulerDiscreteScheduler(scaled_linear,
  timestep_spacing="linspace")``; both give the sigmas of timesteps 999, 666, 333, 0 for 4 steps, and the script
  checks that the final latents agree. One process, interleaved runs; then a spot check at DreamPose's real 640x512.
- ``memory``: peak memory of each side in a fresh process (above the memory with the weights loaded), and how the
  pack's peak grows with frames per UNet call.
- ``flops``: the FLOP floor of a frame (three UNet evaluations per step, times steps) at 640x512 for the small
  fixture and for SD1.4's real shapes, counted with torch's ``FlopCounterMode`` on the meta device, and what a GPU's
  peak would make of it.

``--device cuda`` runs the same comparison on a GPU (640x512 by default there, synchronised timings, peak via
``torch.cuda.max_memory_allocated``). The whole default run takes about 22 minutes on a quiet 2-core machine;
``--quick`` is a smoke run (a few minutes; JSON to artifacts/bench_dreampose_quick.json). Weights are random
(fixtures), so only timings and memory mean anything.

Timing on a shared machine: see ``bench_common``; runs overlapped by other processes' CPU use are repeated within a
budget, and ``--threads 1`` gives steady ratios when another torch job holds a core.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

from . import common as bc

# the sides live in their own module; their names stay reachable here for bench_precision and bench_gpu
from .dreampose_sides import (  # noqa: F401  (re-exported: the GPU and precision benchmarks use them from here)
    DTYPES,
    OFFICIAL_HW,
    S_IMAGE,
    S_POSE,
    SEED,
    Job,
    build,
    comfy_attention_name,
    conditioning,
    load_pack_model,
    make_tokens,
    pack_runner,
    with_sdpa,
)

log = logging.getLogger("animapose.bench")

SECTIONS = ["time", "memory", "flops"]
OFFICIAL_STEPS = 100  # the official README demo's --n_steps
# NVIDIA's datasheet peaks (dense, no sparsity) of the lent GPU kinds; H200 has H100 SXM's compute.
GPU_PEAKS_TFLOPS = {"H100 SXM / H200 bf16-fp16 tensor": 989.4, "H100 SXM / H200 TF32 tensor": 494.7,
                    "H100 SXM / H200 fp32 (CUDA cores)": 66.9}
THREADS: int | None = None
# "comfy": whatever this ComfyUI process selected (on the CPU without flags: its sub-quadratic kernel). "sdpa": torch's
# scaled_dot_product_attention, the kernel diffusers uses and ComfyUI's choice under --use-pytorch-cross-attention (and
# by default on NVIDIA GPUs); set on a clone of the model through ComfyUI's per-model "optimized_attention_override".
ATTENTION = ["comfy", "sdpa"]


# -- FLOPs -----------------------------------------------------------------------------------------------------------

def unet_call_flops(profile: str, height: int, width: int, batch: int = 3) -> int:
    """FLOPs of one DreamPose UNet call (batch 3 = one frame's step) at ``height`` x ``width`` pixels, counted on the
    meta device: shapes only, so SD1.4's 860 M UNet costs neither memory nor time. (The count equals that of a real
    CPU call, whose SDPA kernel ``bench_common.flop_counter`` maps; checked at small sizes.)"""
    import torch
    from diffusers import UNet2DConditionModel

    from ..fixtures import dreampose as fx

    with torch.device("meta"):
        unet = UNet2DConditionModel(**fx.unet_diffusers_config(profile))
        unet.conv_in = torch.nn.Conv2d(14, 320, kernel_size=3, padding=(1, 1))
        x = torch.zeros(batch, 14, height // 8, width // 8)
        context = torch.zeros(batch, 50, 768)
        return bc.count_flops(lambda: unet(x, torch.full((batch,), 999.0), encoder_hidden_states=context))


def floor_ms(flops: float, tflops: float) -> float:
    return flops / (tflops * 1e12) * 1e3


# -- worker: one memory point in a fresh process ---------------------------------------------------------------------

def worker(job: Job) -> dict:
    """Peak memory of a second sampling run above the memory with weights loaded (the first run in a fresh process
    also pages in torch's kernels and sets up thread pools; it is kept too)."""
    t0 = time.perf_counter()
    run = build(job, {})
    load_s = time.perf_counter() - t0
    load_peak = bc.hwm_mib()
    cuda = job.device.startswith("cuda")
    out = {"job": asdict(job), "load_s": load_s}
    for name in ("first_run", "second_run"):
        with bc.PeakRSS() as rss:
            if cuda:
                with bc.PeakCuda(job.device) as gpu:
                    wall, cpu, _, _ = bc.timed(run)
            else:
                wall, cpu, _, _ = bc.timed(run)
        out[name] = {**rss.record(), "wall_s": wall, "cpu_s": cpu, **({"cuda": gpu.record()} if cuda else {})}
        load_peak = max(load_peak, rss.peak)
    out["process_peak_mib"] = round(load_peak, 1)
    return out


def measure_memory(job: Job) -> dict:
    log.info("memory: fresh process for %s", job.side)
    res = bc.run_worker(__spec__.name, asdict(job), threads=THREADS)
    r = res["second_run"]
    log.info("memory: %s -> peak %.0f MiB above %.0f MiB loaded (%.1f s run)", job.side, r["delta_mib"],
             r["baseline_mib"], r["wall_s"])
    return res


# -- section 1: time per frame ---------------------------------------------------------------------------------------

def rel_diff(a, b) -> float:
    return ((a.double() - b.double()).abs().max() / b.double().abs().max()).item()


def pack_jobs(job: Job, args) -> list[Job]:
    return [replace(job, fpb=n, attention=a) for a in args.attention for n in args.fpbs]


def compare(job: Job, pack: list[Job], repeats: int, quiet: bc.Quiet, shared: dict, label: str) -> dict:
    """Interleaved timing of the official-style side and the pack's variants; the first round (all variants once)
    is the warm-up and the check that every variant computes the official latents."""
    jobs = {j.side: j for j in [job] + pack}
    runs = {name: build(j, shared) for name, j in jobs.items()}
    latents = {}
    for name, run in runs.items():
        w, _, _, latents[name] = bc.timed(run)
        log.info("%s warm-up %s: %.2f s", label, name, w)
    agree = {name: rel_diff(x, latents[job.side]) for name, x in latents.items() if name != job.side}
    log.info("%s: final latents vs official-style (max abs diff / max abs): %s", label,
             ", ".join(f"{k} {v:.1e}" for k, v in agree.items()))
    times = bc.interleaved(runs, repeats, warmup=0, label=label, quiet=quiet)
    return {"jobs": {k: asdict(j) for k, j in jobs.items()}, "times": times, "latents_rel_diff": agree}


def per_frame(times: dict, frames: int, key: str = "wall") -> dict:
    return bc.stats([v / frames for v in times[key]])


def section_time(args) -> tuple[dict, str]:
    import torch

    job = Job(args.height, args.width, args.frames, args.steps, 0, args.device, args.dtype, args.tokens)
    log.info("time: %s; %d interleaved rounds", job.describe(), args.repeats)
    quiet = bc.Quiet(args.quiet_threshold, args.quiet_budget, enabled=args.quiet_budget > 0)
    shared: dict = {}
    main = compare(job, pack_jobs(job, args), args.repeats, quiet, shared, "time")
    official = job.side
    frame_flops = unet_call_flops("small", job.height, job.width) * job.steps
    # The pack's own count (one frame, one step, through ComfyUI's attention and guider): the same work, or not.
    one = replace(job, frames=1, steps=1, fpb=1)
    pack_step_flops = bc.count_flops(build(one, shared))
    real = None
    if args.real_check and (job.height, job.width) != OFFICIAL_HW:
        rj = replace(job, height=OFFICIAL_HW[0], width=OFFICIAL_HW[1], frames=args.real_frames, steps=args.real_steps)
        log.info("time: spot check at DreamPose's real size: %s", rj.describe())
        real = compare(rj, [replace(rj, fpb=rj.frames, attention=a) for a in args.attention], args.real_repeats,
                       quiet, shared, "640x512")
        real["job"] = asdict(rj)
        real["frame_flops"] = unet_call_flops("small", *OFFICIAL_HW) * rj.steps
    del shared
    bc.trim_heap()

    def rows_of(res: dict, frames: int, flops: int) -> list[list]:
        t = res["times"]
        o = per_frame(t[official], frames)
        rows = []
        for name in t:
            s, c = per_frame(t[name], frames), per_frame(t[name], frames, "cpu")
            is_off = name == official
            paired = bc.paired_ratios(t[name]["wall"], t[official]["wall"])
            fpb = res["jobs"][name]["fpb"]
            rows.append([name, 3 * max(fpb, 1), bc.fmt_time(s), f"{c['median']:.2f} s",
                         "1 (reference)" if is_off else f"{s['median'] / o['median']:.2f}",
                         "" if is_off or paired["n"] < 2 else f"{paired['median']:.2f} [{paired['min']:.2f}-"
                                                              f"{paired['max']:.2f}]",
                         f"{flops / s['median'] / 1e9:.0f}",
                         "" if is_off else f"{res['latents_rel_diff'][name]:.1e}"])
        return rows

    rows = rows_of(main, job.frames, frame_flops)
    if real:
        rows.append([f"-- spot check at {OFFICIAL_HW[1]}x{OFFICIAL_HW[0]} px, {real['job']['frames']} frames, "
                     f"{real['job']['steps']} steps, {args.real_repeats} run(s) each --"] + [""] * 7)
        rows += rows_of(real, real["job"]["frames"], real["frame_flops"])
    walls = {k: per_frame(main["times"][k], job.frames)["median"] for k in main["times"]}
    best = min((k for k in walls if k != official), key=walls.get)
    ratio = walls[best] / walls[official]
    cpu = job.device == "cpu"
    target = 0.9 if cpu else 0.5
    met = ratio <= target
    foreign = [f for t in main["times"].values() for f in t["foreign"]]
    q = quiet.summary()
    notes = [
        f"Target on the {'CPU' if cpu else 'GPU'}: pack / official-style time per frame <= {target:g} at equal steps. "
        f"Best pack setting: {best}, {ratio:.2f}: {'met' if met else 'NOT met'}.",
        f"Size {job.width}x{job.height} px: {args.size_reason}",
        "Sampler on both sides: Euler; ComfyUI 'euler' + 'normal' schedule (SD1.x betas) = diffusers "
        "EulerDiscreteScheduler(scaled_linear 0.00085-0.012, timestep_spacing='linspace'). 'latents vs official': "
        "max abs diff / max abs of the final latents (the same computation).",
        "The official-style side: diffusers UNet, one frame at a time, batch 3 per step ([black + zero pose, image + "
        "pose, image + zero pose]); the pack: dreampose_guider (Guider_DualCFG) + sample_frames, all three conds in "
        "one UNet call, so a call holds 3 x frames/call latents.",
        f"Times: whole sampling call / frames, median [min-max] of {args.repeats} interleaved (ABBA) rounds after a "
        "warm-up round; paired: median [range] of back-to-back ratios." if cpu else
        f"Times: median [min-max] of {args.repeats} interleaved rounds, torch.cuda.synchronize() at the end of runs.",
        f"GFLOP/s: FLOPs of a frame (3 UNet evaluations x {job.steps} steps = {frame_flops / 1e9:.0f} GFLOP at this "
        f"size, FlopCounterMode) over its time. The pack's own count of one frame-step: {pack_step_flops / 1e9:.1f} "
        f"GFLOP vs diffusers' {frame_flops / job.steps / 1e9:.1f}.",
        f"Attention: pack rows without 'SDPA' use the kernel this ComfyUI selected ({comfy_attention_name()}; on the "
        "CPU without flags ComfyUI picks its sub-quadratic kernel); 'SDPA' rows use torch's "
        "scaled_dot_product_attention through ComfyUI's per-model optimized_attention_override, as ComfyUI does for "
        "the whole process under --use-pytorch-cross-attention (and by default on NVIDIA GPUs). The official-style "
        "side (diffusers) uses SDPA.",
        f"Other processes during the timed runs: median {statistics.median(foreign):.2f} cores, max {max(foreign):.2f}; "
        f"{q['runs_repeated']} runs repeated for it, {q['disturbed_runs_kept']} disturbed runs kept (over "
        f"{q['threshold_cores']:g} cores), {q['waited_or_repeated_s']:.0f} s spent waiting or repeating.",
    ]
    if cpu:
        notes.append(f"No GPU run was made here (this machine has none; torch {torch.__version__}): the GPU target "
                     "(<= 0.5x at 640x512) is not measured. On a GPU: --device cuda [--dtype fp16].")
    text = bc.table(f"DreamPose time per frame: pack vs official-style loop ({job.describe()}, small fixture UNet)",
                    ["side", "UNet batch", "s / frame", "CPU s / frame", "pack / official", "paired",
                     "GFLOP/s", "latents vs official"], rows, notes)
    result = {"job": asdict(job), **main, "per_frame_s": walls, "best": best, "ratio": ratio, "target": target,
              "target_met": met, "frame_flops": frame_flops, "pack_frame_step_flops": pack_step_flops,
              "real_size_check": real, "interference": q}
    return result, text


# -- section 2: memory -----------------------------------------------------------------------------------------------

def section_memory(args) -> tuple[dict, str]:
    base = Job(args.mem_height, args.mem_width, args.mem_frames, args.mem_steps, 0, args.device, args.dtype,
               args.tokens)
    points = [base] + pack_jobs(base, args)
    results = [measure_memory(p) for p in points]
    cuda = args.device.startswith("cuda")
    off = results[0]["second_run"]
    rows = []
    for r in results:
        j, s = Job(**r["job"]), r["second_run"]
        rows.append([j.side, 3 * max(j.fpb, 1), f"{s['delta_mib']:.0f} MiB",
                     "1 (reference)" if j.fpb == 0 else
                     (f"{s['delta_mib'] / off['delta_mib']:.2f}" if off["delta_mib"] > 0 else "-"),
                     f"{r['first_run']['delta_mib']:.0f} MiB", f"{s['baseline_mib']:.0f} MiB",
                     f"{r['process_peak_mib']:.0f} MiB"]
                    + ([f"{s['cuda']['delta_mib']:.0f} MiB", f"{s['cuda']['baseline_mib']:.0f} MiB"] if cuda else [])
                    + [f"{s['wall_s'] / j.frames:.2f} s"])
    text = bc.table(
        f"DreamPose peak memory ({base.describe()}; one fresh process per row)",
        ["side", "UNet batch", "peak RSS above weights", "vs official", "(1st run)", "RSS with weights",
         "process peak"] + (["CUDA peak above weights", "CUDA with weights"] if cuda else []) + ["s / frame"], rows,
        [f"Peak above weights: RSS peak of a 2nd sampling run over the RSS with the weights loaded (method: "
         f"{off['method']}); the 1st run also pages in torch's kernels. The activations of one UNet call grow with "
         "its batch (3 x frames per call).",
         f"Attention: rows without SDPA use the kernel ComfyUI selected ({comfy_attention_name()}); SDPA rows and the "
         "official-style side use torch's scaled_dot_product_attention.",
         "Both processes import ComfyUI; the official-style one loads only the diffusers UNet; s / frame is from that "
         "one run, only indicative."])
    return {"points": results}, text


# -- section 3: FLOP floor -------------------------------------------------------------------------------------------

def section_flops(args, time_result: dict | None) -> tuple[dict, str]:
    points = [("small", *OFFICIAL_HW), ("full", *OFFICIAL_HW)]
    if (args.height, args.width) != OFFICIAL_HW:
        points.append(("small", args.height, args.width))
    steps = args.steps
    rows, out = [], []
    for profile, h, w in points:
        call = unet_call_flops(profile, h, w)
        frame = call * steps
        rec = {"profile": profile, "height": h, "width": w, "eval_flops": call // 3, "step_flops": call,
               "frame_flops": frame, "frame_flops_official_steps": call * OFFICIAL_STEPS,
               "floor_ms": {k: floor_ms(frame, v) for k, v in GPU_PEAKS_TFLOPS.items()}}
        out.append(rec)
        rows.append(["small fixture (111 M, 320 ch)" if profile == "small" else "SD1.4 shapes (860 M, real DreamPose)",
                     f"{w}x{h}", f"{call / 3 / 1e9:.0f}", f"{call / 1e9:.0f}", f"{frame / 1e12:.2f}",
                     f"{call * OFFICIAL_STEPS / 1e12:.1f}"]
                    + [f"{v:.1f} ms" for v in rec["floor_ms"].values()])
    notes = [f"A frame = {steps} steps x 3 UNet evaluations (one batch-3 call per step: black image + zero pose, image "
             "+ pose, image + zero pose); FLOPs counted by torch.utils.flop_counter.FlopCounterMode on the meta device "
             "(multiply-add = 2 FLOPs; convolutions, linear layers and attention; norms and activations not "
             f"counted). The official demo samples {OFFICIAL_STEPS} steps.",
             "Floor = FLOPs / the GPU's datasheet peak (dense): no GPU sustains its peak on a UNet, so real times are "
             "higher; they bound from below what a lent GPU's 'time per frame at 640x512' could be. "
             "H200 has the H100 SXM's compute (more and faster memory)."]
    if time_result:
        walls = time_result["per_frame_s"]
        ff = time_result["frame_flops"]
        notes.append(f"Achieved on this run's time section ({args.width}x{args.height}): "
                     + "; ".join(f"{k} {ff / v / 1e9:.0f} GFLOP/s" for k, v in walls.items()) + ".")
    if args.device == "cpu":
        notes.append("No GPU run was made here: this task had no GPU lent, so the GPU time per frame at 640x512 "
                     "(target: at most half the official-style loop's) is not measured; only the floor is shown.")
    text = bc.table(f"DreamPose FLOP floor of a frame ({steps} steps; GFLOP = 1e9, TFLOP = 1e12)",
                    ["UNet", "W x H", "GFLOP / evaluation", "GFLOP / frame-step (x3)", f"TFLOP / frame ({steps} st.)",
                     f"TFLOP / frame ({OFFICIAL_STEPS} st.)"] + [f"floor: {k}" for k in GPU_PEAKS_TFLOPS], rows, notes)
    return {"points": out, "gpu_peaks_tflops": GPU_PEAKS_TFLOPS}, text


# -- main ------------------------------------------------------------------------------------------------------------

def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog=f"python -m {__spec__.name}", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--section", action="append", choices=SECTIONS, help="run only this section (repeatable)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 4 frames at 128x160, 2 steps, 1 round, "
                                                         "1 and 4 frames per call, no 640x512 spot check")
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    ap.add_argument("--dtype", choices=list(DTYPES), default="fp32", help="UNet dtype on both sides (default fp32)")
    ap.add_argument("--repeats", type=int, help="interleaved timed rounds (default 3; quick 1)")
    ap.add_argument("--steps", type=int, help="sampling steps on both sides (default 4; quick 2)")
    ap.add_argument("--frames", type=int, help="frames per clip (default 8; quick 4)")
    ap.add_argument("--height", type=int, help="pixels (default 320 on the CPU, 640 on a GPU; quick 160)")
    ap.add_argument("--width", type=int, help="pixels (default 256 on the CPU, 512 on a GPU; quick 128)")
    ap.add_argument("--fpb", type=int, nargs="+", help="the pack's frames per UNet call (default 1 4 on the CPU, "
                                                        "1 4 8 on a GPU)")
    ap.add_argument("--attention", nargs="+", choices=ATTENTION, help="the pack's attention kernels (default both "
                                                                     "on the CPU; comfy on a GPU, where ComfyUI "
                                                                     "already picks SDPA)")
    ap.add_argument("--real-check", action=argparse.BooleanOptionalAction, default=None,
                    help="also time both sides at 640x512 (default: on, off in quick mode)")
    ap.add_argument("--real-frames", type=int, default=2, help="frames of the 640x512 spot check (default 2)")
    ap.add_argument("--real-steps", type=int, default=2, help="steps of the 640x512 spot check (default 2)")
    ap.add_argument("--real-repeats", type=int, default=1, help="rounds of the 640x512 spot check (default 1)")
    ap.add_argument("--mem-frames", type=int, help="frames in the memory section (default: the largest --fpb)")
    ap.add_argument("--mem-steps", type=int, default=1, help="steps in the memory section (default 1: the peak "
                                                             "is that of one UNet call)")
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's own, one per core)")
    ap.add_argument("--quiet-threshold", type=float, help="others' CPU use (cores) above which a timed run counts as "
                                                          "disturbed (default: cores our threads leave free + 0.25)")
    ap.add_argument("--quiet-budget", type=float, help="seconds per section for waiting for a quiet machine and "
                                                       "repeating disturbed runs (default 600, quick 60; 0: off)")
    ap.add_argument("--json", type=Path, help="results file (default artifacts/bench_dreampose.json; quick: "
                                              "artifacts/bench_dreampose_quick.json)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    q, gpu = args.quick, args.device != "cpu"
    args.sections = args.section or SECTIONS
    if args.steps is not None and args.steps < 2:
        ap.error("--steps must be at least 2: with one step diffusers' 'linspace' spacing samples only t = 0")
    args.repeats = args.repeats or (1 if q else 3)
    args.steps = args.steps or (2 if q else 4)
    args.frames = args.frames or (4 if q else 8)
    default_hw = (160, 128) if q else OFFICIAL_HW if gpu else (320, 256)
    args.fpbs = args.fpb or ([1, 4, 8] if gpu and not q else [1, 4])
    args.attention = args.attention or (["comfy"] if gpu else ATTENTION)
    variants = 1 + len(args.fpbs) * len(args.attention)
    args.size_reason = (
        "chosen by --height/--width" if args.height or args.width else "quick smoke size" if q else
        "DreamPose's real size" if gpu else
        "a quarter of 640x512's pixels: there one frame-step (a batch-3 UNet call) takes 7-25 s on these 2 cores, so "
        f"{args.frames} frames x {args.steps} steps x {variants} variants x {args.repeats + 1} rounds would take "
        "hours; the 640x512 rows below are a short spot check")
    args.height, args.width = args.height or default_hw[0], args.width or default_hw[1]
    args.real_check = args.real_check if args.real_check is not None else not q
    args.mem_frames = args.mem_frames or max(args.fpbs)
    args.mem_height, args.mem_width = args.height, args.width
    args.json = args.json or bc.REPO / "artifacts" / f"bench_dreampose{'_quick' if q else ''}.json"
    args.quiet_budget = args.quiet_budget if args.quiet_budget is not None else (60 if q else 600)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    bc.setup_logging()
    spec = json.loads(args.worker) if args.worker else None
    bc.bootstrap_comfy(cpu=(spec["device"] if spec else args.device) == "cpu")
    import torch

    if args.threads:
        global THREADS
        THREADS = args.threads
        torch.set_num_threads(args.threads)
    if spec:
        bc.write_worker_result(args.worker_out, worker(Job(**spec)))
        return 0
    machine = bc.machine_info()
    if args.device != "cpu":
        machine["gpu"] = torch.cuda.get_device_name(args.device)
    record = bc.start_record(machine, args)
    texts: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        if {"time", "memory"} & set(args.sections):
            args.tokens = str(Path(tmp) / "tokens.pt")
            log.info("adapter tokens of the fixture subject photo (CLIP B/32, VAE, adapter fixtures)")
            make_tokens(Path(args.tokens))
            bc.trim_heap()
        sections = {"time": lambda: section_time(args), "memory": lambda: section_memory(args),
                    "flops": lambda: section_flops(args, record["sections"].get("time"))}
        for name in SECTIONS:
            if name in args.sections:
                bc.run_section(record, texts, name, sections[name])
    gpu = ("GPU: " + machine["gpu"]) if "gpu" in machine else "GPU: none; no GPU run was made here"
    bc.finish(record, texts, args.json, (gpu,))
    return 0


if __name__ == "__main__":
    sys.exit(main())
