"""The files the demo job and the server/browser tiers put into ComfyUI's base directory.

Fixtures are linked under the file names real users have (``mm_sd_v15_v2.ckpt``, ``unet_epoch_20.pth``...), so
the shipped example workflows run unchanged against them. ``profile`` picks the SD1.5 models: "trained" (the default
of the demo and the server tier) is the demo checkpoint and motion module the pack trained itself
(``workshop/demo/train_models.py``, a one-level UNet, so the other AnimateDiff files are the one-level fixtures),
"tiny" the one-level random fixtures, "small" random fixtures with SD1.5's block positions. The loaders' known-file
check reports that these files are not the releases.

``dreampose="trained"`` (the demo) links the tiny DreamPose trained on synthetic people
(``workshop/demo/train_dreampose.py``; shipped narrow in ``demo_models/``, widened into the fixture cache), a held-out
synthetic subject's photo and UV map, and a synthetic walk as the driving poses, so the DreamPose workflows draw a
figure that follows the poses; ``"random"`` links random-weight files in the official layouts at SD1.5's widths. The
server and browser tiers run the trained DreamPose too: the random one's full-size VAE encodes the 576x720 subject
photo and decodes 576x720 frames, about 25 s of two CPU cores per run, while the official layouts at full width are
proven in the comfy tier (loading, parity).
"""

from __future__ import annotations

from pathlib import Path

CHECKPOINT_NAME = "v1-5-pruned-emaonly-fp16.safetensors"
POSES_FOLDER = "dreampose_poses"
SUBJECT_IMAGE = "dreampose_subject.png"
DREAMPOSE_MOTION = "animapose_dreampose_motion.safetensors"  # the motion module of the DreamPose + motion template
SUBJECT_POSES = "dreampose_subject_poses"
DRIVING_VIDEO = "dreampose_driving.mp4"
FIRST_FRAME = "animapose_first_frame.png"
LAST_FRAME = "animapose_last_frame.png"
TRAINING_CLIPS = "shapes_moving_right.gif"
# What the server and browser tiers run against (conftest's shared server, and the hostile suite's fresh one).
TEST_PROFILE = "tiny"
TEST_DREAMPOSE = "trained"


def demo_models_present() -> bool:
    from .fixtures.demo import DEMO_MODELS

    return all((DEMO_MODELS / n).is_file() for n in ("tiny_sd15_unet_narrow.safetensors",
                                                      "tiny_motion_module_narrow.safetensors", "training.json"))


def demo_files(profile: str = "trained", dreampose: str = "random") -> dict[str, list[tuple[str, Path]]]:
    """{folder relative to the ComfyUI base directory: [(name in that folder, fixture path)]}."""
    from .fixtures.cameractrl import cameractrl_file
    from .fixtures.demo import training_clips_file
    from .fixtures.densepose import densepose_torchscript_file, driving_video_file
    from .fixtures.dreampose import (
        dreampose_adapter_file,
        dreampose_unet_file,
        dreampose_vae_file,
        subject_image_file,
        tiny_clip_b32_folder,
        uv_sequence_folder,
    )
    from .fixtures.motion import domain_adapter_file, motion_lora_file, motion_module_file
    from .fixtures.sd15 import sd15_checkpoint
    from .fixtures.sparsectrl import sparsectrl_file

    if profile == "trained" and not demo_models_present():
        profile = "tiny"  # a checkout without the trained files (workshop/demo/train_models.py writes them)
    if profile == "trained":
        from .fixtures.demo import demo_checkpoint, demo_motion_module

        checkpoint, motion_v2, profile = demo_checkpoint(), demo_motion_module(), "tiny"
    else:
        checkpoint = sd15_checkpoint(profile, "taesd")
        motion_v2 = motion_module_file("v2", "original", profile, ext=".ckpt")
    files = {
        "models/checkpoints": [(CHECKPOINT_NAME, checkpoint)],
        "models/animatediff_models": [
            ("mm_sd_v15_v2.ckpt", motion_v2),
            # fits the random DreamPose UNet ('small': SD1.5's blocks, 320 channels throughout)
            (DREAMPOSE_MOTION, motion_module_file("v2", "original", "small")),
            ("v3_sd15_mm.ckpt", motion_module_file("v3", "original", profile, ext=".ckpt")),
            ("pia.ckpt", motion_module_file("pia", "original", profile, ext=".ckpt")),
            ("AnimateLCM_sd15_i2v.ckpt", motion_module_file("animatelcm_i2v", "original", profile, ext=".ckpt")),
            ("CameraCtrl_pruned.safetensors", cameractrl_file(profile, "pruned", "fp16")),
        ],
        "models/controlnet": [("v3_sd15_sparsectrl_rgb.ckpt", sparsectrl_file("rgb", profile, "original"))],
        "models/animatediff_motion_lora": [("v2_lora_ZoomIn.ckpt", motion_lora_file(profile, ext=".ckpt"))],
        "models/loras": [("v3_sd15_adapter.ckpt", domain_adapter_file(profile))],
        "models/dreampose": [
            ("unet_epoch_20.pth", dreampose_unet_file("small")),
            ("adapter_20.pth", dreampose_adapter_file()),
            ("vae_1499.pth", dreampose_vae_file()),
        ],
        "models/clip_vision": [("clip-vit-base-patch32", tiny_clip_b32_folder())],
        "models/densepose": [("densepose_r50_fpn_dl.torchscript", densepose_torchscript_file("tuple"))],
        "input": [(POSES_FOLDER, uv_sequence_folder(8, 80, 64)), (SUBJECT_IMAGE, subject_image_file()),
                  (TRAINING_CLIPS, training_clips_file()),
                  # the subject photo's own UV map, for finetuning (the photo is 576x720, the same shape)
                  (SUBJECT_POSES, uv_sequence_folder(1, 80, 64, seed=7)),
                  # a figure dancing on a plain backdrop, for the DensePose estimator (video-to-video)
                  (DRIVING_VIDEO, driving_video_file(8, 80, 64)),
                  # keyframes for the image-to-video and SparseCtrl workflows
                  (FIRST_FRAME, subject_image_file(512, 512, seed=1)), (LAST_FRAME, subject_image_file(384, 512, seed=2))],
    }
    if dreampose == "trained":
        from .fixtures.dreampose_trained import people_uv_folder, subject_pose_folder, trained_dreampose_folder

        trained = trained_dreampose_folder()
        files["models/dreampose"] = [(name, trained / name) for name in ("unet_epoch_20.pth", "adapter_20.pth",
                                                                          "vae_1499.pth")]
        files["models/clip_vision"] = [("clip-vit-base-patch32", trained / "clip-vit-base-patch32")]
        from .demo.temporal_dreampose import wide_motion_file

        # the motion module trained for the tiny DreamPose (docs/tiny-dreampose.md)
        files["models/animatediff_models"] = [(name, wide_motion_file() if name == DREAMPOSE_MOTION else path)
                                              for name, path in files["models/animatediff_models"]]
        swapped = {POSES_FOLDER: people_uv_folder("walk", 8), SUBJECT_IMAGE: trained / "subject.png",
                   SUBJECT_POSES: subject_pose_folder()}
        files["input"] = [(name, swapped.get(name, path)) for name, path in files["input"]]
    elif dreampose != "random":
        raise ValueError("dreampose must be 'trained' or 'random'")
    return files
