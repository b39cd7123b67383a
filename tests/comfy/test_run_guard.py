"""No silent noise: when an injection point the pack relies on is bypassed (as a future ComfyUI could do without any
error), the run fails naming the node instead of returning unanimated frames. Each test disables one injection point
on purpose on a clone: the motion modules (not inserted, or the dispatch pre-empted by another patch), CameraCtrl's and
AnimateLCM-I2V's per-call features (dropped before the UNet), DreamPose's pose windows (no longer turned into
``c_concat``). The same runs without the bypass succeed (the tests of each feature show their results are right)."""

from __future__ import annotations

import comfy.patcher_extension
import comfy.samplers
import pytest
import torch

from comfyui_animapose.animapose.errors import AnimaPoseError
from comfyui_animapose.animapose.motion.module import MotionModule
from comfyui_animapose.animapose.motion.sampling.stages import APPLY_NODE, CAMERA_OPTION, REFERENCE_FEATURES
from comfyui_animapose.workshop.sampling import run

BYPASSED = "bypassed the"


def _strip_option(name: str):
    """A DIFFUSION_MODEL wrapper that drops one transformer_options entry before the UNet sees it."""
    def wrapper(executor, x, *args, **kwargs):
        args = list(args)
        if len(args) > 4:
            args[4] = {k: v for k, v in args[4].items() if k != name}
        else:
            kwargs["transformer_options"] = {k: v for k, v in kwargs.get("transformer_options", {}).items()
                                             if k != name}
        return executor(x, *args, **kwargs)

    return wrapper


def test_motion_modules_not_inserted_fail_the_run(tiny, animated):
    _, _, _, pos, neg = tiny
    assert run(animated, pos, neg, frames=4, steps=1).shape == (4, 4, 8, 8)
    m = animated.clone()
    m.injections = {}  # as if ComfyUI no longer called the patcher's injections: the UNet runs without the modules
    with pytest.raises(AnimaPoseError, match=BYPASSED) as e:
        run(m, pos, neg, frames=4, steps=1)
    assert e.value.node == APPLY_NODE and e.value.input_name == "motion_model"
    assert "0 of" in e.value.problem


def test_motion_dispatch_pre_empted_fails_the_run(tiny, animated):
    _, _, _, pos, neg = tiny
    m = animated.clone()
    to = m.model_options["transformer_options"]
    patches = dict(to["patches"])
    # a handler ComfyUI finds first: the modules are in the UNet but never run (an identity, so no error of its own)
    patches["forward_timestep_embed_patch"] = [(MotionModule, lambda layer, x, *a, **k: x),
                                               *patches["forward_timestep_embed_patch"]]
    to["patches"] = patches
    with pytest.raises(AnimaPoseError, match=BYPASSED) as e:
        run(m, pos, neg, frames=4, steps=1)
    assert e.value.node == APPLY_NODE
    assert animated.model_options["transformer_options"]["patches"]["forward_timestep_embed_patch"] != \
        patches["forward_timestep_embed_patch"]  # the clone only


def test_camera_features_dropped_fail_the_run(tiny):
    from comfyui_animapose.animapose.motion.addons.camera_trajectories import preset_trajectory
    from comfyui_animapose.animapose.motion.addons.cameractrl import APPLY_NODE as CAMERA_NODE
    from comfyui_animapose.animapose.motion.addons.cameractrl import apply_cameractrl, load_cameractrl
    from comfyui_animapose.animapose.motion.sampling.inflate import apply_motion_model, load_motion_model
    from comfyui_animapose.workshop.fixtures.cameractrl import cameractrl_file
    from comfyui_animapose.workshop.fixtures.motion import motion_module_file

    model, _, _, pos, neg = tiny
    inflated = apply_motion_model(model, load_motion_model(
        str(motion_module_file("v3", "original", "tiny", ext=".ckpt")), "v3_sd15_mm.ckpt")).model
    ctrl = load_cameractrl(str(cameractrl_file("tiny", "pruned", "fp16")), "CameraCtrl_pruned.safetensors")
    m = apply_cameractrl(inflated, ctrl, preset_trajectory("zoom in", 4))
    assert torch.isfinite(run(m, pos, neg, frames=4, steps=1)).all()
    m = m.clone()
    m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "test_bypass", _strip_option(CAMERA_OPTION))
    with pytest.raises(AnimaPoseError, match=BYPASSED) as e:
        run(m, pos, neg, frames=4, steps=1)
    assert e.value.node == CAMERA_NODE and e.value.input_name == "camera" and "CameraCtrl" in e.value.problem


