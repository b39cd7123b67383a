"""Subject finetuning (stages 2a and 2b) on tiny fixtures: a few steps lower the loss, what flows in stays bitwise
unchanged (also when interrupted), the same seed gives the same weights, the outputs save and reload to identical
outputs, several photos work, and bad photo/pose pairs give clear errors.

Runs like ComfyUI runs nodes, under ``torch.inference_mode()``. The UNet stage uses the one-level DreamPose UNet and
a narrow KL VAE (its reference features need a 640x512 encode); the VAE stage uses the full-size fixture VAE, which
the saved file must reload into through ``read_vae``.
"""

from __future__ import annotations

import comfy.model_management
import comfy.model_patcher
import comfy.samplers
import comfy.sd
import numpy as np
import pytest
import torch
from PIL import Image

from comfyui_animapose.animapose.dreampose import checkpoint, finetune
from comfyui_animapose.animapose.dreampose.adapter import EmbeddingAdapter
from comfyui_animapose.animapose.dreampose.guidance import dreampose_guider
from comfyui_animapose.animapose.dreampose.pipeline import (
    PoseSequence,
    SharedNoise,
    decode,
    image_conditioning,
    load_clip_b32,
    pose_conditioning,
    sample_frames,
)
from comfyui_animapose.animapose.dreampose.poses import load_uv_folder
from comfyui_animapose.animapose.errors import AnimaPoseError
from comfyui_animapose.workshop.fixtures import dreampose as fx
from comfyui_animapose.workshop.fixtures.cache import seeded_like

SIZE = dict(width=64, height=80)
TINY_VAE = {"double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 32,
            "ch_mult": [1, 2, 2, 2], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0}


def tiny_vae():
    """A native SD1.x-shaped KL VAE (8x down, 4 channels) with 32 base channels instead of 128."""
    import comfy.ldm.models.autoencoder as autoencoder

    with torch.device("meta"):
        shapes = {k: (v.shape, v.dtype) for k, v in
                  autoencoder.AutoencoderKL(ddconfig=TINY_VAE, embed_dim=4).state_dict().items()}
    return comfy.sd.VAE(sd=seeded_like(shapes, 3, torch.float32), config={"params": {"ddconfig": TINY_VAE,
                                                                                       "embed_dim": 4}},
                        dtype=torch.float32)


def _photo(seed: int = 0) -> torch.Tensor:
    arr = np.asarray(Image.open(fx.subject_image_file(seed=seed)).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr)[None]


@pytest.fixture(scope="module")
def parts():
    with torch.inference_mode():  # loaded like a node loads them: inference tensors
        model = checkpoint.load_unet(str(fx.dreampose_unet_file("tiny")))
        adapter = checkpoint.read_adapter(str(fx.dreampose_adapter_file()))
        vae = tiny_vae()
        clip = load_clip_b32(str(fx.tiny_clip_b32_folder()), "clip")
        poses = PoseSequence(load_uv_folder(str(fx.uv_sequence_folder(8, 80, 64))), "poses")
        photos = torch.cat([_photo(0), _photo(1), _photo(2)])
    return dict(model=model, adapter=adapter, vae=vae, clip=clip, photos=photos, poses=poses)


def _poses(parts, n: int) -> PoseSequence:
    return PoseSequence(parts["poses"].uv[:n], "poses")


def _snapshot(model=None, adapter=None, vae=None) -> dict:
    out = {}
    if model is not None:
        out["unet"] = {k: v.clone() for k, v in model.model.state_dict().items()}
        out["patches"] = {k: len(v) for k, v in model.patches.items()}
        out["options"] = repr(model.model_options)
    if adapter is not None:
        out["adapter"] = {k: v.clone() for k, v in adapter.state_dict().items()}
    if vae is not None:
        out["vae"] = {k: v.clone() for k, v in vae.first_stage_model.state_dict().items()}
    return out


def _assert_same(before: dict, after: dict) -> None:
    assert before.keys() == after.keys()
    for name in before:
        a, b = before[name], after[name]
        if isinstance(a, dict) and a and isinstance(next(iter(a.values())), torch.Tensor):
            assert a.keys() == b.keys(), name
            changed = [k for k in a if not torch.equal(a[k], b[k])]
            assert not changed, f"{name}: {changed[:3]} changed"
        else:
            assert a == b, name


