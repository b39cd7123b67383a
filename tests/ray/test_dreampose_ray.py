"""'DreamPose Sampler (Ray cluster)' on a local cluster of two CPU workers, with the tiny trained DreamPose: the same
latents as the in-process 'DreamPose Sampler', byte for byte (torch.equal), for shared and per-frame noise; the
progress bar counts frames done on all workers; a worker process killed mid-batch has its batch retried elsewhere
and the result is still identical; Cancel cancels the remote tasks; no Ray is an error naming node, input and fix."""

from __future__ import annotations

import os
import signal
import sys
import threading

import comfy.model_management
import comfy.samplers
import comfy.utils
import pytest
import torch

from comfyui_animapose.animapose.dreampose.distributed import sample_frames_on_cluster
from comfyui_animapose.animapose.dreampose.guidance import dreampose_guider
from comfyui_animapose.animapose.dreampose.pipeline import (
    META,
    PoseSequence,
    SharedNoise,
    pose_conditioning,
    sample_frames,
)
from comfyui_animapose.animapose.dreampose.poses import synthetic_uv_sequence
from comfyui_animapose.animapose.errors import AnimaPoseError
from comfyui_animapose.workshop import ray_faults

FRAMES, PER_BATCH, STEPS = 5, 2, 3


@pytest.fixture(scope="module")
def run():
    """(guider, sigmas, latent) of a 5-frame clip of the trained tiny DreamPose at 64x80."""
    from comfyui_animapose.animapose.dreampose.checkpoint import load_unet
    from comfyui_animapose.workshop.fixtures.dreampose_trained import trained_dreampose_folder

    model = load_unet(str(trained_dreampose_folder() / "unet_epoch_20.pth"), dtype=torch.float32)
    g = torch.Generator().manual_seed(5)
    meta = {"value_range": "clean", "photos": 1}
    # adapter tokens of a photo; these tests are about where the frames are sampled, not what the photo shows
    positive = [[torch.randn(1, 50, 768, generator=g), {META: meta}]]
    negative = [[torch.randn(1, 50, 768, generator=g), {META: dict(meta)}]]
    poses = PoseSequence(synthetic_uv_sequence(FRAMES, 80, 64, seed=1), "synthetic")
    pos, mid, neg, latent = pose_conditioning(positive, negative, poses, 64, 80)
    guider = dreampose_guider(model, pos, mid, neg, 3.0, 2.0)
    sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "normal", STEPS)
    return guider, sigmas, latent


def _euler():
    return comfy.samplers.sampler_object("euler")


@pytest.mark.parametrize("noise", ["shared", "per-frame"])
def test_cluster_frames_are_byte_identical(ray_cluster, run, noise):
    from comfy_extras.nodes_custom_sampler import Noise_RandomNoise

    guider, sigmas, latent = run
    make = (lambda: SharedNoise(7)) if noise == "shared" else (lambda: Noise_RandomNoise(7))
    here = sample_frames(guider, _euler(), sigmas, make(), latent, PER_BATCH)
    there = sample_frames_on_cluster(guider, _euler(), sigmas, make(), latent, PER_BATCH)
    assert there["samples"].shape == (FRAMES, 4, 10, 8)
    assert torch.equal(there["samples"], here["samples"])
    assert there[META] == latent[META]
    # the frames really differ (a wrong frame order would show)
    assert not torch.equal(here["samples"][0], here["samples"][1])


def test_node_runs_on_the_cluster_and_counts_frames(ray_cluster, run, monkeypatch):
    from comfyui_animapose.nodes.dreampose_ray import DreamPoseSamplerRay

    guider, sigmas, latent = run
    seen = []
    monkeypatch.setattr(comfy.utils, "PROGRESS_BAR_HOOK", lambda value, total, preview, node_id=None:
                        seen.append((value, total)))
    out = DreamPoseSamplerRay.execute(noise=SharedNoise(3), guider=guider, sampler=_euler(), sigmas=sigmas,
                                      latent=latent, frames_per_batch=PER_BATCH).result[0]
    here = sample_frames(guider, _euler(), sigmas, SharedNoise(3), latent, PER_BATCH)
    assert torch.equal(out["samples"], here["samples"])
    cluster = [v for v in seen if v[1] == FRAMES]
    # one update per finished batch, counting its frames: 2 + 2 + 1 in any order of completion
    assert [t for _, t in cluster] == [FRAMES] * 3 and cluster[-1][0] == FRAMES
    assert sorted(b - a for a, b in zip([0] + [v for v, _ in cluster], [v for v, _ in cluster])) == [1, 2, 2]


