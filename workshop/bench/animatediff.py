"""AnimateDiff benchmark (not a test): prints one table per section and writes the results as JSON.

Sections (all by default; ``--section`` picks some):

- ``diffusers``: ComfyUI + animapose against diffusers' ``AnimateDiffPipeline`` on the same weights (the small SD1.5
  fixture and the v2 motion module, fp32), frames, steps, CFG and sampler: Euler on both sides, ComfyUI's ``normal``
  schedule against diffusers' ``EulerDiscreteScheduler(timestep_spacing="linspace")`` with the original AnimateDiff
  betas (diffusers "linear" = ComfyUI "sqrt_linear", which the pack autoselects for v2). Both give the sigmas of
  timesteps 999, 666, 333, 0 for 4 steps (for step counts where 999 / (steps - 1) is not whole, they interpolate
  the table differently, in log-sigma and in sigma: a small numeric difference, not one of cost); the script
  checks that both sides compute the same latents. The
  denoising loops are timed in one process, interleaved; peak memory is measured in one fresh process per side.
- ``overhead``: the same ComfyUI sampling with and without the motion module, per fixture (``--profile``: small, and
  full SD1.5 shapes with the real-width v2 module), beside the motion modules' FLOP share and their own time.
- ``controls``: the cost of each AnimateDiff control (prompt travel, multivals, keyframes, chained motion models,
  FreeNoise, FreeInit) over plain AnimateDiff sampling on the small fixture (workshop/bench/animatediff_controls.py).
- ``memory``: peak RSS against frame count (16/48/96) with the pack's context windows (16 frames, overlap 4), and
  without windows up to the motion module's 32 positions for contrast; one fresh process per point.

Tune the motion module with ``--section overhead --profile small`` (about 1.5 min); ``--quick`` is a smoke
run (about 1.5 min; its JSON goes to artifacts/bench_animatediff_quick.json). The whole run takes about 9 minutes on
a quiet 2-core machine. Weights are random (fixtures), so only timings and memory mean anything, not the pictures.

Timing on a shared machine: each timed run records how much CPU other processes used meanwhile; runs that
overlapped with them are repeated within a waiting budget, and the tables say how many. When another torch job
holds a core, two torch threads per process slow down erratically (up to 10x); ``--threads 1`` then gives steady
ratios (all comparisons use the same thread count, shown in the header).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from . import common as bc

log = logging.getLogger("animapose.bench")

SECTIONS = ["diffusers", "overhead", "memory", "controls"]
# sd15 fixture profile -> (motion-module fixture profile, file dtype). The real-width module is stored in fp16 to
# keep the file at 0.9 GB; the pack casts it to the UNet's dtype (fp32 on the CPU) when loading, so it computes
# in fp32 like the small one.
MOTION_FIXTURE = {"small": ("small", "fp32"), "full": ("real", "fp16")}
CONTEXT = dict(context_length=16, context_overlap=4, context_schedule="standard_uniform", context_stride=1,
               closed_loop=False, fuse_method="pyramid")  # the Context Windows node's defaults
THREADS: int | None = None  # --threads, handed on to the memory workers


@dataclass(frozen=True)
class Job:
    """One sampling setup; also the spec a memory worker receives."""

    profile: str = "small"
    frames: int = 16
    size: int = 64  # pixels; the latent is size // 8
    steps: int = 4
    cfg: float = 7.0
    motion: bool = True
    norm: str = "auto"  # "auto" (the pack's default for the file) or "diffusers" (diffusers' GroupNorm scope)
    windows: bool = False
    side: str = "comfy"  # or "diffusers"

    def describe(self) -> str:
        return f"{self.frames} frames, {self.size}x{self.size} px, {self.steps} steps, CFG {self.cfg:g}"


# -- building both sides ---------------------------------------------------------------------------------------------

def prompt_embeddings():
    """Fixed stand-ins for CLIP's output (77 tokens x 768), the same tensors on both sides."""
    import torch

    g = torch.Generator().manual_seed(1)
    return torch.randn(1, 77, 768, generator=g) * 0.5, torch.randn(1, 77, 768, generator=g) * 0.5


def motion_path(profile: str) -> Path:
    from ..fixtures.motion import motion_module_file

    mm_profile, dtype = MOTION_FIXTURE[profile]
    return motion_module_file("v2", "original", mm_profile, dtype=dtype)