def _unet_settings(**kw) -> finetune.StageSettings:
    return finetune.StageSettings(**{"steps": 3, "learning_rate": 1e-4, "seed": 0, **SIZE, **kw})


def _finetune_unet(parts, photos=1, progress=None, **kw):
    with torch.inference_mode():
        return finetune.finetune_unet(parts["model"], parts["adapter"], parts["clip"], parts["vae"],
                                      parts["photos"][:photos], _poses(parts, photos), _unet_settings(**kw), progress)


def _patched_weights(model) -> dict:
    return {k: v[-1][1][0] for k, v in model.patches.items()}


@pytest.fixture(scope="module")
def unet_run(parts):
    before = _snapshot(parts["model"], parts["adapter"], parts["vae"])
    photos, poses = parts["photos"][:1].clone(), parts["poses"].uv.clone()
    probe_args = (parts["clip"], parts["vae"], parts["photos"][:1], _poses(parts, 1), _unet_settings())
    probe_before = finetune.unet_probe_loss(parts["model"], parts["adapter"], *probe_args)
    model, adapter, losses = _finetune_unet(parts)
    probe_after = finetune.unet_probe_loss(model, adapter, *probe_args)
    inputs_unchanged = torch.equal(photos, parts["photos"][:1]) and torch.equal(poses, parts["poses"].uv)
    return dict(model=model, adapter=adapter, losses=losses, before=before, probe=(probe_before, probe_after),
                after=_snapshot(parts["model"], parts["adapter"], parts["vae"]), inputs_unchanged=inputs_unchanged)


def test_unet_stage_lowers_the_loss(unet_run):
    before, after = unet_run["probe"]
    assert len(unet_run["losses"]) == 3 and all(np.isfinite(unet_run["losses"]))
    assert after < before, (before, after)


def test_unet_stage_leaves_its_inputs_bitwise_unchanged(unet_run):
    _assert_same(unet_run["before"], unet_run["after"])
    assert unet_run["inputs_unchanged"]


def test_unet_stage_outputs_native_objects(parts, unet_run):
    model, adapter = unet_run["model"], unet_run["adapter"]
    assert isinstance(model, comfy.model_patcher.ModelPatcher) and model.is_clone(parts["model"])
    assert model is not parts["model"] and not parts["model"].patches
    trained = _patched_weights(model)
    assert len(trained) == len(parts["model"].model.diffusion_model.state_dict())
    assert not torch.equal(trained["diffusion_model.input_blocks.0.0.weight"],
                           parts["model"].model.diffusion_model.input_blocks[0][0].weight)
    assert isinstance(adapter, EmbeddingAdapter) and adapter is not parts["adapter"]
    assert not any(p.requires_grad for p in adapter.parameters())


def test_same_seed_same_weights(parts, unet_run):
    model, adapter, losses = _finetune_unet(parts)
    assert losses == unet_run["losses"]
    a, b = _patched_weights(model), _patched_weights(unet_run["model"])
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert all(torch.equal(x, y) for x, y in zip(adapter.state_dict().values(),
                                                 unet_run["adapter"].state_dict().values()))
    _, _, other = _finetune_unet(parts, steps=1, seed=1)
    assert other[0] != unet_run["losses"][0]


def test_a_patched_model_trains_from_its_effective_weights(parts):
    """A MODEL with weight patches (a LoRA, an earlier finetune) is trained from the patched weights, its patches
    stay as they were, and the result carries only the trained weights."""
    key = "diffusion_model.input_blocks.0.0.weight"
    base = parts["model"].model.state_dict()[key]
    patched = parts["model"].clone()
    delta = torch.full_like(base, 0.01)
    patched.add_patches({key: (delta,)}, 1.0)
    weights = finetune.effective_unet_weights(patched, torch.device("cpu"))
    assert torch.equal(weights["input_blocks.0.0.weight"], base + delta)
    with torch.inference_mode():
        out, _, _ = finetune.finetune_unet(patched, parts["adapter"], parts["clip"], parts["vae"],
                                           parts["photos"][:1], _poses(parts, 1), _unet_settings(steps=1))
    assert len(patched.patches[key]) == 1 and patched.patches[key][0][1][0] is delta
    assert len(out.patches[key]) == 1 and out.patches[key][0][2] == 0.0  # one "set" patch, strength_model 0


