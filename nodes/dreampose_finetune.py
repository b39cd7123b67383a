"""DreamPose subject finetuning nodes: UNet + adapter (the paper's stage 2a), then the VAE decoder (stage 2b).

Two nodes, so each stage is optional and ComfyUI's cache reruns only the stage whose settings changed. Both train
copies (inputs stay untouched), report the loss on the node while running, stop at the next step on Cancel, and
output native objects the pose-to-video graph and 'Save DreamPose Model' take as they are.
"""

from __future__ import annotations

import sys
import time

from comfy_api.latest import io

from ..animapose.dreampose.finetune import CONDITIONINGS, PRECISIONS, UNET_DEFAULTS, VAE_DEFAULTS
from ..animapose.dreampose.pipeline import FITS
from .common import DREAMPOSE_CATEGORY, PREFIX, PackNode, node_errors, node_info
from .dreampose import AdapterType, PosesType

LossMapType = io.Custom("LOSS_MAP")  # the type of ComfyUI's own training nodes, so 'Plot Loss Graph' takes it

_PRECISION_TIP = ("Compute precision; the trained weights stay fp32 either way. fp32: exact, the most memory. bf16: "
                  "autocast to bfloat16, less activation memory and faster on recent GPUs; also runs on CPUs. fp16: "
                  "autocast to float16 with loss scaling, for GPUs without bf16; CUDA only (refused on a CPU).")
_CHECKPOINT_TIP = ("Recompute activations in the backward pass instead of storing them: much less memory for about a "
                   "third more time. Leave on for GPUs with 24 GB or less.")
_SEED_TIP = "Seed of every random choice (photo, crop, timestep, noise): the same seed gives the same weights."


def _size_inputs(default_w=512, default_h=640):
    return [io.Int.Input("width", default=default_w, min=64, max=2048, step=8,
                         tooltip="Training frame width in pixels (DreamPose trains at 512x640; smaller is only for "
                                 "quick tests)."),
            io.Int.Input("height", default=default_h, min=64, max=2048, step=8,
                         tooltip="Training frame height in pixels."),
            io.Combo.Input("fit", options=FITS, default="letterbox",
                           tooltip="How photos (and their poses) of another aspect ratio become width x height; use "
                                   "the same fit as in the pose-to-video graph.")]


def _common_inputs():
    return [io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, tooltip=_SEED_TIP),
            io.Combo.Input("precision", options=PRECISIONS, default="fp32", tooltip=_PRECISION_TIP),
            io.Boolean.Input("gradient_checkpointing", default=True, tooltip=_CHECKPOINT_TIP)]


