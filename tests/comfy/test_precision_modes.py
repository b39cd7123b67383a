"""Precision and memory modes on the CPU, each against the same run in float32.

- bf16 compute (what ``--bf16-unet`` plus ComfyUI's ModelComputeDtype node gives): the motion modules, the DreamPose
  UNet's pose concat and tokens follow the UNet's compute dtype;
- motion-module storage in fp16 / bf16 / fp8 (``weight_dtype``) with float32 compute;
- ComfyUI's low-VRAM partial loading of the inflated UNet and of the motion model (weights cast per call, a motion
  LoRA applied on the fly);
- torch's bf16 CPU kernels for GroupNorm and attention accumulate in float32 (pinned here, so the motion modules
  need no casts of their own).

Bounds are relative errors (max abs difference / max abs of the float32 result) of the final latents, with margin
over what was measured on this build machine (stated beside each bound). Weights are random fixtures.
"""

from __future__ import annotations

import comfy.model_management
import comfy.patcher_extension
import comfy.sd
import pytest
import torch
import torch.nn.functional as F

from comfyui_animapose.animapose.motion.module import MotionModule, group_norm_frames
from comfyui_animapose.animapose.motion.sampling.inflate import apply_motion_model, load_motion_model
from comfyui_animapose.workshop.fixtures.motion import motion_module_file
from comfyui_animapose.workshop.fixtures.sd15 import sd15_checkpoint
from comfyui_animapose.workshop.sampling import run

FRAMES, STEPS, SIZE = 4, 3, 8
# Measured on the build machine (tiny fixture, 3 Euler steps): bf16 compute 2.4e-2; storage with float32 compute:
# fp16 4.3e-4, bf16 4.4e-3, fp8_e4m3fn 5.3e-2, fp8_e5m2 1.0e-1 (fp8 keeps 3 or 2 mantissa bits of every weight).
BOUNDS = {"bf16 compute": 0.05, "fp16": 2e-3, "bf16": 1e-2, "fp8_e4m3fn": 0.1, "fp8_e5m2": 0.2}


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.fixture(scope="module")
def checkpoint_path():
    return str(sd15_checkpoint("tiny", "taesd"))


@pytest.fixture(scope="module")
def motion_path():
    # A float32 file, so that fp16 storage is a real rounding (the fp16 fixture would round-trip exactly).
    return str(motion_module_file("v2", "original", "tiny", dtype="fp32"))


@pytest.fixture(scope="module")
def fp32_run(tiny, motion_path):
    model, _, _, positive, negative = tiny
    m = apply_motion_model(model, load_motion_model(motion_path, "v2", weight_dtype_name="fp32")).model
    return run(m, positive, negative, frames=FRAMES, steps=STEPS, size=SIZE).float()


class DtypeProbe:
    """The dtypes of the activations reaching the motion modules (forward pre-hooks, removed on exit)."""

    def __init__(self, root):
        self.seen: set[torch.dtype] = set()
        self.handles = [m.register_forward_pre_hook(lambda _m, args: self.seen.add(args[0].dtype))
                        for m in root.modules() if isinstance(m, MotionModule)]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()


def test_bf16_compute_follows_the_unet(tiny, checkpoint_path, motion_path, fp32_run):
    _, _, _, positive, negative = tiny
    unet, *_ = comfy.sd.load_checkpoint_guess_config(checkpoint_path, output_vae=False, output_clip=False,
                                                     model_options={"dtype": torch.bfloat16})
    assert unet.model.get_dtype() == torch.bfloat16
    motion = load_motion_model(motion_path, "v2", weight_dtype_name="bf16")
    assert {p.dtype for p in motion.patcher.model.parameters()} == {torch.bfloat16}
    m = apply_motion_model(unet, motion).model
    m.set_model_compute_dtype(torch.bfloat16)  # what ComfyUI's ModelComputeDtype node does
    with DtypeProbe(motion.patcher.model) as probe:
        out = run(m, positive, negative, frames=FRAMES, steps=STEPS, size=SIZE).float()
    assert probe.seen == {torch.bfloat16}
    assert torch.isfinite(out).all()
    err = rel(out, fp32_run)
    assert 0 < err < BOUNDS["bf16 compute"], err


