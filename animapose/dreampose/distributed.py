"""DreamPose frame batches sampled on a Ray cluster: the same batches, noise, guider and sampler as ``sample_frames``,
each batch one Ray task, the latents assembled in frame order (byte-identical on the same kind of device with the
same thread count).

The driver puts one payload into Ray's object store (the guider with its model and conds, the sampler, sigmas, the
whole clip's noise and latent) and sends every task the payload's ref and its frame range; a worker fetches the
payload once per process (``ray_worker.py``). Shipping the model, not its file path, makes the workers sample exactly
the MODEL that flowed into the node, patches and finetuned weights included, and needs no model files on the
workers; the measured cost of both ways is in docs/scale-out.md.

Ray is optional: it is imported when the node runs, and its absence is an error naming the fix.
"""

from __future__ import annotations

import logging
import os
import uuid

import torch

from ..comfy_seam import comfy_model_management, comfy_utils
from ..errors import AnimaPoseError
from . import ray_worker
from .joint import motion_stages
from .pipeline import assemble_frames, batch_ranges, prepare_frames

log = logging.getLogger(__name__)

NODE = "DreamPose Sampler (Ray cluster)"
RETRIES = 3  # a task whose worker process dies is run again elsewhere, up to this many times
POLL_S = 0.2  # how often the driver looks at ComfyUI's Cancel while tasks run


def import_ray():
    try:
        import ray
    except ImportError:
        raise AnimaPoseError(
            "address", "Ray is not installed in ComfyUI's Python",
            "run `pip install ray` with the Python that runs ComfyUI (docs/scale-out.md), or use 'DreamPose "
            "Sampler' to sample on this machine") from None
    return ray


def comfy_root() -> str:
    # comfy is a namespace package (no __file__): its modules say where ComfyUI is
    return os.path.dirname(os.path.dirname(os.path.abspath(comfy_model_management.__file__)))


def local_runtime_env() -> dict:
    """Workers import ComfyUI from the same folder as this process when they have it (a cluster on this machine),
    else from their own PYTHONPATH (Ray expands ``${PYTHONPATH}`` on each worker)."""
    return {"env_vars": {"PYTHONPATH": comfy_root() + os.pathsep + "${PYTHONPATH}"}}


_connection: tuple | None = None  # what this process connected to, when the node made the connection


def connect(address: str, start_local: bool, local_workers: int):
    """Ray, connected: to ``address`` (``auto`` finds a cluster started on this machine with ``ray start``), or to
    a cluster of ``local_workers`` CPUs started in this process when no address is given and ``start_local`` asks
    for one. The node's connection is kept for later runs and remade when the inputs ask for another cluster; a
    connection made by someone else in this process (a script, the tests) is used as it is."""
    global _connection
    ray = import_ray()
    address = address.strip()
    want = (address, None) if address else ("", local_workers)
    if ray.is_initialized():
        if _connection is None or _connection == want:
            return ray
        ray.shutdown()
        _connection = None
    if address:
        try:
            ray.init(address=address, runtime_env=local_runtime_env(), log_to_driver=True)
        except (ConnectionError, ValueError, RuntimeError) as e:
            raise AnimaPoseError("address", f"cannot connect to the Ray cluster at '{address}' ({e})",
                                 "give the head node's address as `ray start --head` printed it (host:6379, or "
                                 "ray://host:10001), or leave it empty to start a cluster on this machine") from None
    else:
        if not start_local:
            raise AnimaPoseError("address", "no cluster address is given and starting a local cluster is off",
                                 "give a Ray cluster address, or turn start_local_cluster on")
        log.info("AnimaPose: starting a local Ray cluster with %d CPUs", local_workers)
        ray.init(num_cpus=local_workers, include_dashboard=False, runtime_env=local_runtime_env(),
                 log_to_driver=True)
    _connection = want
    return ray


def pack_location() -> tuple[str, str]:
    """(module name, folder) of this pack as imported here: ComfyUI names it after its folder path."""
    name = __package__.rsplit(".", 2)[0]  # "<pack>.animapose.dreampose"
    folder = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return name, folder