@pytest.fixture(scope="module")
def vae_parts():
    with torch.inference_mode():
        return checkpoint.read_vae(str(fx.dreampose_vae_file()))


@pytest.fixture(scope="module")
def vae_run(parts, vae_parts):
    settings = finetune.StageSettings(steps=3, learning_rate=5e-4, seed=0, **SIZE)
    before = _snapshot(vae=vae_parts)
    probe_before = finetune.decoder_probe_loss(vae_parts, parts["photos"][:1], settings)
    with torch.inference_mode():
        vae, losses = finetune.finetune_vae_decoder(vae_parts, parts["photos"][:1], settings)
    return dict(vae=vae, losses=losses, before=before, after=_snapshot(vae=vae_parts),
                probe=(probe_before, finetune.decoder_probe_loss(vae, parts["photos"][:1], settings)))


def test_vae_stage_lowers_the_loss_and_trains_only_the_decoder(vae_parts, vae_run):
    before, after = vae_run["probe"]
    assert after < before, (before, after)
    _assert_same(vae_run["before"], vae_run["after"])
    new = vae_run["vae"]
    assert isinstance(new, comfy.sd.VAE) and new is not vae_parts and new.patcher is not vae_parts.patcher
    old_sd, new_sd = vae_parts.first_stage_model.state_dict(), new.first_stage_model.state_dict()
    changed = {k for k in old_sd if not torch.equal(old_sd[k], new_sd[k])}
    assert changed and all(k.startswith("decoder.") for k in changed)
    assert not any(p.requires_grad for p in new.first_stage_model.parameters())


def test_vae_stage_same_seed_same_weights(parts, vae_parts, vae_run):
    settings = finetune.StageSettings(steps=3, learning_rate=5e-4, seed=0, **SIZE)
    with torch.inference_mode():
        vae, losses = finetune.finetune_vae_decoder(vae_parts, parts["photos"][:1], settings)
    assert losses == vae_run["losses"]
    a, b = vae.first_stage_model.state_dict(), vae_run["vae"].first_stage_model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_saved_set_reloads_to_identical_outputs(parts, unet_run, vae_parts, vae_run, tmp_path):
    model, adapter, vae = unet_run["model"], unet_run["adapter"], vae_run["vae"]
    with torch.inference_mode():
        paths = checkpoint.save_dreampose_set(model, adapter, vae, str(tmp_path), "subject")
        assert [p.name for p in paths] == ["subject_00001_unet.safetensors", "subject_00001_adapter.safetensors",
                                           "subject_00001_vae.safetensors"]
        model2 = checkpoint.load_unet(str(paths[0]))
        adapter2 = checkpoint.read_adapter(str(paths[1]))
        vae2 = checkpoint.read_vae(str(paths[2]))

        def frames(m, a):
            """Two pose-to-video frames with the finetuned parts (the narrow VAE builds the image tokens)."""
            positive, negative = image_conditioning(parts["clip"], parts["vae"], a, parts["photos"][:1])
            pos, middle, neg, latent = pose_conditioning(positive, negative, _poses(parts, 2), 64, 80)
            guider = dreampose_guider(m, pos, middle, neg, 3.0, 2.0)
            sigmas = comfy.samplers.calculate_sigmas(m.get_model_object("model_sampling"), "normal", 2)
            return sample_frames(guider, comfy.samplers.sampler_object("euler"), sigmas, SharedNoise(5), latent, 2)

        ours, reloaded = frames(model, adapter), frames(model2, adapter2)
        assert torch.equal(ours["samples"], reloaded["samples"])
        assert not torch.equal(ours["samples"], frames(parts["model"], parts["adapter"])["samples"])
        z = torch.randn(1, 4, 10, 8, generator=torch.Generator().manual_seed(0))
        assert torch.equal(vae.decode(z), vae2.decode(z))
        assert torch.equal(decode(vae, {"samples": z}), decode(vae2, {"samples": z}))