def test_fp32_motion_weights_under_a_bf16_unet(tiny, checkpoint_path, motion_path, fp32_run):
    """A motion model loaded in float32 (the CPU's default) casts its weights to the UNet's bf16 per call."""
    _, _, _, positive, negative = tiny
    unet, *_ = comfy.sd.load_checkpoint_guess_config(checkpoint_path, output_vae=False, output_clip=False,
                                                     model_options={"dtype": torch.bfloat16})
    m = apply_motion_model(unet, load_motion_model(motion_path, "v2", weight_dtype_name="fp32")).model
    m.set_model_compute_dtype(torch.bfloat16)
    out = run(m, positive, negative, frames=FRAMES, steps=STEPS, size=SIZE).float()
    assert rel(out, fp32_run) < BOUNDS["bf16 compute"]


@pytest.mark.parametrize("storage", ["fp16", "bf16", "fp8_e4m3fn", "fp8_e5m2"])
def test_motion_storage_dtypes(tiny, motion_path, fp32_run, storage):
    model, _, _, positive, negative = tiny
    motion = load_motion_model(motion_path, "v2", weight_dtype_name=storage)
    dtypes = {p.dtype for p in motion.patcher.model.parameters()}
    assert dtypes == {getattr(torch, {"fp16": "float16", "bf16": "bfloat16"}.get(storage, f"float8_{storage[4:]}"))}
    # the stored sinusoid stays float32: fp8 would keep 3 mantissa bits of it
    assert {b.dtype for b in motion.patcher.model.buffers()} <= {torch.float32}
    m = apply_motion_model(model, motion).model
    with DtypeProbe(motion.patcher.model) as probe:
        out = run(m, positive, negative, frames=FRAMES, steps=STEPS, size=SIZE).float()
    assert probe.seen == {torch.float32}  # computed in the UNet's dtype, not the storage dtype
    err = rel(out, fp32_run)
    assert 0 < err < BOUNDS[storage], err


def test_default_storage_follows_comfyui(motion_path):
    """'default' is what ComfyUI stores a UNet in (float32 on a CPU without --bf16-unet and the like)."""
    motion = load_motion_model(motion_path, "v2")
    assert {p.dtype for p in motion.patcher.model.parameters()} == {comfy.model_management.unet_dtype()}


def _unet_eps(m, x, context, t):
    to = comfy.patcher_extension.copy_nested_dicts(m.model_options["transformer_options"])
    to["wrappers"] = comfy.patcher_extension.copy_nested_dicts(m.wrappers)
    to["cond_or_uncond"] = [0]
    with torch.no_grad():
        return m.model.diffusion_model(x, t.expand(x.shape[0]), context=context.expand(x.shape[0], -1, -1),
                                       transformer_options=to)


def test_lowvram_partial_loading(tiny, motion_path):
    """ComfyUI's partial loading (``ModelPatcher.load`` with a memory budget, as under --lowvram) of the inflated
    UNet and of the motion model with a motion LoRA: every layer left out casts its weights per call and applies
    the LoRA on the fly; the result equals the fully loaded one."""
    from comfyui_animapose.animapose.motion.sampling.inflate import add_motion_lora
    from comfyui_animapose.workshop.fixtures.motion import motion_lora_file

    model = tiny[0]
    motion = add_motion_lora(load_motion_model(motion_path, "v2", weight_dtype_name="fp32"),
                             str(motion_lora_file("tiny")), "lora", 0.8)
    m = apply_motion_model(model, motion).model
    mm = m.get_additional_models_with_key("animapose")[0]
    g = torch.Generator().manual_seed(3)
    x, context, t = torch.randn(FRAMES, 4, SIZE, SIZE, generator=g), torch.randn(1, 77, 768, generator=g), torch.tensor(400.)
    device = comfy.model_management.get_torch_device()
    results = {}
    for name, budget in (("full", 0), ("partial", 1)):
        comfy.model_management.unload_all_models()
        mm.patch_model(device, lowvram_model_memory=budget)
        m.patch_model(device, lowvram_model_memory=budget)
        try:
            if budget:
                assert mm.model.model_lowvram and mm.model.lowvram_patch_counter > 0  # the LoRA is applied per call
            m.pre_run()  # what a sampler does once the model is loaded: the motion modules go in for the run
            try:
                results[name] = _unet_eps(m, x, context, t)
            finally:
                m.cleanup()
        finally:
            m.unpatch_model()
            mm.unpatch_model()
    assert rel(results["partial"], results["full"]) < 1e-5


