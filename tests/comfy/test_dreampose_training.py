"""DreamPose stage 1 (the dataset-level training CLI) on a tiny synthetic UBC-style dataset: a couple of steps from an
SD1.x checkpoint give finite losses and the official files, which reload into the same weights and outputs; resuming
from those files works; bad datasets give clear errors."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
import torch

from comfyui_animapose.animapose.dreampose import checkpoint
from comfyui_animapose.animapose.errors import AnimaPoseError
from comfyui_animapose.workshop.fixtures import dreampose as fx
from comfyui_animapose.workshop.fixtures.sd15 import sd15_checkpoint
from comfyui_animapose.workshop.train import dreampose as training

TINY = ["--width", "64", "--height", "80", "--batch-size", "2", "--grad-accumulation", "1", "--log-every", "1"]


def _args(out, *extra) -> list[str]:
    return ["--data", str(fx.ubc_dataset_folder()), "--clip", str(fx.tiny_clip_b32_folder()), "--output", str(out),
            *TINY, *extra]


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("stage1")
    base = sd15_checkpoint("tiny", "taesd")  # a 4-channel SD1.5 UNet: conv_in gets widened to 14 channels
    # a learning rate well above the paper's 5e-6, so that two updates show on random weights
    return out, training.run(_args(out, "--base", str(base), "--max-steps", "2", "--seed", "3", "--lr", "1e-4"))


def test_two_steps_from_an_sd_checkpoint_write_the_official_files(first_run):
    out, result = first_run
    assert result.steps == 2 and len(result.losses) == 2 and all(math.isfinite(v) for v in result.losses)
    before, after = result.probe
    assert after < before, result.probe
    assert sorted(p.name for p in out.iterdir()) == ["adapter_0.safetensors", "unet_epoch_0.safetensors"]
    sd = checkpoint.read_unet_state_dict(str(out / "unet_epoch_0.safetensors"))
    assert tuple(sd["conv_in.weight"].shape) == (320, 14, 3, 3)  # diffusers names, as the official unet_epoch_N.pth


def test_saved_files_reload_to_the_trained_weights_and_outputs(first_run):
    out, result = first_run
    model = checkpoint.load_unet(str(out / "unet_epoch_0.safetensors"))
    adapter = checkpoint.read_adapter(str(out / "adapter_0.safetensors"))
    reloaded = model.model.diffusion_model.state_dict()
    assert reloaded.keys() == result.unet_state.keys()
    assert all(torch.equal(reloaded[k], result.unet_state[k]) for k in reloaded)
    assert all(torch.equal(a, b) for a, b in zip(adapter.state_dict().values(), result.adapter.state_dict().values()))
    # the trained pose channels are no longer the zero init
    assert result.unet_state["input_blocks.0.0.weight"][:, 4:].abs().sum() > 0
    g = torch.Generator().manual_seed(0)
    clip, latent = torch.randn(1, 50, 768, generator=g), torch.randn(1, 4, 80, 64, generator=g)
    x = torch.randn(1, 14, 10, 8, generator=g)
    with torch.no_grad():
        tokens = adapter(clip, latent)
        assert torch.equal(tokens, result.adapter(clip, latent))
        y = model.model.diffusion_model(x, torch.tensor([500.0]), context=tokens)
        from comfyui_animapose.animapose.dreampose.finetune import trainable_unet

        y2 = trainable_unet(model, torch.device("cpu"))(x, torch.tensor([500.0]), context=tokens)
    assert torch.equal(y, y2)


def test_resume_from_the_files_as_pth(first_run, tmp_path):
    out, _ = first_run
    result = training.run(_args(tmp_path, "--unet", str(out / "unet_epoch_0.safetensors"), "--base",
                                str(sd15_checkpoint("tiny", "taesd")), "--max-steps", "1", "--format", "pth",
                                "--pose-window", "repeat", "--precision", "bf16", "--crop-probability", "1"))
    assert result.steps == 1 and math.isfinite(result.losses[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter_0.pth", "unet_epoch_0.pth"]
    assert checkpoint.load_unet(str(tmp_path / "unet_epoch_0.pth")) is not None  # read back without pickled code


def test_dataset_layout(tmp_path):
    with pytest.raises(AnimaPoseError) as err:
        training.find_videos(str(tmp_path))
    assert err.value.input_name == "data" and "frame_N_densepose.npy" in err.value.fix
    video = tmp_path / "clip"
    video.mkdir()
    src = fx.ubc_dataset_folder() / "video_000"
    for n, name in ((0, "frame_0"), (1, "frame_10"), (2, "frame_2")):
        os.symlink(src / f"frame_{n}.png", video / f"{name}.png")
        os.symlink(src / f"frame_{n}_densepose.npy", video / f"{name}_densepose.npy")
    os.symlink(src / "frame_0.png", video / "frame_99.png")  # no pose beside it: skipped
    (frames,) = training.find_videos(str(tmp_path))
    assert [os.path.basename(p) for p, _ in frames] == ["frame_0.png", "frame_2.png", "frame_10.png"]


def test_missing_starting_point_is_a_clear_error(tmp_path):
    with pytest.raises(AnimaPoseError, match="no starting model"):
        training.run(_args(tmp_path))


def test_script_entry_point_help():
    result = subprocess.run([sys.executable, "-m", "comfyui_animapose.workshop.train.dreampose", "--help"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for flag in ("--data", "--base", "--pose-dropout", "--pose-window", "--grad-accumulation", "--format"):
        assert flag in result.stdout


def test_feature_cache_changes_nothing_but_the_work(first_run, tmp_path):
    # The frozen CLIP/VAE features kept after first use give the same losses and weights as recomputing them (up to
    # float rounding: a cached run encodes a micro-batch's new pictures only, so batch sizes differ).
    _, result = first_run
    base = sd15_checkpoint("tiny", "taesd")
    cached = training.run(_args(tmp_path, "--base", str(base), "--max-steps", "2", "--seed", "3", "--lr", "1e-4",
                                "--cache-features"))
    assert cached.losses == pytest.approx(result.losses, rel=1e-5)
    assert cached.probe == pytest.approx(result.probe, rel=1e-5)
    for k, v in result.unet_state.items():
        torch.testing.assert_close(cached.unet_state[k], v, rtol=1e-4, atol=1e-6, msg=k)


def test_reference_frames_limits_the_conditioning_frames(tmp_path):
    config = training.config_from_args(training.build_parser().parse_args(
        _args(tmp_path, "--base", str(sd15_checkpoint("tiny", "taesd")), "--reference-frames", "1")))
    assert config.reference_frames == 1
    videos = training.find_videos(str(fx.ubc_dataset_folder()))
    # every video conditions on its first frame only; targets still range over all its frames
    assert [(v, 0) for v in range(len(videos))] == [(v, k) for v, video in enumerate(videos)
                                                    for k in range(min(len(video), config.reference_frames))]
    bad = training.config_from_args(training.build_parser().parse_args(
        _args(tmp_path, "--base", str(sd15_checkpoint("tiny", "taesd")), "--reference-frames", "0")))
    with pytest.raises(AnimaPoseError, match="at least 1"):
        training.train_stage1(bad)


def test_narrow_twin_computes_what_the_wide_unet_computes():
    """``--narrow``: the 40-channel twin of a widened 14-channel UNet gives the wide UNet's outputs, and its trained
    weights widen back; a UNet with weights outside the twin's channels is refused."""
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    from comfyui_animapose.workshop.synthetic import tiny_models as tm

    narrow = tm.narrow_unet(8, seed=5, in_channels=14).eval()
    wide_sd = tm.expand_unet(narrow.state_dict(), 8)
    config = tm.unet_config(tm.WIDE, tm.WIDE_HEADS, 14)
    wide = UNetModel(**config, operations=comfy.ops.disable_weight_init).eval()
    wide.load_state_dict(wide_sd)
    twin = training.narrow_twin(wide, config, 8, torch.device("cpu"))
    assert all(p.requires_grad for p in twin.parameters())
    g = torch.Generator().manual_seed(0)
    x, context = torch.randn(2, 14, 10, 8, generator=g), torch.randn(2, 50, 768, generator=g)
    t = torch.tensor([10.0, 900.0])
    with torch.no_grad():
        expected = wide(x, timesteps=t, context=context, transformer_options={})
        got = twin(x, timesteps=t, context=context, transformer_options={})
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    assert expected.abs().mean() > 0.1
    for key, value in tm.expand_unet(tm.shrink_unet(wide_sd, 8), 8).items():
        assert torch.equal(value, wide_sd[key]), key
    wide_sd["input_blocks.0.0.weight"][100] = 1.0  # a live channel the twin does not have
    wide.load_state_dict(wide_sd)
    with pytest.raises(AnimaPoseError, match="not a widened narrow one"):
        training.narrow_twin(wide, config, 8, torch.device("cpu"))
    with pytest.raises(AnimaPoseError, match="narrow"):
        training.narrow_twin(wide, dict(config, channel_mult=[1, 2]), 8, torch.device("cpu"))
