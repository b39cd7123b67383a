"""DensePose UV estimation node: video frames or photos in, DreamPose's UV pose sequence out."""

from __future__ import annotations

import logging
import os

from comfy_api.latest import io

from .common import DENSEPOSE_FOLDER, DREAMPOSE_CATEGORY, PREFIX, PackNode, full_path, node_errors, node_info
from .dreampose import PosesType

log = logging.getLogger(__name__)

PERSON_CHOICES = ["largest", "highest score", "first"]
MISSING_CHOICES = ["error", "nearest"]
ALIGN_CHOICES = ["none", "subject"]
# One loaded export is kept (on the offload device) so that re-running a graph does not re-read the file.
_LOADED: dict = {}


def _files() -> list[str]:
    import folder_paths

    return folder_paths.get_filename_list(DENSEPOSE_FOLDER)


def _load(model_name: str):
    from ..animapose.densepose.model import load_densepose

    path = full_path(DENSEPOSE_FOLDER, model_name, "model_name")
    stat = os.stat(path)
    key = (path, stat.st_mtime_ns, stat.st_size)
    if _LOADED.get("key") != key:
        _LOADED.clear()
        model = load_densepose(path, "model_name")
        _LOADED.update(key=key, model=model)
    return _LOADED["model"]


def _device_and_dtype(model):
    """The device ComfyUI computes on; fp16 only for an fp16 export on a device ComfyUI runs in fp16 (detection
    boxes and NMS are not worth the precision loss otherwise)."""
    import comfy.model_management as mm
    import torch

    device = mm.get_torch_device()
    dtype = torch.float32
    if model.stored_dtype == torch.float16 and mm.should_use_fp16(device):
        dtype = torch.float16
    if device.type != "cpu":
        size = sum(t.numel() * t.element_size() for t in model.module.state_dict().values())
        mm.free_memory(size * 2 + 1024**3, device)
    return device, dtype, mm.unet_offload_device()