def test_bf16_kernels_accumulate_in_float32():
    """torch's CPU GroupNorm (also pooled over a clip's frames) and attention take bf16 inputs and accumulate in
    float32: their bf16 outputs are the float32 results rounded, so the motion modules add no casts of their own."""
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(8, 64, 16, 16, generator=g) * 3 + 20).bfloat16()  # an offset mean, where bf16 sums would drift
    norm = torch.nn.GroupNorm(32, 64, eps=1e-6)
    with torch.no_grad():
        ulp = 2.0 ** -7  # bf16's relative step; outputs are O(1)
        for across in (False, True):
            exact = group_norm_frames(x.double(), 4, norm.double(), across)
            got = group_norm_frames(x, 4, norm.bfloat16(), across).double()
            assert (got - exact).abs().max() <= 4 * ulp * exact.abs().max()
            norm.float()
        q, k, v = (torch.randn(512, 8, 16, 40, generator=g).bfloat16() * s for s in (4, 4, 1))
        exact = F.scaled_dot_product_attention(q.double(), k.double(), v.double())
        got = F.scaled_dot_product_attention(q, k, v).double()
        assert (got - exact).abs().max() <= 2 * ulp * exact.abs().max()


def test_dreampose_bf16_follows_the_unet():
    """The DreamPose MODEL stored and computed in bf16: pose windows (c_concat) and adapter tokens reach the UNet in
    bf16 (ComfyUI's model call casts them), the latents stay within the bf16 bound of float32."""
    import comfy.samplers

    from comfyui_animapose.animapose.dreampose import checkpoint
    from comfyui_animapose.animapose.dreampose.guidance import build_conds, dreampose_guider
    from comfyui_animapose.animapose.dreampose.pipeline import SharedNoise, sample_frames
    from comfyui_animapose.workshop.fixtures import dreampose as fx

    g = torch.Generator().manual_seed(0)
    tokens, uncond = torch.randn(1, 50, 768, generator=g), torch.randn(1, 50, 768, generator=g)
    pos, mid, neg = build_conds(tokens, uncond, torch.rand(2, 10, 8, 8, generator=g))
    latent = {"samples": torch.zeros(2, 4, 8, 8)}
    seen = set()

    def sample(dtype):
        model = checkpoint.load_unet(str(fx.dreampose_unet_file("tiny", ".pth")), dtype=dtype)
        if dtype != torch.float32:
            model.set_model_compute_dtype(dtype)  # ComfyUI's ModelComputeDtype node
        conv_in = model.model.diffusion_model.input_blocks[0][0]
        hook = conv_in.register_forward_pre_hook(lambda _m, args: seen.add((dtype, args[0].dtype, args[0].shape[1])))
        try:
            sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "normal", STEPS)
            guider = dreampose_guider(model, pos, mid, neg, image_cfg=3.0, pose_cfg=2.0)
            return sample_frames(guider, comfy.samplers.sampler_object("euler"), sigmas, SharedNoise(1), latent,
                                 2)["samples"].float()
        finally:
            hook.remove()

    ref, out = sample(torch.float32), sample(torch.bfloat16)
    # the 14-channel input (latent + pose windows) reached conv_in in bf16
    assert (torch.bfloat16, torch.bfloat16, 14) in seen and (torch.float32, torch.float32, 14) in seen
    assert torch.isfinite(out).all()
    err = rel(out, ref)
    assert 0 < err < BOUNDS["bf16 compute"], err
