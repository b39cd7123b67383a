"""Scale-out costs of the distributed DreamPose sampler (not a test): the per-frame time in one process, the data a
run moves (the weights once per worker, then latents, noise and pose windows per task), the two ways of getting the
weights to a worker (through Ray's object store, or loading the same file by path on the worker), and the wall time
of 'DreamPose Sampler (Ray cluster)' with one and with two local workers against the in-process sampler. Prints a
table and writes artifacts/bench_scale_out.md and .json; docs/scale-out.md turns the figures into the speed-up curve
(``curve`` below, also printed).

    python -m comfyui_animapose.workshop.bench.scale_out                       # CPU, tiny trained DreamPose
    python -m comfyui_animapose.workshop.bench.scale_out --profile small       # the 446 MB UNet fixture
    python -m comfyui_animapose.workshop.bench.scale_out --device cuda --profile full --size 512x640 --steps 25
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from . import common as bc

log = bc.log
# The DreamPose paper: about 18 s per frame on an A100 at 100 steps (SD1.x UNet at 640x512, dual CFG).
PAPER_FRAME_S = 18.0
# fp32 SD1.x UNet with DreamPose's 14-channel conv_in: 859.5 M parameters
REAL_UNET_BYTES = 859_535_556 * 4


def unet_path(profile: str) -> Path:
    if profile == "trained":
        from ..fixtures.dreampose_trained import trained_dreampose_folder

        return trained_dreampose_folder() / "unet_epoch_20.pth"
    from ..fixtures.dreampose import dreampose_unet_file

    return dreampose_unet_file(profile, ".pth")


def build(args):
    """(guider, sigmas, latent, model path) of a run: random adapter tokens, synthetic poses."""
    import comfy.samplers
    import torch

    from ...animapose.dreampose.checkpoint import load_unet
    from ...animapose.dreampose.guidance import dreampose_guider
    from ...animapose.dreampose.pipeline import META, PoseSequence, pose_conditioning
    from ...animapose.dreampose.poses import synthetic_uv_sequence

    path = unet_path(args.profile)
    model = load_unet(str(path), dtype=torch.float32)
    g = torch.Generator().manual_seed(0)
    meta = {"value_range": "clean", "photos": 1}
    pos = [[torch.randn(1, 50, 768, generator=g), {META: meta}]]
    neg = [[torch.randn(1, 50, 768, generator=g), {META: dict(meta)}]]
    poses = PoseSequence(synthetic_uv_sequence(args.frames, args.height, args.width, seed=1), "synthetic")
    p, m, n, latent = pose_conditioning(pos, neg, poses, args.width, args.height)
    guider = dreampose_guider(model, p, m, n, 8.0, 3.0)
    sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "normal", args.steps)
    return guider, sigmas, latent, path


def fetch_payload(setup, box):
    """In a worker: seconds to fetch and unpickle the payload (the model travels inside it)."""
    import ray

    from ...animapose.dreampose.ray_worker import prepare

    prepare(setup)
    t = time.perf_counter()
    ray.get(box[0])
    return time.perf_counter() - t


def load_by_path(setup, path: str):
    """In a worker: seconds to load the same UNet file with the pack's loader."""
    from ...animapose.dreampose.ray_worker import prepare

    prepare(setup)
    from ...animapose.dreampose.checkpoint import load_unet

    t = time.perf_counter()
    load_unet(path)
    return time.perf_counter() - t


