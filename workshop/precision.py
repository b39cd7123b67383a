"""Which precision a CPU run of ComfyUI should use, and the graph change that makes ComfyUI compute in it.

On a CPU ComfyUI 0.3.75 computes the UNet in float32 whatever it is stored in: ``--bf16-unet`` stores bf16 weights
but casts them back to float32 in every layer (slower than plain float32). Computing in bf16 takes ComfyUI's own
ModelComputeDtype node on the MODEL. CPUs with bf16 units (AVX512-BF16, AMX) run bf16 matrix products and
convolutions 1.5-2x faster than float32 (workshop/bench/precision.py); elsewhere bf16 is emulated and slower, so
float32 stays the choice there.
"""

from __future__ import annotations

import copy
from pathlib import Path

BF16_FLAGS = ("avx512_bf16", "amx_bf16")
MODES = ("auto", "fp32", "bf16")


def cpu_has_bf16(cpuinfo: str | None = None) -> bool:
    """Whether the CPU has bf16 arithmetic units (x86 flags ``avx512_bf16`` or ``amx_bf16`` in /proc/cpuinfo)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return any(f in flags for f in BF16_FLAGS)
    return False


def resolve(mode: str = "auto", cpuinfo: str | None = None) -> str:
    """"fp32" or "bf16": ``auto`` picks bf16 on CPUs with bf16 units."""
    if mode not in MODES:
        raise ValueError(f"precision must be one of {MODES}, not {mode!r}")
    if mode == "auto":
        return "bf16" if cpu_has_bf16(cpuinfo) else "fp32"
    return mode


def server_args(precision: str) -> tuple[str, ...]:
    """ComfyUI flags for a CPU server: torch SDPA attention (ComfyUI's CPU default, its sub-quadratic kernel, is
    1.4-3.3x slower on DreamPose's sizes, see docs/benchmarks.md) and, for bf16, bf16 UNet storage."""
    return ("--use-pytorch-cross-attention",) + (("--bf16-unet",) if precision == "bf16" else ())


def with_compute_dtype(prompt: dict, object_info: dict, dtype: str = "bf16") -> dict:
    """A copy of an API-format prompt in which every MODEL that comes out of a loader (a node with a MODEL output
    and no MODEL input) passes through ComfyUI's ModelComputeDtype node set to ``dtype`` before anything uses it."""
    out = copy.deepcopy(prompt)
    next_id = max((int(k) for k in out if str(k).isdigit()), default=0) + 1
    rewired: dict[tuple[str, int], str] = {}
    for node_id, node in prompt.items():
        info = object_info.get(node["class_type"], {})
        inputs = {**info.get("input", {}).get("required", {}), **info.get("input", {}).get("optional", {})}
        if any(isinstance(spec, (list, tuple)) and spec and spec[0] == "MODEL" for spec in inputs.values()):
            continue
        for index, kind in enumerate(info.get("output", [])):
            if kind == "MODEL":
                new = str(next_id)
                next_id += 1
                out[new] = {"class_type": "ModelComputeDtype", "inputs": {"model": [node_id, index], "dtype": dtype},
                            "_meta": {"title": f"Compute in {dtype} (CPU)"}}
                rewired[(node_id, index)] = new
    for node_id, node in out.items():
        if node["class_type"] == "ModelComputeDtype" and node_id in rewired.values():
            continue
        for name, value in node.get("inputs", {}).items():
            if isinstance(value, list) and len(value) == 2 and (str(value[0]), value[1]) in rewired:
                node["inputs"][name] = [rewired[(str(value[0]), value[1])], 0]
    return out
