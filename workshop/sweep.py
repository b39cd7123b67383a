"""Runs a workflow's API JSON over a sweep on a Ray cluster of headless ComfyUI workers, every output under a run
folder with a manifest; the same command again resumes, skipping what is done.

    python -m comfyui_animapose.workshop.sweep workflows/api/animatediff_txt2vid.json --run runs/seeds \\
        --set 'KSampler.seed=[1,2,3]' --set 'KSampler.cfg=[6,8]' --local-workers 2 --models demo

A sweep axis is ``--set NODE.INPUT=VALUES``: NODE is a node id of the API JSON, a class type (every node of it) or a
node title; VALUES a JSON list, or comma-separated values. Axes multiply. ``--poses DIR,...`` sweeps DensePose pose
folders of this machine (sent to the workers with the job) and ``--frames 0:8,8:16`` cuts them into frame ranges;
both set every 'Load DensePose UV Poses' node. Seeds, prompts, LoRA strengths: ``--set`` on their inputs.

Each job is named by a hash of its final graph and input files, so the same sweep gives the same names. A job's
outputs are written into ``RUN/jobs/<name>.tmp`` and renamed to ``RUN/jobs/<name>`` in one step with its
``job.json`` last: a job folder exists only complete, and a rerun skips exactly those. ``RUN/manifest.json`` indexes
them (rewritten, by rename, after every job). Workers are Ray actors, each driving one headless ComfyUI through
``workshop/server.py``'s ComfyServer; a worker that dies has its job run again on a new one. Details and the cluster
recipe: docs/scale-out.md.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import itertools
import json
import logging
import os
import shutil
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

POSE_NODE = "AnimaPose_LoadDensePoseUV"
MODEL_SUFFIXES = (".ckpt", ".pt", ".pth", ".safetensors", ".bin", ".torchscript", ".sft", ".gguf")


class SweepError(RuntimeError):
    pass


# -- the sweep ----------------------------------------------------------------------------------------------------

def parse_values(text: str) -> list:
    text = text.strip()
    if text.startswith("["):
        values = json.loads(text)
        if not isinstance(values, list) or not values:
            raise SweepError(f"'{text}' is not a non-empty JSON list")
        return values
    out = []
    for item in text.split(","):
        try:
            out.append(json.loads(item))
        except ValueError:
            out.append(item)
    return out


def parse_axis(text: str) -> tuple[str, str, list]:
    """``NODE.INPUT=VALUES`` -> (node, input, values)."""
    target, sep, values = text.partition("=")
    node, dot, name = target.rpartition(".")
    if not sep or not dot or not node or not name:
        raise SweepError(f"--set '{text}': write NODE.INPUT=VALUES, e.g. KSampler.seed=[1,2,3]")
    return node, name, parse_values(values)


def matching_nodes(prompt: dict, node: str) -> list[str]:
    ids = [k for k, v in prompt.items() if k == node or v.get("class_type") == node
           or v.get("_meta", {}).get("title") == node]
    if not ids:
        raise SweepError(f"no node '{node}' in the workflow (give a node id, a class type or a title)")
    return ids


def set_input(prompt: dict, node: str, name: str, value) -> None:
    for k in matching_nodes(prompt, node):
        inputs = prompt[k]["inputs"]
        if name not in inputs:
            raise SweepError(f"node {k} ({prompt[k]['class_type']}) has no input '{name}'; it has "
                             f"{', '.join(sorted(inputs))}")
        if isinstance(inputs[name], list):
            raise SweepError(f"input '{name}' of node {k} is a link to another node, not a value")
        inputs[name] = value


def parse_frames(text: str) -> list[tuple[int, int]]:
    ranges = []
    for part in text.split(","):
        lo, sep, hi = part.partition(":")
        if not sep or not lo.isdigit() or not hi.isdigit() or int(hi) <= int(lo):
            raise SweepError(f"--frames '{part}': write FIRST:END (END excluded), e.g. 0:8,8:16")
        ranges.append((int(lo), int(hi)))
    return ranges


def pose_files(folder: Path, frames: tuple[int, int] | None) -> dict[str, bytes]:
    """The frame files of a pose folder (``frame_N_densepose.npy``, by frame number), cut to ``frames`` and
    renumbered from 0, as the job's input folder holds them."""
    import re

    files = sorted((int(m.group(1)), p) for p in folder.iterdir()
                   if (m := re.fullmatch(r"frame_(\d+)_densepose\.npy", p.name)))
    if not files:
        raise SweepError(f"--poses: {folder} holds no frame_N_densepose.npy files")
    chosen = files[frames[0]:frames[1]] if frames else files
    if frames and len(chosen) != frames[1] - frames[0]:
        raise SweepError(f"--frames {frames[0]}:{frames[1]}: {folder} has only {len(files)} frames")
    return {f"frame_{i}_densepose.npy": p.read_bytes() for i, (_, p) in enumerate(chosen)}


