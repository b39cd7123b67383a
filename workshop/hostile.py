"""The hostile table of the server tier as data: two base graphs (AnimateDiff text to animation, DreamPose pose to video), their canaries, and the cases (name: base graph, edit, the node class that must be named, the input, words of the problem). Queued by tests/server/test_hostile.py; test_output_names.py reuses the output-name rows."""

from __future__ import annotations

import hashlib
import math

import numpy as np
from PIL import Image

from .fixtures.dreampose import uv_sequence_folder
from .graphs import train_motion_prompt
from .models import TEST_DREAMPOSE, TEST_PROFILE, demo_files
from .workflows import api_workflow, shrink_api_prompt

NAN, INF = math.nan, math.inf


def txt2vid(frames: int = 4) -> dict:
    p = shrink_api_prompt(api_workflow("animatediff_txt2vid"), seed=0)
    p["6"]["inputs"]["batch_size"] = frames
    return p


def pose_to_video() -> dict:
    return shrink_api_prompt(api_workflow("dreampose_pose_to_video"), seed=0)


CANARY_POSES = "hostile_canary_poses"


def canary_files() -> dict:
    """The demo files plus a 2-frame pose sequence, so the DreamPose canary stays a few UNet calls long."""
    files = demo_files(TEST_PROFILE, TEST_DREAMPOSE)
    files["input"] = [*files["input"], (CANARY_POSES, uv_sequence_folder(2, 80, 64, seed=5))]
    return files


def dreampose_canary(seed: int) -> dict:
    p = with_seed(pose_to_video(), seed)
    p["6"]["inputs"]["folder"] = CANARY_POSES
    p["11"]["inputs"]["steps"] = 1
    return as_png(p, ["13", 0])


def with_seed(prompt: dict, seed: int) -> dict:
    for node in prompt.values():
        for name in ("seed", "noise_seed"):
            if name in node["inputs"]:
                node["inputs"][name] = seed
    return prompt


def as_png(prompt: dict, images: list) -> dict:
    """The prompt with its save nodes replaced by one lossless SaveImage of ``images``."""
    for key in [k for k, n in prompt.items() if n["class_type"] in ("SaveAnimatedWEBP", "SaveVideo", "CreateVideo")]:
        del prompt[key]
    prompt["99"] = {"class_type": "SaveImage", "inputs": {"images": images, "filename_prefix": "canary"}}
    return prompt


CANARIES = {
    "animatediff": lambda seed: as_png(with_seed(txt2vid(), seed), ["8", 0]),
    "dreampose": dreampose_canary,
}


def frames_digest(server, entry) -> str:
    h = hashlib.sha256()
    for path in sorted(f for f in server.output_files(entry) if f.suffix == ".png"):
        with Image.open(path) as im:
            h.update(np.asarray(im.convert("RGB")).tobytes())
    return h.hexdigest()


def set_inputs(node: str, **inputs):
    def edit(p):
        p[node]["inputs"].update(inputs)
        return p
    return edit


def with_lora(**inputs):
    def edit(p):
        p["20"] = {"class_type": "AnimaPose_LoadMotionLoRA",
                   "inputs": {"motion_model": ["2", 0], "lora_name": "v2_lora_ZoomIn.ckpt", "strength": 1.0, **inputs}}
        p["3"]["inputs"]["motion_model"] = ["20", 0]
        return p
    return edit


def with_context(**inputs):
    def edit(p):
        p["21"] = {"class_type": "AnimaPose_ContextWindows",
                   "inputs": {"model": ["3", 0], "context_length": 4, "context_overlap": 1,
                              "context_schedule": "standard_uniform", "context_stride": 1, "closed_loop": False,
                              "fuse_method": "pyramid", **inputs}}
        p["7"]["inputs"]["model"] = ["21", 0]
        p["6"]["inputs"]["batch_size"] = 8
        return p
    return edit


def with_frames(n):
    return set_inputs("6", batch_size=n)


def training(save_name, mode: str = "motion_lora", linked: bool = False):
    """The motion-training graph alone, at a million steps: a bad name must fail before training, not after.
    ``linked``: the name comes from a String node, so it is only known when the training node starts."""
    def edit(_):
        p = train_motion_prompt(mode, 1000000)
        p["9"]["inputs"]["save_name"] = ["50", 0] if linked else save_name
        if linked:
            p["50"] = {"class_type": "PrimitiveString", "inputs": {"value": save_name}}
        return p
    return edit


def workflow(name: str, *edits):
    """Rows on another shipped workflow: the edit builds it (shrunk like the base graphs, 4 frames) instead of
    changing the base graph, whose canary still runs after the row."""
    def edit(_):
        p = shrink_api_prompt(api_workflow(name), seed=0)
        for node in p.values():
            if node["class_type"] == "EmptyLatentImage":
                node["inputs"]["batch_size"] = 4
        for e in edits:
            p = e(p)
        return p
    return edit


