"""Hostile and careless input over HTTP, table-driven.

Every case is queued on the shared server. Its error must name the node (its display name), the input and the fix;
then a short canary workflow runs and its frames must be byte-identical to the same canary on a fresh server: a
failed run must never change a later one (the motion modules of a cached Apply node once vanished after a failed
Context Windows node, issue 9). Canaries alternate between two seeds so the sampler really runs again each time,
while the loaders and the Apply node stay cached, as they do for a user who edits one widget and queues again.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from tests.fixtures.dreampose import uv_sequence_folder
from tests.fixtures.motion import motion_module_file
from tests.harness.models import TEST_DREAMPOSE, TEST_PROFILE, demo_files
from tests.harness.server import TEST_SERVER_THREADS, ComfyServer, ExecutionFailed, prepare_base_dir
from tests.harness.workflows import api_workflow, shrink_api_prompt
from tests.server.test_motion_training import _train_prompt

log = logging.getLogger(__name__)

SEEDS = (11, 12)
NAN, INF = math.nan, math.inf


# -- the two base graphs and their canaries ---------------------------------------------------------------------

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
    p = _seed(pose_to_video(), seed)
    p["6"]["inputs"]["folder"] = CANARY_POSES
    p["11"]["inputs"]["steps"] = 1
    return _as_png(p, ["13", 0])


def _seed(prompt: dict, seed: int) -> dict:
    for node in prompt.values():
        for name in ("seed", "noise_seed"):
            if name in node["inputs"]:
                node["inputs"][name] = seed
    return prompt


def _as_png(prompt: dict, images: list) -> dict:
    """The prompt with its save nodes replaced by one lossless SaveImage of ``images``."""
    for key in [k for k, n in prompt.items() if n["class_type"] in ("SaveAnimatedWEBP", "SaveVideo", "CreateVideo")]:
        del prompt[key]
    prompt["99"] = {"class_type": "SaveImage", "inputs": {"images": images, "filename_prefix": "canary"}}
    return prompt


CANARIES = {
    "animatediff": lambda seed: _as_png(_seed(txt2vid(), seed), ["8", 0]),
    "dreampose": dreampose_canary,
}


def frames_digest(server, entry) -> str:
    h = hashlib.sha256()
    for path in sorted(f for f in server.output_files(entry) if f.suffix == ".png"):
        with Image.open(path) as im:
            h.update(np.asarray(im.convert("RGB")).tobytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def fresh_digests(tmp_path_factory):
    """Canary frames of a server that never saw a bad input: {(canary, seed): digest}."""
    base = prepare_base_dir(tmp_path_factory.mktemp("fresh-base"), canary_files())
    server = ComfyServer(base, threads=TEST_SERVER_THREADS).start()
    try:
        return {(name, seed): frames_digest(server, server.run(build(seed), timeout=600))
                for name, build in CANARIES.items() for seed in SEEDS}
    finally:
        server.stop()


class Canary:
    """Runs a canary after every case, alternating seeds, and compares it with the fresh server's frames."""

    def __init__(self, server, fresh):
        self.server, self.fresh, self.runs = server, fresh, 0

    def check(self, name: str, after: str) -> None:
        seed = SEEDS[self.runs % len(SEEDS)]
        self.runs += 1
        digest = frames_digest(self.server, self.server.run(CANARIES[name](seed), timeout=600))
        assert digest == self.fresh[(name, seed)], f"the {name} canary (seed {seed}) changed after {after}"


@pytest.fixture(scope="module")
def canary(comfy_server, fresh_digests):
    prepare_base_dir(comfy_server.base, canary_files())
    return Canary(comfy_server, fresh_digests)


@pytest.fixture(scope="module")
def display_names(comfy_server):
    return {k: v.get("display_name", k) for k, v in comfy_server.object_info().items()}


# -- files the cases need in the shared server's model folders --------------------------------------------------