@dataclass
class Job:
    settings: dict  # what this job sets, for people: {"KSampler.seed": 1, "poses": "walk", "frames": "0:8"}
    prompt: dict
    inputs: dict = field(default_factory=dict)  # input folder name -> {file name: bytes}
    name: str = ""

    def __post_init__(self):
        h = hashlib.sha256(json.dumps(self.prompt, sort_keys=True).encode())
        for folder in sorted(self.inputs):
            for fname in sorted(self.inputs[folder]):
                h.update(f"{folder}/{fname}".encode())
                h.update(hashlib.sha256(self.inputs[folder][fname]).digest())
        self.name = h.hexdigest()[:16]


def expand(prompt: dict, axes: list[tuple[str, str, list]], poses: list[Path] | None = None,
           frames: list[tuple[int, int]] | None = None) -> list[Job]:
    """Every combination of the axes (and pose folders x frame ranges) as a job with its own graph."""
    if frames and not poses:
        raise SweepError("--frames cuts pose folders: give them with --poses")
    pose_choices = [(p, r) for p in (poses or []) for r in (frames or [None])] or [None]
    jobs = []
    for combo in itertools.product(*[[(n, i, v) for v in values] for n, i, values in axes]):
        for pose in pose_choices:
            graph, settings, inputs = copy.deepcopy(prompt), {}, {}
            for node, name, value in combo:
                set_input(graph, node, name, value)
                settings[f"{node}.{name}"] = value
            if pose is not None:
                folder, rng = pose
                files = pose_files(folder, rng)
                digest = hashlib.sha256(b"".join(files[k] for k in sorted(files))).hexdigest()[:12]
                input_name = f"sweep_poses_{digest}"
                inputs[input_name] = files
                set_input(graph, POSE_NODE, "folder", input_name)
                settings["poses"] = str(folder)
                if rng:
                    settings["frames"] = f"{rng[0]}:{rng[1]}"
            jobs.append(Job(settings, graph, inputs))
    return jobs


def prefixed(prompt: dict, job: str) -> dict:
    """The graph with every output name under ``sweep/<job>/``, so a worker's outputs of two jobs never mix."""
    graph = copy.deepcopy(prompt)
    for node in graph.values():
        inputs = node.get("inputs", {})
        if isinstance(inputs.get("filename_prefix"), str):
            inputs["filename_prefix"] = f"sweep/{job}/{inputs['filename_prefix'].replace('/', '_')}"
    return graph


# -- the run folder -----------------------------------------------------------------------------------------------

def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class RunFolder:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.jobs = self.root / "jobs"
        self.jobs.mkdir(parents=True, exist_ok=True)
        for stale in self.jobs.glob("*.tmp"):  # a job that was being written when the driver stopped
            shutil.rmtree(stale, ignore_errors=True)

    def done(self, job: Job) -> bool:
        return (self.jobs / job.name / "job.json").is_file()

    def store(self, job: Job, result: dict) -> None:
        """Writes a finished job's files into ``<name>.tmp`` and renames it to ``<name>``: all or nothing."""
        tmp = self.jobs / f"{job.name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        names = []
        for rel, data in result["files"]:
            dest = tmp / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
            names.append(rel)
        record = {"job": job.name, "settings": job.settings, "worker": result["worker"],
                  "seconds": round(result["seconds"], 2), "outputs": names}
        (tmp / "prompt.json").write_text(json.dumps(job.prompt, indent=1, sort_keys=True))
        (tmp / "job.json").write_text(json.dumps(record, indent=1))
        os.replace(tmp, self.jobs / job.name)

    def write_manifest(self, workflow: str, jobs: list[Job], failed: dict[str, str]) -> dict:
        entries = []
        for job in jobs:
            entry = {"job": job.name, "settings": job.settings}
            if self.done(job):
                record = json.loads((self.jobs / job.name / "job.json").read_text())
                entry.update(status="done", worker=record["worker"],
                             outputs=[f"jobs/{job.name}/{o}" for o in record["outputs"]])
            elif job.name in failed:
                entry.update(status="failed", error=failed[job.name])
            else:
                entry.update(status="pending")
            entries.append(entry)
        manifest = {"workflow": workflow, "jobs": entries}
        write_atomic(self.root / "manifest.json", json.dumps(manifest, indent=1).encode())
        return manifest


