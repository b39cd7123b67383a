"""Shared pieces of the benchmark scripts (``bench_animatediff.py``, ``bench_dreampose.py``).

- the machine header docs/benchmarks.md quotes beside the numbers;
- interleaved A/B timing with medians and spread, since other jobs may share the machine;
- peak-RSS (and CUDA) memory in a fresh subprocess per point, relative to the memory once the weights are loaded;
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

from ..env import REPO  # noqa: F401  (re-exported: the benchmarks write under REPO / artifacts)

log = logging.getLogger("animapose.bench")


def setup_logging() -> None:
    """Our progress at INFO on stderr; ComfyUI's per-run chatter ("Requested to load ...") only from WARNING up."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def bootstrap_comfy(cpu: bool = True) -> None:
    """ComfyUI importable in-process. ``cpu=False`` leaves the device to ComfyUI (CUDA when there is one): the
    test harness always forces ``--cpu``, so the same path setup is done here without that flag."""
    from .. import comfy_env

    comfy_env.bootstrap(cpu=cpu)
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
#
# On a shared 2-core machine another torch process does not just take its share: both processes' OpenMP threads
# spin at barriers waiting for a descheduled sibling, and a 3 s run was seen taking 35 s (with 35 s of CPU time,
# so CPU time is no refuge either). So every timed run also measures how much CPU other processes used meanwhile
# (/proc/stat minus our own CPU time); before a run the machine is given a moment to go quiet, and a run that
# overlapped with other work is repeated, within a per-section budget of waiting.


def _machine_busy_s() -> float:
    """CPU seconds used on all cores since boot (user+nice+system+irq+softirq+steal)."""
    vals = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(vals) - vals[3] - vals[4]) / os.sysconf("SC_CLK_TCK")


class Interference:
    """Others' CPU use (in cores, averaged) over a block: all cores' busy time minus this process's CPU time."""

    def __enter__(self):
        self._b, self._c, self._w = _machine_busy_s(), time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self._w
        self.cpu = time.process_time() - self._c
        self.foreign = max(0.0, (_machine_busy_s() - self._b) - self.cpu) / max(self.wall, 1e-3)
        return False


def others_busy(window: float = 2.0) -> float:
    """Other processes' CPU use right now, in cores."""
    with Interference() as i:
        time.sleep(window)
    return i.foreign


class Quiet:
    """Waits for other processes to go (nearly) idle, and decides whether a run must be repeated.

    ``threshold``: others' average CPU use, in cores, above which a run counts as disturbed; ``budget``: seconds of
    waiting (and repeated runs) allowed in all, after which runs are taken as they come; ``retries`` per run.
    """

    def __init__(self, threshold: float = 0.25, budget: float = 600, retries: int = 2, enabled: bool = True):
        self.threshold, self.budget, self.retries, self.enabled = threshold, budget, retries, enabled
        self.spent = 0.0
        self.disturbed_kept = 0
        self.repeated = 0

    def wait(self, window: float = 1.0, patience: float = 60.0) -> None:
        t0 = time.perf_counter()
        while self.enabled and self.spent < self.budget:
            with Interference() as i:
                time.sleep(window)
            if i.foreign <= self.threshold or time.perf_counter() - t0 > patience:
                return
            self.spent += i.wall  # only the waiting that the machine's load caused counts against the budget

    def summary(self) -> dict:
        return {"threshold_cores": self.threshold, "waited_or_repeated_s": round(self.spent, 1),
                "runs_repeated": self.repeated, "disturbed_runs_kept": self.disturbed_kept, "enabled": self.enabled}


def timed(fn: Callable[[], object], quiet: Quiet | None = None) -> tuple[float, float, float, object]:
    """(wall s, process CPU s, others' average CPU use in cores, result); with ``quiet``, waits for a quiet machine
    first and repeats a disturbed run while its budget lasts."""
    for attempt in range((quiet.retries if quiet and quiet.enabled else 0) + 1):
        if quiet:
            quiet.wait()
        with Interference() as i:
            out = fn()
        if quiet is None or i.foreign <= quiet.threshold:
            break
        if attempt == quiet.retries or not quiet.enabled or quiet.spent >= quiet.budget:
            quiet.disturbed_kept += 1
            break
        quiet.repeated += 1
        quiet.spent += i.wall
        log.info("  others used %.2f cores during that run (%.2f s); repeating it", i.foreign, i.wall)
    return i.wall, i.cpu, i.foreign, out


