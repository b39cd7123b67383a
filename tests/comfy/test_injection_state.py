"""The injection lifecycle: motion modules are in the shared UNet for the duration of one run of the patcher that
inserted them, and no other patcher's cleanup (a discarded clone, garbage collection of a dropped node output in the
middle of another patcher's iteration, a failed node) can take them out or change the UNet under another patcher.
Also: per-window progress inside one step."""

from __future__ import annotations

import gc
import os

import comfy.model_management
import comfy.patcher_extension
import comfy.utils
import pytest
import torch

from comfyui_animapose.animapose.errors import AnimaPoseError
from comfyui_animapose.animapose.motion.module import MotionModule
from comfyui_animapose.animapose.motion.sampling.context import set_context_windows
from comfyui_animapose.animapose.motion.sampling.inflate import KEY, apply_motion_model
from comfyui_animapose.workshop.sampling import run, sampling_run


def _motion_modules(patcher) -> int:
    return sum(isinstance(m, MotionModule) for m in patcher.model.diffusion_model.modules())


def test_modules_are_in_the_unet_for_a_run_only(tiny, tiny_motion):
    """Inserted at the run's start (ON_PRE_RUN), removed at its end (ON_CLEANUP), also when the run fails: between
    runs the shared UNet is plain, so no other patcher ever iterates over (or samples with) another's modules."""
    model, _, _, pos, neg = tiny
    applied = apply_motion_model(model, tiny_motion).model
    seen = []

    def count(executor, *args, **kwargs):
        seen.append(_motion_modules(applied))
        return executor(*args, **kwargs)

    applied.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "test", count)
    first = run(applied, pos, neg)
    inserted = sum(isinstance(m, MotionModule) for m in tiny_motion.patcher.model.modules())
    assert seen and all(n == inserted for n in seen), seen  # every UNet call of the run had all the modules
    assert _motion_modules(applied) == 0 and not applied.get_attachment(KEY).holds
    assert not applied.get_attachment(KEY).running

    with pytest.raises(AnimaPoseError):  # fails inside the run (40 frames, no context windows)
        run(applied, pos, neg, frames=40)
    assert _motion_modules(applied) == 0, "a failed run left its modules in the UNet"

    clone = applied.clone()
    assert clone.get_attachment(KEY).inserted == [] and not clone.get_attachment(KEY).running
    clone.detach()  # what a discarded clone's __del__ does
    del clone
    gc.collect()
    assert torch.equal(run(applied, pos, neg), first)
    static = run(apply_motion_model(model, tiny_motion, motion_scale=0.0).model, pos, neg)
    assert not torch.equal(first, static)


def _collect_during_iteration(unet, drop: list):
    """A state_dict pre-hook inside a Sequential the motion modules are inserted into: while ComfyUI iterates over
    that Sequential (``add_patches`` -> ``state_dict``), the last references to ``drop`` go and the garbage
    collector runs, as it can at any allocation."""
    def hook(module, prefix, keep_vars):
        drop.clear()  # patchers are freed by reference counting right here; cycles by the collector
        gc.collect(0)

    return unet.input_blocks[1][0].register_state_dict_pre_hook(hook)


def test_collected_patcher_never_mutates_a_unet_being_iterated(tiny, tiny_motion):
    """The failure seen once over HTTP ("OrderedDict mutated during iteration" in ``add_patches`` of the next graph's
    Apply node), made deterministic: a sampled Apply output is dropped and collected while another patcher of the
    same UNet iterates over its modules. Its cleanup must not touch the UNet."""
    model, _, _, pos, neg = tiny
    unet = model.model.diffusion_model
    drop = [apply_motion_model(model, tiny_motion).model]
    run(drop[0], pos, neg)
    key = "input_blocks.0.0.weight"
    other = model.clone()
    handle = _collect_during_iteration(unet, drop)
    try:
        other.add_patches({f"diffusion_model.{key}": ("diff", (torch.zeros_like(unet.state_dict()[key]), {}))})
    finally:
        handle.remove()
    assert not drop and _motion_modules(model) == 0


STRESS_ITERATIONS = int(os.environ.get("ANIMAPOSE_STRESS_ITERATIONS", "1000"))
FORWARD_EVERY, SAMPLER_EVERY = 10, 50


