"""The cluster node inside a running ComfyUI (the pack imported under the module name ComfyUI gives it, which the
workers must reproduce): the shipped pose-to-video graph with 'DreamPose Sampler' and with 'DreamPose Sampler (Ray
cluster)' on the test cluster saves the same latents, byte for byte."""

from __future__ import annotations

import copy
import json

import torch

from comfyui_animapose.workshop.models import TEST_DREAMPOSE, TEST_PROFILE, demo_files
from comfyui_animapose.workshop.server import TEST_SERVER_THREADS, ComfyServer, prepare_base_dir
from comfyui_animapose.workshop.workflows import API_WORKFLOWS, shrink_api_prompt

AFTER_SAMPLING = {"AnimaPose_DreamPoseDecode", "CreateVideo", "SaveVideo", "SaveAnimatedWEBP"}


def _latent(base, prefix: str) -> torch.Tensor:
    from safetensors.torch import load_file

    (path,) = (base / "output" / "latents").glob(f"{prefix}_*.latent")
    return load_file(str(path))["latent_tensor"]


def test_the_node_in_comfyui_saves_the_same_latents(ray_cluster, tmp_path):
    prompt = shrink_api_prompt(json.loads((API_WORKFLOWS / "dreampose_pose_to_video.json").read_text()), seed=0)
    graph = {k: v for k, v in prompt.items() if v["class_type"] not in AFTER_SAMPLING}
    sampler = next(k for k, v in graph.items() if v["class_type"] == "AnimaPose_DreamPoseSampler")
    graph["90"] = {"class_type": "SaveLatent", "inputs": {"samples": [sampler, 0], "filename_prefix": "latents/here"}}
    on_cluster = copy.deepcopy(graph)
    on_cluster[sampler]["class_type"] = "AnimaPose_DreamPoseSamplerRay"
    on_cluster[sampler]["inputs"]["address"] = ray_cluster.get_runtime_context().gcs_address
    on_cluster["90"]["inputs"]["filename_prefix"] = "latents/there"
    base = prepare_base_dir(tmp_path / "base", demo_files(TEST_PROFILE, TEST_DREAMPOSE))
    server = ComfyServer(base, threads=TEST_SERVER_THREADS).start()
    try:
        server.run(graph)
        server.run(on_cluster)
        here, there = _latent(base, "here"), _latent(base, "there")
    finally:
        server.stop()
    assert here.shape[0] == 8 and torch.equal(here, there)