def load_comfy_model(profile: str):
    import comfy.sd

    from ..fixtures.sd15 import sd15_checkpoint

    path = sd15_checkpoint(profile, "taesd")  # the VAE is never run here; TAESD keeps the file small
    model, *_ = comfy.sd.load_checkpoint_guess_config(str(path), output_vae=False, output_clip=False)
    return model


def animate(model, profile: str, norm: str = "auto", windows: bool = False):
    """What the Load/Apply Motion Model (and Context Windows) nodes build. Returns (MODEL, the MotionModel)."""
    from ...animapose.motion import NORM_AUTO, NORM_DIFFUSERS
    from ...animapose.motion.sampling.context import set_context_windows
    from ...animapose.motion.sampling.inflate import apply_motion_model, load_motion_model
    from ...animapose.motion.sampling.schedules import AUTOSELECT

    motion = load_motion_model(str(motion_path(profile)), f"v2 ({MOTION_FIXTURE[profile][0]})")
    m = apply_motion_model(model, motion, 1.0, AUTOSELECT, NORM_DIFFUSERS if norm == "diffusers" else NORM_AUTO).model
    if windows:
        m = set_context_windows(m, **CONTEXT)
    return m, motion


def comfy_runner(model, job: Job):
    """A KSampler run without the node around it: ``comfy.sample.sample`` under inference mode, as ComfyUI's
    executor runs nodes. Returns run(steps=None) -> latents in the model's latent space."""
    import comfy.sample
    import torch

    cond, uncond = prompt_embeddings()
    latent = torch.zeros(job.frames, 4, job.size // 8, job.size // 8)
    noise = comfy.sample.prepare_noise(latent, 0)

    def run(steps: int | None = None):
        with torch.inference_mode():
            out = comfy.sample.sample(model, noise, steps or job.steps, job.cfg, "euler", "normal", [[cond, {}]],
                                      [[uncond, {}]], latent, disable_pbar=True, seed=0)
        return model.model.process_latent_in(out)  # sample() returns latents divided by SD's 0.18215

    return run


def diffusers_pipeline(comfy_model, profile: str):
    """diffusers' AnimateDiffPipeline holding exactly the fixture's UNet and motion weights, in fp32, with the
    original AnimateDiff betas under Euler. No VAE or text encoder: the runs pass prompt embeddings and stop at
    latents, like the ComfyUI side."""
    from diffusers import AnimateDiffPipeline, EulerDiscreteScheduler, MotionAdapter, UNetMotionModel

    from ...animapose.checkpoints import load_state_dict
    from ...animapose.motion.formats.convert import motion_adapter_config, original_to_diffusers
    from ...animapose.motion.formats.detect import normalize_motion_state_dict
    from ..references.motion_unet import diffusers_unet_from_comfy

    sd, info = normalize_motion_state_dict(load_state_dict(str(motion_path(profile)), "motion_model"))
    adapter = MotionAdapter(**motion_adapter_config(info))
    adapter.load_state_dict({k: v.float() for k, v in original_to_diffusers(sd, info).items()}, strict=True)
    unet = UNetMotionModel.from_unet2d(diffusers_unet_from_comfy(comfy_model), adapter).float().eval()
    scheduler = EulerDiscreteScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                                       beta_schedule="linear", timestep_spacing="linspace")
    pipe = AnimateDiffPipeline(vae=None, text_encoder=None, tokenizer=None, unet=unet, motion_adapter=adapter,
                               scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def diffusers_runner(pipe, job: Job):
    import comfy.sample
    import torch

    cond, uncond = prompt_embeddings()
    # ComfyUI's noise for the same seed, as diffusers' (batch, channels, frames, h, w). ComfyUI starts full
    # denoising from noise * sqrt(1 + sigma_max^2) (the original's unit-variance x_T under DDIM); diffusers' Euler
    # with "linspace" spacing multiplies by sigma_max alone, so the latents passed in carry the remaining factor.
    noise = comfy.sample.prepare_noise(torch.zeros(job.frames, 4, job.size // 8, job.size // 8), 0)
    sigma_max = float(pipe.scheduler.sigmas.max())
    latents = noise.permute(1, 0, 2, 3).unsqueeze(0) * ((sigma_max**2 + 1) ** 0.5 / sigma_max)

    def run(steps: int | None = None):
        out = pipe(prompt_embeds=cond, negative_prompt_embeds=uncond, num_frames=job.frames, height=job.size,
                   width=job.size, num_inference_steps=steps or job.steps, guidance_scale=job.cfg,
                   output_type="latent", latents=latents).frames
        return out[0].permute(1, 0, 2, 3)

    return run


# -- worker: one memory point in a fresh process --------------------------------------------------------------------

def worker(job: Job) -> dict:
    """Loads everything, then measures peak RSS over sampling runs relative to the RSS with the weights loaded.

    The first run in a fresh process also pages in torch's kernels and sets up thread pools (20-60 MiB more RSS
    that is not the run's working memory), so the reported peak is that of a second run; the first is kept too.
    """
    import comfy.model_management

    t0 = time.perf_counter()
    model = load_comfy_model(job.profile)
    if job.side == "diffusers":
        run = diffusers_runner(diffusers_pipeline(model, job.profile), job)
        del model  # the pipeline holds its own copy of the weights
    else:
        if job.motion:
            model, _ = animate(model, job.profile, job.norm, job.windows)
        # what sampling does first; the weights are then in place and the baseline covers them
        comfy.model_management.load_models_gpu([model] + model.get_nested_additional_models())
        run = comfy_runner(model, job)
    load_s = time.perf_counter() - t0
    load_peak = bc.hwm_mib()
    with bc.PeakRSS() as first:
        first_s, _, _, _ = bc.timed(run)
    with bc.PeakRSS() as peak:
        wall, cpu, _, _ = bc.timed(run)
    return {"job": asdict(job), "load_s": load_s, "run_wall_s": wall, "run_cpu_s": cpu, "first_run_s": first_s,
            **peak.record(), "first_run": first.record(),
            "process_peak_mib": round(max(load_peak, first.peak, peak.peak), 1)}


def measure_memory(job: Job) -> dict:
    log.info("memory: fresh process for %s", job)
    res = bc.run_worker(__spec__.name, asdict(job), threads=THREADS)
    log.info("memory: %s -> peak %.0f MiB above %.0f MiB loaded (%.1f s run)", job.side, res["delta_mib"],
             res["baseline_mib"], res["run_wall_s"])
    return res


# -- section 1: against diffusers -----------------------------------------------------------------------------------

def section_diffusers(args) -> tuple[dict, str]:
    job = Job("small", args.frames, args.size, args.steps, norm="diffusers")
    log.info("vs diffusers: building both sides (%s)", job.describe())
    model = load_comfy_model("small")
    anim, motion = animate(model, "small", "diffusers")
    pipe = diffusers_pipeline(model, "small")
    runs = {"comfy": comfy_runner(anim, job), "diffusers": diffusers_runner(pipe, job)}
    clocks = {"comfy": ModuleClock(motion.patcher.model), "diffusers": ModuleClock(pipe.unet, "AnimateDiffTransformer3D")}

    # Same algorithm check (also the warm-up): the two final latents must agree.
    a, b = runs["comfy"](), runs["diffusers"]()
    agreement = ((a.double() - b.double()).abs().max() / b.double().abs().max()).item()
    log.info("vs diffusers: final latents differ by %.1e (max abs diff / max abs)", agreement)
    quiet = quiet_from(args)
    times = bc.interleaved({k: clocks[k].clocked(run) for k, run in runs.items()}, args.repeats, warmup=0,
                           label="vs diffusers", quiet=quiet)
    for clock in clocks.values():
        clock.remove()
    inside = {k: bc.stats(times[k].pop("value")) for k in runs}
    del runs, pipe, anim, model, motion, clocks
    bc.trim_heap()
    mem = {side: measure_memory(replace(job, side=side)) for side in ("comfy", "diffusers")}

    c, d = (bc.stats(times[s]["wall"]) for s in ("comfy", "diffusers"))
    cc, dc = (bc.stats(times[s]["cpu"]) for s in ("comfy", "diffusers"))
    paired = bc.paired_ratios(times["comfy"]["wall"], times["diffusers"]["wall"])
    ratio = c["median"] / d["median"]
    mc, md = mem["comfy"], mem["diffusers"]
    rows = [
        [f"denoising loop, wall (median [min-max] of {c['n']})", bc.fmt_time(c), bc.fmt_time(d),
         f"{ratio:.2f} (paired {paired['median']:.2f} [{paired['min']:.2f}-{paired['max']:.2f}]; "
         f"minima {c['min'] / d['min']:.2f})"],
        ["denoising loop, process CPU time (median)", f"{cc['median']:.2f} s", f"{dc['median']:.2f} s",
         f"{cc['median'] / dc['median']:.2f}"],
        ["  of the wall time: inside motion modules (median)", f"{inside['comfy']['median']:.2f} s",
         f"{inside['diffusers']['median']:.2f} s", f"{inside['comfy']['median'] / inside['diffusers']['median']:.2f}"],
        ["  of the wall time: everything else (medians' difference)", f"{c['median'] - inside['comfy']['median']:.2f} s",
         f"{d['median'] - inside['diffusers']['median']:.2f} s",
         f"{(c['median'] - inside['comfy']['median']) / (d['median'] - inside['diffusers']['median']):.2f}"],
        ["peak RSS above loaded weights (2nd run)", f"{mc['delta_mib']:.0f} MiB", f"{md['delta_mib']:.0f} MiB",
         f"{mc['delta_mib'] / md['delta_mib']:.2f}" if md["delta_mib"] > 0 else "-"],
        ["  the same, 1st run in the process", f"{mc['first_run']['delta_mib']:.0f} MiB",
         f"{md['first_run']['delta_mib']:.0f} MiB", ""],
        ["RSS with weights loaded", f"{mc['baseline_mib']:.0f} MiB", f"{md['baseline_mib']:.0f} MiB", ""],
        ["process peak RSS (loading included)", f"{mc['process_peak_mib']:.0f} MiB",
         f"{md['process_peak_mib']:.0f} MiB", ""],
    ]
    target = "met" if ratio <= 0.8 else "NOT met"
    text = bc.table(
        f"AnimateDiff vs diffusers AnimateDiffPipeline {_diffusers_version()} (small fixture, v2 motion module fp32, "
        f"{job.describe()})",
        ["", "ComfyUI + animapose", "diffusers", "ComfyUI / diffusers"], rows,
        [f"Target: time ratio <= 0.80 ({target}). Sampler on both sides: Euler; ComfyUI 'euler' + 'normal' schedule "
         "with the pack's sqrt_linear betas = diffusers EulerDiscreteScheduler(beta_schedule='linear', "
         "0.00085-0.012, timestep_spacing='linspace'); GroupNorm scope 'diffusers' on the pack's side.",
         f"Same computation: the final latents of the two sides differ by {agreement:.1e} (max abs diff / max abs).",
         "Timed: the sampling call only (prompt embeddings given, no VAE), both in one process, interleaved "
         "(paired: median and range of back-to-back ratios; minima: fastest run over fastest run); "
         "ComfyUI's CPU attention is its default sub-quadratic one, diffusers' is torch SDPA.",
         interference_note(times, quiet),
         f"Memory: each side alone in a fresh process (ComfyUI imported on both); peak via {mc['method']}. The 1st "
         "run also pages in torch's kernels. The diffusers side's process peak includes the ComfyUI copy of the "
         "weights its own are built from (freed before the baseline)."])
    result = {"job": asdict(job), "latents_rel_diff": agreement, "times": times,
              "wall": {"comfy": c, "diffusers": d}, "cpu": {"comfy": cc, "diffusers": dc}, "motion_modules_s": inside,
              "time_ratio": ratio, "time_ratio_paired": paired, "memory": mem, "target_met": ratio <= 0.8,
              "interference": quiet.summary()}
    return result, text


def quiet_from(args) -> bc.Quiet:
    return bc.Quiet(args.quiet_threshold, args.quiet_budget, enabled=args.quiet_budget > 0)


def interference_note(times: dict, quiet: bc.Quiet) -> str:
    foreign = [f for t in times.values() for f in t["foreign"]]
    q = quiet.summary()
    return (f"Other processes during the timed runs: median {statistics.median(foreign):.2f} cores, max "
            f"{max(foreign):.2f}; {q['runs_repeated']} runs repeated for it, {q['disturbed_runs_kept']} disturbed runs "
            f"kept (over {q['threshold_cores']:g} cores), {q['waited_or_repeated_s']:.0f} s spent waiting or repeating.")


def _diffusers_version() -> str:
    import diffusers

    return diffusers.__version__


# -- section 2: overhead against plain ComfyUI ----------------------------------------------------------------------

class ModuleClock:
    """Wall time spent inside the motion modules, through forward hooks (an official torch API) on the modules
    whose class is named ``class_name``: the pack's ``MotionModule`` (the very objects it injects into the UNet) or
    diffusers' ``AnimateDiffTransformer3D``. CPU execution is synchronous, so the times are exact."""

    def __init__(self, root, class_name: str = "MotionModule"):
        self.total = 0.0
        self._t = 0.0
        self.handles = []
        for m in root.modules():
            if type(m).__name__ == class_name:
                self.handles.append(m.register_forward_pre_hook(self._pre))
                self.handles.append(m.register_forward_hook(self._post))
        if not self.handles:
            raise RuntimeError(f"no {class_name} modules found to time")

    def _pre(self, module, args):
        self._t = time.perf_counter()

    def _post(self, module, args, out):
        self.total += time.perf_counter() - self._t

    def clocked(self, run):
        """``run`` returning the seconds spent inside the modules during it (recorded beside its time)."""

        def wrapped() -> float:
            self.total = 0.0
            run()
            return self.total

        return wrapped

    def remove(self):
        for h in self.handles:
            h.remove()


def overhead_one(profile: str, args) -> dict:
    repeats = args.repeats or (6 if profile == "full" else 8)
    job = Job(profile, args.frames, args.size, args.steps)
    log.info("overhead [%s]: loading (%s)%s", profile, job.describe(),
             "; the full SD1.5 fixture takes ~30 s to build the first time" if profile == "full" else "")
    plain = load_comfy_model(profile)
    anim, motion = animate(plain, profile)
    runs = {"plain": comfy_runner(plain, job), "animated": comfy_runner(anim, job)}

    # FLOPs of one Euler step = one UNet call carrying cond and uncond (2 x frames latents).
    flops = {name: bc.count_flops(lambda r=run: r(1)) for name, run in runs.items()}
    share = flops["animated"] / flops["plain"] - 1
    per_frame = {k: v / (2 * job.frames) / 1e9 for k, v in flops.items()}
    log.info("overhead [%s]: GFLOP per frame per UNet call %.2f plain, %.2f animated: FLOP share %.1f%%", profile,
             per_frame["plain"], per_frame["animated"], 100 * share)

    clock = ModuleClock(motion.patcher.model)
    animated_clocked = clock.clocked(runs["animated"])

    quiet = quiet_from(args)
    try:
        times = bc.interleaved({"plain": runs["plain"], "animated": animated_clocked}, repeats,
                               warmup=args.warmup, label=f"overhead [{profile}]", quiet=quiet)
    finally:
        clock.remove()
    inside = times["animated"].pop("value")
    p, a = bc.stats(times["plain"]["wall"]), bc.stats(times["animated"]["wall"])
    paired = bc.paired_ratios(times["animated"]["wall"], times["plain"]["wall"])
    overhead = a["median"] / p["median"] - 1
    modules_s = statistics.median(inside)
    # Achieved rates: the plain UNet's, and the motion modules' own (their extra FLOPs over their own time).
    rate = {"unet": flops["plain"] * job.steps / p["median"] / 1e9,
            "motion_modules": (flops["animated"] - flops["plain"]) * job.steps / modules_s / 1e9}
    return {"job": asdict(job), "repeats": repeats, "times": times, "plain": p, "animated": a,
            "overhead": overhead, "overhead_paired": {k: (v - 1 if k in ("median", "min", "max") else v)
                                                      for k, v in paired.items() if k != "values"},
            "flops": flops, "gflop_per_frame": per_frame, "flop_share": share, "interference": quiet.summary(),
            "interference_note": interference_note(times, quiet),
            "motion_modules_s": modules_s, "motion_modules_s_values": inside, "gflops_per_s": rate,
            "cpu": {"plain": bc.stats(times["plain"]["cpu"]), "animated": bc.stats(times["animated"]["cpu"])}}


def section_overhead(args) -> tuple[dict, str]:
    results = {}
    for profile in args.profiles:
        results[profile] = overhead_one(profile, args)
        bc.trim_heap()
    rows = []
    for profile, r in results.items():
        p, a, share, o = r["plain"], r["animated"], r["flop_share"], r["overhead"]
        op = r["overhead_paired"]
        rows.append([
            "small (320 ch everywhere)" if profile == "small" else "full SD1.5 shapes",
            bc.fmt_time(p), bc.fmt_time(a),
            f"{100 * o:+.0f}% (paired {100 * op['median']:+.0f}% [{100 * op['min']:+.0f}..{100 * op['max']:+.0f}]; "
            f"minima {100 * (a['min'] / p['min'] - 1):+.0f}%)",
            f"+{100 * share:.1f}%", f"{o / share:.2f}",
            f"{r['motion_modules_s']:.2f} s (+{100 * r['motion_modules_s'] / p['median']:.0f}%)",
            f"{r['gflop_per_frame']['plain']:.1f} / {r['gflop_per_frame']['animated']:.1f}",
            f"{r['gflops_per_s']['unet']:.0f} / {r['gflops_per_s']['motion_modules']:.0f}",
            f"{(a['median'] - p['median'] - r['motion_modules_s']):+.2f} s",
        ])
    job = Job(frames=args.frames, size=args.size, steps=args.steps)
    text = bc.table(
        f"Motion-module overhead vs the same ComfyUI sampling without it ({job.describe()}, euler/normal, "
        "v2 motion module)",
        ["fixture", "plain", "with motion module", "overhead", "FLOP share", "overhead / share",
         "inside motion modules", "GFLOP/frame plain / with", "GFLOP/s UNet / modules", "rest of the overhead"],
        rows,
        ["Times: the sampling call, median [min-max] of N interleaved runs after a warm-up; 'paired': median and "
         "range of the per-pair ratios (runs timed back to back); 'minima': from the fastest run of each, the least "
         "disturbed by other jobs.",
         "FLOP share: extra FLOPs of one UNet call with the motion modules, torch FlopCounterMode (the ideal "
         "overhead if the modules ran as efficiently as the UNet); overhead / share = 1.00 is that ideal.",
         "Inside motion modules: wall time within the modules' forward (hooks), median per sampling run; rest = "
         "the overhead not spent inside them. GFLOP/s: plain UNet FLOPs over plain time, and the modules' FLOPs "
         "over their own time.",
         "Targets: close to the FLOP share; at full SD1.5 shapes at most +40% (the best-known ComfyUI pack "
         "measured +68% on this kind of machine, for the whole graph including CLIP and VAE decode)."]
        + ([f"Full SD1.5 shapes: {100 * results['full']['overhead']:+.0f}% against the target of at most +40%: "
            f"{'met' if results['full']['overhead'] <= 0.40 else 'NOT met'}."] if "full" in results else [])
        + [f"{p}: {r['interference_note']}" for p, r in results.items()])
    return results, text


# -- section 3: memory against frame count --------------------------------------------------------------------------

def section_memory(args) -> tuple[dict, str]:
    base = Job("small", size=args.mem_size, steps=args.mem_steps)
    points = [replace(base, frames=f, windows=True) for f in args.mem_frames]
    points += [replace(base, frames=f) for f in args.mem_frames_plain]
    points.append(replace(base, frames=16, motion=False))  # the UNet alone, for scale
    results = [measure_memory(p) for p in points]
    rows = []
    for r in results:
        j = r["job"]
        what = ("context windows 16/4" if j["windows"] else "whole clip") if j["motion"] else "no motion module"
        rows.append([j["frames"], what, f"{r['delta_mib']:.0f} MiB", f"{r['first_run']['delta_mib']:.0f} MiB",
                     f"{r['baseline_mib']:.0f} MiB", f"{r['process_peak_mib']:.0f} MiB", f"{r['run_wall_s']:.1f} s",
                     f"{r['run_wall_s'] / j['frames']:.2f} s"])
    windowed = [r["delta_mib"] for r in results if r["job"]["windows"]]
    flat = (f"With windows the peak above weights goes {windowed[0]:.0f} -> {windowed[-1]:.0f} MiB from "
            f"{args.mem_frames[0]} to {args.mem_frames[-1]} frames") if len(windowed) > 1 else ""
    text = bc.table(
        f"Peak memory vs frames (small fixture, v2 motion module, {base.size}x{base.size} px, {base.steps} euler "
        f"steps, CFG {base.cfg:g}; one fresh process per row)",
        ["frames", "sampling", "peak above weights", "(1st run)", "RSS with weights", "process peak", "run time",
         "per frame"], rows,
        [f"Context windows: the pack's node defaults (length 16, overlap 4, standard_uniform, pyramid fusion). "
         f"Without windows the v2 module allows at most 32 frames (its positions). {flat}.",
         "Peak above weights: RSS peak of a 2nd run over the RSS with weights loaded (the 1st run also pages in "
         "torch's kernels); run time: that one run, so only indicative."])
    return {"points": results}, text


# -- main -----------------------------------------------------------------------------------------------------------

def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog=f"python -m {__spec__.name}", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--section", action="append", choices=SECTIONS, help="run only this section (repeatable)")
    ap.add_argument("--profile", action="append", choices=["small", "full"],
                    help="fixtures for the overhead section (repeatable; default: small and full, quick: small)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 steps, 1 run, no warm-up, small only")
    ap.add_argument("--repeats", type=int, help="timed runs per variant (default 8; 6 at full shapes; quick 1)")
    ap.add_argument("--warmup", type=int, help="untimed rounds before timing in the overhead section (default 1)")
    ap.add_argument("--steps", type=int, help="sampling steps (default 4)")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--size", type=int, default=64, help="pixels per side (latent: size/8)")
    ap.add_argument("--mem-frames", type=int, nargs="+", help="frame counts with context windows (16 48 96)")
    ap.add_argument("--mem-frames-plain", type=int, nargs="*", help="frame counts without windows (16 32)")
    ap.add_argument("--mem-size", type=int, help="pixels per side in the memory section (default --size)")
    ap.add_argument("--mem-steps", type=int, help="steps in the memory section (default 2: the peak is per UNet call)")
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's own, one per core)")
    ap.add_argument("--quiet-threshold", type=float,
                    help="others' average CPU use (cores) above which a timed run counts as disturbed (default: the "
                         "cores our torch threads leave free + 0.25)")
    ap.add_argument("--quiet-budget", type=float,
                    help="seconds per section to spend waiting for a quiet machine and repeating disturbed runs "
                         "(default 600, quick 60; 0 turns waiting off)")
    ap.add_argument("--json", type=Path, help="where to write the results (default artifacts/bench_animatediff.json; "
                                              "quick: artifacts/bench_animatediff_quick.json, so a smoke run never "
                                              "overwrites real results)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    q = args.quick
    args.sections = args.section or SECTIONS
    args.profiles = args.profile or (["small"] if q else ["small", "full"])
    args.repeats = args.repeats or (1 if q else None)  # None: per profile in the overhead section
    args.warmup = args.warmup if args.warmup is not None else (0 if q else 1)
    args.steps = args.steps or (2 if q else 4)
    args.mem_frames = args.mem_frames or ([16, 48] if q else [16, 48, 96])
    args.mem_frames_plain = args.mem_frames_plain if args.mem_frames_plain is not None else ([16] if q else [16, 32])
    args.mem_size = args.mem_size or args.size
    args.mem_steps = args.mem_steps or (1 if q else 2)
    args.json = args.json or bc.REPO / "artifacts" / f"bench_animatediff{'_quick' if q else ''}.json"
    args.quiet_budget = args.quiet_budget if args.quiet_budget is not None else (60 if q else 600)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    bc.setup_logging()
    bc.bootstrap_comfy()
    import torch

    if args.threads:
        global THREADS
        THREADS = args.threads
        torch.set_num_threads(args.threads)
    if args.worker:
        bc.write_worker_result(args.worker_out, worker(Job(**json.loads(args.worker))))
        return 0
    record = bc.start_record(bc.machine_info(), args)
    texts: list[str] = []
    from .animatediff_controls import section_controls

    for name, fn in (("diffusers", section_diffusers), ("overhead", section_overhead), ("memory", section_memory),
                     ("controls", section_controls)):
        if name not in args.sections:
            continue
        section_args = argparse.Namespace(**vars(args))
        if name == "diffusers":
            section_args.repeats = args.repeats or 8
        bc.run_section(record, texts, name, lambda fn=fn, section_args=section_args: fn(section_args))
    bc.finish(record, texts, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