def test_injection_lifecycle_stress(tiny, tiny_motion):
    """Alternating graphs as a user queues them, 1000 times: a new Apply output is run (loaded, ``pre_run``, a clone
    of it made and dropped mid-run, ``cleanup``); the Apply node of the next graph fails after cloning; a plain
    clone of the same UNet is patched while the previous outputs are dropped and collected (ComfyUI iterating over
    the UNet's modules). Canary: inside every run the UNet holds every motion module, and every 10th run's UNet call
    reaches each of them exactly once (every 50th run goes through a whole sampler); between runs the UNet is plain.
    The latent is 1x1 (the tiny UNet has one level), so the loop measures the lifecycle, not convolutions."""
    model, _, _, pos, neg = tiny
    unet = model.model.diffusion_model
    modules = [m for m in tiny_motion.patcher.model.modules() if isinstance(m, MotionModule)]
    calls = []
    hooks = [m.register_forward_pre_hook(lambda mod, args: calls.append(1)) for m in modules]
    key = "input_blocks.0.0.weight"
    zeros = torch.zeros_like(unet.state_dict()[key])
    g = torch.Generator().manual_seed(0)
    x, context = torch.randn(2, 4, 1, 1, generator=g), torch.randn(1, 77, 768, generator=g)
    to = {"cond_or_uncond": [0]}
    previous = []
    try:
        for i in range(STRESS_ITERATIONS):
            applied = apply_motion_model(model, tiny_motion, motion_scale=1.0 + (i % 3) * 0.01).model
            calls.clear()
            if i % SAMPLER_EVERY == 0:
                run(applied, pos, neg, frames=2, steps=1, size=1)  # one step: one UNet call, cond and uncond
                assert len(calls) == len(modules), f"run {i}: {len(calls)} motion module calls, not {len(modules)}"
            else:
                with sampling_run(applied):
                    assert _motion_modules(model) == len(modules), f"run {i}: motion modules missing"
                    clone = applied.clone()
                    del clone  # a clone dropped in the middle of a run
                    gc.collect(0)
                    if i % FORWARD_EVERY == 0:
                        to["wrappers"] = comfy.patcher_extension.copy_nested_dicts(applied.wrappers)
                        to.update(applied.model_options["transformer_options"])
                        with torch.no_grad():
                            unet(x, torch.full((2,), 500.0), context=context.expand(2, -1, -1), transformer_options=to)
                        assert len(calls) == len(modules), f"run {i}: {len(calls)} motion module calls"
                    assert _motion_modules(model) == len(modules), f"run {i}: a dropped clone took modules out"
            assert _motion_modules(model) == 0, f"run {i}: modules left in the UNet after the run"
            previous.append(applied)
            with pytest.raises(AnimaPoseError):  # an Apply node that fails after its clone was made
                apply_motion_model(applied, tiny_motion)
            handle = _collect_during_iteration(unet, previous)
            try:
                model.clone().add_patches({f"diffusion_model.{key}": ("diff", (zeros, {}))})
            finally:
                handle.remove()
            assert not previous
            if i % 100 == 99:
                gc.collect()
    finally:
        for h in hooks:
            h.remove()
    comfy.model_management.unload_all_models()
    assert _motion_modules(model) == 0


def test_clone_sampled_after_parent_never_doubles_modules(tiny, tiny_motion):
    model, _, _, pos, neg = tiny
    applied = apply_motion_model(model, tiny_motion).model
    inserted = sum(isinstance(m, MotionModule) for m in tiny_motion.patcher.model.modules())
    seen = []

    def count(executor, *args, **kwargs):
        seen.append(_motion_modules(model))
        return executor(*args, **kwargs)

    applied.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "test", count)
    first = run(applied, pos, neg, frames=8)
    windowed = set_context_windows(applied, 8, 2, "standard_static", 1, False, "pyramid")
    assert torch.equal(run(windowed, pos, neg, frames=8), first)  # one window covering every frame
    assert torch.equal(run(applied, pos, neg, frames=8), first)
    assert seen and set(seen) == {inserted}, seen  # never doubled, never missing, in any run
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
