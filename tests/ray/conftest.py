"""The scale-out tier: a local Ray cluster of two CPU workers (started once per session, always shut down) driven
from an in-process ComfyUI on the CPU, with the tiny trained DreamPose."""

import pytest

from comfyui_animapose.workshop import comfy_env

comfy_env.bootstrap()


@pytest.fixture(scope="session")
def ray_cluster():
    import torch

    from comfyui_animapose.workshop.ray_faults import local_cluster

    # One torch thread here and in every worker: two cores are shared by the driver and two workers, and the
    # workers take the driver's thread count, which is part of what makes their frames identical.
    torch.set_num_threads(1)
    with local_cluster(num_cpus=2) as ray:
        yield ray