def test_reference_features_dropped_fail_the_run():
    import comfy.sd

    from comfyui_animapose.animapose.motion.addons.lcm_i2v import NODE, reference_model
    from comfyui_animapose.animapose.motion.sampling.inflate import apply_motion_model, load_motion_model
    from comfyui_animapose.workshop.fixtures.motion import motion_module_file
    from comfyui_animapose.workshop.fixtures.sd15 import sd15_checkpoint
    from comfyui_animapose.workshop.parity.lcm_i2v import NAME

    model, clip, vae, _ = comfy.sd.load_checkpoint_guess_config(str(sd15_checkpoint("small", "taesd")))
    pos = clip.encode_from_tokens_scheduled(clip.tokenize("a fox"))
    neg = clip.encode_from_tokens_scheduled(clip.tokenize("blurry"))
    path = motion_module_file("animatelcm_i2v", "original", "small", ext=".ckpt", dtype="fp32")
    m, latent = reference_model(apply_motion_model(model, load_motion_model(str(path), NAME)).model, vae,
                                torch.rand(1, 64, 64, 3), 2)
    assert torch.isfinite(run(m, pos, neg, frames=2, steps=1, sampler="lcm", cfg=1.5, latent=latent["samples"])).all()
    m = m.clone()
    m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "test_bypass",
                           _strip_option(REFERENCE_FEATURES))
    with pytest.raises(AnimaPoseError, match=BYPASSED) as e:
        run(m, pos, neg, frames=2, steps=1, sampler="lcm", cfg=1.5, latent=latent["samples"])
    assert e.value.node == NODE and e.value.input_name == "image"


def _dreampose_sample(model, guider_model=None):
    from comfyui_animapose.animapose.dreampose.guidance import build_conds, dreampose_guider
    from comfyui_animapose.animapose.dreampose.pipeline import SharedNoise, sample_frames

    g = torch.Generator().manual_seed(0)
    tokens, uncond = torch.randn(1, 50, 768, generator=g), torch.randn(1, 50, 768, generator=g)
    pos, mid, neg = build_conds(tokens, uncond, torch.rand(2, 10, 8, 8, generator=g))
    sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "normal", 1)
    guider = dreampose_guider(model, pos, mid, neg, image_cfg=3.0, pose_cfg=2.0)
    assert guider.model_options is not model.model_options  # the check lives on the guider's own options
    return sample_frames(guider, comfy.samplers.sampler_object("euler"), sigmas, SharedNoise(1),
                         {"samples": torch.zeros(2, 4, 8, 8)}, 2)["samples"]


def test_dreampose_pose_windows_dropped_fail_the_run(monkeypatch):
    from comfyui_animapose.animapose.dreampose import checkpoint
    from comfyui_animapose.animapose.dreampose.guidance import GUIDER_NODE
    from comfyui_animapose.workshop.fixtures import dreampose as fx

    model = checkpoint.load_unet(str(fx.dreampose_unet_file("tiny", ".pth")), dtype=torch.float32)
    wrappers = comfy.patcher_extension.copy_nested_dicts(model.model_options)
    assert torch.isfinite(_dreampose_sample(model)).all()
    assert model.model_options == wrappers  # the MODEL's options are untouched

    extra_conds = model.model.extra_conds

    def without_pose_windows(**kwargs):  # a ComfyUI that no longer turns noise_concat into c_concat
        kwargs.pop("noise_concat", None)
        return extra_conds(**kwargs)

    monkeypatch.setattr(model.model, "extra_conds", without_pose_windows)
    with pytest.raises(AnimaPoseError, match=BYPASSED) as e:
        _dreampose_sample(model)
    # ComfyUI then fills its own inpainting concat (mask + masked image, 5 channels) for the 14-channel UNet
    assert e.value.node == GUIDER_NODE and "c_concat [6, 5, 8, 8] instead of the 10-channel pose windows" in \
        e.value.problem
