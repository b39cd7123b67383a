"""SparseCtrl as a native CONTROL_NET: residuals against diffusers' ``SparseControlNetModel`` on the same weights
(float32), the keyframe placement of the apply path against diffusers' pipeline, and sampling through ComfyUI's own
Apply ControlNet node, with the motion model and inside context windows."""

from __future__ import annotations

import pytest
import torch

from comfyui_animapose.animapose.errors import AnimaPoseError
from comfyui_animapose.animapose.motion.addons.sparsectrl import keyframe_plan, load_sparsectrl, with_keyframes
from comfyui_animapose.workshop.fixtures.sparsectrl import sparsectrl_file
from comfyui_animapose.workshop.parity.sparsectrl import FRAMES, diffusers, reference, run_pack
from comfyui_animapose.workshop.references.motion_unet import rel_err

TOL = 1e-4


def sd15_path():
    from comfyui_animapose.workshop.fixtures.sd15 import sd15_checkpoint

    return sd15_checkpoint("small", "taesd")


@pytest.mark.parametrize("variant", ["rgb", "scribble"])
@pytest.mark.parametrize("layout", ["original", "diffusers"])
def test_residuals_match_diffusers(variant, layout):
    control = load_sparsectrl(str(sparsectrl_file(variant, "small", layout, dtype="fp32")), "x", norm_across_frames=True)
    g = torch.Generator().manual_seed(2)
    channels, size = (4, 8) if variant == "rgb" else (3, 64)
    cond = torch.zeros(FRAMES, channels, size, size)
    mask = torch.zeros(FRAMES, 1, size, size)
    for f in (0, 5):
        cond[f] = torch.randn(channels, size, size, generator=g)
        mask[f] = 1.0
    context = torch.randn(1, 77, 768, generator=g) * 0.5
    t = torch.tensor(601.0)
    ref_down, ref_mid = reference(diffusers(variant), cond, mask, t, context)
    down, mid = run_pack(control, torch.cat([cond, mask], dim=1), t, context, FRAMES)
    assert len(down) == len(ref_down)
    errs = [rel_err(a, b) for a, b in zip(down, ref_down)] + [rel_err(mid, ref_mid)]
    assert max(errs) <= TOL, f"max relative error {max(errs):.2e}"


def test_original_motion_scope_differs():
    """The original code normalises the motion modules per frame; diffusers across the clip."""
    path = str(sparsectrl_file("rgb", "small", "original", dtype="fp32"))
    hint = torch.randn(FRAMES, 5, 8, 8)
    context = torch.randn(1, 77, 768)
    a, _ = run_pack(load_sparsectrl(path, "x", norm_across_frames=False), hint, torch.tensor(300.0), context, FRAMES)
    b, _ = run_pack(load_sparsectrl(path, "x", norm_across_frames=True), hint, torch.tensor(300.0), context, FRAMES)
    assert rel_err(a[-1], b[-1]) > 1e-3


class _FakeVAE:
    def spacial_compression_encode(self):
        return 8

    def encode(self, pixels):
        pooled = torch.nn.functional.avg_pool2d(pixels.movedim(-1, 1), 8)
        return torch.cat([pooled, pooled.mean(1, keepdim=True)], dim=1)


def test_apply_path_places_keyframes_like_diffusers(small_model):
    import nodes

    control = load_sparsectrl(str(sparsectrl_file("rgb", "small", "original", dtype="fp32")), "x", True)
    control = with_keyframes(control, "0, -3")
    images = torch.rand(2, 64, 64, 3)
    pos = [[torch.randn(1, 77, 768) * 0.5, {}]]
    cpos, _ = nodes.ControlNetApplyAdvanced().apply_controlnet(pos, pos, control, images, 1.0, 0.0, 1.0, _FakeVAE())
    c = cpos[0][1]["control"]
    c.pre_run(small_model.model, lambda p: 999.0 * (1 - p))
    sigma = torch.tensor([3.0])
    x = torch.randn(FRAMES, 4, 8, 8)
    with torch.no_grad():
        out = c.get_control(x, sigma, {"c_crossattn": pos[0][0].expand(FRAMES, -1, -1)}, 1, {})
    latents = small_model.model.latent_format.process_in(_FakeVAE().encode(images))
    cond = torch.zeros(FRAMES, 4, 8, 8)
    mask = torch.zeros(FRAMES, 1, 8, 8)
    cond[[0, FRAMES - 3]] = latents
    mask[[0, FRAMES - 3]] = 1.0
    t = small_model.model.model_sampling.timestep(sigma)
    ref_down, ref_mid = reference(diffusers("rgb"), cond, mask, t[0], pos[0][0])
    errs = [rel_err(a, b) for a, b in zip(out["output"], ref_down)] + [rel_err(out["middle"][0], ref_mid)]
    assert max(errs) <= TOL, f"max relative error {max(errs):.2e}"
    c.cleanup()


