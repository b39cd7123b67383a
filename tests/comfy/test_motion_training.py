"""Motion-module and MotionLoRA training on tiny fixtures (the 1-level SD1.5 UNet, the matching v2 motion module):
a few steps lower the loss on fixed draws, what flows in stays bitwise unchanged, the same seed gives the same
weights, the saved files are in the original layouts and reload through the pack's loaders to identical outputs, and
bad inputs give clear errors. Runs like ComfyUI runs nodes, under ``torch.inference_mode()``.
"""

from __future__ import annotations

import pytest
import safetensors.torch
import torch

from comfyui_animapose.animapose.errors import AnimaPoseError
from comfyui_animapose.animapose.motion.formats.lora import parse_motion_lora
from comfyui_animapose.animapose.motion.sampling.inflate import add_motion_lora, apply_motion_model, load_motion_model
from comfyui_animapose.animapose.training import motion as mt
from comfyui_animapose.workshop.sampling import run
from comfyui_animapose.workshop.synthetic.shapes import make_clips

FRAMES = 3


@pytest.fixture(scope="module")
def clips(tiny):
    _, clip, _, _, _ = tiny
    data = make_clips(3, seed=5, frames=5, size=32)
    with torch.inference_mode():
        contexts = [clip.encode_from_tokens_scheduled(clip.tokenize(c))[0][0] for _, c, _ in data]
        empty = clip.encode_from_tokens_scheduled(clip.tokenize(""))[0][0]
    return mt.Clips([v for v, _, _ in data], [0, 1, 2], contexts, empty)


def _settings(**kw):
    base = dict(mode="motion_module", steps=4, learning_rate=1e-3, frames=FRAMES, batch_size=1, seed=3,
                gradient_checkpointing=False)
    return mt.MotionTrainSettings(**{**base, **kw})


def _snapshot(model, motion=None):
    out = {"unet": {k: v.clone() for k, v in model.model.state_dict().items()},
           "patches": {k: len(v) for k, v in model.patches.items()}}
    if motion is not None:
        out["motion"] = {k: v.clone() for k, v in motion.patcher.model.state_dict().items()}
        out["motion_patches"] = {k: len(v) for k, v in motion.patcher.patches.items()}
    return out


def _same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], dict) and a[key] and isinstance(next(iter(a[key].values())), torch.Tensor):
            assert a[key].keys() == b[key].keys()
            for k in a[key]:
                assert torch.equal(a[key][k], b[key][k]), f"{key}:{k} changed"
        else:
            assert a[key] == b[key]


def test_new_module_is_zero_initialised_and_fits(tiny):
    from comfyui_animapose.animapose.training.loop import trainable_unet

    model = tiny[0]
    unet = trainable_unet(model, torch.device("cpu"))
    motion_set = mt.new_motion_set(unet, seed=0)
    from comfyui_animapose.animapose.motion.formats.detect import normalize_motion_state_dict

    sd, info = normalize_motion_state_dict(motion_set.state_dict())
    assert info.family == "AnimateDiff v2" and info.layout == "original"
    assert info.down_channels == (320,) and info.position_length == 32 and info.mid_channels == 320
    outs = [k for k in sd if k.endswith(("proj_out.weight", "proj_out.bias"))]
    assert outs and all(float(sd[k].abs().max()) == 0.0 for k in outs)


def test_motion_module_training_lowers_loss_keeps_inputs_and_reloads(tiny, clips, tmp_path):
    model, _, vae, positive, negative = tiny
    before = _snapshot(model)
    images_before = [v.clone() for v in clips.videos]
    with torch.inference_mode():
        result = mt.train_motion(model, vae, clips, _settings(steps=4), probe_draws=3)
    _same(before, _snapshot(model))
    assert all(torch.equal(a, b) for a, b in zip(images_before, clips.videos))
    assert len(result.losses) == 4 and all(torch.isfinite(torch.tensor(result.losses)))
    assert result.probe[1] < result.probe[0], result.probe


    # The file is the original layout and reloads to the same outputs as the in-memory result.
    path = mt.save_motion_module(result.motion_state, tmp_path / "mm_trained.safetensors")
    keys = safetensors.torch.load_file(str(path)).keys()
    assert "down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0.pos_encoder.pe" \
        in keys
    assert "mid_block.motion_modules.0.temporal_transformer.proj_out.weight" in keys
    with torch.inference_mode():
        in_memory = mt.motion_model_from_state(result.motion_state, "trained")
        loaded = load_motion_model(str(path), path.name)
        assert loaded.info.family == "AnimateDiff v2"
        a = run(apply_motion_model(model, in_memory).model, positive, negative, frames=FRAMES, size=4)
        b = run(apply_motion_model(model, loaded).model, positive, negative, frames=FRAMES, size=4)
        plain = run(model, positive, negative, frames=FRAMES, size=4)
    assert torch.equal(a, b)
    assert not torch.equal(a, plain)  # the trained proj_out is no longer zero: the module acts