def saving_dreampose(prefix):
    def edit(_):
        return {"1": {"class_type": "AnimaPose_LoadDreamPose",
                      "inputs": {"unet_name": "unet_epoch_20.pth", "adapter_name": "adapter_20.pth"}},
                "3": {"class_type": "AnimaPose_SaveDreamPose",
                      "inputs": {"model": ["1", 0], "adapter": ["1", 1], "filename_prefix": prefix}}}
    return edit


def with_multival(per_frame: str):
    def edit(p):
        p["22"] = {"class_type": "AnimaPose_MotionMultival", "inputs": {"value": 1.0, "per_frame": per_frame}}
        p["3"]["inputs"]["effect_multival"] = ["22", 0]
        return p
    return edit


FAR_POSES = "hostile_far_poses.txt"


AD, DP = "animatediff", "dreampose"


CASES = {
    "motion_scale_nan": (AD, set_inputs("3", motion_scale=NAN), "AnimaPose_ApplyMotionModel", "motion_scale", "finite"),
    "groupnorm_bogus": (AD, set_inputs("3", groupnorm="bogus"), "AnimaPose_ApplyMotionModel", "groupnorm", "'bogus'"),
    "beta_schedule_bogus": (AD, set_inputs("3", beta_schedule="bogus"), "AnimaPose_ApplyMotionModel", "beta_schedule",
                            "'bogus'"),
    "model_name_number": (AD, set_inputs("2", model_name=123), "AnimaPose_LoadMotionModel", "model_name", "not a name"),
    "model_name_escapes": (AD, set_inputs("2", model_name="../../../etc/passwd"), "AnimaPose_LoadMotionModel",
                           "model_name", "not one of"),
    "model_name_missing": (AD, set_inputs("2", model_name="mm_nope.ckpt"), "AnimaPose_LoadMotionModel", "model_name",
                           "not one of"),
    "lora_name_null": (AD, with_lora(lora_name=None), "AnimaPose_LoadMotionLoRA", "lora_name", "None"),
    "lora_strength_nan": (AD, with_lora(strength=NAN), "AnimaPose_LoadMotionLoRA", "strength", "finite"),
    "context_schedule_bogus": (AD, with_context(context_schedule="bogus"), "AnimaPose_ContextWindows",
                               "context_schedule", "'bogus'"),
    "fuse_method_bogus": (AD, with_context(fuse_method="bogus"), "AnimaPose_ContextWindows", "fuse_method",
                          "'bogus'"),
    "context_overlap_too_big": (AD, with_context(context_overlap=4), "AnimaPose_ContextWindows",
                                "context_overlap", "leaves nothing new"),
    # failures after the MODEL was cloned (and, for the window, after it was loaded and injected)
    "window_beyond_positions": (AD, lambda p: with_frames(48)(with_context(context_length=40, context_overlap=4)(p)),
                                "AnimaPose_ApplyMotionModel", "motion_model", "positions"),
    "frames_beyond_positions": (AD, with_frames(40), "AnimaPose_ApplyMotionModel", "motion_model", "40 frames"),
    "sdxl_on_sd15": (AD, set_inputs("2", model_name="mm_sdxl_v10_beta.ckpt"), "AnimaPose_ApplyMotionModel",
                     "motion_model", "SDXL motion module"),
    "width_mismatch": (AD, set_inputs("2", model_name="mm_wide.safetensors"), "AnimaPose_ApplyMotionModel",
                       "motion_model", "channel widths do not match"),
    "truncated_file": (AD, set_inputs("2", model_name="mm_truncated.ckpt"), "AnimaPose_LoadMotionModel", "model_name",
                       "truncated"),
    "text_as_safetensors": (AD, set_inputs("2", model_name="notes.safetensors"), "AnimaPose_LoadMotionModel",
                            "model_name", "not a safetensors file"),
    "png_as_ckpt": (AD, set_inputs("2", model_name="picture.ckpt"), "AnimaPose_LoadMotionModel", "model_name",
                    "is a PNG image, not a PyTorch checkpoint"),
    "pickled_code": (AD, set_inputs("2", model_name="pickled.ckpt"), "AnimaPose_LoadMotionModel", "model_name",
                     "refused for safety"),
    "nan_weight": (AD, set_inputs("2", model_name="mm_one_nan.ckpt"), "AnimaPose_LoadMotionModel", "model_name",
                   "NaN or infinite values in tensor"),
    "image_cfg_nan": (DP, set_inputs("8", image_cfg=NAN), "AnimaPose_DreamPoseGuider", "image_cfg", "finite"),
    "pose_cfg_nan": (DP, set_inputs("8", pose_cfg=NAN), "AnimaPose_DreamPoseGuider", "pose_cfg", "finite"),
    "fit_bogus": (DP, set_inputs("5", fit="bogus"), "AnimaPose_DreamPoseImageConditioning", "fit", "'bogus'"),
    "value_range_bogus": (DP, set_inputs("5", value_range="bogus"), "AnimaPose_DreamPoseImageConditioning",
                          "value_range", "'bogus'"),
    "multi_image_bogus": (DP, set_inputs("5", multi_image="bogus"), "AnimaPose_DreamPoseImageConditioning",
                          "multi_image", "'bogus'"),
    "pose_fit_bogus": (DP, set_inputs("7", fit="bogus"), "AnimaPose_PoseConditioning", "fit", "'bogus'"),
    "window_bogus": (DP, set_inputs("7", window="bogus"), "AnimaPose_PoseConditioning", "window", "'bogus'"),
    # refused when queued (the node validates its input), before anything runs
    "pose_folder_escapes": (DP, set_inputs("6", folder="../../../etc"), "AnimaPose_LoadDensePoseUV", "folder",
                            "outside ComfyUI's input folder"),
    "pose_folder_absolute": (DP, set_inputs("6", folder="/etc"), "AnimaPose_LoadDensePoseUV", "folder",
                             "outside ComfyUI's input folder"),
    "unet_name_number": (DP, set_inputs("1", unet_name=5), "AnimaPose_LoadDreamPose", "unet_name", "not a name"),
    # output names: refused when queued (through a link: when the node starts), before any training or saving;
    # the DreamPose rows first, so the DreamPose canary stays cached from the rows above
    "prefix_nul": (DP, saving_dreampose("bad\0prefix"), "AnimaPose_SaveDreamPose", "filename_prefix", "(U+0000)"),
    "prefix_300_chars": (DP, saving_dreampose("p" * 300), "AnimaPose_SaveDreamPose", "filename_prefix",
                         "is 300 characters long"),
    "prefix_escapes": (DP, saving_dreampose("../checkpoints/evil"), "AnimaPose_SaveDreamPose", "filename_prefix",
                       "the folder part '..'"),
    "prefix_absolute": (DP, saving_dreampose("/abs/x"), "AnimaPose_SaveDreamPose", "filename_prefix",
                        "is an absolute path"),
    "prefix_empty": (DP, saving_dreampose(""), "AnimaPose_SaveDreamPose", "filename_prefix", "the name is empty"),
    "save_name_nul": (AD, training("bad\0name"), "AnimaPose_TrainMotionModule", "save_name", "(U+0000)"),
    "save_name_300_chars": (AD, training("x" * 300), "AnimaPose_TrainMotionModule", "save_name",
                            "is 300 characters long"),
    "save_name_parent": (AD, training("../x"), "AnimaPose_TrainMotionModule", "save_name", "the folder part '..'"),
    "save_name_absolute": (AD, training("/abs"), "AnimaPose_TrainMotionModule", "save_name", "is an absolute path"),
    "save_name_hidden": (AD, training(".hidden"), "AnimaPose_TrainMotionModule", "save_name",
                         "starts a name with a dot"),
    "save_name_shipped": (AD, training("mm_sd_v15_v2", mode="motion_module"), "AnimaPose_TrainMotionModule",
                          "save_name", "is the name of a released model"),
    "save_name_linked": (AD, training("../x", linked=True), "AnimaPose_TrainMotionModule", "save_name",
                         "the folder part '..'"),
    # paths and archives (files from the bad_inputs fixture), refused when queued
    "pose_folder_link_out": (DP, set_inputs("6", folder="hostile_linked_out"), "AnimaPose_LoadDensePoseUV", "folder",
                             "leads outside ComfyUI's input folder"),
    "pose_archive_link_out": (DP, set_inputs("6", folder="hostile_linked_out.zip"), "AnimaPose_LoadDensePoseUV", "folder",
                              "leads outside ComfyUI's input folder"),
    "pose_file_link_out": (DP, set_inputs("6", folder="hostile_mixed_poses"), "AnimaPose_LoadDensePoseUV", "folder",
                           "'frame_1_densepose.npy' is a link that leads outside ComfyUI's input folder"),
    "pose_archive_bomb": (DP, set_inputs("6", folder="hostile_bomb.zip"), "AnimaPose_LoadDensePoseUV", "folder",
                          "unpacks to 512 MB"),
    "pose_archive_padded": (DP, set_inputs("6", folder="hostile_padded.zip"), "AnimaPose_LoadDensePoseUV", "folder",
                            "header describes"),
    "camera_file_link_out": (AD, workflow("animatediff_cameractrl", set_inputs("5", pose_file="hostile_linked_out.txt")),
                             "AnimaPose_CameraTrajectory", "pose_file", "leads outside ComfyUI's input folder"),
    # numbers typed as text, backstop, ownership
    "multival_huge": (AD, with_multival("0: 1e30"), "AnimaPose_MotionMultival", "per_frame", "outside -10..10"),
    "multival_minus_100": (AD, with_multival("0: -100"), "AnimaPose_MotionMultival", "per_frame", "outside -10..10"),
    "multival_too_few": (AD, with_multival("1, 0.5, 0.5"), "AnimaPose_MotionMultival", "per_frame",
                         "3 values for a clip of 4 frames"),
    "affinity_huge": (AD, workflow("animatediff_img2vid", set_inputs("8", frames=4, custom_affinity="1e30, 1, 1, 1")),
                      "AnimaPose_PIAImage", "custom_affinity", "outside 0..1"),
    "affinity_negative": (AD, workflow("animatediff_img2vid", set_inputs("8", frames=4, custom_affinity="-5,1,1,1")),
                          "AnimaPose_PIAImage", "custom_affinity", "outside 0..1"),
    "affinity_too_many": (AD, workflow("animatediff_img2vid", set_inputs("8", frames=4,
                                                                    custom_affinity=", ".join(["1"] * 100))),
                          "AnimaPose_PIAImage", "custom_affinity", "100 values for a clip of 4 frames"),
    "keyframe_index_absurd": (AD, workflow("animatediff_sparsectrl_keyframes", set_inputs("7", frame_indices="1000000000")),
                              "AnimaPose_SparseCtrlKeyframes", "frame_indices", "outside -4096..4095"),
    # known only inside the sampler, still charged to the keyframes node
    "keyframe_beyond_clip": (AD, workflow("animatediff_sparsectrl_keyframes", set_inputs("7", frame_indices="0, 99")),
                             "AnimaPose_SparseCtrlKeyframes", "frame_indices", "frame 99 is outside the clip of 4"),
    "keyframe_negative": (AD, workflow("animatediff_sparsectrl_keyframes", set_inputs("7", frame_indices="-99")),
                          "AnimaPose_SparseCtrlKeyframes", "frame_indices", "frame -99 is outside"),
    "keyframes_more_than_images": (AD, workflow("animatediff_sparsectrl_keyframes",
                                                 set_inputs("7", frame_indices="0, 1, 2")),
                                   "AnimaPose_SparseCtrlKeyframes", "frame_indices", "only 2 hint image(s)"),
    "travel_frame_beyond": (AD, workflow("animatediff_prompt_travel", set_inputs("4", frames=4, text="0: a\n99: b")),
                            "AnimaPose_PromptTravel", "text", "outside the clip's frames 0..3"),
    "travel_lone_surrogate": (AD, workflow("animatediff_prompt_travel", set_inputs("4", frames=4, text="0: a \ud800 b")),
                              "AnimaPose_PromptTravel", "text", "U+D800"),
    "travel_one_megabyte": (AD, workflow("animatediff_prompt_travel", set_inputs("4", frames=4,
                                                                           text="0: " + "a cat " * 175_000)),
                            "AnimaPose_PromptTravel", "text", "more than the 20,000"),
    "camera_preset_longer": (AD, workflow("animatediff_cameractrl", set_inputs("5", frames=4096)),
                             "AnimaPose_ApplyCameraCtrl", "camera", "made for 4096 frames but the latent has 4"),
    "camera_preset_shorter": (AD, workflow("animatediff_cameractrl", set_inputs("5", frames=1)),
                              "AnimaPose_ApplyCameraCtrl", "camera", "made for 1 frames but the latent has 4"),
    "camera_pose_file_far": (AD, workflow("animatediff_cameractrl", set_inputs("5", pose_file=FAR_POSES)),
                             "AnimaPose_CameraTrajectory", "pose_file", "beyond the 10000"),
    "camera_on_v2": (AD, workflow("animatediff_cameractrl", set_inputs("2", model_name="mm_sd_v15_v2.ckpt")),
                     "AnimaPose_ApplyCameraCtrl", "model", "v2-type motion module"),
    "closed_loop_maybe": (AD, with_context(closed_loop="maybe"), "AnimaPose_ContextWindows", "closed_loop",
                          "'maybe' is not true or false"),
    "closed_loop_false_text": (AD, with_context(closed_loop="false"), "AnimaPose_ContextWindows", "closed_loop",
                               "'false' is not true or false"),
}
