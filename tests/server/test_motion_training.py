"""Motion training in the real server: the node shows progress and loss while it runs, a run cancelled mid-way (POST
/interrupt) stops, saves nothing, leaves the server serving and the loaders' cached MODEL and motion model unchanged
(an animated sampling gives the same latent before and after), and a MotionLoRA without a motion module is a clear
error."""

from __future__ import annotations

import pytest
import safetensors.torch

from comfyui_animapose.workshop.graphs import motion_reference_prompt, train_motion_prompt
from comfyui_animapose.workshop.server import ExecutionFailed, cached_nodes, interrupt_training

STEPS = 100000


def _latent(server, entry) -> dict:
    (item,) = entry["outputs"]["7"]["latents"]
    return safetensors.torch.load_file(str(server.base / item["type"] / item["subfolder"] / item["filename"]))


def test_motion_lora_needs_a_motion_module(comfy_server):
    with pytest.raises(ExecutionFailed) as err:
        comfy_server.run(train_motion_prompt("motion_lora", 1, with_motion=False), timeout=300)
    message = str(err.value)
    for part in ("Train AnimateDiff Motion Module", "input 'motion_model'", "Fix:"):
        assert part in message, message


def test_interrupt_mid_run_leaves_the_server_and_the_models_untouched(comfy_server):
    before = comfy_server.run(motion_reference_prompt("animapose/mm_before"), timeout=600)
    listener = interrupt_training(comfy_server, train_motion_prompt("motion_lora", STEPS), "9", STEPS, 900, 300)
    text = next(t for t in listener.texts("9") if "loss" in t)
    assert text.startswith("MotionLoRA: step ") and f"/{STEPS}\nloss " in text, text
    assert not list((comfy_server.base / "models" / "animatediff_motion_lora").glob("interrupted*"))

    after = comfy_server.run(motion_reference_prompt("animapose/mm_after"), timeout=600)
    assert {"1", "2"} <= cached_nodes(after) and "6" not in cached_nodes(after), cached_nodes(after)
    a, b = _latent(comfy_server, before), _latent(comfy_server, after)
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