# -- the workers --------------------------------------------------------------------------------------------------

class ComfyWorker:
    """A Ray actor driving one headless ComfyUI (``workshop/server.py``), started at its first job."""

    def __init__(self, base: str | None, models: str, threads: int | None, gpu: bool = False):
        self.base_arg, self.models, self.threads, self.gpu = base, models, threads, gpu
        self.server = None
        self.tmp = None

    def name(self) -> str:
        return f"{socket.gethostname()} (pid {os.getpid()})"

    def _server(self):
        if self.server is None:
            from .server import ComfyServer, prepare_base_dir

            if self.base_arg:
                base = Path(self.base_arg)
            else:
                self.tmp = tempfile.mkdtemp(prefix="animapose-sweep-")
                files = None
                if self.models == "demo":
                    from .models import TEST_DREAMPOSE, TEST_PROFILE, demo_files

                    files = demo_files(TEST_PROFILE, TEST_DREAMPOSE)
                base = prepare_base_dir(Path(self.tmp), files)
            # on a GPU worker Ray has set CUDA_VISIBLE_DEVICES to this actor's GPUs, which ComfyUI inherits
            self.server = ComfyServer(base, threads=self.threads, cpu=not self.gpu).start()
        return self.server

    def run(self, job_name: str, prompt: dict, inputs: dict) -> dict:
        from .server import ExecutionFailed

        start = time.time()
        server = self._server()
        for folder, files in inputs.items():
            dest = server.base / "input" / folder
            if not dest.exists():
                tmp = server.base / "input" / f".{folder}.tmp"
                shutil.rmtree(tmp, ignore_errors=True)
                tmp.mkdir(parents=True)
                for fname, data in files.items():
                    (tmp / fname).write_bytes(data)
                os.replace(tmp, dest)
        try:
            entry = server.run(prefixed(prompt, job_name))
        except ExecutionFailed as e:
            raise SweepError(self.explain(e, prompt)) from None
        files = []
        out_root = server.base / "output" / "sweep" / job_name
        for path in server.output_files(entry):
            rel = path.relative_to(out_root) if path.is_relative_to(out_root) else Path(path.name)
            files.append((str(rel), path.read_bytes()))
        shutil.rmtree(out_root, ignore_errors=True)
        return {"worker": self.name(), "files": files, "seconds": time.time() - start}

    def explain(self, error, prompt: dict) -> str:
        """ComfyUI's refusal, with a missing model file named as such, and the worker named."""
        for node_id, info in (error.details.get("node_errors") or {}).items():
            for err in info.get("errors", []):
                extra = err.get("extra_info", {})
                value = extra.get("received_value")
                if err.get("type") == "value_not_in_list" and isinstance(value, str) and (
                        value.lower().endswith(MODEL_SUFFIXES) or extra.get("input_name", "").endswith("_name")):
                    return (f"worker {self.name()} is missing the model file '{value}' (input "
                            f"'{extra.get('input_name')}' of node {node_id}, {info.get('class_type')}) in its ComfyUI "
                            f"base {self.server.base}: put the file into its models folder on that machine")
        return f"worker {self.name()}: {error}"

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)


# -- the driver ---------------------------------------------------------------------------------------------------

def connect(address: str | None, local_workers: int):
    import ray

    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=local_workers, include_dashboard=False, log_to_driver=False)
    return ray


