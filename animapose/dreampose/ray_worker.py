"""What a Ray worker runs for the distributed DreamPose sampler (``distributed.py`` is the driver's side).

Inside ComfyUI the pack is imported under a name ComfyUI makes from its folder path, and every function and class the
driver sends refers to that name. ``run_task`` is therefore sent by value (it uses the standard library only): it sets
up the worker the way the driver's process is set up (ComfyUI's command-line settings before ``comfy`` is imported,
the pack under the driver's module name, the driver's thread count), then calls ``sample_batch`` of this module as
loaded there. A worker process keeps the last run's payload (the guider with its model, the sampler, sigmas, noise
and latent), so the weights cross the object store once per worker process, not once per batch.
"""

from __future__ import annotations

import importlib
import os
import socket
import sys

_payload: dict = {}  # run key -> (guider, sampler, sigmas, full_noise, samples, seed); the latest run only


def worker_name() -> str:
    return f"{socket.gethostname()} (pid {os.getpid()})"


def run_task(setup: dict, payload_box: list, lo: int, hi: int):
    """One batch of frames on this worker: ``setup`` holds the driver's ComfyUI settings, pack name and folder,
    thread count and run key; ``payload_box`` the payload's object ref (in a list, so Ray hands over the ref and
    the payload is fetched only when this process does not hold it yet)."""
    worker = prepare(setup)
    return worker.sample_batch(setup, payload_box, lo, hi)


def prepare(setup: dict):
    """This process set up like the driver's (before anything unpickles the payload, which imports ComfyUI);
    returns this module as loaded under the driver's pack name."""
    if "comfy.model_management" not in sys.modules:
        try:
            import comfy.cli_args
        except ImportError:
            raise RuntimeError(
                f"AnimaPose worker {worker_name()}: ComfyUI is not importable here; start this Ray node with "
                "ComfyUI's folder on PYTHONPATH (docs/scale-out.md)") from None
        vars(comfy.cli_args.args).update(setup["comfy_args"])
    name, folder = setup["pack"], setup["pack_dir"]
    if name not in sys.modules:
        try:
            importlib.import_module(name)  # an installed pack (``comfyui_animapose``)
        except ImportError:
            if not os.path.isfile(os.path.join(folder, "__init__.py")):
                raise RuntimeError(
                    f"AnimaPose worker {worker_name()}: the pack is not at {folder}; install it at the same path as "
                    "on the ComfyUI machine (docs/scale-out.md)") from None
            # ComfyUI's own custom-node loader, which names the module after the folder's path, as it did on the
            # ComfyUI machine
            import asyncio

            import nodes

            if not asyncio.run(nodes.load_custom_node(folder)) or name not in sys.modules:
                raise RuntimeError(f"AnimaPose worker {worker_name()}: ComfyUI could not load the pack from {folder} "
                                   f"as '{name}'") from None
    return importlib.import_module(name + ".animapose.dreampose.ray_worker")


def sample_batch(setup: dict, payload_box: list, lo: int, hi: int):
    import ray
    import torch

    from .pipeline import sample_frame_batch

    torch.set_num_threads(setup["threads"])
    key = setup["key"]
    if key not in _payload:
        _payload.clear()  # one run's model at a time
        _payload[key] = ray.get(payload_box[0])
    guider, sampler, sigmas, full_noise, samples, seed = _payload[key]
    return sample_frame_batch(guider, sampler, sigmas, full_noise, samples, lo, hi, seed).cpu()
