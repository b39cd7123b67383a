"""The DreamPose sampler on a Ray cluster: frame batches as Ray tasks, the same latents as 'DreamPose Sampler'."""

from __future__ import annotations

from comfy_api.latest import io

from .common import DREAMPOSE_CATEGORY, PREFIX, PackNode, node_errors


class DreamPoseSamplerRay(PackNode):
    DISPLAY = "DreamPose Sampler (Ray cluster)"

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=PREFIX + "DreamPoseSamplerRay",
            display_name=cls.DISPLAY,
            category=DREAMPOSE_CATEGORY,
            description=("'DreamPose Sampler' with every frame batch sampled by a worker of a Ray cluster: the same "
                         "frames, byte for byte, on workers of the same device kind. The progress bar counts frames "
                         "done on all workers; Cancel cancels the remote tasks. Needs `pip install ray` "
                         "(docs/scale-out.md)."),
            inputs=[
                io.Noise.Input("noise", tooltip="RandomNoise (per-frame) or 'DreamPose Shared Noise'."),
                io.Guider.Input("guider", tooltip="From 'DreamPose Guider (dual CFG)'."),
                io.Sampler.Input("sampler", tooltip="Any sampler, e.g. from KSamplerSelect."),
                io.Sigmas.Input("sigmas", tooltip="Any schedule, e.g. from BasicScheduler."),
                io.Latent.Input("latent", tooltip="From 'DreamPose Pose Conditioning'."),
                io.Int.Input("frames_per_batch", default=4, min=1, max=256,
                             tooltip="Frames per task; each task is one batch of 'DreamPose Sampler', so the same "
                                     "value gives the same frames. Smaller batches spread over more workers."),
                io.String.Input("address", default="", optional=True,
                                tooltip="The Ray cluster: host:6379 or ray://host:10001 as `ray start --head` "
                                        "printed it, or 'auto' for one started on this machine. Empty: a local "
                                        "cluster, if start_local_cluster is on."),
                io.Boolean.Input("start_local_cluster", default=True, optional=True,
                                 tooltip="With no address, start a Ray cluster inside this ComfyUI (kept for later "
                                         "runs) with local_workers CPU workers."),
                io.Int.Input("local_workers", default=2, min=1, max=256, optional=True,
                             tooltip="How many tasks the local cluster runs at once."),
                io.Float.Input("gpus_per_task", default=0.0, min=0.0, max=8.0, step=0.25, optional=True,
                               tooltip="GPUs each task reserves on the cluster (1 on GPU workers, 0 for CPUs)."),
            ],
            outputs=[io.Latent.Output(display_name="latent", tooltip="The sampled frames, in frame order.")],
        )

    @classmethod
    def execute(cls, noise, guider, sampler, sigmas, latent, frames_per_batch, address="", start_local_cluster=True,
                local_workers=2, gpus_per_task=0.0) -> io.NodeOutput:
        from ..animapose.dreampose.distributed import sample_frames_on_cluster

        with node_errors(cls.DISPLAY):
            return io.NodeOutput(sample_frames_on_cluster(
                guider, sampler, sigmas, noise, latent, frames_per_batch, address=address or "",
                start_local=start_local_cluster, local_workers=local_workers, gpus_per_task=gpus_per_task))


NODES = [DreamPoseSamplerRay]
