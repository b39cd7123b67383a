"""The DensePose UV estimator over HTTP: a video becomes poses (with the UI text), and each bad input (pose renders
fed as photos, a TorchScript file of another model, a video without a person) gives an error naming the node, the
input and the fix while the server keeps serving."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from comfyui_animapose.workshop.fixtures.densepose import densepose_torchscript_file, driving_video_file
from comfyui_animapose.workshop.fixtures.dreampose import subject_image_file
from comfyui_animapose.workshop.models import DRIVING_VIDEO
from comfyui_animapose.workshop.server import ExecutionFailed

NODE = "DensePose UV Estimator (video to poses)"
# A photo larger than the 64x80 driving video, so the previews' size shows the alignment to it.
ALIGN_SUBJECT = "densepose_align_subject.png"


@pytest.fixture(scope="module")
def bad_files(comfy_server):
    from comfyui_animapose.animapose.dreampose.poses import VIRIDIS

    base = comfy_server.base
    viridis = VIRIDIS[0].expand(80, 64, 3).clone()
    viridis[20:60, 20:44] = VIRIDIS[5]
    viridis[8:20, 26:38] = VIRIDIS[8]
    Image.fromarray((viridis * 255).round().byte().numpy()).save(base / "input" / "densepose_render.png")
    skeleton = np.zeros((80, 64, 3), np.uint8)
    skeleton[10:60, 30:33] = (255, 0, 0)
    skeleton[30:33, 15:50] = (0, 255, 0)
    skeleton[60:75, 25:28] = (0, 0, 255)
    Image.fromarray(skeleton).save(base / "input" / "skeleton.png")
    shutil.copy(driving_video_file(6, 80, 64, person=False), base / "input" / "empty_stage.mp4")
    shutil.copy(densepose_torchscript_file("other"), base / "models" / "densepose" / "classifier.torchscript")
    torch.save({"w": torch.zeros(2)}, base / "models" / "densepose" / "weights.pth")
    return base


def _prompt(video=DRIVING_VIDEO, image=None, model="densepose_r50_fpn_dl.torchscript", missing="error",
            smoothing=0, align="none", prefix="densepose_test"):
    if image is None:
        source = {"1": {"class_type": "LoadVideo", "inputs": {"file": video}},
                  "2": {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}}}
    else:
        source = {"2": {"class_type": "LoadImage", "inputs": {"image": image}}}
    est = {"images": ["2", 0], "model_name": model, "person": "largest", "missing": missing,
           "smoothing": smoothing, "align": align}
    if align == "subject":
        source["5"] = {"class_type": "LoadImage", "inputs": {"image": ALIGN_SUBJECT}}
        est["subject_image"] = ["5", 0]
    return {**source, "3": {"class_type": "AnimaPose_DensePoseUVEstimator", "inputs": est},
            "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 1], "filename_prefix": prefix}}}


@pytest.fixture(scope="module")
def align_subject(comfy_server):
    shutil.copy(subject_image_file(), comfy_server.base / "input" / ALIGN_SUBJECT)


def test_video_to_poses(comfy_server, align_subject):
    entry = comfy_server.run(_prompt(smoothing=2, align="subject"), timeout=300)
    files = [f for f in comfy_server.output_files(entry) if f.suffix == ".png"]
    assert len(files) == 8  # one preview per video frame
    with Image.open(files[0]) as im:
        preview = np.asarray(im.convert("RGB"))
    assert preview.shape == (720, 576, 3)  # aligned to the 576x720 subject photo
    assert preview[..., 2].max() == 0 and preview[..., :2].max() > 0  # U red, V green, blue empty
    text = "\n".join(entry["outputs"]["3"]["text"])
    logging.getLogger(__name__).info("UI text: %s", text)
    assert "8 frames, 64x80" in text and "tuple export" in text
    assert "smoothing radius 2: frame-to-frame UV change" in text
    assert "aligned to the subject: scale" in text and "from subject_image" in text


CASES = {
    "viridis_render": (dict(image="densepose_render.png"), "input 'images'", "Viridis colour-mapped DensePose"),
    "skeleton_render": (dict(image="skeleton.png"), "input 'images'", "OpenPose/DWPose skeleton"),
    "other_model": (dict(model="classifier.torchscript"), "input 'model_name'", "TorchScript model of another kind"),
    "not_torchscript": (dict(model="weights.pth"), "input 'model_name'", "is not a TorchScript file"),
    "no_person": (dict(video="empty_stage.mp4", missing="nearest"), "input 'images'",
                  "no person was found in any of the 6 frames"),
    "align_without_subject": (dict(align="subject_missing"), "input 'align'", "nothing is connected"),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_clear_error_and_server_keeps_serving(comfy_server, bad_files, case):
    kwargs, input_part, problem = CASES[case]
    if kwargs.get("align") == "subject_missing":
        prompt = _prompt(align="none")
        prompt["3"]["inputs"]["align"] = "subject"
    else:
        prompt = _prompt(**kwargs)
    with pytest.raises(ExecutionFailed) as err:
        comfy_server.run(prompt, timeout=300)
    message = str(err.value)
    assert NODE in message and input_part in message and problem in message and "Fix:" in message, message
    logging.getLogger(__name__).info("%s: %s", case, message)
    entry = comfy_server.run(_prompt(prefix=f"densepose_after_{case}"), timeout=300)
    assert comfy_server.output_files(entry)
