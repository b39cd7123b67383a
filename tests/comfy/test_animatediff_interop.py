"""The inflated MODEL works wherever a MODEL does: every sampler and scheduler, the three sampler nodes, LoRA
loaders, ControlNet, model offloading and other dtypes; and the MODEL that flowed in is left exactly as it was."""

from __future__ import annotations

import sys
import types

import comfy.controlnet
import comfy.model_management
import comfy.samplers
import comfy.sd
import comfy.utils
import pytest
import torch

from comfyui_animapose.animapose.motion.module import MotionModule
from comfyui_animapose.animapose.motion.sampling import schedules
from comfyui_animapose.animapose.motion.sampling.inflate import add_motion_lora, apply_motion_model
from comfyui_animapose.animapose.motion.sampling.placement import FrameGroupNorm
from comfyui_animapose.workshop.fixtures.controlnet import controlnet_file
from comfyui_animapose.workshop.fixtures.motion import domain_adapter_file, motion_lora_file
from comfyui_animapose.workshop.sampling import run

SAMPLERS = list(comfy.samplers.KSampler.SAMPLERS)
SCHEDULERS = list(comfy.samplers.KSampler.SCHEDULERS)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_sampler(tiny, animated, sampler):
    _, _, _, pos, neg = tiny
    if sampler == "dpm_adaptive":
        # Its step count adapts to an error tolerance, which random weights never meet cheaply: same sampler,
        # looser tolerance, so the test stays seconds long.
        import comfy.sample

        latent = torch.zeros(4, 4, 8, 8)
        sigmas = comfy.samplers.calculate_sigmas(animated.get_model_object("model_sampling"), "normal", 2)
        out = comfy.sample.sample_custom(animated, comfy.sample.prepare_noise(latent, 0), 5.0,
                                         comfy.samplers.ksampler("dpm_adaptive", {"rtol": 0.5, "atol": 0.5}),
                                         sigmas, pos, neg, latent, disable_pbar=True, seed=0)
    else:
        out = run(animated, pos, neg, sampler=sampler, steps=2)
    assert out.shape == (4, 4, 8, 8) and torch.isfinite(out).all()


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_every_scheduler(tiny, animated, scheduler):
    _, _, _, pos, neg = tiny
    out = run(animated, pos, neg, scheduler=scheduler, steps=3)
    assert torch.isfinite(out).all()


def test_sampler_nodes_agree(tiny, animated):
    """KSampler, KSamplerAdvanced and SamplerCustomAdvanced drive the inflated model identically."""
    import nodes
    from comfy_extras.nodes_custom_sampler import (
        BasicScheduler,
        CFGGuider,
        KSamplerSelect,
        RandomNoise,
        SamplerCustomAdvanced,
    )

    _, _, _, pos, neg = tiny
    latent = {"samples": torch.zeros(4, 4, 8, 8)}
    ks = nodes.KSampler().sample(animated, 7, 3, 5.0, "euler", "normal", pos, neg, latent)[0]["samples"]
    ksa = nodes.KSamplerAdvanced().sample(animated, "enable", 7, 3, 5.0, "euler", "normal", pos, neg, latent,
                                          0, 10000, "disable")[0]["samples"]
    guider = CFGGuider.execute(animated, pos, neg, 5.0)[0]
    sigmas = BasicScheduler.execute(animated, "normal", 3, 1.0)[0]
    custom = SamplerCustomAdvanced.execute(RandomNoise.execute(7)[0], guider, KSamplerSelect.execute("euler")[0],
                                           sigmas, latent)[0]["samples"]
    assert torch.equal(ks, ksa)
    assert torch.equal(ks, custom)


def _callables_snapshot() -> dict[str, int]:
    """id() of every function and class attribute of the loaded comfy.* and torch.* modules and their classes."""
    snap = {}
    for name, mod in list(sys.modules.items()):
        if not (name.startswith("comfy") or name.startswith("torch")) or not isinstance(mod, types.ModuleType):
            continue
        for attr, value in list(vars(mod).items()):
            if callable(value):
                snap[f"{name}.{attr}"] = id(value)
                if isinstance(value, type) and value.__module__ == name:
                    for cattr, cvalue in list(vars(value).items()):
                        if callable(cvalue):
                            snap[f"{name}.{attr}.{cattr}"] = id(cvalue)
    return snap