def test_motion_lora_training_original_layout(tiny, tiny_motion, clips, tmp_path):
    model, _, vae, positive, negative = tiny
    before = _snapshot(model, tiny_motion)
    with torch.inference_mode():
        result = mt.train_motion(model, vae, clips, _settings(mode="motion_lora", lora_rank=4, steps=4,
                                                              learning_rate=1e-3), tiny_motion, probe_draws=3)
    _same(before, _snapshot(model, tiny_motion))
    assert result.probe[1] < result.probe[0], result.probe
    # 4 modules x 2 attention blocks x 4 projections, each (up, down) of rank 4
    assert len(result.lora_pairs) == 32
    up, down = next(iter(result.lora_pairs.values()))
    assert up.shape == (320, 4) and down.shape == (4, 320) and float(up.abs().max()) > 0

    path = mt.save_motion_lora(result.lora_pairs, tmp_path / "lora.safetensors")
    sd = safetensors.torch.load_file(str(path))
    assert ("up_blocks.0.motion_modules.1.temporal_transformer.transformer_blocks.0.attention_blocks.1.processor."
            "to_out_lora.up.weight") in sd
    assert parse_motion_lora(sd).keys() == result.lora_pairs.keys()
    with torch.inference_mode():
        in_memory = mt.motion_model_with_lora(tiny_motion, result.lora_pairs, "trained")
        loaded = add_motion_lora(tiny_motion, str(path), path.name, 1.0)
        a = run(apply_motion_model(model, in_memory).model, positive, negative, frames=FRAMES, size=4)
        b = run(apply_motion_model(model, loaded).model, positive, negative, frames=FRAMES, size=4)
        base = run(apply_motion_model(model, tiny_motion).model, positive, negative, frames=FRAMES, size=4)
    assert torch.equal(a, b)
    assert not torch.equal(a, base)


def test_seeded_checkpointing_and_bf16(tiny, clips):
    """The same seed gives bitwise the same weights (CPU); gradient checkpointing recomputes the same forward (the
    same weights up to float reordering); bf16 autocast trains."""
    model, _, vae, _, _ = tiny
    with torch.inference_mode():
        first = mt.train_motion(model, vae, clips, _settings(steps=1))
        again = mt.train_motion(model, vae, clips, _settings(steps=1))
        ckpt = mt.train_motion(model, vae, clips, _settings(steps=1, gradient_checkpointing=True))
        bf16 = mt.train_motion(model, vae, clips, _settings(steps=1, precision="bf16", batch_size=2))
    for k in first.motion_state:
        assert torch.equal(first.motion_state[k], again.motion_state[k]), k
        torch.testing.assert_close(first.motion_state[k], ckpt.motion_state[k], rtol=1e-4, atol=1e-6)
    assert all(torch.isfinite(torch.tensor(bf16.losses)))


def test_bad_inputs(tiny, tiny_motion, clips):
    model, _, vae, _, _ = tiny
    with pytest.raises(AnimaPoseError, match="motion_model"):
        mt.train_motion(model, vae, clips, _settings(mode="motion_lora"))
    with pytest.raises(AnimaPoseError, match="frames"):
        mt.train_motion(model, vae, clips, _settings(frames=12))  # the videos have 5 frames
    with pytest.raises(AnimaPoseError, match="precision"):
        mt.train_motion(model, vae, clips, _settings(precision="fp16"))
    odd = mt.Clips([clips.videos[0][:, :28]], [0], clips.contexts[:1])
    with pytest.raises(AnimaPoseError, match="multiple of 8"):
        mt.train_motion(model, vae, odd, _settings())
    with pytest.raises(AnimaPoseError, match="min_timestep"):
        mt.train_motion(model, vae, clips, _settings(min_timestep=1000))


def test_min_timestep_draws_only_noisier_steps(tiny, clips):
    """With ``min_timestep`` every clip is noised at a timestep from [min_timestep, 1000): the UNet sees no other."""
    model, _, vae, _, _ = tiny
    seen = []

    def record(_module, _args, kwargs):
        seen.append(kwargs["timesteps"].clone())

    with torch.inference_mode(), mt.training_mode():
        for low in (0, 900):
            run = mt.MotionRun.from_comfy(model, vae, clips, None, _settings(min_timestep=low, batch_size=2),
                                          torch.device("cpu"))
            handle = run.unet.register_forward_pre_hook(record, with_kwargs=True)
            for _ in range(8):
                run.loss(run.generator)
            handle.remove()
    uniform, noisy = torch.cat(seen[:8]), torch.cat(seen[8:])
    assert float(noisy.min()) >= 900 and float(noisy.max()) < 1000, noisy
    assert float(uniform.min()) < 900, uniform  # 16 uniform draws all above 900 would be a 1e-16 chance


def test_free_name_never_lists_a_name_twice(tmp_path):
    """A saved name skips every name taken under any model extension in any folder the loader lists (and dangling
    links), so a new file neither overwrites one nor appears beside one of the same name."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    assert mt.free_name(str(a), "run") == a / "run.safetensors"
    assert mt.free_name([a, b], "sub/run") == a / "sub" / "run.safetensors"
    (a / "walk.ckpt").write_bytes(b"x")
    assert mt.free_name([a, b], "walk") == a / "walk_00001.safetensors"
    (b / "walk_00001.pth").write_bytes(b"x")
    (a / "walk_00002.safetensors").symlink_to(tmp_path / "missing")
    assert mt.free_name([a, b], "walk") == a / "walk_00003.safetensors"
