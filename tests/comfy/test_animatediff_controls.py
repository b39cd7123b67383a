"""AnimateDiff controls on the real ComfyUI sampling path (tiny fixtures): motion multivals and keyframes, chained
motion models, prompt travel (cond/uncond batching and context windows), FreeNoise and FreeInit, and their errors."""

from __future__ import annotations

import comfy.context_windows as cw
import comfy.sample
import comfy.samplers
import pytest
import torch

from comfyui_animapose.animapose.errors import AnimaPoseError
from comfyui_animapose.animapose.motion.controls import freeinit, freenoise
from comfyui_animapose.animapose.motion.controls.multival import MotionKeyframe, Multival
from comfyui_animapose.animapose.motion.controls.prompt_travel import encode_schedule, parse_schedule
from comfyui_animapose.animapose.motion.module import MotionModule
from comfyui_animapose.animapose.motion.sampling import residency, schedules
from comfyui_animapose.animapose.motion.sampling.context import set_context_windows
from comfyui_animapose.animapose.motion.sampling.inflate import apply_motion_model, load_motion_model
from comfyui_animapose.animapose.motion.sampling.placement import FrameGroupNorm
from comfyui_animapose.animapose.motion.sampling.stages import stages_of
from comfyui_animapose.workshop.fixtures.motion import motion_module_file
from comfyui_animapose.workshop.sampling import run

KEEP = schedules.USE_EXISTING  # same noise schedule as the image model, so outputs can be compared with it


@pytest.fixture(scope="module")
def v3_motion():
    return load_motion_model(str(motion_module_file("v3", "original", "tiny", ext=".ckpt")), "v3_sd15_mm.ckpt")


def _no_motion_left(model):
    unet = model.model.diffusion_model
    return not any(isinstance(m, (MotionModule, FrameGroupNorm)) for m in unet.modules())


# -- multivals and keyframes ----------------------------------------------------------------------------------------

def test_constant_multival_equals_the_scalar_path(tiny, tiny_motion):
    model, _, _, pos, neg = tiny
    scalar = run(apply_motion_model(model, tiny_motion, 0.7).model, pos, neg, seed=1)
    constant = run(apply_motion_model(model, tiny_motion, Multival(0.7)).model, pos, neg, seed=1)
    listed = run(apply_motion_model(model, tiny_motion, Multival(0.7, frame_list=[1.0] * 4)).model, pos, neg, seed=1)
    assert torch.equal(scalar, constant)
    assert torch.equal(scalar, listed)
    # scale (keys of the temporal attention): a constant 1 is the plain path, another value changes the result
    assert torch.equal(run(apply_motion_model(model, tiny_motion, 1.0, scale=Multival(1.0)).model, pos, neg, seed=1),
                       run(apply_motion_model(model, tiny_motion).model, pos, neg, seed=1))
    assert not torch.equal(run(apply_motion_model(model, tiny_motion, scale=1.5).model, pos, neg, seed=1),
                           run(apply_motion_model(model, tiny_motion).model, pos, neg, seed=1))


def test_per_frame_effect_reaches_its_frames_in_context_windows(tiny, tiny_motion):
    """Effect 0 on frame 6 (of 10, windows of 4) leaves that frame exactly as the image model makes it; the
    others move. Frames interact only through the motion modules, so this holds only if every window maps its
    positions to the right clip frames."""
    model, _, _, pos, neg = tiny
    per_frame = [1.0] * 10
    per_frame[6] = 0.0
    animated = apply_motion_model(model, tiny_motion, Multival(1.0, frame_list=per_frame), KEEP).model
    windowed = set_context_windows(animated, 4, 2, "standard_static", 1, False, "pyramid")
    plain = set_context_windows(model, 4, 2, "standard_static", 1, False, "pyramid")
    out = run(windowed, pos, neg, frames=10, steps=2, seed=3)
    ref = run(plain, pos, neg, frames=10, steps=2, seed=3)
    assert torch.allclose(out[6], ref[6], atol=1e-5)
    assert all(not torch.allclose(out[i], ref[i], atol=1e-3) for i in (0, 3, 5, 7, 9))


