"""Bad input to the AnimateDiff controls over HTTP: each mistake gives an error naming the node, the input and the
fix, before any sampling work, and the server goes on serving."""

from __future__ import annotations

import logging

import pytest

from comfyui_animapose.workshop.server import ExecutionFailed
from comfyui_animapose.workshop.workflows import api_workflow, shrink_api_prompt

TRAVEL = api_workflow("animatediff_prompt_travel")
LONG = api_workflow("animatediff_long_freenoise")
LCM_I2V = api_workflow("animatediff_lcm_img2vid")


def _travel(changes: dict):
    p = shrink_api_prompt(TRAVEL)
    for (node, name), value in changes.items():
        p[node]["inputs"][name] = value
    return p


def _restart_without_noise():
    p = shrink_api_prompt(LONG)
    p["6"]["inputs"]["batch_size"] = 8
    p["99"] = {"class_type": "DisableNoise", "inputs": {}}
    p["7"]["inputs"]["noise"] = ["99", 0]
    return p


def _i2v_with(motion_file: str):
    p = shrink_api_prompt(LCM_I2V)
    p["2"]["inputs"]["model_name"] = motion_file
    return p


CASES = {
    "schedule_beyond_clip": (lambda: _travel({("4", "text"): "0: a cat\n40: a dog"}), "AnimateDiff Prompt Travel",
                             "input 'text'", "line 2 puts a prompt at frame 40"),
    "schedule_malformed": (lambda: _travel({("4", "text"): "0: a cat\nsixteen: a dog"}), "AnimateDiff Prompt Travel",
                           "input 'text'", "line 2 ('sixteen: a dog') is not 'frame: prompt'"),
    "latent_frames_differ": (lambda: _travel({("6", "batch_size"): 24}), "AnimateDiff Prompt Travel",
                             "input 'frames'", "has 32 frames but the latent has 24"),
    "multival_beyond_clip": (lambda: _travel({("13", "per_frame"): "0: 0.7, 40: 1.1"}), "AnimateDiff Motion Multival",
                             "input 'per_frame'", "keyframe 40 is beyond the clip's last frame (31)"),
    "empty_range": (lambda: _travel({("3", "start_percent"): 0.8, ("3", "end_percent"): 0.2}),
                    "Apply AnimateDiff Motion Model", "input 'end_percent'", "the range 0.8..0.2 is empty"),
    "keyframe_outside_range": (lambda: _travel({("3", "end_percent"): 0.5}), "Apply AnimateDiff Motion Model",
                               "input 'keyframes'", "a keyframe starts at 0.7, outside"),
    "freeinit_cannot_restart": (_restart_without_noise, "AnimateDiff FreeInit Sampler", "input 'sampler'",
                                "starts without noise"),
    "reference_without_image_encoder": (lambda: _i2v_with("v3_sd15_mm.ckpt"),
                                        "AnimateLCM-I2V Reference Image (picture to video)", "input 'model'",
                                        "the motion model applied (v3_sd15_mm.ckpt) has no image encoder"),
}


@pytest.mark.parametrize("case", CASES)
def test_clear_error(comfy_server, case):
    make, node, input_part, problem = CASES[case]
    with pytest.raises(ExecutionFailed) as err:
        comfy_server.run(make(), timeout=300)
    message = str(err.value)
    assert node in message and input_part in message and problem in message, message
    assert "Fix:" in message, message
    logging.getLogger(__name__).info("%s: %s", case, message)


def test_server_keeps_serving_after_the_errors(comfy_server):
    p = _travel({("6", "batch_size"): 32})
    entry = comfy_server.run(p, timeout=600)
    assert comfy_server.output_files(entry)
