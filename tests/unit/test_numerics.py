"""Non-finite numbers and misnamed files are refused with the input, the tensor or the file kind named."""

from __future__ import annotations

import logging
import math
import os

import pytest
import safetensors.torch
import torch

from comfyui_animapose.animapose import numerics
from comfyui_animapose.animapose.checkpoints import load_state_dict
from comfyui_animapose.animapose.errors import AnimaPoseError, require_choice, require_finite


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "1.0", None, True])
def test_require_finite_refuses(value):
    with pytest.raises(AnimaPoseError) as err:
        require_finite(value, "motion_scale")
    assert "input 'motion_scale'" in str(err.value) and "Fix:" in str(err.value)


def test_require_finite_passes_numbers():
    assert require_finite(2, "x") == 2.0 and require_finite(0.5, "x") == 0.5


@pytest.mark.parametrize("value", ["bogus", None, 3, "Clamp"])
def test_require_choice_refuses_and_lists(value):
    with pytest.raises(AnimaPoseError) as err:
        require_choice(value, ["clamp", "official"], "window")
    assert "'clamp', 'official'" in str(err.value) and "input 'window'" in str(err.value)


def test_nan_weight_named_once_per_file(tmp_path, monkeypatch):
    sd = {"a.weight": torch.ones(4, 4), "b.weight": torch.ones(3), "ids": torch.arange(3)}
    sd["b.weight"][1] = math.nan
    path = tmp_path / "m.safetensors"
    safetensors.torch.save_file(sd, str(path))
    with pytest.raises(AnimaPoseError) as err:
        load_state_dict(str(path), "model_name", "motion module")
    assert "tensor 'b.weight'" in str(err.value) and "input 'model_name'" in str(err.value)
    # the verdict is cached per file version: a second load does not scan again
    calls = []
    monkeypatch.setattr(numerics, "first_non_finite", lambda t: calls.append(1) or None)
    with pytest.raises(AnimaPoseError):
        load_state_dict(str(path), "model_name", "motion module")
    assert calls == []
    # a changed file is checked again
    sd["b.weight"][1] = 0.0
    safetensors.torch.save_file(sd, str(path))
    os.utime(path, ns=(1, 1))
    monkeypatch.undo()
    assert set(load_state_dict(str(path), "model_name", "motion module")) == set(sd)


def test_float8_and_integer_tensors_are_checked_without_error():
    sd = {"f8": torch.zeros(4).to(torch.float8_e4m3fn), "i": torch.arange(4), "h": torch.full((2,), math.inf).half()}
    assert numerics.first_non_finite(sd) == "h"


@pytest.mark.parametrize("head, kind", [(b"\x89PNG\r\n\x1a\n", "is a PNG image"), (b"\xff\xd8\xff\xe0", "is a JPEG image"),
                                        (b"<!DOCTYPE html>", "is an HTML or XML page"),
                                        (b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\"", "safetensors file with the wrong"),
                                        (b"\x00\x01\x02\x03", "is a file of another kind")])
def test_not_a_pytorch_file_says_what_it_is(tmp_path, head, kind):
    path = tmp_path / "mm.ckpt"
    path.write_bytes(head + bytes(64))
    with pytest.raises(AnimaPoseError) as err:
        load_state_dict(str(path), "model_name", "motion module")
    message = str(err.value)
    assert kind in message and "not a PyTorch checkpoint" in message and "refused for safety" not in message


def test_warn_if_not_finite(caplog):
    with caplog.at_level(logging.WARNING):
        assert numerics.warn_if_not_finite(torch.zeros(2, 4, 8, 8), "test")
        assert not caplog.records
        x = torch.zeros(2, 4, 8, 8)
        x[1, 0, 0, :3] = math.nan
        assert not numerics.warn_if_not_finite(x, "sampling")
    assert "3 non-finite values" in caplog.text and "black" in caplog.text