def test_keyframe_from_the_start_replaces_the_apply_values(tiny, tiny_motion):
    model, _, _, pos, neg = tiny
    off = apply_motion_model(model, tiny_motion, 1.0, KEEP,
                             keyframes=[MotionKeyframe(0.0, Multival(0.0), Multival(1.0))]).model
    assert torch.equal(run(off, pos, neg, seed=5), run(model, pos, neg, seed=5))
    late = apply_motion_model(model, tiny_motion, 1.0, KEEP,
                              keyframes=[MotionKeyframe(0.6, Multival(0.0), Multival(1.0))]).model
    full = run(apply_motion_model(model, tiny_motion, 1.0, KEEP).model, pos, neg, seed=5)
    assert not torch.equal(run(late, pos, neg, seed=5), full)


def test_multival_frame_count_errors_before_sampling(tiny, tiny_motion):
    model, _, _, pos, neg = tiny
    bad = apply_motion_model(model, tiny_motion, Multival(1.0, mask=torch.ones(3, 8, 8))).model
    with pytest.raises(AnimaPoseError, match="AnimateDiff Motion Multival: input 'mask': the mask has 3 frames"):
        run(bad, pos, neg, frames=4, steps=1)


# -- several motion models ------------------------------------------------------------------------------------------

def test_chained_motion_models_hand_over_by_percent(tiny, tiny_motion, v3_motion):
    model, _, _, pos, neg = tiny
    early = apply_motion_model(model, tiny_motion, end_percent=0.5).model
    both = apply_motion_model(early, v3_motion, start_percent=0.5).model
    assert sorted(k for k in both.injections if k.startswith("animapose")) == ["animapose", "animapose.2"]
    v2_mods = [m for m in tiny_motion.patcher.model.modules() if isinstance(m, MotionModule)]
    v3_mods = [m for m in v3_motion.patcher.model.modules() if isinstance(m, MotionModule)]
    calls = {"v2": [], "v3": []}
    hooks = [m.register_forward_pre_hook(lambda mod, args, name=name: calls[name].append(1))
             for name, mods in (("v2", v2_mods), ("v3", v3_mods)) for m in mods]
    try:
        out = run(both, pos, neg, steps=4, seed=2)
    finally:
        for h in hooks:
            h.remove()
    # 4 steps of euler: 2 steps each, each step one UNet call per module
    assert len(calls["v2"]) == 2 * len(v2_mods) and len(calls["v3"]) == 2 * len(v3_mods)
    assert torch.isfinite(out).all()
    # no leftovers: once the MODEL is unloaded both sets are out of the UNet, and the input MODEL never had any
    import comfy.model_management

    comfy.model_management.unload_all_models()
    assert _no_motion_left(model) and not model.injections
    assert all(not both.get_attachment(k).inserted for k in ("animapose", "animapose.2"))
    assert not torch.equal(out, run(apply_motion_model(model, tiny_motion).model, pos, neg, steps=4, seed=2))


def _recording_residency(model):
    """A clone of ``model`` whose UNet calls record, after each call, its sigma and which stages' motion models are
    loaded (ComfyUI's current_loaded_models)."""
    stages = stages_of(model.model_options["transformer_options"]["patches"]["forward_timestep_embed_patch"])
    seen = []

    def wrapper(apply_model, args):
        out = apply_model(args["input"], args["timestep"], **args["c"])
        seen.append({s.name: residency.is_resident(s.patcher) for s in stages})
        return out

    m = model.clone()
    m.set_model_unet_function_wrapper(wrapper)
    return m, seen


def test_chained_motion_models_are_on_the_device_only_for_their_steps(tiny, tiny_motion, v3_motion):
    """A motion model limited to part of the steps is not loaded with the UNet: it is loaded when its steps begin and
    unloaded when they end, so a hand-over never holds both. Either application order gives the same result."""
    import comfy.model_management

    model, _, _, pos, neg = tiny
    comfy.model_management.unload_all_models()
    v2, v3 = tiny_motion.name, v3_motion.name
    both = apply_motion_model(apply_motion_model(model, tiny_motion, end_percent=0.5).model, v3_motion,
                              start_percent=0.5).model
    assert not both.get_additional_models(), "a motion model limited to some steps must not load with the UNet"
    recorded, seen = _recording_residency(both)
    first = run(recorded, pos, neg, steps=4, seed=2)
    early, late = {v2: True, v3: False}, {v2: False, v3: True}
    assert seen == [early, early, late, late]
    seen.clear()
    assert torch.equal(run(recorded, pos, neg, steps=4, seed=2), first)  # v3, loaded at the end, is unloaded first
    assert seen == [early, early, late, late]

    reverse = apply_motion_model(apply_motion_model(model, v3_motion, start_percent=0.5).model, tiny_motion,
                                 end_percent=0.5).model
    recorded, seen = _recording_residency(reverse)
    assert torch.equal(run(recorded, pos, neg, steps=4, seed=2), first)
    assert seen == [early, early, late, late]
    comfy.model_management.unload_all_models()
    assert _no_motion_left(model)