def test_several_photos(parts):
    for mode in ("average", "random", "first"):
        model, adapter, losses = _finetune_unet(parts, photos=3, steps=1, multi_image=mode)
        assert len(losses) == 1 and np.isfinite(losses[0])
    with torch.inference_mode():
        positive, _ = image_conditioning(parts["clip"], parts["vae"], adapter, parts["photos"], multi_image="average")
    assert positive[0][0].shape == (1, 50, 768)


@pytest.mark.parametrize("case", ["count", "shape", "empty"])
def test_photos_and_poses_that_do_not_pair_up(parts, case):
    poses = _poses(parts, 3)
    if case == "count":
        poses, expected = _poses(parts, 2), "3 subject photo(s) but 2 pose frame(s)"
    elif case == "shape":
        poses, expected = PoseSequence(poses.uv[..., :64, :], "square"), "pose cannot lie on its photo"
    else:
        uv = poses.uv.clone()
        uv[1] = 0
        poses, expected = PoseSequence(uv, "empty"), "pose map of photo 1 is empty"
    with pytest.raises(AnimaPoseError) as err, torch.inference_mode():
        finetune.finetune_unet(parts["model"], parts["adapter"], parts["clip"], parts["vae"], parts["photos"], poses,
                               _unet_settings())
    assert err.value.input_name == "poses" and expected in str(err.value) and err.value.fix


def test_precision_and_gradient_checkpointing_on_the_cpu(parts):
    with pytest.raises(AnimaPoseError, match="fp16 autocast .* needs a CUDA GPU") as err:
        _finetune_unet(parts, steps=1, precision="fp16")
    assert err.value.input_name == "precision"
    # checkpointing recomputes the same forward pass: the same weights, bitwise
    on, _, _ = _finetune_unet(parts, steps=1, gradient_checkpointing=True)
    off, _, _ = _finetune_unet(parts, steps=1, gradient_checkpointing=False)
    a, b = _patched_weights(on), _patched_weights(off)
    assert all(torch.equal(a[k], b[k]) for k in a)
    _, _, losses = _finetune_unet(parts, steps=1, precision="bf16")
    assert np.isfinite(losses[0])
    # the decoder stage in bf16 on the tiny VAE: the precision path is the same at any width, and bf16 is emulated
    # on CPUs without it, where the full-size decoder costs minutes
    settings = finetune.StageSettings(steps=1, learning_rate=5e-5, precision="bf16", **SIZE)
    small = parts["vae"]
    with torch.inference_mode():
        vae, losses = finetune.finetune_vae_decoder(small, parts["photos"][:1], settings)
    assert np.isfinite(losses[0]) and vae.vae_dtype == small.vae_dtype and vae is not small


def test_interrupt_mid_run_leaves_inputs_untouched(parts):
    before = _snapshot(parts["model"], parts["adapter"], parts["vae"])
    seen = []

    def interrupt_after_first(step, total, loss):
        seen.append(step)
        comfy.model_management.interrupt_current_processing(True)

    try:
        with pytest.raises(comfy.model_management.InterruptProcessingException):
            _finetune_unet(parts, steps=50, progress=interrupt_after_first)
    finally:
        comfy.model_management.interrupt_current_processing(False)
    assert seen == [1]
    _assert_same(before, _snapshot(parts["model"], parts["adapter"], parts["vae"]))
    _, _, losses = _finetune_unet(parts, steps=1)  # and training works again afterwards
    assert np.isfinite(losses[0])


def test_zero_steps_pass_the_inputs_through(parts, vae_parts):
    model, adapter, losses = _finetune_unet(parts, steps=0)
    assert model is parts["model"] and adapter is parts["adapter"] and losses == []
    vae, losses = finetune.finetune_vae_decoder(vae_parts, parts["photos"][:1], finetune.StageSettings(0, 1e-5))
    assert vae is vae_parts and losses == []
