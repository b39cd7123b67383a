"""The sweep command (``workshop/sweep.py``): the jobs a sweep makes; a run of headless ComfyUI workers on the local
Ray cluster interrupted by Ctrl-C and rerun, which resumes from what is written; a worker missing a model file, named
with the file in the manifest, with nothing written for its job; a job folder that is all or nothing."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from comfyui_animapose.workshop.sweep import (
    Job,
    RunFolder,
    SweepError,
    expand,
    parse_axis,
    parse_frames,
    run_sweep,
)
from comfyui_animapose.workshop.workflows import API_WORKFLOWS, shrink_api_prompt

TXT2VID = API_WORKFLOWS / "animatediff_txt2vid.json"
POSES_TO_VIDEO = API_WORKFLOWS / "dreampose_pose_to_video.json"


def _prompt(path=TXT2VID):
    return shrink_api_prompt(json.loads(path.read_text()), seed=0)


def test_axes_multiply_and_names_are_stable(tmp_path):
    prompt = _prompt()
    axes = [parse_axis("KSampler.seed=[1,2,3]"), parse_axis("KSampler.cfg=6.5,8")]
    jobs = expand(prompt, axes)
    assert len(jobs) == 6 and len({j.name for j in jobs}) == 6
    assert [j.name for j in expand(prompt, axes)] == [j.name for j in jobs]
    first = jobs[0]
    sampler = next(n for n in first.prompt.values() if n["class_type"] == "KSampler")
    assert (sampler["inputs"]["seed"], sampler["inputs"]["cfg"]) == (1, 6.5)
    assert first.settings == {"KSampler.seed": 1, "KSampler.cfg": 6.5}
    # the workflow given is not changed
    assert next(n for n in prompt.values() if n["class_type"] == "KSampler")["inputs"]["seed"] != 1
    with pytest.raises(SweepError, match="no node 'Nope'"):
        expand(prompt, [parse_axis("Nope.seed=[1]")])
    with pytest.raises(SweepError, match="has no input 'sed'"):
        expand(prompt, [parse_axis("KSampler.sed=[1]")])
    with pytest.raises(SweepError, match="NODE.INPUT=VALUES"):
        parse_axis("seed=1")


def test_pose_folders_are_cut_into_frame_ranges(tmp_path):
    import numpy as np

    folder = tmp_path / "walk"
    folder.mkdir()
    for k in range(6):
        np.save(folder / f"frame_{k}_densepose.npy", np.full((2, 4, 4), k / 10.0))
    jobs = expand(_prompt(POSES_TO_VIDEO), [], [folder], parse_frames("0:4,4:6"))
    assert [j.settings["frames"] for j in jobs] == ["0:4", "4:6"]
    (name, files), = jobs[1].inputs.items()
    assert sorted(files) == ["frame_0_densepose.npy", "frame_1_densepose.npy"]
    # renumbered from 0: the second range's first file is frame 4
    assert files["frame_0_densepose.npy"] == (folder / "frame_4_densepose.npy").read_bytes()
    loader = next(n for n in jobs[1].prompt.values() if n["class_type"] == "AnimaPose_LoadDensePoseUV")
    assert loader["inputs"]["folder"] == name
    with pytest.raises(SweepError, match="has only 6 frames"):
        expand(_prompt(POSES_TO_VIDEO), [], [folder], parse_frames("4:8"))


def test_a_job_folder_is_all_or_nothing(tmp_path):
    run = RunFolder(tmp_path)
    job = Job({"KSampler.seed": 1}, _prompt())

    class Broken(list):
        def __iter__(self):
            yield ("a.png", b"1")
            raise OSError("disk full")

    with pytest.raises(OSError):
        run.store(job, {"files": Broken(), "worker": "w", "seconds": 1.0})
    assert not run.done(job) and not (tmp_path / "jobs" / job.name).exists()
    RunFolder(tmp_path)  # the next run clears what was being written
    assert not list((tmp_path / "jobs").iterdir())
    run.store(job, {"files": [("x/a.png", b"1")], "worker": "w", "seconds": 1.0})
    assert run.done(job) and (tmp_path / "jobs" / job.name / "x" / "a.png").read_bytes() == b"1"


def _job_dirs(run):
    jobs = run / "jobs"
    return {p.name: (p / "job.json").stat().st_mtime_ns for p in jobs.iterdir()
            if (p / "job.json").is_file()} if jobs.exists() else {}


def test_interrupted_driver_resumes_from_the_run_folder(ray_cluster, tmp_path):
    # one worker: each run starts one ComfyUI (the costly part on two shared cores), and the jobs run in turn
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "comfyui_animapose.workshop.sweep", str(TXT2VID), "--run", str(run),
           "--set", "KSampler.seed=[1,2,3]", "--cpu-sized", "--models", "demo", "--workers", "1",
           "--address", ray_cluster.get_runtime_context().gcs_address]
    # Ctrl-C as a terminal sends it: a suite started in the background inherits SIGINT ignored, and Python then never
    # turns it into KeyboardInterrupt
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 400
    while not _job_dirs(run) and time.time() < deadline and first.poll() is None:
        time.sleep(0.2)
    first.send_signal(signal.SIGINT)  # Ctrl-C
    out, _ = first.communicate(timeout=120)
    done = _job_dirs(run)
    assert 1 <= len(done) < 3, out[-3000:]
    second = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    assert second.returncode == 0, second.stdout[-3000:]
    assert f"3 jobs: {len(done)} done, {3 - len(done)} to run" in second.stdout
    manifest = json.loads((run / "manifest.json").read_text())
    assert [j["status"] for j in manifest["jobs"]] == ["done"] * 3
    assert sorted(j["settings"]["KSampler.seed"] for j in manifest["jobs"]) == [1, 2, 3]
    after = _job_dirs(run)
    # what was done before the interruption was kept as it was, not run again
    assert {k: after[k] for k in done} == done
    for j in manifest["jobs"]:
        assert j["outputs"] and all((run / o).stat().st_size > 0 for o in j["outputs"])
    assert not list((run / "jobs").glob("*.tmp"))


def test_worker_missing_a_model_file_is_named_and_nothing_is_written(ray_cluster, tmp_path):
    from comfyui_animapose.workshop.models import CHECKPOINT_NAME, TEST_DREAMPOSE, TEST_PROFILE, demo_files
    from comfyui_animapose.workshop.server import prepare_base_dir

    files = demo_files(TEST_PROFILE, TEST_DREAMPOSE)
    files["models/checkpoints"] = []  # this worker's ComfyUI has no SD1.5 checkpoint
    base = prepare_base_dir(tmp_path / "base", files)
    jobs = expand(_prompt(), [parse_axis("KSampler.seed=[5]")])
    manifest = run_sweep(TXT2VID, tmp_path / "run", jobs, ray_cluster, workers=1, base=str(base))
    (entry,) = manifest["jobs"]
    assert entry["status"] == "failed"
    assert f"is missing the model file '{CHECKPOINT_NAME}'" in entry["error"] and "worker " in entry["error"]
    assert "(pid " in entry["error"] and "ckpt_name" in entry["error"]
    assert not list((tmp_path / "run" / "jobs").iterdir())


def _sweep_server_parents() -> set[int]:
    """The processes (sweep workers) whose ComfyUI runs in a fresh sweep base directory."""
    from pathlib import Path

    parents = set()
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
            if b"main.py" in cmd and any(b"animapose-sweep-" in c for c in cmd):
                parents.add(int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1]))
        except (OSError, ValueError, IndexError):
            continue
    return parents


def test_a_killed_worker_has_its_job_run_on_a_new_one(ray_cluster, tmp_path):
    import os
    import threading

    from comfyui_animapose.workshop import ray_faults

    jobs = expand(_prompt(), [parse_axis("KSampler.seed=[7]")])
    killed = []

    def kill_the_first_worker():
        deadline = time.time() + 300
        while time.time() < deadline and not killed:
            for pid in _sweep_server_parents():
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            time.sleep(0.2)

    killer = threading.Thread(target=kill_the_first_worker)
    killer.start()
    manifest = run_sweep(TXT2VID, tmp_path / "run", jobs, ray_cluster, workers=1, models="demo")
    killer.join(timeout=10)
    assert killed and ray_faults.process_gone(killed[0])
    (entry,) = manifest["jobs"]
    assert entry["status"] == "done", entry
    assert f"(pid {killed[0]})" not in entry["worker"]
    # the killed worker's ComfyUI ended with it
    assert not _sweep_server_parents()
