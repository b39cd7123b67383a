"""The demo's precision choice: CPU capability from /proc/cpuinfo, and the ModelComputeDtype insertion."""

from __future__ import annotations

import json

from comfyui_animapose.workshop import precision
from comfyui_animapose.workshop.workflows import api_workflow

AMD_ZEN4 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n"
OLD_XEON = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni\n"
SAPPHIRE = "processor\t: 0\nflags\t\t: fpu avx512f amx_bf16 amx_tile\n"

INFO = {
    "CheckpointLoaderSimple": {"input": {"required": {"ckpt_name": [["a"]]}}, "output": ["MODEL", "CLIP", "VAE"]},
    "AnimaPose_ApplyMotionModel": {"input": {"required": {"model": ["MODEL", {}], "motion_model": ["MOTION_MODEL"]}},
                                   "output": ["MODEL"]},
    "KSampler": {"input": {"required": {"model": ["MODEL", {}], "seed": ["INT", {}]}}, "output": ["LATENT"]},
}


def test_cpu_capability():
    assert precision.cpu_has_bf16(AMD_ZEN4) and precision.cpu_has_bf16(SAPPHIRE)
    assert not precision.cpu_has_bf16(OLD_XEON) and not precision.cpu_has_bf16("")
    assert precision.resolve("auto", AMD_ZEN4) == "bf16"
    assert precision.resolve("auto", OLD_XEON) == "fp32"
    assert precision.resolve("fp32", AMD_ZEN4) == "fp32"
    assert "--bf16-unet" in precision.server_args("bf16") and "--bf16-unet" not in precision.server_args("fp32")


def test_compute_dtype_after_each_loader():
    prompt = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "x"}},
              "2": {"class_type": "AnimaPose_ApplyMotionModel", "inputs": {"model": ["1", 0]}},
              "3": {"class_type": "KSampler", "inputs": {"model": ["2", 0], "seed": 1}},
              "4": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "seed": 2}}}
    out = precision.with_compute_dtype(prompt, INFO)
    assert prompt["2"]["inputs"]["model"] == ["1", 0]  # the input is not changed
    added = [k for k, v in out.items() if v["class_type"] == "ModelComputeDtype"]
    assert added == ["5"]
    assert out["5"]["inputs"] == {"model": ["1", 0], "dtype": "bf16"}
    assert out["2"]["inputs"]["model"] == ["5", 0] and out["4"]["inputs"]["model"] == ["5", 0]
    assert out["3"]["inputs"]["model"] == ["2", 0]  # downstream of the loader, already in bf16


def test_shipped_workflows_get_one_node_per_loader():
    info = {**INFO, "AnimaPose_LoadDreamPose": {"input": {"required": {}}, "output": ["MODEL", "VAE", "DREAMPOSE_ADAPTER"]}}
    prompt = api_workflow("animatediff_txt2vid")
    out = precision.with_compute_dtype(prompt, info)
    loaders = [k for k, v in prompt.items() if v["class_type"] == "CheckpointLoaderSimple"]
    assert len(out) == len(prompt) + len(loaders)
    json.dumps(out)