def interleaved(runs: dict[str, Callable[[], object]], repeats: int, warmup: int = 1, label: str = "",
                quiet: Quiet | None = None) -> dict:
    """Times each callable ``repeats`` times, interleaved in an ABBA pattern so that slow drifts in the machine's
    load hit every variant alike; ``warmup`` untimed rounds first. A callable may return a number to record
    beside its time (under "value"). Returns {name: {"wall": [...], "cpu": [...], "foreign": [...]}}."""
    names = list(runs)
    for _ in range(warmup):
        for name in names:
            w, _, _, _ = timed(runs[name])
            log.info("%s warm-up %s: %.2f s", label, name, w)
    out = {name: {"wall": [], "cpu": [], "foreign": []} for name in names}
    for r in range(repeats):
        for name in (names if r % 2 == 0 else names[::-1]):
            w, c, f, res = timed(runs[name], quiet)
            for key, v in (("wall", w), ("cpu", c), ("foreign", f)):
                out[name][key].append(v)
            if isinstance(res, (int, float)):
                out[name].setdefault("value", []).append(res)
            log.info("%s run %d/%d %s: %.2f s wall, %.2f s CPU, others %.2f cores", label, r + 1, repeats, name, w,
                     c, f)
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


class PeakCuda:
    """Peak CUDA memory allocated by torch over a block, relative to what was allocated at its start (weights)."""

    def __init__(self, device):
        self.device = device

    def __enter__(self):
        import torch

        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        self.baseline = torch.cuda.memory_allocated(self.device) / 2**20
        return self

    def __exit__(self, *exc):
        import torch

        torch.cuda.synchronize(self.device)
        self.peak = torch.cuda.max_memory_allocated(self.device) / 2**20
        self.delta = self.peak - self.baseline
        return False

    def record(self) -> dict:
        return {"baseline_mib": round(self.baseline, 1), "peak_mib": round(self.peak, 1),
                "delta_mib": round(self.delta, 1), "method": "torch.cuda.max_memory_allocated"}


def run_worker(module: str, spec: dict, threads: int | None = None, timeout: float = 3600) -> dict:
    """Runs ``python -m module --worker SPEC --worker-out FILE`` in a fresh interpreter and returns the JSON it
    wrote."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", module, "--worker", json.dumps(spec), "--worker-out", str(out)]
        if threads:
            cmd += ["--threads", str(threads)]
        proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=timeout)
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


# -- the scripts' main loop ------------------------------------------------------------------------------------------

def start_record(machine: dict, args) -> dict:
    """Sets the default quiet threshold (the cores our torch threads leave free, plus a margin), warns when the
    machine is busy, and returns the record the sections fill."""
    import torch

    if args.quiet_threshold is None:
        args.quiet_threshold = max(0.0, machine["cores_usable"] - torch.get_num_threads()) + 0.25
    machine["others_busy_at_start_cores"] = busy = others_busy()
    if busy > args.quiet_threshold:
        log.warning("other processes are using %.1f cores; timed runs that overlap with them are repeated within "
                    "a budget of %.0f s per section%s", busy, args.quiet_budget,
                    "; with more torch threads than free cores a disturbed run can take 10x longer (OpenMP threads "
                    "wait for descheduled siblings): --threads 1 stays steady" if torch.get_num_threads() > 1 else "")
    return {"machine": machine, "quick": args.quick, "sections": {}, "section_wall_s": {},
            "_t0": time.perf_counter()}


def run_section(record: dict, texts: list[str], name: str, fn: Callable[[], tuple[dict, str]]) -> None:
    t0 = time.perf_counter()
    result, text = fn()
    record["sections"][name] = result
    record["section_wall_s"][name] = time.perf_counter() - t0
    texts.append(text)
    log.info("section %s done in %.0f s", name, record["section_wall_s"][name])


def finish(record: dict, texts: list[str], path: Path, extra_lines: tuple[str, ...] = ()) -> None:
    """Writes the JSON record and prints the machine header and every section's table."""
    machine = record["machine"]
    record["wall_s"] = time.perf_counter() - record.pop("_t0")
    machine["loadavg_end"] = list(os.getloadavg())
    write_json(path, record)
    timing = ", ".join(f"{k} {v / 60:.1f} min" for k, v in record["section_wall_s"].items())
    print("\n".join(header_lines(machine)))
    for line in extra_lines:
        print(line)
    print(f"Load average at the end {', '.join(f'{x:.2f}' for x in machine['loadavg_end'])}; "
          f"whole script {record['wall_s'] / 60:.1f} min ({timing})" + ("; QUICK smoke run" if record["quick"] else ""))
    for text in texts:
        print("\n" + text)