def test_incoming_model_untouched_and_nothing_global_patched(tiny, tiny_motion):
    model, _, _, pos, neg = tiny
    before_options = repr(model.model_options)
    plain_before = run(model, pos, neg, seed=3)
    snap = _callables_snapshot()
    inflated = apply_motion_model(model, tiny_motion).model
    animated_out = run(inflated, pos, neg, seed=3)
    plain_after = run(model, pos, neg, seed=3)
    after = _callables_snapshot()

    assert torch.equal(plain_before, plain_after), "a plain run changed after an animated run"
    assert not torch.equal(plain_before, animated_out)
    changed = sorted(k for k in snap if k in after and after[k] != snap[k])
    assert not changed, f"global functions were replaced: {changed[:10]}"
    assert repr(model.model_options) == before_options
    assert not model.injections and not model.get_additional_models()
    unet = model.model.diffusion_model
    assert not any(isinstance(m, (MotionModule, FrameGroupNorm)) for m in unet.modules())


def test_motion_scale_zero_is_the_image_model(tiny, tiny_motion):
    model, _, _, pos, neg = tiny
    off = apply_motion_model(model, tiny_motion, motion_scale=0.0, beta_schedule=schedules.USE_EXISTING).model
    assert torch.equal(run(off, pos, neg, seed=5), run(model, pos, neg, seed=5))


def test_schedules(tiny, tiny_motion):
    import comfy.model_sampling as ms

    model = tiny[0]
    auto = apply_motion_model(model, tiny_motion).model.get_model_object("model_sampling")
    expected = ms.ModelSamplingDiscrete(types.SimpleNamespace(
        sampling_settings={"beta_schedule": "sqrt_linear", "linear_start": 0.00085, "linear_end": 0.012}))
    assert torch.allclose(auto.sigmas, expected.sigmas)
    assert not torch.allclose(auto.sigmas, model.get_model_object("model_sampling").sigmas)
    kept = apply_motion_model(model, tiny_motion, beta_schedule=schedules.USE_EXISTING).model
    assert kept.get_model_object("model_sampling") is model.get_model_object("model_sampling")
    sdxl = apply_motion_model(model, tiny_motion, beta_schedule=schedules.LINEAR_SDXL).model
    sigmas = sdxl.get_model_object("model_sampling").sigmas.double()
    alphas_cumprod = 1 / (1 + sigmas ** 2)
    assert abs((1 - alphas_cumprod[-1] / alphas_cumprod[-2]).item() - 0.020) < 1e-4


def test_domain_adapter_through_comfy_lora_path(tiny, tiny_motion):
    """v3_sd15_adapter is an ordinary diffusers-style LoRA for ComfyUI's own LoRA loader (LoraLoaderModelOnly)."""
    model, _, _, pos, neg = tiny
    lora = comfy.utils.load_torch_file(str(domain_adapter_file("tiny")), safe_load=True)
    lora_model, _ = comfy.sd.load_lora_for_models(model, None, lora, 1.0, 0.0)
    key = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_q_lora"
    target = "diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight"
    assert target in lora_model.patches, "ComfyUI's LoRA key map did not take the adapter's keys"
    comfy.model_management.load_models_gpu([lora_model])
    patched = lora_model.model.state_dict()[target].float()
    comfy.model_management.unload_all_models()
    base = model.model.state_dict()[target].float()
    expected = base + lora[key + ".up.weight"].float() @ lora[key + ".down.weight"].float()
    assert torch.allclose(patched, expected, atol=1e-5)
    # either order of LoRA and motion model gives the same animation
    a = run(apply_motion_model(lora_model, tiny_motion).model, pos, neg, seed=2)
    b_model, _ = comfy.sd.load_lora_for_models(apply_motion_model(model, tiny_motion).model, None, lora, 1.0, 0.0)
    assert torch.equal(a, run(b_model, pos, neg, seed=2))


def test_motion_lora_strength(tiny, tiny_motion):
    model, _, _, pos, neg = tiny
    path = str(motion_lora_file("tiny"))
    base = run(apply_motion_model(model, tiny_motion).model, pos, neg, seed=4)
    zero = add_motion_lora(tiny_motion, path, "zoom", 0.0)
    assert torch.equal(run(apply_motion_model(model, zero).model, pos, neg, seed=4), base)
    full = add_motion_lora(tiny_motion, path, "zoom", 1.0)
    assert not torch.equal(run(apply_motion_model(model, full).model, pos, neg, seed=4), base)
    assert tiny_motion.loras == [] and not tiny_motion.patcher.patches, "the loaded motion model was modified"


