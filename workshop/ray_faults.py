"""Faults on demand for the scale-out tests (tests/ray): a sampler that stalls inside a Ray worker until the test
ends that worker's process or cancels its task, and a local two-CPU Ray cluster that is always shut down.

The stall happens inside the real sampling call, so a killed worker dies mid-batch; the batch then runs
``sample_euler`` unchanged, so a retried batch must give exactly the frames of an undisturbed run."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

STALL_S = 300.0


def stalling_sampler(folder: Path, every_call: bool = False):
    """Euler as a KSAMPLER whose first call (or every call) writes ``stalled-<pid>`` into ``folder`` and waits."""
    import comfy.samplers

    return comfy.samplers.KSAMPLER(stall_then_euler, extra_options={"stall_dir": str(folder),
                                                                    "every_call": every_call})


def stall_then_euler(model, x, sigmas, extra_args=None, callback=None, disable=None, stall_dir="", every_call=False):
    from comfy.k_diffusion.sampling import sample_euler

    folder = Path(stall_dir)
    pid = os.getpid()
    claim = folder / "claimed"
    try:
        stall = every_call or os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY) >= 0
    except FileExistsError:
        stall = False
    if stall:
        (folder / f"stalled-{pid}").write_text(str(pid))
        time.sleep(STALL_S)
    out = sample_euler(model, x, sigmas, extra_args=extra_args, callback=callback, disable=disable)
    (folder / f"finished-{pid}-{time.monotonic_ns()}").write_text(str(pid))
    return out


def stalled_pids(folder: Path, count: int = 1, timeout: float = 120.0) -> list[int]:
    """The pids of the first ``count`` stalled workers, once they are stalling."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        pids = sorted(int(p.read_text()) for p in folder.glob("stalled-*") if p.read_text())
        if len(pids) >= count:
            return pids
        time.sleep(0.1)
    raise TimeoutError(f"no {count} stalled worker(s) in {timeout}s")


def finished_pids(folder: Path) -> set[int]:
    return {int(p.read_text()) for p in folder.glob("finished-*")}


def process_gone(pid: int, timeout: float = 30.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


@contextlib.contextmanager
def local_cluster(num_cpus: int = 2):
    """A Ray cluster on this machine with ``num_cpus`` CPU workers whose processes import ComfyUI like this one;
    shut down on exit, whatever happened."""
    import ray

    from ..animapose.dreampose.distributed import local_runtime_env

    ray.init(num_cpus=num_cpus, include_dashboard=False, runtime_env=local_runtime_env(), log_to_driver=False,
             configure_logging=False)
    try:
        yield ray
    finally:
        ray.shutdown()
