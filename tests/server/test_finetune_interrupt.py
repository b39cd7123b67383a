"""Subject finetuning in the real server: the node shows its progress and loss while it runs, photos and poses that do
not pair up give a clear error, ComfyUI's own loss plot takes the loss map, and a finetune cancelled mid-run (POST
/interrupt) stops, leaves the server serving and leaks nothing: the very MODEL object it trained from (the loader's
cached output) samples exactly the same latent afterwards as before."""

from __future__ import annotations

import pytest
import safetensors.torch

from comfyui_animapose.workshop.models import CHECKPOINT_NAME, POSES_FOLDER, SUBJECT_IMAGE, SUBJECT_POSES
from comfyui_animapose.workshop.server import ExecutionFailed, cached_nodes, interrupt_training

LOADER = {"class_type": "AnimaPose_LoadDreamPose",
          "inputs": {"unet_name": "unet_epoch_20.pth", "adapter_name": "adapter_20.pth"}}
STEPS = 100000


def _reference_prompt(prefix: str) -> dict:
    """A cheap DreamPose sampling with the loader's MODEL: text tokens stand in for the image tokens (the UNet
    cross-attends to any number of 768-wide tokens), one pose frame, two steps, the latent saved exactly."""
    return {
        "1": LOADER,
        "20": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CHECKPOINT_NAME}},
        "21": {"class_type": "CLIPTextEncode", "inputs": {"text": "a person", "clip": ["20", 1]}},
        "5": {"class_type": "AnimaPose_LoadDensePoseUV", "inputs": {"folder": SUBJECT_POSES}},
        "22": {"class_type": "AnimaPose_PoseConditioning",
               "inputs": {"positive": ["21", 0], "negative": ["21", 0], "poses": ["5", 0], "width": 64, "height": 80,
                          "fit": "letterbox", "window": "clamp"}},
        "23": {"class_type": "AnimaPose_DreamPoseGuider",
               "inputs": {"model": ["1", 0], "positive": ["22", 0], "image_only": ["22", 1], "negative": ["22", 2],
                          "image_cfg": 2.0, "pose_cfg": 1.5}},
        "24": {"class_type": "AnimaPose_SharedNoise", "inputs": {"noise_seed": 7}},
        "25": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "26": {"class_type": "BasicScheduler", "inputs": {"model": ["1", 0], "scheduler": "normal", "steps": 2,
                                                          "denoise": 1.0}},
        "27": {"class_type": "AnimaPose_DreamPoseSampler",
               "inputs": {"noise": ["24", 0], "guider": ["23", 0], "sampler": ["25", 0], "sigmas": ["26", 0],
                          "latent": ["22", 3], "frames_per_batch": 1}},
        "28": {"class_type": "SaveLatent", "inputs": {"samples": ["27", 0], "filename_prefix": prefix}},
    }


def _finetune_prompt(poses_folder: str, steps: int) -> dict:
    return {
        "1": LOADER,
        "2": {"class_type": "AnimaPose_LoadDreamPoseVAE", "inputs": {"vae_name": "vae_1499.pth"}},
        "3": {"class_type": "AnimaPose_LoadCLIPVisionB32",
              "inputs": {"clip_name": "clip-vit-base-patch32/model.safetensors"}},
        "4": {"class_type": "LoadImage", "inputs": {"image": SUBJECT_IMAGE}},
        "5": {"class_type": "AnimaPose_LoadDensePoseUV", "inputs": {"folder": poses_folder}},
        "6": {"class_type": "AnimaPose_DreamPoseFinetuneUNet",
              "inputs": {"model": ["1", 0], "adapter": ["1", 1], "clip_vision": ["3", 0], "vae": ["2", 0],
                         "images": ["4", 0], "poses": ["5", 0], "steps": steps, "learning_rate": 1e-5, "width": 64,
                         "height": 80, "fit": "letterbox", "multi_image": "average", "crop_probability": 0.7,
                         "seed": 0, "precision": "fp32", "gradient_checkpointing": False}},
        "8": {"class_type": "AnimaPose_SaveDreamPose",
              "inputs": {"model": ["6", 0], "adapter": ["6", 1], "filename_prefix": "interrupted"}},
    }


def _latent(server, entry) -> dict:
    (item,) = entry["outputs"]["28"]["latents"]
    return safetensors.torch.load_file(str(server.base / item["type"] / item["subfolder"] / item["filename"]))


def test_photos_and_poses_that_do_not_pair_up(comfy_server):
    with pytest.raises(ExecutionFailed) as err:
        comfy_server.run(_finetune_prompt(POSES_FOLDER, 2), timeout=300)
    message = str(err.value)
    for part in ("DreamPose Finetune UNet + Adapter", "input 'poses'", "1 subject photo(s) but 8 pose "
                 "frame(s)", "Fix:"):
        assert part in message, message


def test_loss_map_feeds_comfys_loss_graph(comfy_server):
    prompt = {
        "2": {"class_type": "AnimaPose_LoadDreamPoseVAE", "inputs": {"vae_name": "vae_1499.pth"}},
        "4": {"class_type": "LoadImage", "inputs": {"image": SUBJECT_IMAGE}},
        "7": {"class_type": "AnimaPose_DreamPoseFinetuneVAE",
              "inputs": {"vae": ["2", 0], "images": ["4", 0], "steps": 3, "learning_rate": 5e-5, "width": 64,
                         "height": 80, "fit": "letterbox", "crop_probability": 1.0, "seed": 0, "precision": "fp32",
                         "gradient_checkpointing": True}},
        "30": {"class_type": "LossGraphNode", "inputs": {"loss": ["7", 1], "filename_prefix": "loss"}},
    }
    entry = comfy_server.run(prompt, timeout=300)
    assert entry["outputs"]["30"]["images"], entry["outputs"]
    assert "VAE decoder: 3 steps" in entry["outputs"]["7"]["text"][0]


def test_interrupt_mid_run_leaves_the_server_and_the_model_untouched(comfy_server):
    before = comfy_server.run(_reference_prompt("animapose/before"), timeout=300)
    listener = interrupt_training(comfy_server, _finetune_prompt(SUBJECT_POSES, STEPS), "6", STEPS, 300, 120)
    text = next(t for t in listener.texts("6") if "loss" in t)
    assert text.startswith("UNet + adapter: step ") and f"/{STEPS}\nloss " in text, text
    assert max(v for v, _ in listener.progress("6")) < STEPS
    assert not list((comfy_server.base / "models" / "dreampose").glob("interrupted_*unet.safetensors"))

    after = comfy_server.run(_reference_prompt("animapose/after"), timeout=300)
    # the loader's MODEL object is the one the finetune received (cached throughout) and the sampler ran again
    assert "1" in cached_nodes(after) and "27" not in cached_nodes(after), cached_nodes(after)
    a, b = _latent(comfy_server, before), _latent(comfy_server, after)
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
