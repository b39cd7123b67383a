"""Shared pieces of the benchmark scripts (``bench_animatediff.py``, and DreamPose's to come).

- the machine header a README quotes beside the numbers;
- interleaved A/B timing with medians and spread, since other jobs may share the machine;
- peak-RSS measurement in a fresh subprocess per point, relative to the RSS once the weights are loaded;
- FLOP counting with torch's ``FlopCounterMode``;
- plain-text tables and the JSON record.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

log = logging.getLogger("animapose.bench")


def setup_logging() -> None:
    """Our progress at INFO on stderr; ComfyUI's per-run chatter ("Requested to load ...") only from WARNING up."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def bootstrap_comfy() -> None:
    from tests.harness import comfy_env

    comfy_env.bootstrap()
    logging.getLogger().setLevel(logging.WARNING)  # bootstrap sets INFO for tests; too chatty for timing loops


# -- machine -----------------------------------------------------------------------------------------------------

def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict:
    import torch

    info = {
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "command": " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv]),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "loadavg_start": os.getloadavg(),
    }
    try:
        import diffusers

        info["diffusers"] = diffusers.__version__
    except ImportError:
        pass
    try:
        import comfyui_version

        info["comfyui"] = comfyui_version.__version__
    except ImportError:
        pass
    return info


def header_lines(info: dict) -> list[str]:
    versions = ", ".join(f"{k} {info[k]}" for k in ("torch", "diffusers", "comfyui") if k in info)
    return [f"Machine: {info['platform']}; {info['cpu']}; {info['cores_usable']} of {info['cores']} cores usable; "
            f"{info['memory_gib']} GiB; {versions}; torch threads {info['torch_threads']}",
            f"Command: {info['command']}",
            f"Started {info['started']}; load average at start {', '.join(f'{x:.2f}' for x in info['loadavg_start'])}"]


# -- timing ------------------------------------------------------------------------------------------------------

def timed(fn: Callable[[], object]) -> tuple[float, float, object]:
    """(wall s, process CPU s, result). CPU time is kept because it moves less than wall time when other jobs take
    cores (OpenMP spin-waiting still inflates it somewhat)."""
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w, time.process_time() - c, out


def interleaved(runs: dict[str, Callable[[], object]], repeats: int, warmup: int = 1, label: str = "") -> dict:
    """Times each callable ``repeats`` times, interleaved in an ABBA pattern so that slow drifts in the machine's
    load hit every variant alike; ``warmup`` untimed rounds first. Returns {name: {"wall": [...], "cpu": [...]}}."""
    names = list(runs)
    for i in range(warmup):
        for name in names:
            w, _, _ = timed(runs[name])
            log.info("%s warm-up %s: %.2f s", label, name, w)
    out = {name: {"wall": [], "cpu": []} for name in names}
    for r in range(repeats):
        for name in (names if r % 2 == 0 else names[::-1]):
            w, c, _ = timed(runs[name])
            out[name]["wall"].append(w)
            out[name]["cpu"].append(c)
            log.info("%s run %d/%d %s: %.2f s wall, %.2f s CPU", label, r + 1, repeats, name, w, c)
    return out


def stats(values: list[float]) -> dict:
    med = statistics.median(values)
    return {"median": med, "min": min(values), "max": max(values), "n": len(values),
            "spread_pct": 100.0 * (max(values) - min(values)) / med if med else 0.0, "values": values}


def paired_ratios(a: list[float], b: list[float]) -> dict:
    """a[i] / b[i] for runs timed next to each other: robust against load that changes between pairs."""
    return stats([x / y for x, y in zip(a, b)])


def fmt_time(s: dict) -> str:
    return f"{s['median']:.2f} s [{s['min']:.2f}-{s['max']:.2f}]" if s["n"] > 1 else f"{s['median']:.2f} s"


# -- memory ------------------------------------------------------------------------------------------------------

def _status_kib(field: str) -> int:
    m = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    return int(m.group(1)) if m else 0


def rss_mib() -> float:
    return _status_kib("VmRSS") / 1024


def hwm_mib() -> float:
    """The process's peak RSS so far (since the last reset). Not ``ru_maxrss``: Linux carries that over from the
    parent across fork and exec, so a worker would report the benchmark driver's peak."""
    return _status_kib("VmHWM") / 1024


def trim_heap() -> None:
    """Returns freed heap to the OS (glibc), so the baseline RSS does not hold memory a later peak would reuse."""
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakRSS:
    """Peak RSS over a block, relative to the RSS at its start.

    Linux resets the high-water mark (VmHWM) to the current RSS when "5" is written to /proc/self/clear_refs;
    where that is not allowed, a thread samples VmRSS every 2 ms (which can miss very short peaks).
    """

    def __enter__(self):
        trim_heap()
        self.baseline = rss_mib()
        self.method = "VmHWM reset"
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            self.method = "VmRSS sampled every 2 ms"
            self._stop = threading.Event()
            self._peak = self.baseline
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self._peak = max(self._peak, rss_mib())
            time.sleep(0.002)

    def __exit__(self, *exc):
        if self.method.startswith("VmHWM"):
            self.peak = hwm_mib()
        else:
            self._stop.set()
            self._thread.join()
            self.peak = max(self._peak, rss_mib())
        self.delta = self.peak - self.baseline
        return False

    def record(self) -> dict:
        return {"baseline_mib": round(self.baseline, 1), "peak_mib": round(self.peak, 1),
                "delta_mib": round(self.delta, 1), "method": self.method}


def run_worker(script: Path, spec: dict, timeout: float = 3600) -> dict:
    """Runs ``script --worker SPEC --worker-out FILE`` in a fresh interpreter and returns the JSON it wrote."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, str(script), "--worker", json.dumps(spec), "--worker-out", str(out)]
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"worker {spec} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
        return json.loads(out.read_text())


def write_worker_result(path: str, result: dict) -> None:
    Path(path).write_text(json.dumps(result))


# -- FLOPs -------------------------------------------------------------------------------------------------------

def flop_counter():
    """A ``FlopCounterMode`` that also counts the CPU kernel of ``scaled_dot_product_attention``, which torch's
    table leaves out (it knows the CUDA flash/efficient/cuDNN kernels only)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

    def sdpa_cpu(query, key, value, *args, out_val=None, **kwargs):
        return sdpa_flop_count(query, key, value)

    mapping = {}
    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is not None:
        mapping[op] = sdpa_cpu
    return FlopCounterMode(display=False, custom_mapping=mapping)


def count_flops(fn: Callable[[], object]) -> int:
    with flop_counter() as counter:
        fn()
    return counter.get_total_flops()


# -- output ------------------------------------------------------------------------------------------------------

def table(title: str, headers: list[str], rows: list[list], notes: list[str] = ()) -> str:
    cells = [[str(c) for c in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r):
        return "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"

    out = [title, line(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in cells[1:]]
    out += [f"  {n}" for n in notes]
    return "\n".join(out)


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str))
    log.info("results written to %s", path)