def comfy_args() -> dict:
    """ComfyUI's command-line settings of this process (device, precision, attention), which decide the kernels a
    worker's ComfyUI picks."""
    from ..comfy_seam import comfy_cli_args

    return dict(vars(comfy_cli_args.args))


def worker_setup() -> dict:
    """What a worker needs to be set up like this process, and the run's key."""
    name, folder = pack_location()
    return {"comfy_args": comfy_args(), "pack": name, "pack_dir": folder, "threads": torch.get_num_threads(),
            "key": uuid.uuid4().hex}


def _unpatched(guider) -> None:
    """A model loaded for sampling here holds its weight patches applied in place, with the originals in a backup;
    it is sent unloaded, so a worker receives each weight once and patches it itself."""
    model = guider.model_patcher.model
    if getattr(model, "current_weight_patches_uuid", None) is not None or guider.model_patcher.backup:
        comfy_model_management.unload_all_models()


def sample_frames_on_cluster(guider, sampler, sigmas: torch.Tensor, noise, latent: dict, frames_per_batch: int,
                             address: str = "", start_local: bool = True, local_workers: int = 2,
                             gpus_per_task: float = 0.0) -> dict:
    """``sample_frames`` with every batch a Ray task: same output, frames in order; the progress bar counts frames
    done on all workers, and ComfyUI's Cancel cancels the tasks still running or waiting."""
    stages = motion_stages(guider)
    if stages:  # checked before connecting: a cluster would sample every batch as its own clip
        raise AnimaPoseError(
            "guider", f"the guider's MODEL carries a motion module ({', '.join(s.name for s in stages)}), and frame "
            "batches on the cluster would make every batch of frames_per_batch frames a separate clip",
            "sample it with 'DreamPose Sampler' and frame_mode joint, or give this node a DreamPose MODEL without "
            "'Apply AnimateDiff Motion Model'")
    ray = connect(address, start_local, local_workers)
    samples, full_noise = prepare_frames(guider, noise, latent)
    frames = samples.shape[0]
    ranges = batch_ranges(frames, frames_per_batch)
    _unpatched(guider)
    setup = worker_setup()
    payload = ray.put((guider, sampler, sigmas.cpu(), full_noise.cpu(), samples.cpu(), getattr(noise, "seed", None)))
    ray.cloudpickle.register_pickle_by_value(ray_worker)
    task = ray.remote(ray_worker.run_task).options(
        num_cpus=0 if gpus_per_task > 0 else 1, num_gpus=gpus_per_task, max_retries=RETRIES, retry_exceptions=False,
        name="animapose_dreampose_batch")
    refs = {task.remote(setup, [payload], lo, hi): (lo, hi) for lo, hi in ranges}
    pbar = comfy_utils.ProgressBar(frames)
    done, outputs, pending = 0, {}, list(refs)
    try:
        while pending:
            if comfy_model_management.processing_interrupted():
                comfy_model_management.throw_exception_if_processing_interrupted()
            ready, pending = ray.wait(pending, num_returns=1, timeout=POLL_S)
            for ref in ready:
                lo, hi = refs[ref]
                outputs[lo] = _result(ray, ref, lo, hi)
                done += hi - lo
                pbar.update_absolute(done, frames)
    finally:
        for ref in pending:  # Cancel, or a failed batch: nothing keeps running for this run
            ray.cancel(ref, force=True)
    device = comfy_model_management.intermediate_device()
    return assemble_frames(latent, [outputs[lo].to(device) for lo, _ in ranges], NODE)


def _result(ray, ref, lo: int, hi: int) -> torch.Tensor:
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as e:
        cause = e.cause if getattr(e, "cause", None) is not None else e
        if isinstance(cause, AnimaPoseError):
            raise cause from None
        raise AnimaPoseError("address", f"frames {lo}-{hi - 1} failed on the cluster: {cause}",
                             "see the worker's message; docs/scale-out.md lists what every worker needs") from None
    except ray.exceptions.RayError as e:
        raise AnimaPoseError("address", f"frames {lo}-{hi - 1} were lost on the cluster after {RETRIES} retries "
                             f"({type(e).__name__}: {e})", "check that the cluster's workers stay up "
                             "(`ray status`)") from None
