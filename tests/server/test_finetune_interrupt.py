"""Subject finetuning in the real server: the node shows its progress and loss while it runs, photos and poses that do
not pair up give a clear error, ComfyUI's own loss plot takes the loss map, and a finetune cancelled mid-run (POST
/interrupt) stops, leaves the server serving and leaks nothing: the very MODEL object it trained from (the loader's
cached output) samples exactly the same latent afterwards as before."""

from __future__ import annotations

import asyncio
import json
import struct
import threading
import time
import uuid

import pytest
import safetensors.torch

from tests.harness.models import CHECKPOINT_NAME, POSES_FOLDER, SUBJECT_IMAGE, SUBJECT_POSES
from tests.harness.server import ExecutionFailed

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


def _cached(entry) -> set[str]:
    return {n for kind, data in entry["status"]["messages"] if kind == "execution_cached" for n in data["nodes"]}


class Listener(threading.Thread):
    """The frontend's view of a run: ComfyUI's websocket messages for one client id, as (kind, data) pairs; the
    binary TEXT events (a node's progress text) become ("text", (node_id, text))."""

    def __init__(self, server):
        super().__init__(daemon=True)
        self.url = server.url.replace("http", "ws", 1)
        self.client_id = uuid.uuid4().hex
        self.messages: list[tuple[str, object]] = []
        self.ready = threading.Event()
        self.stopped = threading.Event()

    def run(self):
        asyncio.run(self._listen())

    async def _listen(self):
        import aiohttp

        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"{self.url}/ws?clientId={self.client_id}") as ws:
                self.ready.set()
                while not self.stopped.is_set():
                    try:
                        msg = await ws.receive(timeout=0.5)
                    except asyncio.TimeoutError:
                        continue
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        data = json.loads(msg.data)
                        self.messages.append((data["type"], data.get("data")))
                    elif msg.type == aiohttp.WSMsgType.BINARY and struct.unpack(">I", msg.data[:4])[0] == 3:
                        (n,) = struct.unpack(">I", msg.data[4:8])
                        self.messages.append(("text", (msg.data[8:8 + n].decode(), msg.data[8 + n:].decode())))
                    elif msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                        break

    def texts(self, node: str) -> list[str]:
        return [text for kind, data in list(self.messages) if kind == "text" and data[0] == node for text in [data[1]]]

    def progress(self, node: str) -> list[tuple[int, int]]:
        return [(d["value"], d["max"]) for kind, d in list(self.messages) if kind == "progress" and d["node"] == node]

    def wait_for(self, predicate, timeout: float) -> None:
        deadline = time.time() + timeout
        while not predicate():
            if time.time() > deadline:
                raise TimeoutError(f"not seen within {timeout}s; messages: {self.messages[-20:]}")
            time.sleep(0.1)


def interrupt_training(server, prompt: dict, node: str, steps: int, start_timeout: float,
                       stop_timeout: float) -> Listener:
    """Queues a training prompt, waits until ``node``'s progress bar moves and it shows the loss (the run is under
    way), interrupts it and waits for ComfyUI to report the interruption; returns what the frontend saw."""
    listener = Listener(server)
    listener.start()
    try:
        assert listener.ready.wait(30)
        prompt_id = server.queue(prompt, client_id=listener.client_id)
        listener.wait_for(lambda: any(v >= 1 and m == steps for v, m in listener.progress(node))
                          and any("loss" in t for t in listener.texts(node)), timeout=start_timeout)
        server.interrupt()
        with pytest.raises(ExecutionFailed, match="interrupted"):
            server.wait(prompt_id, timeout=stop_timeout)
    finally:
        listener.stopped.set()
        listener.join(10)
    return listener


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
    assert "1" in _cached(after) and "27" not in _cached(after), _cached(after)
    a, b = _latent(comfy_server, before), _latent(comfy_server, after)
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
