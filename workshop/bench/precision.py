"""Precision and compilation benchmark (not a test): float32 against bfloat16, and eager against torch.compile, on
the CPU, with the relative error of the sampled latents beside every time. Prints tables, writes JSON.

Sections (all by default; ``--section`` picks some):

- ``animatediff``: per fixture profile (``--profile small|full``), the pack in float32; the pack in bf16 (bf16
  weights, as ``--bf16-unet`` and the motion loader's ``weight_dtype`` store them, computing in bf16, as ComfyUI's
  ModelComputeDtype node sets it: on CPUs ComfyUI computes a bf16-stored UNet in float32 otherwise); diffusers'
  AnimateDiffPipeline in bf16 on the same weights (and in float32 on the small fixture; at full shapes the extra
  float32 copies would not fit beside other jobs on the build machine; ``--diffusers-full`` adds it). All in one
  process, interleaved; latent errors against the pack's float32 latents (which equal diffusers' float32 ones to
  ~4e-6, see bench_animatediff's diffusers section). Same setup as bench_animatediff (v2 module, Euler, CFG 7,
  GroupNorm scope "diffusers" on the pack's side so both sides compute the same thing).
- ``dreampose``: bench_dreampose's two sides (the pack's sample_frames with torch SDPA, and the official-style
  diffusers loop) in float32 and in bf16 (small fixture UNet).
- ``compile``: ComfyUI's own TorchCompileModel (``set_torch_compile_wrapper``, inductor) on the inflated MODEL and on
  the DreamPose MODEL: the first run (compilation included), graphs compiled in it and in later runs (a later run that
  compiles again is a recompilation), graph breaks, steady-state time against eager, and the latent difference.

``--quick`` is a smoke run (tiny sizes, one round). Weights are random fixtures: only times and errors mean anything.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from . import animatediff as ba
from . import common as bc
from . import dreampose as bd

log = bc.log
SECTIONS = ["animatediff", "dreampose", "compile"]
COMPILE_MODELS = ["animatediff", "animatediff-sdpa", "dreampose"]


def errors(x, ref) -> dict:
    """Relative errors of latents ``x`` against ``ref``: max abs diff / max abs, and RMS diff / RMS."""
    x, ref = x.double(), ref.double()
    return {"max": ((x - ref).abs().max() / ref.abs().max()).item(),
            "rms": ((x - ref).pow(2).mean().sqrt() / ref.pow(2).mean().sqrt()).item()}


def fmt_err(e: dict | None) -> str:
    return "reference" if e is None else f"{e['max']:.1e} / {e['rms']:.1e}"


# -- AnimateDiff -------------------------------------------------------------------------------------------------------

def pack_animatediff(profile: str, dtype: str, compute: str | None = None):
    """The inflated MODEL with weights stored in ``dtype`` ("fp32", "fp16" or "bf16") and computed in ``compute``
    (default: the same)."""
    import comfy.sd
    import torch

    from ...animapose.motion import NORM_DIFFUSERS
    from ...animapose.motion.sampling.inflate import apply_motion_model, load_motion_model
    from ...animapose.motion.sampling.schedules import AUTOSELECT
    from ..fixtures.sd15 import sd15_checkpoint

    dt = getattr(torch, bd.DTYPES[dtype])
    ct = getattr(torch, bd.DTYPES[compute or dtype])
    options = {} if dtype == "fp32" else {"dtype": dt}
    model, *_ = comfy.sd.load_checkpoint_guess_config(str(sd15_checkpoint(profile, "taesd")), output_vae=False,
                                                      output_clip=False, model_options=options)
    motion = load_motion_model(str(ba.motion_path(profile)), "v2", weight_dtype_name=dtype)
    m = apply_motion_model(model, motion, 1.0, AUTOSELECT, NORM_DIFFUSERS).model
    if (m.model.manual_cast_dtype or dt) != ct:
        m.set_model_compute_dtype(ct)  # ComfyUI's ModelComputeDtype node
    return m


def diffusers_animatediff(comfy_fp32_model, profile: str, dtype: str, job: ba.Job, device: str = "cpu"):
    """run() of diffusers' pipeline in ``dtype``: weights, prompt embeddings and starting latents in it, as a
    diffusers user runs bf16 (the Euler scheduler upcasts its own step)."""
    import comfy.sample
    import torch

    dt = getattr(torch, bd.DTYPES[dtype])
    pipe = ba.diffusers_pipeline(comfy_fp32_model, profile)
    pipe.to(device, dt)
    cond, uncond = (e.to(device, dt) for e in ba.prompt_embeddings())
    noise = comfy.sample.prepare_noise(torch.zeros(job.frames, 4, job.size // 8, job.size // 8), 0)
    sigma_max = float(pipe.scheduler.sigmas.max())
    latents = (noise.permute(1, 0, 2, 3).unsqueeze(0) * ((sigma_max**2 + 1) ** 0.5 / sigma_max)).to(device, dt)

    def run():
        with torch.no_grad():
            out = pipe(prompt_embeds=cond, negative_prompt_embeds=uncond, num_frames=job.frames, height=job.size,
                       width=job.size, num_inference_steps=job.steps, guidance_scale=job.cfg, output_type="latent",
                       latents=latents).frames
        return out[0].permute(1, 0, 2, 3).float().cpu()  # .cpu() also waits for a GPU to finish

    return run


def animatediff_one(profile: str, args) -> dict:
    job = ba.Job(profile, args.frames, args.size, args.steps, norm="diffusers")
    log.info("animatediff [%s]: building (%s)", profile, job.describe())
    fp32 = pack_animatediff(profile, "fp32")
    runs = {"pack fp32": ba.comfy_runner(fp32, job), "pack bf16": ba.comfy_runner(pack_animatediff(profile, "bf16"), job)}
    # at full shapes the two mixed variants' extra copies (with the rest: 19 GB peak without them) exceed 24 GB
    if args.mixed and (profile == "small" or args.mixed_full):
        runs["pack bf16 weights, fp32 compute (--bf16-unet alone)"] = ba.comfy_runner(
            pack_animatediff(profile, "bf16", "fp32"), job)
        runs["pack fp32 weights, bf16 compute (ModelComputeDtype alone)"] = ba.comfy_runner(
            pack_animatediff(profile, "fp32", "bf16"), job)
    sides = ["bf16"] + (["fp32"] if profile == "small" or args.diffusers_full else [])
    for dtype in sides:
        # built before anything runs, so the UNet they are read from holds no inserted motion modules
        runs[f"diffusers {dtype}"] = diffusers_animatediff(fp32, profile, dtype, job)
    bc.trim_heap()
    flops = bc.count_flops(lambda: runs["pack fp32"](1)) * job.steps
    first = {}
    for name, run in runs.items():
        w, _, _, first[name] = bc.timed(run)
        log.info("animatediff [%s] warm-up %s: %.2f s", profile, name, w)
    errs = {name: (None if name == "pack fp32" else errors(x, first["pack fp32"])) for name, x in first.items()}
    if "diffusers fp32" in first:
        errs["diffusers bf16 vs diffusers fp32"] = errors(first["diffusers bf16"], first["diffusers fp32"])
    quiet = bc.Quiet(args.quiet_threshold, args.quiet_budget, enabled=args.quiet_budget > 0)
    times = bc.interleaved(runs, args.repeats, warmup=0, label=f"animatediff [{profile}]", quiet=quiet)
    return {"job": ba.asdict(job), "times": times, "errors": errs, "flops": flops, "interference": quiet.summary()}


def section_animatediff(args) -> tuple[dict, str]:
    results, rows = {}, []
    for profile in args.profiles:
        r = results[profile] = animatediff_one(profile, args)
        bc.trim_heap()
        ref = bc.stats(r["times"]["pack fp32"]["wall"])
        for name, t in r["times"].items():
            s = bc.stats(t["wall"])
            paired = bc.paired_ratios(t["wall"], r["times"]["pack fp32"]["wall"])
            rows.append([profile, name, bc.fmt_time(s), f"{s['median'] / ref['median']:.2f}"
                         + (f" (paired {paired['median']:.2f})" if paired["n"] > 1 and name != "pack fp32" else ""),
                         f"{r['flops'] / s['median'] / 1e9:.0f}", fmt_err(r["errors"][name])])
    extra = [f"{p}: diffusers bf16 vs diffusers fp32: {fmt_err(r['errors']['diffusers bf16 vs diffusers fp32'])}"
             for p, r in results.items() if "diffusers bf16 vs diffusers fp32" in r["errors"]]
    job = ba.Job(frames=args.frames, size=args.size, steps=args.steps)
    text = bc.table(
        f"AnimateDiff float32 vs bf16 ({job.describe()}, Euler, v2 motion module, GroupNorm scope 'diffusers')",
        ["fixture", "variant", "sampling wall", "time / pack fp32", "GFLOP/s", "latents vs pack fp32 (max / rms)"],
        rows,
        ["pack bf16: UNet and motion weights stored in bf16 (--bf16-unet, weight_dtype) and computed in bf16 "
         "(ComfyUI's ModelComputeDtype bf16; ComfyUI computes bf16 weights in float32 on CPUs otherwise). diffusers: "
         "AnimateDiffPipeline with the same weights, the UNet cast to the dtype, embeddings and latents in it.",
         "Latent error: relative to the pack's float32 latents, max abs diff / max abs and RMS diff / RMS. Random "
         "fixture weights; a trained model's error may differ. GFLOP/s: the float32 FLOP count over each time."]
        + extra + [f"{p}: {ba.interference_note(r['times'], _quiet_of(r))}" for p, r in results.items()])
    return results, text


def _quiet_of(r: dict) -> bc.Quiet:
    q = bc.Quiet(r["interference"]["threshold_cores"])
    q.spent, q.repeated = r["interference"]["waited_or_repeated_s"], r["interference"]["runs_repeated"]
    q.disturbed_kept = r["interference"]["disturbed_runs_kept"]
    return q


# -- DreamPose ---------------------------------------------------------------------------------------------------------

def section_dreampose(args) -> tuple[dict, str]:
    base = bd.Job(args.dp_height, args.dp_width, args.dp_frames, args.steps, 0, "cpu", "fp32", args.tokens, "sdpa")
    jobs = {}
    for dtype in ("fp32", "bf16"):
        jobs[f"official-style {dtype}"] = replace(base, dtype=dtype)
        jobs[f"pack {dtype}"] = replace(base, dtype=dtype, fpb=1)
    runs = {name: bd.build(j, {}) for name, j in jobs.items()}
    first = {}
    for name, run in runs.items():
        w, _, _, first[name] = bc.timed(run)
        log.info("dreampose warm-up %s: %.2f s", name, w)
    errs = {name: errors(x, first["pack fp32"]) for name, x in first.items() if name != "pack fp32"}
    errs["pack fp32"] = None
    errs["official-style bf16 vs official-style fp32"] = errors(first["official-style bf16"],
                                                                first["official-style fp32"])
    quiet = bc.Quiet(args.quiet_threshold, args.quiet_budget, enabled=args.quiet_budget > 0)
    times = bc.interleaved(runs, args.repeats, warmup=0, label="dreampose", quiet=quiet)
    ref = bc.stats(times["pack fp32"]["wall"])
    rows = []
    for name, t in times.items():
        s = bc.stats([w / base.frames for w in t["wall"]])
        rows.append([name, bc.fmt_time(s), f"{s['median'] * base.frames / ref['median']:.2f}", fmt_err(errs[name])])
    text = bc.table(
        f"DreamPose float32 vs bf16 ({base.describe().replace('fp32 on cpu', 'cpu')}, small fixture UNet, SDPA)",
        ["variant", "s / frame", "time / pack fp32", "latents vs pack fp32 (max / rms)"], rows,
        [f"official-style bf16 vs official-style fp32: {fmt_err(errs['official-style bf16 vs official-style fp32'])}.",
         "pack: dreampose_guider + sample_frames, 1 frame per UNet call (batch 3), torch SDPA; bf16: weights stored "
         "in bf16 and computed in bf16 (ModelComputeDtype). official-style: diffusers UNet cast to the dtype.",
         ba.interference_note(times, quiet)])
    return {"job": bd.asdict(base), "times": times, "errors": errs}, text


# -- torch.compile -----------------------------------------------------------------------------------------------------

class CountingInductor:
    """torch.compile backend: inductor, counting the graphs it is handed (a graph handed over in a later sampling
    run is a recompilation)."""

    def __init__(self):
        self.graphs = 0
        self.__name__ = "counting_inductor"

    def __call__(self, gm, example_inputs):
        from torch._inductor.compile_fx import compile_fx

        self.graphs += 1
        return compile_fx(gm, example_inputs)


def compiled(model, backend):
    from comfy_api.torch_helpers import set_torch_compile_wrapper

    m = model.clone()
    set_torch_compile_wrapper(model=m, backend=backend)  # exactly what the TorchCompileModel node does
    return m


def compile_case(name: str, eager_run, compiled_run, backend: CountingInductor, args) -> dict:
    import torch._dynamo

    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    _, _, _, eager_out = bc.timed(eager_run)
    t0 = time.perf_counter()
    out1 = compiled_run()
    first_s = time.perf_counter() - t0
    graphs_first = backend.graphs
    breaks = sum(torch._dynamo.utils.counters["graph_break"].values())
    break_reasons = list(torch._dynamo.utils.counters["graph_break"])[:5]
    log.info("compile [%s]: first run %.1f s, %d graphs, %d graph breaks", name, first_s, graphs_first, breaks)
    quiet = bc.Quiet(args.quiet_threshold, args.quiet_budget, enabled=args.quiet_budget > 0)
    times = bc.interleaved({"eager": eager_run, "compiled": compiled_run}, args.repeats, warmup=0,
                           label=f"compile [{name}]", quiet=quiet)
    _, _, _, out2 = bc.timed(compiled_run)
    return {"first_run_s": first_s, "graphs_first_run": graphs_first, "graphs_later_runs": backend.graphs - graphs_first,
            "graph_breaks": breaks, "graph_break_reasons": break_reasons, "times": times,
            "error_vs_eager": errors(out1, eager_out), "error_later_run_vs_eager": errors(out2, eager_out),
            "runs_after_first": 2 * args.repeats + 1, "interference": quiet.summary()}


def section_compile(args) -> tuple[dict, str]:
    results = {}
    job = ba.Job("small", args.frames, args.size, args.steps, norm="diffusers")
    inflated = pack_animatediff("small", "fp32")
    # ComfyUI's attention on the CPU without flags (sub-quadratic), and torch SDPA (--use-pytorch-cross-attention,
    # docs/speed-and-memory.md's CPU advice), set on a clone through ComfyUI's per-model attention override
    for case, attention in (("animatediff", "comfy"), ("animatediff-sdpa", "sdpa")):
        if case not in args.compile_models:
            continue
        eager = bd.with_sdpa(inflated) if attention == "sdpa" else inflated
        backend = CountingInductor()
        name = f"AnimateDiff (inflated MODEL), {'SDPA' if attention == 'sdpa' else bd.comfy_attention_name()}"
        results[name] = compile_case(case, ba.comfy_runner(eager, job), ba.comfy_runner(compiled(eager, backend), job),
                                     backend, args)
    if "dreampose" in args.compile_models:
        dp = bd.Job(args.dp_height, args.dp_width, args.dp_frames, args.steps, 1, "cpu", "fp32", args.tokens, "sdpa")
        model = bd.load_pack_model(dp)
        conds, _ = bd.conditioning(dp)
        backend = CountingInductor()
        results["DreamPose (MODEL + dual CFG), SDPA"] = compile_case(
            "dreampose", bd.pack_runner(model, dp, conds), bd.pack_runner(compiled(model, backend), dp, conds),
            backend, args)
    rows = []
    for name, r in results.items():
        e, c = bc.stats(r["times"]["eager"]["wall"]), bc.stats(r["times"]["compiled"]["wall"])
        rows.append([name, f"{r['first_run_s']:.1f} s", r["graphs_first_run"], r["graph_breaks"],
                     f"{r['graphs_later_runs']} in {r['runs_after_first']} runs", bc.fmt_time(e), bc.fmt_time(c),
                     f"{c['median'] / e['median']:.2f}", fmt_err(r["error_vs_eager"])])
    text = bc.table(
        f"torch.compile (ComfyUI's TorchCompileModel, inductor) vs eager, float32 (AnimateDiff: {job.describe()}; "
        f"DreamPose: {args.dp_frames} frames {args.dp_width}x{args.dp_height}, {args.steps} steps)",
        ["model", "1st run (compiling)", "graphs", "graph breaks", "recompiled later", "eager", "compiled",
         "compiled / eager", "latents vs eager (max / rms)"], rows,
        ["Graphs: graphs inductor compiled in the first sampling run (1 + graph breaks: per UNet call the graph "
         "is the same every step); recompiled later: graphs handed to the backend in the timed runs after the first.",
         *(f"{n}: graph breaks at {r['graph_break_reasons']}" for n, r in results.items() if r["graph_breaks"])])
    return results, text


# -- main --------------------------------------------------------------------------------------------------------------

def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog=f"python -m {__spec__.name}", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--section", action="append", choices=SECTIONS)
    ap.add_argument("--profile", action="append", choices=["small", "full"],
                    help="AnimateDiff fixtures (default small and full; quick: small)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 4 frames, 32 px, 2 steps, 1 round")
    ap.add_argument("--repeats", type=int, help="interleaved timed rounds (default 3; quick 1)")
    ap.add_argument("--steps", type=int, help="sampling steps (default 4; quick 2)")
    ap.add_argument("--frames", type=int, help="AnimateDiff frames (default 16; quick 4)")
    ap.add_argument("--size", type=int, help="AnimateDiff pixels per side (default 64; quick 32)")
    ap.add_argument("--dp-frames", type=int, help="DreamPose frames (default 2)")
    ap.add_argument("--dp-height", type=int, help="DreamPose pixels (default 320; quick 160)")
    ap.add_argument("--dp-width", type=int, help="DreamPose pixels (default 256; quick 128)")
    ap.add_argument("--diffusers-full", action="store_true", help="also diffusers float32 at full shapes (memory)")
    ap.add_argument("--mixed", action=argparse.BooleanOptionalAction, default=True,
                    help="AnimateDiff: also bf16 weights computed in float32 and float32 weights computed in bf16 "
                         "(small fixture)")
    ap.add_argument("--mixed-full", action="store_true", help="the mixed variants at full shapes too (memory: more "
                                                              "than 24 GB)")
    ap.add_argument("--compile-models", nargs="+", choices=COMPILE_MODELS, default=COMPILE_MODELS,
                    help="compile section: which models (default all)")
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's own)")
    ap.add_argument("--quiet-threshold", type=float)
    ap.add_argument("--quiet-budget", type=float, help="seconds per section of waiting for a quiet machine (default "
                                                        "300, quick 0)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    q = args.quick
    args.sections = args.section or SECTIONS
    args.profiles = args.profile or (["small"] if q else ["small", "full"])
    args.repeats = args.repeats or (1 if q else 3)
    args.steps = args.steps or (2 if q else 4)
    args.frames = args.frames or (4 if q else 16)
    args.size = args.size or (32 if q else 64)
    args.dp_frames = args.dp_frames or 2
    args.dp_height, args.dp_width = args.dp_height or (160 if q else 320), args.dp_width or (128 if q else 256)
    args.quiet_budget = args.quiet_budget if args.quiet_budget is not None else (0 if q else 300)
    args.json = args.json or bc.REPO / "artifacts" / f"bench_precision{'_quick' if q else ''}.json"
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    bc.setup_logging()
    bc.bootstrap_comfy()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    record = bc.start_record(bc.machine_info(), args)
    texts: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        args.tokens = ""
        if {"dreampose", "compile"} & set(args.sections):
            args.tokens = str(Path(tmp) / "tokens.pt")
            bd.make_tokens(Path(args.tokens))
        sections = {"animatediff": section_animatediff, "dreampose": section_dreampose, "compile": section_compile}
        for name in SECTIONS:
            if name in args.sections:
                bc.run_section(record, texts, name, lambda fn=sections[name]: fn(args))
    bc.finish(record, texts, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
