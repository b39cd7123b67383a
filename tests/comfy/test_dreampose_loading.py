"""DreamPose file checks: the UNet config derived from keys (small and real SD1.4 shapes) and the refusals."""

from __future__ import annotations

import argparse

import comfy.model_detection
import comfy.ops
import comfy.supported_models
import pytest
import torch

from comfyui_animapose.animapose.dreampose import checkpoint
from comfyui_animapose.animapose.errors import AnimaPoseError
from comfyui_animapose.workshop.fixtures import dreampose as fx
from comfyui_animapose.workshop.fixtures import sd15


def _meta_state_dict(shapes):
    return {k: torch.empty(shape, dtype=dtype, device="meta") for k, (shape, dtype) in shapes.items()}


def _comfy_unet_shapes(profile: str):
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    unet = UNetModel(**sd15.unet_config(profile, 14), device="meta", operations=comfy.ops.disable_weight_init)
    return {k: tuple(v.shape) for k, v in unet.state_dict().items()}


@pytest.mark.parametrize("profile", ["small", "full"])
def test_config_and_key_mapping_reproduce_comfys_own_unet(profile):
    """Diffusers shapes (from diffusers itself) -> derived config and LDM keys == ComfyUI's UNetModel for the profile."""
    sd = _meta_state_dict(fx.unet_shapes(profile))
    config = checkpoint.ldm_unet_config(sd)
    expected = sd15.unet_config(profile, 14)
    for key in ("in_channels", "model_channels", "num_res_blocks", "channel_mult", "transformer_depth",
                "transformer_depth_output", "transformer_depth_middle", "context_dim", "use_linear_in_transformer",
                "num_heads"):
        assert config[key] == expected[key], key
    ldm = checkpoint.unet_ldm_keys(sd, config)
    assert {k: tuple(v.shape) for k, v in ldm.items()} == _comfy_unet_shapes(profile)
    # ComfyUI's own detection reads the mapped keys as SD1.x with 14 input channels
    detected = comfy.model_detection.model_config_from_unet(ldm, "")
    assert isinstance(detected, comfy.supported_models.SD15)
    assert detected.unet_config["in_channels"] == 14


def test_ddp_prefix_is_stripped():
    plain = checkpoint.read_unet_state_dict(str(fx.dreampose_unet_file("small", ".pth")))
    ddp = checkpoint.read_unet_state_dict(str(fx.dreampose_unet_file("small", ".pth", prefix_module=True)))
    assert ddp.keys() == plain.keys()
    assert torch.equal(ddp["conv_in.weight"], plain["conv_in.weight"])


def _save(tmp_path, sd, name):
    path = tmp_path / name
    if name.endswith(".safetensors"):
        import safetensors.torch

        safetensors.torch.save_file(sd, str(path))
    else:
        torch.save(sd, str(path))
    return str(path)


def _unet_core(in_channels: int) -> dict:
    return {"conv_in.weight": torch.zeros(320, in_channels, 3, 3), "conv_out.weight": torch.zeros(4, 320, 3, 3),
            "time_embedding.linear_1.weight": torch.zeros(1280, 320),
            "down_blocks.0.resnets.0.conv1.weight": torch.zeros(320, 320, 3, 3)}


def test_plain_sd_unets_are_refused(tmp_path):
    path = _save(tmp_path, _unet_core(4), "sd15_unet.safetensors")
    with pytest.raises(AnimaPoseError, match="plain Stable Diffusion UNet") as e:
        checkpoint.read_unet_state_dict(path, "unet_name")
    assert "unet_epoch_N.pth" in str(e.value) and "14 channels" in str(e.value)
    ldm = {"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(320, 4, 3, 3),
           "first_stage_model.decoder.conv_in.weight": torch.zeros(512, 4, 3, 3)}
    with pytest.raises(AnimaPoseError, match="original \\(LDM\\) layout"):
        checkpoint.read_unet_state_dict(_save(tmp_path, ldm, "v1-5-pruned.ckpt"))
    with pytest.raises(AnimaPoseError, match="takes 14 input channels"):
        checkpoint.read_unet_state_dict(_save(tmp_path, _unet_core(9), "inpaint.safetensors"))


def test_other_dreampose_files_in_the_unet_slot_are_refused():
    with pytest.raises(AnimaPoseError, match="adapter file, not the UNet"):
        checkpoint.read_unet_state_dict(str(fx.dreampose_adapter_file()))
    with pytest.raises(AnimaPoseError, match="not a diffusers UNet"):
        checkpoint.read_unet_state_dict(str(fx.dreampose_vae_file()))