def test_window_copies_place_keyframes_inside_the_window():
    from types import SimpleNamespace

    control = with_keyframes(load_sparsectrl(str(sparsectrl_file("scribble", "tiny", "original")), "x"), "0, -1")
    images = torch.rand(2, 3, 16, 16)
    control = control.copy().set_cond_hint(images)
    late = control.for_window(6, SimpleNamespace(index_list=[2, 3, 4, 5]))
    early = control.for_window(6, SimpleNamespace(index_list=[0, 1, 2, 3]))
    middle = control.for_window(6, SimpleNamespace(index_list=[1, 2, 3, 4]))
    for window, frame, row in ((late, 3, 1), (early, 0, 0)):
        hint = window._hint(4, 2, 2, "cpu", torch.float32)
        assert hint[:, -1, 0, 0].tolist() == [1.0 if f == frame else 0.0 for f in range(4)]
        assert torch.allclose(hint[frame, :3], images[row])
    assert middle._hint(4, 2, 2, "cpu", torch.float32).abs().sum() == 0
    assert control.window is None and late.encoded is control.encoded


def test_keyframe_plan():
    assert keyframe_plan(None, 2, 16) == [(0, 0), (1, 15)]
    assert keyframe_plan(None, 1, 16) == [(0, 0)]
    assert keyframe_plan([0, -1], 2, 16) == [(0, 0), (1, 15)]
    with pytest.raises(AnimaPoseError):
        keyframe_plan([0, 16], 2, 16)
    with pytest.raises(AnimaPoseError):
        keyframe_plan([0, 1, 2], 2, 16)


def test_encoding_keyframes_tolerates_a_collected_model_in_comfys_list(small_model):
    """ComfyUI keeps a model whose patcher was garbage collected in its loaded list (as None) until its next
    cleanup; encoding the keyframes must not hand that None back to ``load_models_gpu`` (seen once in CI)."""
    import gc

    import comfy.model_management as mm
    import comfy.model_patcher
    import nodes

    cpu = torch.device("cpu")
    module = torch.nn.Linear(2, 2)  # outlives its patcher, as a model shared by a dropped patcher does
    gone = comfy.model_patcher.ModelPatcher(module, load_device=cpu, offload_device=cpu)
    mm.load_models_gpu([gone])
    del gone
    gc.collect()
    assert None in mm.loaded_models(only_currently_used=True)
    control = load_sparsectrl(str(sparsectrl_file("rgb", "small", "original", dtype="fp32")), "x", True)
    control = with_keyframes(control, "0, -3")
    pos = [[torch.randn(1, 77, 768) * 0.5, {}]]
    cpos, _ = nodes.ControlNetApplyAdvanced().apply_controlnet(pos, pos, control, torch.rand(2, 64, 64, 3), 1.0, 0.0,
                                                              1.0, _FakeVAE())
    c = cpos[0][1]["control"]
    c.pre_run(small_model.model, lambda p: 999.0 * (1 - p))
    with torch.no_grad():
        out = c.get_control(torch.randn(FRAMES, 4, 8, 8), torch.tensor([3.0]),
                            {"c_crossattn": pos[0][0].expand(FRAMES, -1, -1)}, 1, {})
    c.cleanup()
    assert torch.isfinite(out["output"][0]).all()
    del module
    mm.cleanup_models_gc()