@pytest.fixture(scope="module")
def bad_files(comfy_server):
    folder = comfy_server.base / "models" / "animatediff_models"
    good = motion_module_file("v2", "original", "tiny", ext=".ckpt")
    data = good.read_bytes()
    (folder / "mm_truncated.ckpt").write_bytes(data[: len(data) // 2])
    (folder / "notes.safetensors").write_text("these are my notes, not a model")
    (folder / "picture.ckpt").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    import argparse

    torch.save({"state_dict": {"w": torch.zeros(1)}, "config": argparse.Namespace(lr=1e-4)}, folder / "pickled.ckpt")
    shutil.copy(motion_module_file("sdxl_beta", "original", "small", ext=".ckpt"), folder / "mm_sdxl_v10_beta.ckpt")
    shutil.copy(motion_module_file("v3", "original", "tiny_wide"), folder / "mm_wide.safetensors")
    sd = torch.load(good, weights_only=True)
    inner = sd.get("state_dict", sd)
    name = sorted(k for k, v in inner.items() if v.is_floating_point() and v.ndim == 2)[0]
    inner[name] = inner[name].clone()
    inner[name].view(-1)[3] = float("nan")
    torch.save(sd, folder / "mm_one_nan.ckpt")
    identity = "0.47 0.84 0.5 0.5 0 0 1 0 0 0 0 1 0 0 0 0 1 0"
    far = "0.47 0.84 0.5 0.5 0 0 1 0 0 1e30 0 1 0 0 0 0 1 0"
    (comfy_server.base / "input" / FAR_POSES).write_text(f"url\n0 {identity}\n1 {far}\n")
    return {"nan_tensor": name}


@pytest.fixture(scope="module")
def bad_inputs(comfy_server, tmp_path_factory):
    """Pose sources and a camera file in the shared server's input folder that must be refused: links leading out
    of it (to a folder, an archive, a file, and a file inside a real folder) and archives that would cost more than
    their poses need. The link targets are real, readable pose files outside the input folder."""
    import zipfile

    from tests.fixtures.dreampose import pose_bomb_zip
    from tests.unit.test_cameractrl import pose_text

    inputs, outside = comfy_server.base / "input", tmp_path_factory.mktemp("outside-input")
    poses = uv_sequence_folder(2, 80, 64, seed=5)
    shutil.copytree(poses, outside / "poses")
    shutil.make_archive(str(outside / "poses"), "zip", poses)
    (outside / "orbit.txt").write_text(pose_text(4))
    mixed = inputs / "hostile_mixed_poses"
    shutil.rmtree(mixed, ignore_errors=True)
    mixed.mkdir()
    shutil.copy(poses / "frame_0_densepose.npy", mixed)
    links = {"hostile_linked_out": outside / "poses", "hostile_linked_out.zip": outside / "poses.zip",
             "hostile_linked_out.txt": outside / "orbit.txt",
             "hostile_mixed_poses/frame_1_densepose.npy": outside / "poses" / "frame_1_densepose.npy"}
    for name, target in links.items():
        (inputs / name).unlink(missing_ok=True)
        (inputs / name).symlink_to(target, target_is_directory=target.is_dir())
    shutil.copy(pose_bomb_zip(), inputs / "hostile_bomb.zip")
    # a 6x8 map followed by 64 MB of zeros that its header does not declare
    buf = io.BytesIO()
    np.save(buf, np.zeros((2, 8, 6), np.float32))
    with zipfile.ZipFile(inputs / "hostile_padded.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("frame_0_densepose.npy", buf.getvalue() + bytes(64 * 2**20))


# -- the cases --------------------------------------------------------------------------------------------------

def _set(node: str, **inputs):
    def edit(p):
        p[node]["inputs"].update(inputs)
        return p
    return edit


def _with_lora(**inputs):
    def edit(p):
        p["20"] = {"class_type": "AnimaPose_LoadMotionLoRA",
                   "inputs": {"motion_model": ["2", 0], "lora_name": "v2_lora_ZoomIn.ckpt", "strength": 1.0, **inputs}}
        p["3"]["inputs"]["motion_model"] = ["20", 0]
        return p
    return edit


def _with_context(**inputs):
    def edit(p):
        p["21"] = {"class_type": "AnimaPose_ContextWindows",
                   "inputs": {"model": ["3", 0], "context_length": 4, "context_overlap": 1,
                              "context_schedule": "standard_uniform", "context_stride": 1, "closed_loop": False,
                              "fuse_method": "pyramid", **inputs}}
        p["7"]["inputs"]["model"] = ["21", 0]
        p["6"]["inputs"]["batch_size"] = 8
        return p
    return edit


def _frames(n):
    return _set("6", batch_size=n)


def _training(save_name, mode: str = "motion_lora", linked: bool = False):
    """The motion-training graph alone, at a million steps: a bad name must fail before training, not after.
    ``linked``: the name comes from a String node, so it is only known when the training node starts."""
    def edit(_):
        p = _train_prompt(mode, 1000000)
        p["9"]["inputs"]["save_name"] = ["50", 0] if linked else save_name
        if linked:
            p["50"] = {"class_type": "PrimitiveString", "inputs": {"value": save_name}}
        return p
    return edit


def _workflow(name: str, *edits):
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


def _saving_dreampose(prefix):
    def edit(_):
        return {"1": {"class_type": "AnimaPose_LoadDreamPose",
                      "inputs": {"unet_name": "unet_epoch_20.pth", "adapter_name": "adapter_20.pth"}},
                "3": {"class_type": "AnimaPose_SaveDreamPose",
                      "inputs": {"model": ["1", 0], "adapter": ["1", 1], "filename_prefix": prefix}}}
    return edit


def _with_multival(per_frame: str):
    def edit(p):
        p["22"] = {"class_type": "AnimaPose_MotionMultival", "inputs": {"value": 1.0, "per_frame": per_frame}}
        p["3"]["inputs"]["effect_multival"] = ["22", 0]
        return p
    return edit


FAR_POSES = "hostile_far_poses.txt"
# name: (base graph, edit, class of the node that must be named, input, words of the problem)
AD, DP = "animatediff", "dreampose"
CASES = {
    "motion_scale_nan": (AD, _set("3", motion_scale=NAN), "AnimaPose_ApplyMotionModel", "motion_scale", "finite"),
    "groupnorm_bogus": (AD, _set("3", groupnorm="bogus"), "AnimaPose_ApplyMotionModel", "groupnorm", "'bogus'"),
    "beta_schedule_bogus": (AD, _set("3", beta_schedule="bogus"), "AnimaPose_ApplyMotionModel", "beta_schedule",
                            "'bogus'"),
    "model_name_number": (AD, _set("2", model_name=123), "AnimaPose_LoadMotionModel", "model_name", "not a name"),
    "model_name_escapes": (AD, _set("2", model_name="../../../etc/passwd"), "AnimaPose_LoadMotionModel",
                           "model_name", "not one of"),
    "model_name_missing": (AD, _set("2", model_name="mm_nope.ckpt"), "AnimaPose_LoadMotionModel", "model_name",
                           "not one of"),
    "lora_name_null": (AD, _with_lora(lora_name=None), "AnimaPose_LoadMotionLoRA", "lora_name", "None"),
    "lora_strength_nan": (AD, _with_lora(strength=NAN), "AnimaPose_LoadMotionLoRA", "strength", "finite"),
    "context_schedule_bogus": (AD, _with_context(context_schedule="bogus"), "AnimaPose_ContextWindows",
                               "context_schedule", "'bogus'"),
    "fuse_method_bogus": (AD, _with_context(fuse_method="bogus"), "AnimaPose_ContextWindows", "fuse_method",
                          "'bogus'"),
    "context_overlap_too_big": (AD, _with_context(context_overlap=4), "AnimaPose_ContextWindows",
                                "context_overlap", "leaves nothing new"),
    # failures after the MODEL was cloned (and, for the window, after it was loaded and injected)
    "window_beyond_positions": (AD, lambda p: _frames(48)(_with_context(context_length=40, context_overlap=4)(p)),
                                "AnimaPose_ApplyMotionModel", "motion_model", "positions"),
    "frames_beyond_positions": (AD, _frames(40), "AnimaPose_ApplyMotionModel", "motion_model", "40 frames"),
    "sdxl_on_sd15": (AD, _set("2", model_name="mm_sdxl_v10_beta.ckpt"), "AnimaPose_ApplyMotionModel",
                     "motion_model", "SDXL motion module"),
    "width_mismatch": (AD, _set("2", model_name="mm_wide.safetensors"), "AnimaPose_ApplyMotionModel",
                       "motion_model", "channel widths do not match"),
    "truncated_file": (AD, _set("2", model_name="mm_truncated.ckpt"), "AnimaPose_LoadMotionModel", "model_name",
                       "truncated"),
    "text_as_safetensors": (AD, _set("2", model_name="notes.safetensors"), "AnimaPose_LoadMotionModel",
                            "model_name", "not a safetensors file"),
    "png_as_ckpt": (AD, _set("2", model_name="picture.ckpt"), "AnimaPose_LoadMotionModel", "model_name",
                    "is a PNG image, not a PyTorch checkpoint"),
    "pickled_code": (AD, _set("2", model_name="pickled.ckpt"), "AnimaPose_LoadMotionModel", "model_name",
                     "refused for safety"),
    "nan_weight": (AD, _set("2", model_name="mm_one_nan.ckpt"), "AnimaPose_LoadMotionModel", "model_name",
                   "NaN or infinite values in tensor"),
    "image_cfg_nan": (DP, _set("8", image_cfg=NAN), "AnimaPose_DreamPoseGuider", "image_cfg", "finite"),
    "pose_cfg_nan": (DP, _set("8", pose_cfg=NAN), "AnimaPose_DreamPoseGuider", "pose_cfg", "finite"),
    "fit_bogus": (DP, _set("5", fit="bogus"), "AnimaPose_DreamPoseImageConditioning", "fit", "'bogus'"),
    "value_range_bogus": (DP, _set("5", value_range="bogus"), "AnimaPose_DreamPoseImageConditioning",
                          "value_range", "'bogus'"),
    "multi_image_bogus": (DP, _set("5", multi_image="bogus"), "AnimaPose_DreamPoseImageConditioning",
                          "multi_image", "'bogus'"),
    "pose_fit_bogus": (DP, _set("7", fit="bogus"), "AnimaPose_PoseConditioning", "fit", "'bogus'"),
    "window_bogus": (DP, _set("7", window="bogus"), "AnimaPose_PoseConditioning", "window", "'bogus'"),
    # refused when queued (the node validates its input), before anything runs
    "pose_folder_escapes": (DP, _set("6", folder="../../../etc"), "AnimaPose_LoadDensePoseUV", "folder",
                            "outside ComfyUI's input folder"),
    "pose_folder_absolute": (DP, _set("6", folder="/etc"), "AnimaPose_LoadDensePoseUV", "folder",
                             "outside ComfyUI's input folder"),
    "unet_name_number": (DP, _set("1", unet_name=5), "AnimaPose_LoadDreamPose", "unet_name", "not a name"),
    # output names: refused when queued (through a link: when the node starts), before any training or saving;
    # the DreamPose rows first, so the DreamPose canary stays cached from the rows above
    "prefix_nul": (DP, _saving_dreampose("bad\0prefix"), "AnimaPose_SaveDreamPose", "filename_prefix", "(U+0000)"),
    "prefix_300_chars": (DP, _saving_dreampose("p" * 300), "AnimaPose_SaveDreamPose", "filename_prefix",
                         "is 300 characters long"),
    "prefix_escapes": (DP, _saving_dreampose("../checkpoints/evil"), "AnimaPose_SaveDreamPose", "filename_prefix",
                       "the folder part '..'"),
    "prefix_absolute": (DP, _saving_dreampose("/abs/x"), "AnimaPose_SaveDreamPose", "filename_prefix",
                        "is an absolute path"),
    "prefix_empty": (DP, _saving_dreampose(""), "AnimaPose_SaveDreamPose", "filename_prefix", "the name is empty"),
    "save_name_nul": (AD, _training("bad\0name"), "AnimaPose_TrainMotionModule", "save_name", "(U+0000)"),
    "save_name_300_chars": (AD, _training("x" * 300), "AnimaPose_TrainMotionModule", "save_name",
                            "is 300 characters long"),
    "save_name_parent": (AD, _training("../x"), "AnimaPose_TrainMotionModule", "save_name", "the folder part '..'"),
    "save_name_absolute": (AD, _training("/abs"), "AnimaPose_TrainMotionModule", "save_name", "is an absolute path"),
    "save_name_hidden": (AD, _training(".hidden"), "AnimaPose_TrainMotionModule", "save_name",
                         "starts a name with a dot"),
    "save_name_shipped": (AD, _training("mm_sd_v15_v2", mode="motion_module"), "AnimaPose_TrainMotionModule",
                          "save_name", "is the name of a released model"),
    "save_name_linked": (AD, _training("../x", linked=True), "AnimaPose_TrainMotionModule", "save_name",
                         "the folder part '..'"),
    # paths and archives (files from the bad_inputs fixture), refused when queued
    "pose_folder_link_out": (DP, _set("6", folder="hostile_linked_out"), "AnimaPose_LoadDensePoseUV", "folder",
                             "leads outside ComfyUI's input folder"),
    "pose_archive_link_out": (DP, _set("6", folder="hostile_linked_out.zip"), "AnimaPose_LoadDensePoseUV", "folder",
                              "leads outside ComfyUI's input folder"),
    "pose_file_link_out": (DP, _set("6", folder="hostile_mixed_poses"), "AnimaPose_LoadDensePoseUV", "folder",
                           "'frame_1_densepose.npy' is a link that leads outside ComfyUI's input folder"),
    "pose_archive_bomb": (DP, _set("6", folder="hostile_bomb.zip"), "AnimaPose_LoadDensePoseUV", "folder",
                          "unpacks to 512 MB"),
    "pose_archive_padded": (DP, _set("6", folder="hostile_padded.zip"), "AnimaPose_LoadDensePoseUV", "folder",
                            "header describes"),
    "camera_file_link_out": (AD, _workflow("animatediff_cameractrl", _set("5", pose_file="hostile_linked_out.txt")),
                             "AnimaPose_CameraTrajectory", "pose_file", "leads outside ComfyUI's input folder"),
    # numbers typed as text, backstop, ownership
    "multival_huge": (AD, _with_multival("0: 1e30"), "AnimaPose_MotionMultival", "per_frame", "outside -10..10"),
    "multival_minus_100": (AD, _with_multival("0: -100"), "AnimaPose_MotionMultival", "per_frame", "outside -10..10"),
    "multival_too_few": (AD, _with_multival("1, 0.5, 0.5"), "AnimaPose_MotionMultival", "per_frame",
                         "3 values for a clip of 4 frames"),
    "affinity_huge": (AD, _workflow("animatediff_img2vid", _set("8", frames=4, custom_affinity="1e30, 1, 1, 1")),
                      "AnimaPose_PIAImage", "custom_affinity", "outside 0..1"),
    "affinity_negative": (AD, _workflow("animatediff_img2vid", _set("8", frames=4, custom_affinity="-5,1,1,1")),
                          "AnimaPose_PIAImage", "custom_affinity", "outside 0..1"),
    "affinity_too_many": (AD, _workflow("animatediff_img2vid", _set("8", frames=4,
                                                                    custom_affinity=", ".join(["1"] * 100))),
                          "AnimaPose_PIAImage", "custom_affinity", "100 values for a clip of 4 frames"),
    "keyframe_index_absurd": (AD, _workflow("animatediff_sparsectrl_keyframes", _set("7", frame_indices="1000000000")),
                              "AnimaPose_SparseCtrlKeyframes", "frame_indices", "outside -4096..4095"),
    # known only inside the sampler, still charged to the keyframes node
    "keyframe_beyond_clip": (AD, _workflow("animatediff_sparsectrl_keyframes", _set("7", frame_indices="0, 99")),
                             "AnimaPose_SparseCtrlKeyframes", "frame_indices", "frame 99 is outside the clip of 4"),
    "keyframe_negative": (AD, _workflow("animatediff_sparsectrl_keyframes", _set("7", frame_indices="-99")),
                          "AnimaPose_SparseCtrlKeyframes", "frame_indices", "frame -99 is outside"),
    "keyframes_more_than_images": (AD, _workflow("animatediff_sparsectrl_keyframes",
                                                 _set("7", frame_indices="0, 1, 2")),
                                   "AnimaPose_SparseCtrlKeyframes", "frame_indices", "only 2 hint image(s)"),
    "travel_frame_beyond": (AD, _workflow("animatediff_prompt_travel", _set("4", frames=4, text="0: a\n99: b")),
                            "AnimaPose_PromptTravel", "text", "outside the clip's frames 0..3"),
    "travel_lone_surrogate": (AD, _workflow("animatediff_prompt_travel", _set("4", frames=4, text="0: a \ud800 b")),
                              "AnimaPose_PromptTravel", "text", "U+D800"),
    "travel_one_megabyte": (AD, _workflow("animatediff_prompt_travel", _set("4", frames=4,
                                                                           text="0: " + "a cat " * 175_000)),
                            "AnimaPose_PromptTravel", "text", "more than the 20,000"),
    "camera_preset_longer": (AD, _workflow("animatediff_cameractrl", _set("5", frames=4096)),
                             "AnimaPose_ApplyCameraCtrl", "camera", "made for 4096 frames but the latent has 4"),
    "camera_preset_shorter": (AD, _workflow("animatediff_cameractrl", _set("5", frames=1)),
                              "AnimaPose_ApplyCameraCtrl", "camera", "made for 1 frames but the latent has 4"),
    "camera_pose_file_far": (AD, _workflow("animatediff_cameractrl", _set("5", pose_file=FAR_POSES)),
                             "AnimaPose_CameraTrajectory", "pose_file", "beyond the 10000"),
    "camera_on_v2": (AD, _workflow("animatediff_cameractrl", _set("2", model_name="mm_sd_v15_v2.ckpt")),
                     "AnimaPose_ApplyCameraCtrl", "model", "v2-type motion module"),
    "closed_loop_maybe": (AD, _with_context(closed_loop="maybe"), "AnimaPose_ContextWindows", "closed_loop",
                          "'maybe' is not true or false"),
    "closed_loop_false_text": (AD, _with_context(closed_loop="false"), "AnimaPose_ContextWindows", "closed_loop",
                               "'false' is not true or false"),
}


@pytest.mark.parametrize("case", CASES)
def test_hostile_input(comfy_server, bad_files, bad_inputs, canary, display_names, case):
    base, edit, node_class, input_name, problem = CASES[case]
    prompt = edit(txt2vid() if base == AD else pose_to_video())
    with pytest.raises(ExecutionFailed) as err:
        comfy_server.run(prompt, timeout=300)
    message = str(err.value)
    if case == "nan_weight":
        problem += f" '{bad_files['nan_tensor']}'"
    for part in (display_names[node_class], f"input '{input_name}'", problem, "Fix:"):
        assert part in message, f"{case}: {part!r} missing from: {message}"
    log.info("%s: %s", case, message)
    canary.check(base, after=case)


@pytest.mark.parametrize("edit", [_set("3", motion_scale=INF), _set("3", motion_scale=-INF)])
def test_infinity_refused_before_running(comfy_server, edit):
    """Every float input has a range, so ComfyUI's own prompt validation refuses infinity, naming the input."""
    with pytest.raises(ExecutionFailed) as err:
        comfy_server.queue(edit(txt2vid()))
    assert "motion_scale" in str(err.value) and "inf" in str(err.value)


def test_failed_graph_keeps_motion(comfy_server, canary):
    """Issue 9's exact sequence: txt2vid; txt2vid in context windows; txt2vid; context windows with an unknown
    schedule (fails); then txt2vid with a new seed must still animate: not equal to motion_scale 0, and equal to
    the same prompt on a fresh server (the canary)."""
    comfy_server.run(_seed(txt2vid(), 1))
    comfy_server.run(_with_context()(_seed(txt2vid(), 2)))
    comfy_server.run(_seed(txt2vid(), 3))
    with pytest.raises(ExecutionFailed):
        comfy_server.run(_with_context(context_schedule="bogus")(_seed(txt2vid(), 4)))
    canary.check(AD, after="a failed context-windows graph")
    seed = SEEDS[(canary.runs - 1) % len(SEEDS)]
    static = _as_png(_set("3", motion_scale=0.0)(_seed(txt2vid(), seed)), ["8", 0])
    assert frames_digest(comfy_server, comfy_server.run(static)) != canary.fresh[(AD, seed)], \
        "motion_scale 0 gives the same frames as motion_scale 1: the motion modules were not applied"


def test_odd_pose_size_encodes(comfy_server):
    """Poses of 65x81 sample and save as MP4 (H.264 needs even sizes; the decode gives 64x80)."""
    folder = comfy_server.base / "input" / "odd_poses"
    if not folder.exists():  # a copy: links leading out of the input folder are refused
        shutil.copytree(uv_sequence_folder(4, 81, 65, seed=3), folder)
    prompt = pose_to_video()
    prompt["6"]["inputs"]["folder"] = "odd_poses"
    prompt["11"]["inputs"]["steps"] = 1
    entry = comfy_server.run(prompt, timeout=600)
    videos = [f for f in comfy_server.output_files(entry) if f.suffix == ".mp4"]
    assert videos and videos[0].stat().st_size > 0
    import av

    with av.open(str(videos[0])) as container:
        frame = next(container.decode(video=0))
    assert (frame.width, frame.height) == (64, 80)


def test_save_dreampose_never_overwrites(comfy_server):
    """Saving twice with one prefix writes a second numbered set; the first stays byte-identical."""
    folder = comfy_server.base / "models" / "dreampose"

    def save(with_vae: bool):
        p = {"1": {"class_type": "AnimaPose_LoadDreamPose",
                   "inputs": {"unet_name": "unet_epoch_20.pth", "adapter_name": "adapter_20.pth"}},
             "3": {"class_type": "AnimaPose_SaveDreamPose",
                   "inputs": {"model": ["1", 0], "adapter": ["1", 1], "filename_prefix": "hostile_twice"}}}
        if with_vae:
            p["2"] = {"class_type": "AnimaPose_LoadDreamPoseVAE", "inputs": {"vae_name": "vae_1499.pth"}}
            p["3"]["inputs"]["vae"] = ["2", 0]
        comfy_server.run(p, timeout=600)

    save(False)
    first = {f.name: f.read_bytes() for f in folder.glob("hostile_twice_*")}
    assert sorted(first) == ["hostile_twice_00001_adapter.safetensors", "hostile_twice_00001_unet.safetensors"]
    save(True)
    names = sorted(f.name for f in folder.glob("hostile_twice_*"))
    assert names == sorted([*first, "hostile_twice_00002_adapter.safetensors", "hostile_twice_00002_unet.safetensors",
                            "hostile_twice_00002_vae.safetensors"])
    assert all((folder / n).read_bytes() == data for n, data in first.items())


def test_progress_moves_per_window(comfy_server):
    """With context windows the progress bar moves after every window inside a step (watched on ComfyUI's own
    websocket, as the frontend does): 12 frames in windows of 4 (overlap 1) over 2 steps."""
    import asyncio
    import json
    import uuid

    import aiohttp

    prompt = _with_context(context_schedule="standard_static")(_seed(txt2vid(), 5))
    prompt["6"]["inputs"]["batch_size"] = 12
    prompt["7"]["inputs"]["steps"] = 2
    client_id = uuid.uuid4().hex

    async def watch() -> list[tuple[int, int]]:
        seen = []
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"ws://127.0.0.1:{comfy_server.port}/ws?clientId={client_id}") as ws:
                prompt_id = comfy_server.queue(prompt, client_id=client_id)
                async for msg in ws:
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        continue
                    data = json.loads(msg.data)
                    body = data.get("data", {})
                    if body.get("prompt_id") != prompt_id:
                        continue
                    if data["type"] == "progress" and body.get("node") == "7":
                        seen.append((body["value"], body["max"]))
                    if data["type"] in ("execution_success", "execution_error"):
                        assert data["type"] == "execution_success", body
                        return seen
        return seen

    # A thread of its own: the browser tier's Playwright leaves an event loop running in this one.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        updates = pool.submit(lambda: asyncio.run(asyncio.wait_for(watch(), timeout=600))).result()
    per_window = [(v, m) for v, m in updates if m > 2]
    assert per_window, updates
    total = per_window[0][1]
    assert total % 2 == 0 and total // 2 >= 4, updates  # 2 steps x at least 4 windows
    assert len({v for v, _ in per_window}) >= total // 2, updates  # at least every window of one step reported


def test_error_type_names_no_server_path(comfy_server):
    """ComfyUI reports an error's type as module + class name; the pack's module is imported under its folder's
    absolute path, which the type must not show."""
    with pytest.raises(ExecutionFailed) as err:
        comfy_server.run(_frames(40)(txt2vid()), timeout=300)
    errors = [data for kind, data in err.value.details["status"]["messages"] if kind == "execution_error"]
    assert errors and errors[0]["exception_type"] == "animapose.errors.AnimaPoseError", errors