def test_incomplete_unet_is_refused_before_loading():
    sd = checkpoint.read_unet_state_dict(str(fx.dreampose_unet_file("small", ".pth")))
    del sd["mid_block.resnets.1.conv2.weight"]
    with pytest.raises(AnimaPoseError, match="lacks 1 weights"):
        checkpoint.unet_to_model(sd)
    sd = checkpoint.read_unet_state_dict(str(fx.dreampose_unet_file("small", ".pth")))
    sd["down_blocks.0.motion_modules.0.proj.weight"] = torch.zeros(1)
    with pytest.raises(AnimaPoseError, match="does not have"):
        checkpoint.unet_to_model(sd)
    del sd["down_blocks.0.motion_modules.0.proj.weight"]
    sd["up_blocks.1.attentions.0.proj_out.weight"] = torch.zeros(320, 160, 1, 1)
    with pytest.raises(AnimaPoseError, match="shapes an SD1.x UNet cannot have"):
        checkpoint.unet_to_model(sd)


def test_wrong_adapters_are_refused(tmp_path):
    from comfyui_animapose.animapose.dreampose.adapter import EmbeddingAdapter

    sd = EmbeddingAdapter().state_dict()
    sd["linear1.weight"] = torch.zeros(50, 77)
    with pytest.raises(AnimaPoseError, match=r"linear1.weight has shape \[50, 77\]") as e:
        checkpoint.read_adapter(_save(tmp_path, sd, "adapter_77.pth"), "adapter_name")
    assert "input 'adapter_name'" in str(e.value)
    with pytest.raises(AnimaPoseError, match="this is a UNet file"):
        checkpoint.read_adapter(_save(tmp_path, _unet_core(14), "unet.safetensors"))
    ddp = {"module." + k: v for k, v in EmbeddingAdapter().state_dict().items()}
    assert isinstance(checkpoint.read_adapter(_save(tmp_path, ddp, "adapter_ddp.pth")), EmbeddingAdapter)


def test_truncated_files_are_refused(tmp_path):
    for source, name in ((fx.dreampose_adapter_file(".pth"), "adapter_cut.pth"),
                         (fx.dreampose_adapter_file(".safetensors"), "adapter_cut.safetensors")):
        data = source.read_bytes()
        path = tmp_path / name
        path.write_bytes(data[: len(data) // 2])
        with pytest.raises(AnimaPoseError, match="truncated") as e:
            checkpoint.read_adapter(str(path), "adapter_name")
        assert "download the file again" in str(e.value)


def test_pickled_code_is_refused(tmp_path):
    from comfyui_animapose.animapose.dreampose.adapter import EmbeddingAdapter

    sd = {**EmbeddingAdapter().state_dict(), "args": argparse.Namespace(lr=5e-6)}
    with pytest.raises(AnimaPoseError, match="only pickled code can rebuild"):
        checkpoint.read_adapter(_save(tmp_path, sd, "adapter_args.pth"))
    path = tmp_path / "whole_module.pth"
    torch.save(EmbeddingAdapter(), str(path))  # torch.save(model) instead of its state_dict
    with pytest.raises(AnimaPoseError, match="only pickled code can rebuild"):
        checkpoint.read_unet_state_dict(str(path))


def test_wrong_vae_files_are_refused(tmp_path):
    with pytest.raises(AnimaPoseError, match="is a UNet"):
        checkpoint.read_vae(_save(tmp_path, _unet_core(14), "unet.safetensors"), "vae_name")
    sd = {"decoder.up_blocks.0.resnets.0.norm1.weight": torch.ones(512), "quant_conv.weight": torch.zeros(32, 32, 1, 1)}
    with pytest.raises(AnimaPoseError, match="4 latent channels"):
        checkpoint.read_vae(_save(tmp_path, sd, "flux_vae.safetensors"))
    sd = {"decoder.up_blocks.0.resnets.0.norm1.weight": torch.ones(512), "quant_conv.weight": torch.zeros(8, 8, 1, 1)}
    with pytest.raises(AnimaPoseError, match="not a complete SD1.x VAE"):
        checkpoint.read_vae(_save(tmp_path, sd, "partial_vae.safetensors"))
    with pytest.raises(AnimaPoseError, match="does not exist"):
        checkpoint.read_vae(str(tmp_path / "missing.pth"))
