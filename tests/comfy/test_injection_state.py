"""Injection state belongs to one ModelPatcher: a clone that never injected can never eject what its parent
inserted (issue 9: ComfyUI's ``clone()`` copies ``is_injected``, so a clone discarded after a failed node used to
pull the motion modules out of the UNet that a cached Apply output still relied on). Also: per-window progress
inside one step, and the save/decode conventions that keep a run from silently failing later."""

from __future__ import annotations

import gc

import comfy.model_management
import comfy.utils
import torch

from animapose.motion.context import set_context_windows
from animapose.motion.inflate import KEY, apply_motion_model
from animapose.motion.module import MotionModule
from tests.comfy.helpers import run


def _motion_modules(patcher) -> int:
    return sum(isinstance(m, MotionModule) for m in patcher.model.diffusion_model.modules())


def test_discarded_clone_leaves_parent_injected(tiny, tiny_motion):
    model, _, _, pos, neg = tiny
    applied = apply_motion_model(model, tiny_motion).model
    first = run(applied, pos, neg)
    inserted = len(applied.get_attachment(KEY).inserted)
    assert applied.is_injected and inserted > 0 and _motion_modules(applied) == inserted

    clone = applied.clone()
    assert clone.is_injected, "ComfyUI copies is_injected into clones (the premise of this test)"
    assert clone.get_attachment(KEY).inserted == []
    clone.detach()  # what a discarded clone's __del__ does
    del clone
    gc.collect()
    assert _motion_modules(applied) == inserted, "a clone ejected its parent's motion modules"

    assert torch.equal(run(applied, pos, neg), first)
    static = run(apply_motion_model(model, tiny_motion, motion_scale=0.0).model, pos, neg)
    assert not torch.equal(first, static)
    comfy.model_management.unload_all_models()
    assert _motion_modules(applied) == 0, "modules left in the UNet after unloading"


def test_clone_sampled_after_parent_never_doubles_modules(tiny, tiny_motion):
    model, _, _, pos, neg = tiny
    applied = apply_motion_model(model, tiny_motion).model
    first = run(applied, pos, neg, frames=8)
    expected = _motion_modules(applied)
    windowed = set_context_windows(applied, 8, 2, "standard_static", 1, False, "pyramid")
    assert torch.equal(run(windowed, pos, neg, frames=8), first)  # one window covering every frame
    assert _motion_modules(windowed) == expected
    assert torch.equal(run(applied, pos, neg, frames=8), first)
    assert _motion_modules(applied) == expected
    comfy.model_management.unload_all_models()
    assert _motion_modules(applied) == 0


def test_progress_moves_per_window(tiny, tiny_motion):
    model, _, _, pos, neg = tiny
    windowed = set_context_windows(apply_motion_model(model, tiny_motion).model, 4, 1, "standard_static", 1, False,
                                   "pyramid")
    updates = []
    comfy.utils.set_progress_bar_global_hook(lambda value, total, preview, node_id=None: updates.append((value, total)))
    try:
        run(windowed, pos, neg, frames=10, steps=2)
    finally:
        comfy.utils.set_progress_bar_global_hook(None)
    windows = [(v, t) for v, t in updates if t > 2]
    total = windows[0][1]
    assert total % 2 == 0 and total // 2 >= 3, updates  # 2 steps x (3 or more windows)
    fractions = [v / t for v, t in updates]
    assert fractions == sorted(fractions), updates  # window and step updates agree on how far the run is
    assert len(windows) >= total, "fewer updates than windows"