def test_a_motion_lora_applies_when_its_model_is_loaded_for_its_steps(tiny, tiny_motion):
    """Loading for its steps goes through ComfyUI's model loading, so the LoRA's weight patches apply: a LoRA'd
    motion model limited to some steps samples what a motion model with the LoRA merged into its weights samples
    with the same limit, and the loaded motion model itself is left unpatched."""
    from comfyui_animapose.animapose.checkpoints import load_state_dict
    from comfyui_animapose.animapose.motion.formats.lora import parse_motion_lora
    from comfyui_animapose.animapose.motion.sampling.inflate import add_motion_lora
    from comfyui_animapose.workshop.fixtures.motion import motion_lora_file, motion_module_file

    model, _, _, pos, neg = tiny
    path = str(motion_lora_file("tiny"))
    lora = add_motion_lora(tiny_motion, path, "zoom", 1.0)
    merged = load_motion_model(str(motion_module_file("v2", "original", "tiny", ext=".ckpt")), "merged")
    weights = merged.patcher.model.state_dict()
    with torch.no_grad():
        for key, (up, down) in parse_motion_lora(load_state_dict(path, "lora_name", "motion LoRA"), "lora_name").items():
            weights[key] += (up.float() @ down.float()).reshape(weights[key].shape).to(weights[key].dtype)

    def ranged(motion):
        m = apply_motion_model(model, motion, 1.0, KEEP, start_percent=0.3).model
        assert not m.get_additional_models()
        return run(m, pos, neg, steps=4, seed=8)

    out = ranged(lora)
    assert torch.allclose(out, ranged(merged), atol=1e-4 * out.abs().max().item(), rtol=0)
    assert not torch.allclose(out, ranged(tiny_motion), atol=1e-2 * out.abs().max().item(), rtol=0)
    assert not tiny_motion.patcher.patches


def test_two_motion_models_at_once(tiny, tiny_motion, v3_motion):
    """Both run on every step; a second module with effect 0 adds nothing (bitwise), one with effect 1 adds."""
    model, _, _, pos, neg = tiny
    one = apply_motion_model(model, tiny_motion).model
    ref = run(one, pos, neg, seed=4)
    assert torch.equal(run(apply_motion_model(one, v3_motion, 0.0).model, pos, neg, seed=4), ref)
    assert not torch.equal(run(apply_motion_model(one, v3_motion, 1.0, KEEP).model, pos, neg, seed=4), ref)
    import comfy.model_management

    comfy.model_management.unload_all_models()
    assert _no_motion_left(model)


def test_chaining_errors(tiny, tiny_motion):
    model = tiny[0]
    one = apply_motion_model(model, tiny_motion).model
    with pytest.raises(AnimaPoseError, match="input 'motion_model': .* is already applied to this MODEL"):
        apply_motion_model(one, tiny_motion)
    with pytest.raises(AnimaPoseError, match="input 'end_percent': the range 0.7..0.3 is empty"):
        apply_motion_model(model, tiny_motion, start_percent=0.7, end_percent=0.3)


# -- prompt travel --------------------------------------------------------------------------------------------------

def test_prompt_travel_rows_and_pooled(tiny):
    clip = tiny[1]
    cond = encode_schedule(clip, parse_schedule("0: a red fox\n4: a blue bird", 8), 8)
    a = clip.encode_from_tokens_scheduled(clip.tokenize("a red fox"))[0]
    b = clip.encode_from_tokens_scheduled(clip.tokenize("a blue bird"))[0]
    rows, extra = cond[0]
    assert rows.shape[0] == 8 and extra["animapose_frames"] == 8
    assert torch.equal(rows[0], a[0][0]) and torch.equal(rows[4], b[0][0]) and torch.equal(rows[7], b[0][0])
    assert torch.allclose(rows[2], 0.5 * a[0][0] + 0.5 * b[0][0], atol=1e-6)
    assert torch.allclose(extra["pooled_output"][1], 0.75 * a[1]["pooled_output"][0] + 0.25 * b[1]["pooled_output"][0],
                          atol=1e-6)


