"""Bad input over HTTP: each mistake gives an error that names the node, the input and the fix, and the server
goes on serving (a good prompt runs right after)."""

from __future__ import annotations

import argparse
import logging
import shutil

import pytest
import torch

from tests.fixtures.motion import motion_module_file
from tests.harness.server import ExecutionFailed
from tests.harness.workflows import api_workflow, shrink_api_prompt

TXT2VID = api_workflow("animatediff_txt2vid")
LOADER, APPLY, LATENT = "2", "3", "6"


@pytest.fixture(scope="module")
def bad_files(comfy_server):
    folder = comfy_server.base / "models" / "animatediff_models"
    good = motion_module_file("v2", "original", "tiny", ext=".ckpt")
    data = good.read_bytes()
    (folder / "mm_truncated.ckpt").write_bytes(data[: len(data) // 2])
    (folder / "notes.safetensors").write_text("these are my notes, not a model")
    torch.save({"state_dict": {"w": torch.zeros(1)}, "config": argparse.Namespace(lr=1e-4)}, folder / "pickled.ckpt")
    shutil.copy(motion_module_file("sdxl_beta", "original", "small", ext=".ckpt"), folder / "mm_sdxl_v10_beta.ckpt")
    shutil.copy(motion_module_file("v3", "original", "tiny_wide"), folder / "mm_wide.safetensors")
    return folder


def _prompt(model_name="mm_sd_v15_v2.ckpt", frames=4):
    p = shrink_api_prompt(TXT2VID)
    p[LOADER]["inputs"]["model_name"] = model_name
    p[LATENT]["inputs"]["batch_size"] = frames
    return p


CASES = {
    "sdxl_on_sd15": (dict(model_name="mm_sdxl_v10_beta.ckpt"), "Apply AnimateDiff Motion Model",
                     "input 'motion_model'", "SDXL motion module"),
    "width_mismatch": (dict(model_name="mm_wide.safetensors"), "Apply AnimateDiff Motion Model",
                       "input 'motion_model'", "channel widths do not match"),
    "frames_beyond_positions": (dict(frames=40), "AnimaPose Apply Motion Model", "input 'motion_model'",
                                "40 frames"),
    "truncated_file": (dict(model_name="mm_truncated.ckpt"), "Load AnimateDiff Motion Model", "input 'model_name'",
                       "truncated"),
    "not_a_model": (dict(model_name="notes.safetensors"), "Load AnimateDiff Motion Model", "input 'model_name'",
                    "truncated or is not a safetensors file"),
    "pickled_code": (dict(model_name="pickled.ckpt"), "Load AnimateDiff Motion Model", "input 'model_name'",
                     "refused for safety"),
}


@pytest.mark.parametrize("case", CASES)
def test_clear_error_and_server_keeps_serving(comfy_server, bad_files, case):
    kwargs, node, input_part, problem = CASES[case]
    with pytest.raises(ExecutionFailed) as err:
        comfy_server.run(_prompt(**kwargs), timeout=300)
    message = str(err.value)
    assert node in message and input_part in message and problem in message, message
    assert "Fix:" in message, message
    logging.getLogger(__name__).info("%s: %s", case, message)
    # the server is still there and runs a good prompt
    entry = comfy_server.run(_prompt(), timeout=300)
    assert comfy_server.output_files(entry)
