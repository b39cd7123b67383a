"""The SD1.5 fixtures are what ComfyUI's own loader takes for SD1.5 single-file checkpoints."""

from __future__ import annotations

import logging

import comfy.sd
import pytest

from comfyui_animapose.workshop.fixtures.sd15 import sd15_checkpoint


@pytest.mark.parametrize("profile,vae", [("tiny", "taesd"), ("tiny", "kl"), ("small", "taesd")])
def test_detected_as_sd15_without_key_warnings(profile, vae, caplog):
    path = sd15_checkpoint(profile, vae)
    with caplog.at_level(logging.WARNING):
        model, clip, first_stage, _ = comfy.sd.load_checkpoint_guess_config(str(path))
    assert type(model.model.model_config).__name__ == "SD15"
    assert type(first_stage.first_stage_model).__name__ == ("TAESD" if vae == "taesd" else "AutoencoderKL")
    noisy = [r.getMessage() for r in caplog.records if "missing" in r.getMessage() or "unexpected" in r.getMessage()]
    assert not noisy, noisy