class TrainingReporter:
    """ComfyUI's progress bar plus a line of text on the node with the current and recent loss."""

    def __init__(self, label: str, node_id, steps: int, preparing: str = "copying the weights, encoding the photos"):
        import comfy.utils

        self.label, self.node_id = label, node_id
        self.recent: list[float] = []
        self.last_text = 0.0
        self.started = time.monotonic()
        self.bar = comfy.utils.ProgressBar(max(steps, 1))
        if steps > 0:
            self.text(f"{label}: preparing ({preparing})")

    def __call__(self, step: int, total: int, loss: float) -> None:
        self.bar.update_absolute(step, total)
        self.recent = (self.recent + [loss])[-20:]
        now = time.monotonic()
        if now - self.last_text >= 0.5 or step == total:
            self.last_text = now
            avg = sum(self.recent) / len(self.recent)
            self.text(f"{self.label}: step {step}/{total}\nloss {loss:.5f} (mean of last {len(self.recent)}: "
                      f"{avg:.5f})")

    def text(self, message: str) -> None:
        # The server module is loaded when ComfyUI serves; in-process use (tests, scripts) has no node to write on.
        server = getattr(getattr(sys.modules.get("server"), "PromptServer", None), "instance", None)
        if server is not None and self.node_id is not None:
            server.send_progress_text(message, self.node_id)

    def summary(self, losses: list[float]) -> str:
        if not losses:
            return f"{self.label}: 0 steps, inputs passed through unchanged"
        k = max(1, len(losses) // 10)
        first, last = sum(losses[:k]) / k, sum(losses[-k:]) / k
        return (f"{self.label}: {len(losses)} steps in {time.monotonic() - self.started:.0f} s\n"
                f"loss {first:.5f} -> {last:.5f} (mean of the first and last {k})")


def _settings(**kwargs):
    from ..animapose.dreampose.finetune import StageSettings

    return StageSettings(**kwargs)


class DreamPoseFinetuneUNet(PackNode):
    DISPLAY = "DreamPose Finetune UNet + Adapter"

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=PREFIX + "DreamPoseFinetuneUNet",
            display_name=cls.DISPLAY,
            category=DREAMPOSE_CATEGORY,
            description=("Subject finetuning, stage 1 of 2 (the paper's UNet step): trains copies of the DreamPose UNet "
                         "and adapter on one or more photos of the subject with their DensePose UV maps, so generated "
                         "frames keep the subject's identity and clothes. Random crops are applied to each photo and "
                         "its pose together. Paper defaults: 500 steps at lr 1e-5 (about 10 minutes on an A100). The "
                         "inputs are not changed; Cancel stops at the next step."),
            inputs=[
                io.Model.Input("model", tooltip="The DreamPose MODEL from 'Load DreamPose UNet + Adapter' (base model)."),
                AdapterType.Input("adapter", tooltip="Its adapter, from the same loader."),
                io.ClipVision.Input("clip_vision", tooltip="CLIP ViT-B/32 from 'Load DreamPose CLIP Vision (B/32)' "
                                                           "(frozen; encodes the photos for the adapter)."),
                io.Vae.Input("vae", tooltip="The DreamPose VAE (frozen here; encodes photos and training targets)."),
                io.Image.Input("images", tooltip="The subject photo(s): one image or a batch (the paper shows 1, 3, 5 "
                                                 "and 7 photos). Photo k trains with pose k."),
                PosesType.Input("poses", tooltip="One DensePose UV map per photo, in the photos' order, computed on "
                                                 "those photos (e.g. a folder of frame_N_densepose.npy)."),
                io.Int.Input("steps", default=UNET_DEFAULTS["steps"], min=0, max=100000,
                             tooltip="Optimizer updates, one training sample each (paper: 500). 0 skips this stage. The "
                                     "official script made 500 passes over the photos, i.e. 500 x N with N photos."),
                io.Float.Input("learning_rate", default=UNET_DEFAULTS["learning_rate"], min=1e-8, max=1e-2, step=1e-7,
                               round=1e-8, tooltip="AdamW learning rate, constant (paper: 1e-5)."),
                *_size_inputs(),
                io.Combo.Input("multi_image", options=CONDITIONINGS, default="average",
                               tooltip="With several photos, what conditions each step: the average of all photos' "
                                       "tokens (as the image-conditioning node's default), the first photo, or a random "
                                       "photo (the official script). Use the same choice at inference."),
                io.Float.Input("crop_probability", default=0.7, min=0.0, max=1.0, step=0.05,
                               tooltip="Share of steps that crop the photo and its pose together by up to 5% of the "
                                       "short side and resize back (official: 0.7). 0 disables."),
                *_common_inputs(),
            ],
            outputs=[io.Model.Output(display_name="model", tooltip="The finetuned MODEL (a clone of the input with "
                                                                   "the trained weights as patches)."),
                     AdapterType.Output(display_name="adapter", tooltip="The finetuned adapter."),
                     LossMapType.Output(display_name="loss_map", tooltip="Loss of every step, for ComfyUI's 'Plot "
                                                                         "Loss Graph'.")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, model, adapter, clip_vision, vae, images, poses, steps, learning_rate, width, height, fit,
                multi_image, crop_probability, seed, precision, gradient_checkpointing) -> io.NodeOutput:
        from ..animapose.dreampose.finetune import finetune_unet

        report = TrainingReporter("UNet + adapter", cls.hidden.unique_id if cls.hidden else None, steps)
        settings = _settings(steps=steps, learning_rate=learning_rate, width=width, height=height, fit=fit,
                             crop_probability=crop_probability, seed=seed, precision=precision,
                             gradient_checkpointing=gradient_checkpointing, multi_image=multi_image)
        with node_errors(cls.DISPLAY):
            out_model, out_adapter, losses = finetune_unet(model, adapter, clip_vision, vae, images, poses, settings,
                                                           report)
        return io.NodeOutput(out_model, out_adapter, {"loss": losses}, ui=node_info(cls.DISPLAY, report.summary(losses)))


class DreamPoseFinetuneVAE(PackNode):
    DISPLAY = "DreamPose Finetune VAE Decoder"

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=PREFIX + "DreamPoseFinetuneVAE",
            display_name=cls.DISPLAY,
            category=DREAMPOSE_CATEGORY,
            description=("Subject finetuning, stage 2 of 2 (the paper's VAE step): trains a copy of the VAE decoder to "
                         "reproduce the subject photos (random crops of up to 10%), which sharpens faces and fabric "
                         "detail. The encoder stays frozen. Paper defaults: 1500 steps at lr 5e-5 (about 20 minutes "
                         "on an A100). The input VAE is not changed; Cancel stops at the next step."),
            inputs=[
                io.Vae.Input("vae", tooltip="The DreamPose VAE (an SD1.x KL autoencoder)."),
                io.Image.Input("images", tooltip="The subject photo(s), as given to the UNet stage."),
                io.Int.Input("steps", default=VAE_DEFAULTS["steps"], min=0, max=100000,
                             tooltip="Optimizer updates, one random crop each (paper: 1500). 0 skips this stage."),
                io.Float.Input("learning_rate", default=VAE_DEFAULTS["learning_rate"], min=1e-8, max=1e-2, step=1e-7,
                               round=1e-8, tooltip="AdamW learning rate, constant (paper: 5e-5)."),
                *_size_inputs(),
                io.Float.Input("crop_probability", default=1.0, min=0.0, max=1.0, step=0.05,
                               tooltip="Share of steps that crop the photo by up to 10% of the short side and resize "
                                       "back (official: every step). 0 disables."),
                *_common_inputs(),
            ],
            outputs=[io.Vae.Output(display_name="vae", tooltip="The VAE with the finetuned decoder."),
                     LossMapType.Output(display_name="loss_map", tooltip="Loss of every step, for ComfyUI's 'Plot "
                                                                         "Loss Graph'.")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, vae, images, steps, learning_rate, width, height, fit, crop_probability, seed, precision,
                gradient_checkpointing) -> io.NodeOutput:
        from ..animapose.dreampose.finetune import finetune_vae_decoder

        report = TrainingReporter("VAE decoder", cls.hidden.unique_id if cls.hidden else None, steps)
        settings = _settings(steps=steps, learning_rate=learning_rate, width=width, height=height, fit=fit,
                             crop_probability=crop_probability, seed=seed, precision=precision,
                             gradient_checkpointing=gradient_checkpointing)
        with node_errors(cls.DISPLAY):
            out_vae, losses = finetune_vae_decoder(vae, images, settings, report)
        return io.NodeOutput(out_vae, {"loss": losses}, ui=node_info(cls.DISPLAY, report.summary(losses)))


NODES = [DreamPoseFinetuneUNet, DreamPoseFinetuneVAE]