def run_sweep(workflow: Path, run_dir: Path, jobs: list[Job], ray, workers: int, base: str | None = None,
              models: str = "none", threads: int | None = 1, retries: int = 2, gpus_per_worker: float = 0.0) -> dict:
    """Runs the jobs not done yet on ``workers`` actors; returns the manifest. A job whose worker dies is queued
    again on a new worker (``retries`` times); a job ComfyUI refuses is recorded as failed with the reason."""
    run = RunFolder(run_dir)
    todo = [j for j in jobs if not run.done(j)]
    failed: dict[str, str] = {}
    log.info("%d jobs: %d done, %d to run", len(jobs), len(jobs) - len(todo), len(todo))
    run.write_manifest(str(workflow), jobs, failed)
    if not todo:
        return run.write_manifest(str(workflow), jobs, failed)
    actor = ray.remote(num_cpus=1, num_gpus=gpus_per_worker)(ComfyWorker)
    gpu = gpus_per_worker > 0

    def new_worker():
        return actor.remote(base, models, threads, gpu)

    pool = [new_worker() for _ in range(min(workers, len(todo)))]
    attempts = {j.name: 0 for j in todo}
    running: dict = {}
    idle = list(pool)
    try:
        while todo or running:
            while todo and idle:
                job, worker = todo.pop(0), idle.pop()
                running[worker.run.remote(job.name, job.prompt, job.inputs)] = (job, worker)
            # short waits: a blocking ray.wait holds off Python's Ctrl-C until the job ends
            ready, _ = ray.wait(list(running), num_returns=1, timeout=0.5)
            if not ready:
                continue
            ref = ready[0]
            job, worker = running.pop(ref)
            try:
                result = ray.get(ref)
            except ray.exceptions.RayActorError as e:  # the worker process died: run the job on a new one
                attempts[job.name] += 1
                if attempts[job.name] > retries:
                    failed[job.name] = f"its worker died {attempts[job.name]} times ({e})"
                else:
                    log.warning("a worker died running job %s; running it again on a new worker", job.name)
                    todo.insert(0, job)
                idle.append(new_worker())
                continue
            except ray.exceptions.RayTaskError as e:
                cause = e.cause if getattr(e, "cause", None) is not None else e
                failed[job.name] = str(cause)
                log.error("job %s failed: %s", job.name, cause)
            else:
                run.store(job, result)
                log.info("job %s done on %s (%s)", job.name, result["worker"], job.settings)
            idle.append(worker)
            run.write_manifest(str(workflow), jobs, failed)
    finally:
        for worker in set(pool) | set(idle) | {w for _, w in running.values()}:
            try:
                ray.get(worker.stop.remote(), timeout=30)
            except Exception:  # a dead worker has nothing left to stop
                pass
            ray.kill(worker)
    return run.write_manifest(str(workflow), jobs, failed)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m comfyui_animapose.workshop.sweep", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workflow", type=Path, help="an API-format workflow (workflows/api/*.json, or ComfyUI's "
                                                "'Export (API)')")
    ap.add_argument("--run", type=Path, required=True, help="the run folder (created; rerun to resume)")
    ap.add_argument("--set", action="append", default=[], metavar="NODE.INPUT=VALUES", help="a sweep axis")
    ap.add_argument("--poses", help="pose folders of this machine, comma-separated")
    ap.add_argument("--frames", help="frame ranges of the pose folders, e.g. 0:8,8:16")
    ap.add_argument("--address", help="a Ray cluster (host:6379, ray://host:10001, auto); none: a local cluster")
    ap.add_argument("--local-workers", type=int, default=2, help="CPUs of the local cluster (no --address)")
    ap.add_argument("--workers", type=int, default=None, help="ComfyUI workers (default: the cluster's CPUs)")
    ap.add_argument("--base", help="each worker's ComfyUI base directory (models/, input/, the pack in "
                                   "custom_nodes/); default: a fresh one per worker")
    ap.add_argument("--models", choices=["none", "demo"], default="none",
                    help="'demo': put the demo models into each fresh base directory")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of each worker's ComfyUI")
    ap.add_argument("--gpus-per-worker", type=float, default=0.0,
                    help="GPUs each worker's ComfyUI gets (1 on GPU machines); 0: ComfyUI on the CPU")
    ap.add_argument("--cpu-sized", action="store_true", help="shrink the workflow to CPU test sizes first")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    prompt = json.loads(args.workflow.read_text())
    if args.cpu_sized:
        from .workflows import shrink_api_prompt

        prompt = shrink_api_prompt(prompt, seed=0)
    try:
        jobs = expand(prompt, [parse_axis(a) for a in args.set],
                      [Path(p) for p in args.poses.split(",")] if args.poses else None,
                      parse_frames(args.frames) if args.frames else None)
    except SweepError as e:
        print(f"sweep: {e}", file=sys.stderr)
        return 2
    ray = connect(args.address, args.local_workers)
    try:
        workers = args.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        manifest = run_sweep(args.workflow, args.run, jobs, ray, workers, args.base, args.models, args.threads,
                             gpus_per_worker=args.gpus_per_worker)
    finally:
        ray.shutdown()
    counts = {s: sum(1 for j in manifest["jobs"] if j["status"] == s) for s in ("done", "failed", "pending")}
    for j in manifest["jobs"]:
        print(f"{j['status']:8} {j['job']}  {json.dumps(j['settings'])}  {j.get('error', '')}")
    print(f"{counts['done']} done, {counts['failed']} failed, {counts['pending']} pending: {args.run / 'manifest.json'}")
    return 0 if counts["done"] == len(jobs) else 1


if __name__ == "__main__":
    sys.exit(main())
