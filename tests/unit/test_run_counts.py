"""The counts behind the no-silent-noise guard (``stages``): the dispatcher counts each stage's module calls, an
add-on's lookup counts the reads that found a value, and the checks fail naming the node when a count falls short.
The comfy tier (``tests/comfy/test_run_guard.py``) bypasses the real injection points."""

from __future__ import annotations

import pytest
import torch

from comfyui_animapose.animapose.errors import AnimaPoseError
from comfyui_animapose.animapose.motion.controls.multival import Multival
from comfyui_animapose.animapose.motion.module import TemporalTransformer
from comfyui_animapose.animapose.motion.sampling.stages import (
    APPLY_NODE,
    REFERENCE_FEATURES,
    Lookup,
    MotionStage,
    check_calls,
    check_reads,
    make_dispatch,
)


def _stage(n=2):
    modules = [TemporalTransformer(8, heads=2, norm_groups=2, position_length=8).eval() for _ in range(n)]
    return MotionStage("k", "mm", modules, Multival(1.0), Multival(1.0), False)


def test_dispatch_counts_each_module_of_its_stage():
    stage, other = _stage(), _stage(1)
    dispatch = make_dispatch([stage, other])
    x, opts = torch.randn(4, 8, 2, 2), {"cond_or_uncond": [0]}
    stage.calls = other.calls = 0
    dispatch(stage.modules[0], x, None, None, opts)
    with pytest.raises(AnimaPoseError, match="took part 1 of 2 times") as e:
        check_calls(stage)  # one module was skipped
    assert e.value.node == APPLY_NODE and e.value.input_name == "motion_model"
    dispatch(stage.modules[1], x, None, None, opts)
    dispatch(other.modules[0], x, None, None, opts)
    check_calls(stage)
    check_calls(other)
    dispatch(_stage(1).modules[0], x, None, None, opts)  # a module of no stage runs plainly, uncounted
    assert (stage.calls, other.calls) == (2, 1)


def test_lookup_counts_reads_that_found_a_value():
    stage = _stage(1)
    feature = torch.zeros(4, 8, 2, 2)
    lookup = Lookup({id(stage.modules[0]): feature})
    assert len(lookup) == 1
    with pytest.raises(AnimaPoseError, match="the features took part 0 of 1 times") as e:
        check_reads(lookup, "the features", "Some Node", "image")
    assert e.value.node == "Some Node" and e.value.input_name == "image"
    assert lookup.get(id(object())) is None and lookup.reads == 0  # a module without features is not a read
    x = torch.randn(4, 8, 2, 2)
    out = stage.call(stage.modules[0], x, {"cond_or_uncond": [0], REFERENCE_FEATURES: lookup})
    assert lookup.reads == 1 and out.shape == x.shape
    check_reads(lookup, "the features", "Some Node", "image")
