"""The ``controls`` section of workshop/bench/animatediff.py: what each AnimateDiff control costs over plain
AnimateDiff sampling, on the small fixture (SD1.5 block layout, 320 channels, random weights), in one process,
interleaved (ABBA) so that load drifts hit every variant alike.

Variants: per-frame prompt travel; effect as a per-frame list and as a per-frame spatial mask; the attention
``scale`` per frame; two motion keyframes; two chained motion models handing over at 50%; FreeNoise (the KSampler
option; frames > its window); FreeInit with 2 iterations (expected about 2x: it samples twice, plus an FFT).
"""

from __future__ import annotations

import statistics

from . import common as bc


def _variants(profile: str, frames: int):
    import torch

    from ...animapose.motion.controls import freeinit, freenoise
    from ...animapose.motion.controls.multival import MotionKeyframe, Multival
    from ...animapose.motion.controls.prompt_travel import FRAMES_KEY, interpolate
    from ...animapose.motion.sampling.inflate import apply_motion_model, load_motion_model
    from .animatediff import MOTION_FIXTURE, load_comfy_model, motion_path, prompt_embeddings

    plain = load_comfy_model(profile)
    name = f"v2 ({MOTION_FIXTURE[profile][0]})"
    motion = load_motion_model(str(motion_path(profile)), name)
    second = load_motion_model(str(motion_path(profile)), name + " #2")
    base = apply_motion_model(plain, motion).model
    cond, uncond = prompt_embeddings()
    travelled = [[interpolate([cond, uncond], [0, frames - 1], frames, "linear"), {FRAMES_KEY: frames}]]
    ramp = [0.5 + 0.5 * i / (frames - 1) for i in range(frames)]
    mask = torch.linspace(0, 1, 64).view(1, 1, 64).expand(frames, 64, 64).contiguous()
    kf = [MotionKeyframe(0.5, Multival(0.8), Multival(1.1))]
    early = apply_motion_model(plain, motion, end_percent=0.5).model
    return {
        "plain AnimateDiff": (base, None),
        "prompt travel (per-frame cond)": (base, travelled),
        "effect per frame": (apply_motion_model(plain, motion, Multival(1.0, frame_list=ramp)).model, None),
        "effect mask (per frame, spatial)": (apply_motion_model(plain, motion, Multival(1.0, mask=mask)).model, None),
        "scale per frame (attention keys)": (apply_motion_model(plain, motion, 1.0, scale=Multival(
            1.0, frame_list=ramp)).model, None),
        "2 keyframes": (apply_motion_model(plain, motion, keyframes=kf).model, None),
        "2 motion models (0-50%, 50-100%)": (apply_motion_model(early, second, start_percent=0.5).model, None),
        "FreeNoise (KSampler option)": (freenoise.add_to_model(base, frames // 2, 2, "shuffle_context"), None),
        "FreeInit, 2 iterations": (freeinit.add_to_model(base, freeinit.FreeInitOptions(2)), None),
    }


def _runner(model, job, positive):
    import comfy.sample
    import torch

    from .animatediff import prompt_embeddings

    cond, uncond = prompt_embeddings()
    latent = torch.zeros(job.frames, 4, job.size // 8, job.size // 8)
    noise = comfy.sample.prepare_noise(latent, 0)
    pos = positive or [[cond, {}]]

    def run():
        with torch.inference_mode():
            comfy.sample.sample(model, noise, job.steps, job.cfg, "euler", "normal", pos, [[uncond, {}]], latent,
                                disable_pbar=True, seed=0)

    return run


def section_controls(args) -> tuple[dict, str]:
    from .animatediff import Job, interference_note, quiet_from

    job = Job("small", args.frames, args.size, args.steps)
    variants = _variants("small", job.frames)
    runs = {name: _runner(model, job, pos) for name, (model, pos) in variants.items()}
    repeats = args.repeats or 4
    quiet = quiet_from(args)
    times = bc.interleaved(runs, repeats, warmup=args.warmup, label="controls", quiet=quiet)
    base = times["plain AnimateDiff"]
    results, rows = {}, []
    for name, t in times.items():
        s, c = bc.stats(t["wall"]), bc.stats(t["cpu"])
        paired = bc.paired_ratios(t["wall"], base["wall"])
        ratio = s["median"] / statistics.median(base["wall"])
        cpu_ratio = c["median"] / statistics.median(base["cpu"])
        results[name] = {"wall": s, "cpu": c, "ratio": ratio, "cpu_ratio": cpu_ratio,
                         "paired": {k: v for k, v in paired.items() if k != "values"}}
        rows.append([name, bc.fmt_time(s), f"{ratio:.2f}x",
                     f"{paired['median']:.2f}x [{paired['min']:.2f}..{paired['max']:.2f}]", bc.fmt_time(c),
                     f"{cpu_ratio:.2f}x"])
    text = bc.table(
        f"AnimateDiff controls vs plain AnimateDiff sampling (small fixture, {job.describe()}, euler/normal)",
        ["variant", "wall time", "vs plain", "paired ratio [min..max]", "CPU time", "CPU vs plain"], rows,
        [f"Median [min-max] of {repeats} interleaved runs after {args.warmup} warm-up round(s); 'paired': per-pair "
         "ratios of runs timed back to back. CPU time (this process) is the steadier figure on a shared machine. "
         "FreeInit's expected ratio is its iteration count.",
         interference_note(times, quiet)])
    return {"job": {"frames": job.frames, "size": job.size, "steps": job.steps}, "repeats": repeats,
            "variants": results, "interference": quiet.summary()}, text
