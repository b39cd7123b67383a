"""Hostile and careless input over HTTP, table-driven.

Every case is queued on the shared server. Its error must name the node (its display name), the input and the fix;
then a short canary workflow runs and its frames must be byte-identical to the same canary on a fresh server: a
failed run must never change a later one (the motion modules of a cached Apply node once vanished after a failed
Context Windows node, issue 9). Canaries alternate between two seeds so the sampler really runs again each time,
while the loaders and the Apply node stay cached, as they do for a user who edits one widget and queues again.
"""

from __future__ import annotations

import io
import logging
import shutil

import numpy as np
import pytest
import torch

from comfyui_animapose.workshop.fixtures.dreampose import uv_sequence_folder
from comfyui_animapose.workshop.fixtures.motion import motion_module_file
from comfyui_animapose.workshop.hostile import (
    AD,
    CANARIES,
    CASES,
    FAR_POSES,
    INF,
    as_png,
    canary_files,
    frames_digest,
    pose_to_video,
    set_inputs,
    txt2vid,
    with_context,
    with_frames,
    with_seed,
)
from comfyui_animapose.workshop.server import TEST_SERVER_THREADS, ComfyServer, ExecutionFailed, prepare_base_dir

log = logging.getLogger(__name__)

SEEDS = (11, 12)


# -- the two base graphs and their canaries ---------------------------------------------------------------------


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

    from comfyui_animapose.workshop.fixtures.camera_poses import pose_text
    from comfyui_animapose.workshop.fixtures.dreampose import pose_bomb_zip

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


# name: (base graph, edit, class of the node that must be named, input, words of the problem)


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


@pytest.mark.parametrize("edit", [set_inputs("3", motion_scale=INF), set_inputs("3", motion_scale=-INF)])
def test_infinity_refused_before_running(comfy_server, edit):
    """Every float input has a range, so ComfyUI's own prompt validation refuses infinity, naming the input."""
    with pytest.raises(ExecutionFailed) as err:
        comfy_server.queue(edit(txt2vid()))
    assert "motion_scale" in str(err.value) and "inf" in str(err.value)


def test_failed_graph_keeps_motion(comfy_server, canary):
    """Issue 9's exact sequence: txt2vid; txt2vid in context windows; txt2vid; context windows with an unknown
    schedule (fails); then txt2vid with a new seed must still animate: not equal to motion_scale 0, and equal to
    the same prompt on a fresh server (the canary)."""
    comfy_server.run(with_seed(txt2vid(), 1))
    comfy_server.run(with_context()(with_seed(txt2vid(), 2)))
    comfy_server.run(with_seed(txt2vid(), 3))
    with pytest.raises(ExecutionFailed):
        comfy_server.run(with_context(context_schedule="bogus")(with_seed(txt2vid(), 4)))
    canary.check(AD, after="a failed context-windows graph")
    seed = SEEDS[(canary.runs - 1) % len(SEEDS)]
    static = as_png(set_inputs("3", motion_scale=0.0)(with_seed(txt2vid(), seed)), ["8", 0])
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

    prompt = with_context(context_schedule="standard_static")(with_seed(txt2vid(), 5))
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
        comfy_server.run(with_frames(40)(txt2vid()), timeout=300)
    errors = [data for kind, data in err.value.details["status"]["messages"] if kind == "execution_error"]
    assert errors and errors[0]["exception_type"] == "animapose.errors.AnimaPoseError", errors