def _controlnet_conds(pos, neg, frames, strength):
    import nodes

    cnet = comfy.controlnet.load_controlnet(str(controlnet_file("tiny")))
    hint = torch.rand(frames, 64, 64, 3, generator=torch.Generator().manual_seed(0))
    return nodes.ControlNetApplyAdvanced().apply_controlnet(pos, neg, cnet, hint, strength, 0.0, 1.0)[:2]


def test_controlnet(tiny, animated):
    _, _, _, pos, neg = tiny
    plain = run(animated, pos, neg, seed=6)
    cpos, cneg = _controlnet_conds(pos, neg, 4, 1.0)
    assert not torch.equal(run(animated, cpos, cneg, seed=6), plain)
    zpos, zneg = _controlnet_conds(pos, neg, 4, 0.0)
    assert torch.equal(run(animated, zpos, zneg, seed=6), plain)


def test_offloading_follows_the_model(tiny, animated):
    _, _, _, pos, neg = tiny
    run(animated, pos, neg)
    mm = animated.get_additional_models_with_key("animapose")[0]
    loaded = [lm.model for lm in comfy.model_management.current_loaded_models]
    assert any(m is mm for m in loaded), "the motion model was not loaded with the UNet"
    comfy.model_management.unload_all_models()
    assert not any(isinstance(m, MotionModule) for m in animated.model.diffusion_model.modules())
    assert not any(lm.model is mm for lm in comfy.model_management.current_loaded_models)


def test_bfloat16_model(tiny_motion):
    from comfyui_animapose.workshop.fixtures.sd15 import sd15_checkpoint

    model, clip, _, _ = comfy.sd.load_checkpoint_guess_config(str(sd15_checkpoint("tiny", "taesd")), output_vae=False,
                                                              model_options={"dtype": torch.bfloat16})
    assert model.model_dtype() == torch.bfloat16
    pos = clip.encode_from_tokens_scheduled(clip.tokenize("a fox"))
    seen = []
    m = apply_motion_model(model, tiny_motion).model
    hook = tiny_motion.patcher.model.down_blocks[0].motion_modules[0].register_forward_hook(
        lambda mod, args, out: seen.append(out.dtype))
    try:
        out = run(m, pos, pos, steps=1)
    finally:
        hook.remove()
    # the motion modules compute in whatever the UNet computes in (bf16, or fp32 where ComfyUI casts manually)
    compute = m.model.manual_cast_dtype or torch.bfloat16
    assert torch.isfinite(out).all() and seen and all(d == compute for d in seen)


def test_context_windows_long_clip_with_controlnet(tiny, animated):
    """Frames beyond the positions run in windows; each window's ControlNet sees that window's hint frames."""
    from comfyui_animapose.animapose.motion.sampling.context import FrameWindowHandler, set_context_windows

    _, _, _, pos, neg = tiny
    windowed = set_context_windows(animated, 4, 2, "standard_static", 1, False, "pyramid")
    handler = windowed.model_options["context_handler"]
    assert isinstance(handler, FrameWindowHandler)
    cpos, cneg = _controlnet_conds(pos, neg, 10, 1.0)
    out = run(windowed, cpos, cneg, frames=10, steps=2)
    assert out.shape == (10, 4, 8, 8) and torch.isfinite(out).all()

    # the window's copy of the ControlNet holds exactly the window's frames; the original keeps all of them
    import comfy.context_windows as cw

    control = cpos[0][1]["control"]
    window = cw.IndexListContextWindow([4, 5, 6, 7])
    cond = [{"control": control, "model_conds": {}}]
    resized = handler.get_resized_cond(cond, torch.zeros(10, 4, 8, 8), window)
    assert torch.equal(resized[0]["control"].cond_hint_original, control.cond_hint_original[4:8])
    assert control.cond_hint_original.shape[0] == 10


def test_windows_longer_than_positions_are_refused(tiny, animated):
    from comfyui_animapose.animapose.errors import AnimaPoseError
    from comfyui_animapose.animapose.motion.sampling.context import set_context_windows

    _, _, _, pos, neg = tiny
    too_long = set_context_windows(animated, 40, 4, "standard_static", 1, False, "pyramid")
    with pytest.raises(AnimaPoseError, match="only 32 positions"):
        run(too_long, pos, neg, frames=48, steps=1)
    with pytest.raises(AnimaPoseError, match="context_overlap"):
        set_context_windows(animated, 8, 8, "standard_static", 1, False, "pyramid")