def test_worker_killed_mid_batch_is_retried_and_identical(ray_cluster, run, tmp_path):
    guider, sigmas, latent = run
    here = sample_frames(guider, _euler(), sigmas, SharedNoise(9), latent, PER_BATCH)
    result = {}

    def drive():
        try:
            result["out"] = sample_frames_on_cluster(guider, ray_faults.stalling_sampler(tmp_path), sigmas,
                                                     SharedNoise(9), latent, PER_BATCH)
        except BaseException as e:  # reported by the assertion below
            result["error"] = e

    driver = threading.Thread(target=drive)
    driver.start()
    victim = ray_faults.stalled_pids(tmp_path)[0]
    os.kill(victim, signal.SIGKILL)
    driver.join(timeout=300)
    assert not driver.is_alive() and "error" not in result, result.get("error")
    assert ray_faults.process_gone(victim)
    assert torch.equal(result["out"]["samples"], here["samples"])
    # every batch finished in a process other than the one killed
    assert victim not in ray_faults.finished_pids(tmp_path) and ray_faults.finished_pids(tmp_path)


def test_cancel_cancels_the_remote_tasks(ray_cluster, run, tmp_path):
    guider, sigmas, latent = run

    def cancel_when_both_stall():
        ray_faults.stalled_pids(tmp_path, count=2)
        comfy.model_management.interrupt_current_processing(True)

    watcher = threading.Thread(target=cancel_when_both_stall)
    watcher.start()
    try:
        with pytest.raises(comfy.model_management.InterruptProcessingException):
            sample_frames_on_cluster(guider, ray_faults.stalling_sampler(tmp_path, every_call=True), sigmas,
                                     SharedNoise(1), latent, PER_BATCH)
    finally:
        watcher.join(timeout=60)
        comfy.model_management.interrupt_current_processing(False)
    # the stalled tasks' processes are ended, not left sampling for nobody
    for pid in ray_faults.stalled_pids(tmp_path, count=2):
        assert ray_faults.process_gone(pid), f"worker {pid} still running after Cancel"
    assert not ray_faults.finished_pids(tmp_path)
    # and the cluster samples the next run as before
    again = sample_frames_on_cluster(guider, _euler(), sigmas, SharedNoise(1), latent, PER_BATCH)
    assert torch.equal(again["samples"], sample_frames(guider, _euler(), sigmas, SharedNoise(1), latent,
                                                       PER_BATCH)["samples"])


def test_without_ray_the_error_names_node_input_and_fix(run, monkeypatch):
    from comfyui_animapose.nodes.dreampose_ray import DreamPoseSamplerRay

    guider, sigmas, latent = run
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as when it is not installed
    with pytest.raises(AnimaPoseError) as err:
        DreamPoseSamplerRay.execute(noise=SharedNoise(3), guider=guider, sampler=_euler(), sigmas=sigmas,
                                    latent=latent, frames_per_batch=PER_BATCH)
    text = str(err.value)
    assert "DreamPose Sampler (Ray cluster)" in text and "address" in text and "pip install ray" in text


def test_the_connection_is_kept_and_remade_for_another_cluster(monkeypatch):
    """No cluster needed: a stand-in for the ray module records what the node asks of it."""
    import types

    from comfyui_animapose.animapose.dreampose import distributed

    calls = []
    state = {"up": False}
    fake = types.SimpleNamespace(
        is_initialized=lambda: state["up"],
        init=lambda **kw: (calls.append(("init", kw.get("address"), kw.get("num_cpus"))), state.update(up=True)),
        shutdown=lambda: (calls.append(("shutdown",)), state.update(up=False)))
    monkeypatch.setitem(sys.modules, "ray", fake)
    monkeypatch.setattr(distributed, "_connection", None)
    distributed.connect("", True, 2)
    distributed.connect("", True, 2)  # the same cluster: kept
    distributed.connect("head:6379", True, 2)  # another one: remade
    assert calls == [("init", None, 2), ("shutdown",), ("init", "head:6379", None)]
    state["up"] = False
    monkeypatch.setattr(distributed, "_connection", None)
    with pytest.raises(AnimaPoseError, match="starting a local cluster is off"):
        distributed.connect("", False, 2)
    # a connection this process made otherwise (a script, the test cluster) is used as it is
    state["up"] = True
    calls.clear()
    distributed.connect("elsewhere:6379", True, 2)
    assert calls == []