def test_prompt_travel_reaches_the_right_frames_in_windows(tiny):
    """With frames independent (the image model), per-frame conditioning must give each frame exactly what a
    uniform prompt gives it, through cond/uncond batching and context windows (each window its own rows)."""
    model, clip, _, _, neg = tiny
    sched = encode_schedule(clip, parse_schedule("0: a red fox\n5: a blue bird", 10), 10, "hold")
    fox = encode_schedule(clip, parse_schedule("0: a red fox", 10), 10)
    bird = encode_schedule(clip, parse_schedule("0: a blue bird", 10), 10)
    windowed = set_context_windows(model, 4, 2, "standard_static", 1, False, "flat")
    out = run(windowed, sched, neg, frames=10, steps=2, seed=8)
    ref_fox = run(windowed, fox, neg, frames=10, steps=2, seed=8)
    ref_bird = run(windowed, bird, neg, frames=10, steps=2, seed=8)
    assert torch.allclose(out[:5], ref_fox[:5], atol=1e-5)
    assert torch.allclose(out[5:], ref_bird[5:], atol=1e-5)
    assert not torch.allclose(ref_fox[5:], ref_bird[5:], atol=1e-3)
    # the handler slices the cross-attention rows per window
    import comfy.sampler_helpers
    import comfy.samplers as cs

    conds = comfy.sampler_helpers.convert_cond(sched)
    conds = cs.encode_model_conds(model.model.extra_conds, conds, torch.zeros(10, 4, 8, 8), "cpu", "positive")
    handler = windowed.model_options["context_handler"]
    window = cw.IndexListContextWindow([3, 4, 5, 6])
    resized = handler.get_resized_cond(conds, torch.zeros(10, 4, 8, 8), window)
    assert torch.equal(resized[0]["model_conds"]["c_crossattn"].cond, sched[0][0][3:7])


def test_prompt_travel_frame_mismatch_is_refused(tiny, animated):
    _, clip, _, _, neg = tiny
    cond = encode_schedule(clip, parse_schedule("0: a red fox\n4: a blue bird", 8), 8)
    with pytest.raises(AnimaPoseError, match="AnimateDiff Prompt Travel: input 'frames': the positive prompt schedule "
                                             "has 8 frames but the latent has 6.*Fix: set 'frames' to 6"):
        run(animated, cond, neg, frames=6, steps=1)


# -- FreeNoise ------------------------------------------------------------------------------------------------------

def test_freenoise_noise_and_ksampler_option_agree(tiny, animated):
    import nodes
    from comfy_extras.nodes_custom_sampler import BasicScheduler, CFGGuider, KSamplerSelect, SamplerCustomAdvanced

    _, _, _, pos, neg = tiny
    latent = {"samples": torch.zeros(12, 4, 8, 8)}
    noise = freenoise.FreeNoise(11, 8, 2)
    generated = noise.generate_noise(latent)
    base = comfy.sample.prepare_noise(latent["samples"], 11)
    assert torch.equal(generated[:8], base[:8]) and not torch.equal(generated, base)
    windowed = set_context_windows(animated, 8, 6, "standard_static", 1, False, "pyramid")
    guider = CFGGuider.execute(windowed, pos, neg, 5.0)[0]
    sigmas = BasicScheduler.execute(windowed, "normal", 2, 1.0)[0]
    custom = SamplerCustomAdvanced.execute(noise, guider, KSamplerSelect.execute("euler")[0], sigmas,
                                           latent)[0]["samples"]
    ks = nodes.KSampler().sample(freenoise.add_to_model(windowed, 8, 2, "shuffle_context"), 11, 2, 5.0, "euler",
                                 "normal", pos, neg, latent)[0]["samples"]
    assert torch.equal(custom, ks)
    plain = nodes.KSampler().sample(windowed, 11, 2, 5.0, "euler", "normal", pos, neg, latent)[0]["samples"]
    assert not torch.equal(plain, ks)


# -- FreeInit -------------------------------------------------------------------------------------------------------