class DensePoseUVEstimator(PackNode):
    DISPLAY = "DensePose UV Estimator (video to poses)"

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id=PREFIX + "DensePoseUVEstimator",
            display_name=cls.DISPLAY,
            category=DREAMPOSE_CATEGORY,
            description=("Estimates DensePose UV poses from video frames or photos with the public TorchScript "
                         "DensePose exports (densepose_r50_fpn_dl / r101_fpn_dl.torchscript, the files "
                         "comfyui_controlnet_aux uses, or a DensePose-TorchScript release) and returns them in "
                         "DreamPose's layout: per frame U and V in [0,1], 0 on the background, for one person. "
                         "Files from models/densepose and controlnet_aux's ckpts folder."),
            inputs=[
                io.Image.Input("images", tooltip="The driving video's frames (e.g. LoadVideo -> GetVideoComponents) "
                                                 "or any batch of photos of a person. Not pose renders."),
                io.Combo.Input("model_name", options=_files(),
                               tooltip="TorchScript DensePose export, e.g. densepose_r50_fpn_dl.torchscript "
                                       "(models/densepose or comfyui_controlnet_aux/ckpts/LayerNorm/"
                                       "DensePose-TorchScript-with-hint-image)."),
                io.Combo.Input("person", options=PERSON_CHOICES, default="largest",
                               tooltip="Which detected person drives the video: the largest box, the most confident "
                                       "detection, or the first one (what DreamPose's official script took)."),
                io.Combo.Input("missing", options=MISSING_CHOICES, default="error",
                               tooltip="Frames where nobody is detected: stop with an error, or give them the pose "
                                       "of the nearest frame with a person (the UI text lists them)."),
                io.Int.Input("smoothing", default=0, min=0, max=8,
                             tooltip="Temporal smoothing radius in frames (0 = off). Averages U and V of the same "
                                     "pixel over neighbouring frames only where it shows the same body part, so the "
                                     "silhouette and part edges never change; it reduces DensePose jitter (flicker)."),
                io.Combo.Input("align", options=ALIGN_CHOICES, default="none",
                               tooltip="subject: scale and move the driving poses so the body's box in the first "
                                       "frame matches the subject's (from subject_poses, or estimated from "
                                       "subject_image); the poses then have the subject's picture size."),
                io.Image.Input("subject_image", optional=True,
                               tooltip="The subject photo, for align = subject (its body is found with the same "
                                       "model)."),
                PosesType.Input("subject_poses", optional=True,
                                tooltip="The subject's own UV map, for align = subject; used instead of "
                                        "subject_image when both are connected."),
            ],
            outputs=[PosesType.Output(display_name="poses", tooltip="The UV pose sequence, one pose per frame."),
                     io.Image.Output(display_name="preview", tooltip="The poses as pictures (U red, V green).")],
        )

    @classmethod
    def execute(cls, images, model_name, person, missing, smoothing, align, subject_image=None,
                subject_poses=None) -> io.NodeOutput:
        import comfy.model_management as mm
        import comfy.utils

        from ..animapose.densepose.estimate import estimate
        from ..animapose.densepose.sequence import alignment, apply_alignment, jitter
        from ..animapose.dreampose.pipeline import PoseSequence
        from ..animapose.errors import AnimaPoseError

        with node_errors(cls.DISPLAY):
            if align == "subject" and subject_image is None and subject_poses is None:
                raise AnimaPoseError("align", "'subject' needs the subject: nothing is connected to subject_image or "
                                     "subject_poses", "connect the subject photo to subject_image, or set align to "
                                     "none")
            model = _load(model_name)
            device, dtype, offload = _device_and_dtype(model)
            need_subject = align == "subject" and subject_poses is None
            bar = comfy.utils.ProgressBar(images.shape[0] + (1 if need_subject else 0))
            run = dict(device=device, dtype=dtype, offload_device=offload, progress=bar.update,
                       interrupt=mm.throw_exception_if_processing_interrupted)
            result = estimate(model, images, person, missing, 0, input_name="images", **run)
            lines = [f"{images.shape[0]} frames, {images.shape[2]}x{images.shape[1]}, {model_name} "
                     f"({model.signature} export) on {device}, person: {person}"]
            if result.filled:
                pairs = ", ".join(f"{i}<-{s}" for i, s in result.filled[:24])
                more = ", ..." if len(result.filled) > 24 else ""
                lines.append(f"no person in {len(result.filled)} frames, filled from the nearest frame "
                             f"(frame<-source, from 0): {pairs}{more}")
            labels, uv = result.labels, result.uv
            if smoothing > 0:
                from ..animapose.densepose.sequence import smooth_uv

                before = jitter(labels, uv)
                uv = smooth_uv(labels, uv, smoothing)
                lines.append(f"smoothing radius {smoothing}: frame-to-frame UV change {before:.4f} -> "
                             f"{jitter(labels, uv):.4f}")
            if align == "subject":
                if subject_poses is not None:
                    subject_mask = (subject_poses.uv[0] > 0).any(0)
                    origin = "subject_poses"
                else:
                    subject = estimate(model, subject_image[:1], person, "error", 0, input_name="subject_image",
                                       **run)
                    subject_mask = subject.labels[0] > 0
                    origin = "subject_image"
                a = alignment(labels[0] > 0, subject_mask)
                if a is None:
                    raise AnimaPoseError(origin, "the subject's pose map is empty (no body to align to)",
                                         "connect the subject's own UV map or photo, or set align to none")
                labels, uv = apply_alignment(labels, uv, a)
                lines.append(a.describe() + f" (from {origin})")
            poses = PoseSequence(uv.clamp(0, 1).contiguous(), f"DensePose {model_name}")
        text = "\n".join(lines)
        log.info("%s: %s", cls.DISPLAY, text.replace("\n", "; "))
        return io.NodeOutput(poses, poses.preview(), ui=node_info(cls.DISPLAY, text))


NODES = [DensePoseUVEstimator]