def test_samples_with_motion_model_and_windows(tiny, tiny_motion):
    import nodes

    from comfyui_animapose.animapose.motion.sampling.context import set_context_windows
    from comfyui_animapose.animapose.motion.sampling.inflate import apply_motion_model
    from comfyui_animapose.workshop.sampling import run

    model, _, vae, pos, neg = tiny
    before = {k: v.clone() for k, v in model.model.diffusion_model.state_dict().items()}
    animated = apply_motion_model(model, tiny_motion).model
    control = with_keyframes(load_sparsectrl(str(sparsectrl_file("rgb", "tiny", "original")), "x"), "0, -1")
    images = torch.rand(2, 64, 64, 3)
    cpos, cneg = nodes.ControlNetApplyAdvanced().apply_controlnet(pos, neg, control, images, 1.0, 0.0, 1.0, vae)
    plain = run(animated, pos, neg, frames=6, steps=2, size=8)
    guided = run(animated, cpos, cneg, frames=6, steps=2, size=8)
    assert torch.isfinite(guided).all() and not torch.allclose(plain, guided)
    windowed = set_context_windows(animated, 4, 2, "standard_static", 1, False, "pyramid")
    out = run(windowed, cpos, cneg, frames=6, steps=2, size=8)
    assert out.shape == (6, 4, 8, 8) and torch.isfinite(out).all()
    animated.detach()
    after = model.model.diffusion_model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_refuses_plain_controlnet_and_motion_modules():
    from comfyui_animapose.workshop.fixtures.controlnet import controlnet_file
    from comfyui_animapose.workshop.fixtures.motion import motion_module_file

    with pytest.raises(AnimaPoseError) as e:
        load_sparsectrl(str(controlnet_file()), "x")
    assert "not a SparseCtrl" in e.value.problem
    with pytest.raises(AnimaPoseError) as e:
        load_sparsectrl(str(motion_module_file("v3", "original", "tiny")), "x")
    assert "not a SparseCtrl" in e.value.problem
    with pytest.raises(AnimaPoseError) as e:
        with_keyframes(object(), "0")
    assert e.value.input_name == "control_net"


@pytest.mark.parametrize("indices,images,words", [("0, 99", 2, "frame 99 is outside the clip of 6 frames"),
                                                  ("-99", 1, "frame -99 is outside"),
                                                  ("0, 2, 4", 2, "3 frame numbers but only 2 hint image(s)")])
def test_keyframe_errors_inside_the_sampler_name_the_keyframes_node(tiny, tiny_motion, indices, images, words):
    """The clip's length is known only to the sampler and the images only to 'Apply ControlNet', so these fail
    during sampling; the message still names the node that owns the numbers."""
    import nodes

    from comfyui_animapose.animapose.motion.sampling.inflate import apply_motion_model
    from comfyui_animapose.workshop.sampling import run

    model, _, vae, pos, neg = tiny
    animated = apply_motion_model(model, tiny_motion).model
    control = with_keyframes(load_sparsectrl(str(sparsectrl_file("rgb", "tiny", "original")), "x"), indices)
    cpos, cneg = nodes.ControlNetApplyAdvanced().apply_controlnet(pos, neg, control, torch.rand(images, 64, 64, 3),
                                                                  1.0, 0.0, 1.0, vae)
    try:
        with pytest.raises(AnimaPoseError) as e:
            run(animated, cpos, cneg, frames=6, steps=1, size=8)
    finally:
        animated.detach()
    message = str(e.value)
    assert message.startswith("AnimateDiff SparseCtrl Keyframes: input 'frame_indices'") and words in message, message
    assert "Fix:" in message


def test_missing_vae_names_the_apply_node(tiny, tiny_motion):
    """The RGB variant encodes its hints with the VAE given to ComfyUI's 'Apply ControlNet', which owns that input."""
    import nodes

    from comfyui_animapose.animapose.motion.sampling.inflate import apply_motion_model
    from comfyui_animapose.workshop.sampling import run

    model, _, _, pos, neg = tiny
    animated = apply_motion_model(model, tiny_motion).model
    control = with_keyframes(load_sparsectrl(str(sparsectrl_file("rgb", "tiny", "original")), "x"), "0, -1")
    cpos, cneg = nodes.ControlNetApplyAdvanced().apply_controlnet(pos, neg, control, torch.rand(2, 64, 64, 3),
                                                                  1.0, 0.0, 1.0)
    try:
        with pytest.raises(AnimaPoseError) as e:
            run(animated, cpos, cneg, frames=4, steps=1, size=8)
    finally:
        animated.detach()
    assert e.value.node == "Apply ControlNet" and e.value.input_name == "vae", str(e.value)