def test_freeinit_reinitialisation_is_the_papers(animated):
    """In noise units, the next pass starts from LPF(sqrt(abar_T) x0 + sqrt(1 - abar_T) eps) + HPF(z_rand), the
    diffusers/authors' DDPM forward to t = 999 (abar from the model's own schedule), for an empty latent."""
    from diffusers.pipelines.free_init_utils import FreeInitMixin

    ms = animated.get_model_object("model_sampling")
    torch.manual_seed(0)
    x0, eps = torch.randn(16, 4, 8, 8), torch.randn(16, 4, 8, 8)
    lpf = freeinit.low_pass_filter((16, 8, 8))
    ours = freeinit.reinitialise(x0, eps, torch.zeros_like(x0), ms, ms.sigma_max, True, lpf,
                                 torch.Generator().manual_seed(1))
    z_rand = torch.randn(eps.shape, generator=torch.Generator().manual_seed(1))
    abar = 1.0 / (1.0 + ms.sigma_max.double() ** 2)
    z_t = (abar.sqrt() * x0.double() + (1 - abar).sqrt() * eps.double()).float()
    ref = FreeInitMixin._apply_freq_filter(None, z_t.movedim(0, 1), z_rand.movedim(0, 1), lpf).movedim(1, 0)
    assert (ours - ref).abs().max().item() <= 1e-5


def test_freeinit_sampler_and_model_option(tiny, animated):
    import nodes
    from comfy_extras.nodes_custom_sampler import BasicScheduler, CFGGuider, KSamplerSelect, SamplerCustomAdvanced

    _, _, _, pos, neg = tiny
    latent = {"samples": torch.zeros(4, 4, 8, 8)}
    guider = CFGGuider.execute(animated, pos, neg, 5.0)[0]
    sigmas = BasicScheduler.execute(animated, "normal", 2, 1.0)[0]
    euler = KSamplerSelect.execute("euler")[0]
    noise = freenoise.FreeNoise(3, 16, 4)  # fewer frames than a window: plain seeded noise

    def custom(sampler):
        return SamplerCustomAdvanced.execute(noise, guider, sampler, sigmas, latent)[0]["samples"]

    plain = custom(euler)
    opts = freeinit.FreeInitOptions(iterations=1)
    assert torch.equal(custom(freeinit.FreeInitSampler(euler, opts)), plain)
    two = custom(freeinit.FreeInitSampler(euler, freeinit.FreeInitOptions(iterations=2)))
    assert torch.isfinite(two).all() and not torch.equal(two, plain)
    ks = nodes.KSampler().sample(freeinit.add_to_model(animated, freeinit.FreeInitOptions(iterations=2)), 3, 2, 5.0,
                                 "euler", "normal", pos, neg, latent)[0]["samples"]
    assert torch.equal(ks, two)


def test_freeinit_errors(tiny, animated):
    from comfy_extras.nodes_custom_sampler import (
        BasicScheduler,
        CFGGuider,
        DisableNoise,
        KSamplerSelect,
        SamplerCustomAdvanced,
    )

    _, _, _, pos, neg = tiny
    euler = KSamplerSelect.execute("euler")[0]
    fi = freeinit.FreeInitSampler(euler, freeinit.FreeInitOptions(iterations=2))
    with pytest.raises(AnimaPoseError, match="AnimateDiff FreeInit Sampler: input 'sampler': the sampler is already"):
        freeinit.FreeInitSampler(fi, freeinit.FreeInitOptions())
    guider = CFGGuider.execute(animated, pos, neg, 5.0)[0]
    sigmas = BasicScheduler.execute(animated, "normal", 2, 1.0)[0]
    with pytest.raises(AnimaPoseError, match="input 'sampler': this sampling starts without noise.*Fix: enable "
                                             "add_noise"):
        SamplerCustomAdvanced.execute(DisableNoise.execute()[0], guider, fi, sigmas,
                                      {"samples": torch.zeros(4, 4, 8, 8)})
    both = CFGGuider.execute(freeinit.add_to_model(animated, freeinit.FreeInitOptions(2)), pos, neg, 5.0)[0]
    with pytest.raises(AnimaPoseError, match="FreeInit is set twice"):
        SamplerCustomAdvanced.execute(freenoise.FreeNoise(1), both, fi, sigmas, {"samples": torch.zeros(4, 4, 8, 8)})