def curve(frames: int, frame_s: float, weights_bytes: float, task_bytes: float, net_bytes_s: float,
          workers: list[int]) -> list[dict]:
    """Wall time and speed-up of ``frames`` frames on N workers, one frame per task: every worker first receives the
    weights (all from the head node: N transfers, one after another, the worst case; or from its own disk, at
    ``net_bytes_s`` too, in parallel), then samples ceil(frames / N) frames, each with ``task_bytes`` moved."""
    one = frames * frame_s
    rows = []
    for n in workers:
        compute = math.ceil(frames / n) * (frame_s + task_bytes / net_bytes_s)
        head = n * weights_bytes / net_bytes_s
        local = weights_bytes / net_bytes_s
        rows.append({"workers": n, "wall_head_s": head + compute, "wall_disk_s": local + compute,
                     "speedup_head": one / (head + compute), "speedup_disk": one / (local + compute)})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog=f"python -m {__spec__.name}", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    ap.add_argument("--profile", default="trained", choices=["trained", "tiny", "small", "full"])
    ap.add_argument("--size", default="64x80", help="WxH of the frames")
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads here and in every worker")
    ap.add_argument("--out", type=Path, default=bc.REPO / "artifacts" / "bench_scale_out.md")
    args = ap.parse_args(argv)
    args.width, args.height = (int(v) for v in args.size.split("x"))
    bc.setup_logging()
    bc.bootstrap_comfy(cpu=args.device == "cpu")
    import ray
    import torch

    from ...animapose.dreampose.distributed import local_runtime_env, sample_frames_on_cluster, worker_setup
    from ...animapose.dreampose.pipeline import SharedNoise, sample_frames

    torch.set_num_threads(args.threads)
    gpus = torch.cuda.device_count() if args.device != "cpu" else 0
    guider, sigmas, latent, path = build(args)
    import comfy.samplers

    def sampler():
        return comfy.samplers.sampler_object("euler")

    t = time.perf_counter()
    here = sample_frames(guider, sampler(), sigmas, SharedNoise(1), latent, 1)
    t_warm = time.perf_counter() - t
    t = time.perf_counter()
    here = sample_frames(guider, sampler(), sigmas, SharedNoise(1), latent, 1)
    t_here = time.perf_counter() - t
    import comfy.model_management

    comfy.model_management.unload_all_models()
    payload = (guider, sampler(), sigmas, torch.zeros_like(latent["samples"]), latent["samples"], 1)
    payload_bytes = len(ray.cloudpickle.dumps(payload))
    frame_latent = latent["samples"][:1].numel() * 4
    windows = guider.original_conds["positive"][0]["noise_concat"]
    frame_windows = windows[:1].numel() * 4 * 3  # the three conds of dual CFG each carry a window tensor
    record = {"machine": bc.machine_info(), "args": {k: str(v) for k, v in vars(args).items()},
              "unet_file_bytes": path.stat().st_size, "payload_bytes": payload_bytes,
              "per_frame_bytes": {"latent_in": frame_latent, "noise": frame_latent, "latent_out": frame_latent,
                                  "pose_windows": frame_windows},
              "in_process_s": t_here, "in_process_first_s": t_warm, "frame_s": t_here / args.frames}
    for workers in (1, 2):
        ray.init(num_cpus=workers, num_gpus=gpus, include_dashboard=False, runtime_env=local_runtime_env(),
                 log_to_driver=False, configure_logging=False)
        try:
            t = time.perf_counter()
            box = [ray.put(payload)]
            put_s = time.perf_counter() - t
            setup = worker_setup()
            fetch = ray.get(ray.remote(fetch_payload).options(num_cpus=1).remote(setup, box))  # starts a worker
            fetch = ray.get(ray.remote(fetch_payload).options(num_cpus=1).remote(setup, box))
            by_path = ray.get(ray.remote(load_by_path).options(num_cpus=1).remote(setup, str(path)))
            runs = []
            for _ in range(2):  # the first run starts the workers and imports ComfyUI in them
                t = time.perf_counter()
                there = sample_frames_on_cluster(guider, sampler(), sigmas, SharedNoise(1), latent, 1,
                                                 gpus_per_task=(gpus / workers) if gpus else 0.0)
                runs.append(time.perf_counter() - t)
            record[f"workers_{workers}"] = {"put_s": put_s, "fetch_s": fetch, "load_by_path_s": by_path,
                                            "first_run_s": runs[0], "run_s": runs[1],
                                            "identical": torch.equal(there["samples"].cpu(), here["samples"].cpu())}
        finally:
            ray.shutdown()
    per_task = sum(record["per_frame_bytes"].values())
    rows = [[k, f"{v['put_s']:.2f} s", f"{v['fetch_s']:.2f} s", f"{v['load_by_path_s']:.2f} s",
             f"{v['first_run_s']:.1f} s", f"{v['run_s']:.1f} s", v["identical"]] for k, v in record.items() if k.startswith("workers_")]
    record["curve_paper_a100"] = curve(1800, PAPER_FRAME_S, REAL_UNET_BYTES, per_task * (640 * 512) /
                                       (args.width * args.height), 1.25e9, [1, 2, 4, 8, 16, 32, 64])
    text = "\n".join(bc.header_lines(record["machine"]) + [
        f"UNet file {record['unet_file_bytes'] / 1e6:.1f} MB, payload (guider with the model, sampler, sigmas, "
        f"noise, latent) {payload_bytes / 1e6:.1f} MB; per frame: latent {frame_latent} B in, noise {frame_latent} B, "
        f"latent {frame_latent} B out, pose windows {frame_windows} B; in-process {t_here:.2f} s for "
        f"{args.frames} frames ({record['frame_s']:.2f} s per frame), first in-process run {t_warm:.2f} s", ""])
    text += bc.table("The weights to a worker, and the sampler on a local cluster",
                     ["cluster", "ray.put", "worker fetch + unpickle", "worker load by path", "first run",
                      "warm run", "torch.equal to in-process"], rows,
                     [f"{args.profile} UNet, {args.frames} frames {args.size}, {args.steps} Euler steps, one frame "
                      f"per task, {args.threads} torch thread(s) everywhere, device {args.device}."])
    text += "\n" + bc.table("Model: 1800 frames (1 min at 30 fps), 18 s per frame (A100, paper), 3.44 GB fp32 UNet, "
                            "10 Gb/s", ["workers", "wall (weights from head)", "speed-up", "wall (weights on disk)",
                                        "speed-up"],
                            [[r["workers"], f"{r['wall_head_s'] / 3600:.2f} h", f"{r['speedup_head']:.1f}x",
                              f"{r['wall_disk_s'] / 3600:.2f} h", f"{r['speedup_disk']:.1f}x"]
                             for r in record["curve_paper_a100"]], [])
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
