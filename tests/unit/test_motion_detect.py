"""Motion-module format detection: every family and layout, the files that are not motion modules, broken files."""

from __future__ import annotations

import functools
import shutil

import pytest
import torch

from comfyui_animapose.animapose.checkpoints import load_state_dict
from comfyui_animapose.animapose.errors import AnimaPoseError
from comfyui_animapose.animapose.motion.formats import detect
from comfyui_animapose.animapose.motion.formats.detect import (
    NormScope,
    build_motion_set,
    image_condition_weights,
    normalize_motion_state_dict,
)
from comfyui_animapose.workshop.fixtures import motion as fx

SD15 = (32, 64, 128, 128)
SDXL = (32, 64, 128)
PER_FRAME = NormScope(motion=False, resnet=False)

# (family, layout) -> family label, base, mid, positions, stored, scope, schedule  (micro profile)
EXPECTED = {
    ("v1", "original"): (detect.V1, "SD1.5", None, 24, True, NormScope(False, True), "sqrt_linear"),
    ("v1", "diffusers"): (detect.V1, "SD1.5", None, 24, True, NormScope(False, True), "sqrt_linear"),
    ("v2", "original"): (detect.V2, "SD1.5", 128, 32, True, PER_FRAME, "sqrt_linear"),
    ("v2", "diffusers"): (detect.V2, "SD1.5", 128, 32, True, PER_FRAME, "sqrt_linear"),
    ("v3", "original"): (detect.V3, "SD1.5", None, 32, True, PER_FRAME, "sqrt_linear"),
    ("v3", "diffusers"): (detect.V3, "SD1.5", None, 32, True, PER_FRAME, "sqrt_linear"),
    ("sdxl_beta", "original"): (detect.SDXL_BETA, "SDXL", None, 32, True, NormScope(True, False), "linear_sdxl"),
    ("sdxl_beta", "diffusers"): (detect.SDXL_BETA, "SDXL", None, 32, True, NormScope(True, False), "linear_sdxl"),
    ("hotshotxl", "original"): (detect.HOTSHOT, "SDXL", None, 24, True, NormScope(False, True), "linear"),
    ("animatelcm", "original"): (detect.LCM, "SD1.5", 128, 64, False, PER_FRAME, "lcm"),
    ("animatelcm", "diffusers"): (detect.LCM, "SD1.5", 128, 64, True, PER_FRAME, "lcm"),
    ("animatelcm_i2v", "original"): (detect.LCM_I2V, "SD1.5", 128, 64, False, PER_FRAME, "lcm_i2v"),
    ("lightning", "original"): (detect.V2, "SD1.5", 128, 32, True, PER_FRAME, "sqrt_linear"),
    ("lightning", "diffusers"): (detect.V2, "SD1.5", 128, 32, True, PER_FRAME, "sqrt_linear"),
}


def _detect_file(path, input_name="motion_model", **kwargs):
    return normalize_motion_state_dict(load_state_dict(str(path), input_name, "motion module"), input_name, **kwargs)


def _error(sd, input_name="motion_model", **kwargs) -> AnimaPoseError:
    with pytest.raises(AnimaPoseError) as e:
        normalize_motion_state_dict(sd, input_name, **kwargs)
    message = str(e.value)
    assert f"input '{input_name}'" in message and "Fix: " in message
    return e.value


@functools.lru_cache(maxsize=None)
def _motion_cached(family):
    return fx.motion_state_dict(family, "original", "micro")


def _motion(family="v2"):
    # A fresh dict over shared tensors: tests add and drop keys but never write into a tensor.
    return dict(_motion_cached(family))


@pytest.mark.parametrize("family,layout", sorted(EXPECTED))
def test_every_family_and_layout(family, layout):
    canonical, info = _detect_file(fx.motion_module_file(family, layout, "micro"))
    label, base, mid, positions, stored, scope, schedule = EXPECTED[family, layout]
    widths = SD15 if base == "SD1.5" else SDXL
    assert (info.family, info.base, info.mid_channels, info.position_length) == (label, base, mid, positions)
    assert (info.stored_positions, info.norm_scope, info.beta_schedule) == (stored, scope, schedule)
    assert info.layout == ("hotshot" if family == "hotshotxl" else layout)
    assert info.down_channels == widths and info.up_channels == tuple(reversed(widths))
    assert (info.down_per_level, info.up_per_level, info.heads, info.ff_mult, info.norm_groups) == (2, 3, 8, 4, 32)
    modules = len(widths) * 5 + (mid is not None)
    assert info.parameters == sum(22 * c * c + 21 * c for c in widths * 2 + widths * 3 + ((mid,) if mid else ()))
    assert len(canonical) == modules * (28 if stored else 26)
    # The canonical dict is exactly what MotionModelSet holds, and the weights survive unchanged.
    model = build_motion_set(canonical, info)
    assert set(model.state_dict()) == set(canonical)
    key = "up_blocks.0.motion_modules.2.temporal_transformer.proj_out.weight"
    assert torch.equal(model.state_dict()[key], canonical[key].float()) and canonical[key].abs().sum() > 0
    assert info.family in info.summary() and f"{positions} frames" in info.summary()


def test_original_layout_keys_are_the_release_keys():
    canonical, _ = _detect_file(fx.motion_module_file("v2", "original", "micro"))
    assert set(canonical) == set(fx.motion_shapes("v2", "original", "micro"))


@pytest.mark.parametrize("family,params,keys", [
    ("v1", 417_137_600, 560),  # docs/animatediff.md "417 M"; guoyww/AnimateDiff#256 reports 560 motion-module keys for v1
    ("v3", 417_137_600, 560),
    ("v2", 453_209_280, 588),  # docs/animatediff.md "453 M"
    ("sdxl_beta", 236_779_200, 420),
    ("hotshotxl", 236_779_200, 420),
])
def test_real_shapes_give_the_published_parameter_counts(family, params, keys):
    sd = {k: torch.empty(v, device="meta") for k, v in fx.motion_shapes(family, "original", "real").items()}
    canonical, info = normalize_motion_state_dict(sd)
    assert (info.parameters, len(canonical)) == (params, keys)
    assert info.down_channels == fx.PROFILES["real"][info.base]


def test_small_and_tiny_profiles():
    sd = {k: torch.empty(v, device="meta") for k, v in fx.motion_shapes("v2", "original", "small").items()}
    _, info = normalize_motion_state_dict(sd)
    assert (info.base, info.down_channels, info.up_channels, info.mid_channels) == ("SD1.5", (320,) * 4, (320,) * 4, 320)
    sd = {k: torch.empty(v, device="meta") for k, v in fx.motion_shapes("sdxl_beta", "original", "small").items()}
    _, info = normalize_motion_state_dict(sd)
    assert (info.family, info.down_channels, info.mid_channels) == (detect.SDXL_BETA, (320,) * 3, None)

    canonical, info = _detect_file(fx.motion_module_file("v1", "original", "tiny"))
    assert (info.family, info.base, info.down_channels, info.down_per_level, info.up_per_level) == (
        detect.V1, "custom", (320,), 1, 2)
    assert len(canonical) == 3 * 28
    _, info = _detect_file(fx.motion_module_file("hotshotxl", "original", "tiny"))
    assert (info.family, info.base, info.norm_scope) == (detect.HOTSHOT, "custom", NormScope(False, True))


def test_ckpt_and_safetensors_load_the_same():
    for family in ("v2", "v3"):  # v3 .ckpt carries the non-tensor 'animatediff_config' entry
        a, info_a = _detect_file(fx.motion_module_file(family, "original", "micro", ext=".ckpt"))
        b, info_b = _detect_file(fx.motion_module_file(family, "original", "micro", ext=".safetensors"))
        assert info_a == info_b and set(a) == set(b)
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_detection_ignores_the_file_name(tmp_path):
    for src, name in [(fx.motion_module_file("v2", "original", "micro"), "mm_sdxl_v10_beta.safetensors"),
                      (fx.motion_module_file("sdxl_beta", "diffusers", "micro"), "v3_sd15_adapter_lora.safetensors"),
                      (fx.motion_module_file("v1", "original", "micro", ext=".ckpt"), "hotshot_v3_lcm.ckpt")]:
        dst = tmp_path / name
        shutil.copy(src, dst)
        assert _detect_file(dst)[1] == _detect_file(src)[1]


def test_adapter_config_tells_v1_from_v3_in_the_diffusers_layout():
    path = fx.motion_module_file("v1", "diffusers", "micro", store_positions=False)
    canonical, info = _detect_file(path)
    assert (info.family, info.position_length, info.stored_positions) == (detect.V3_OR_V1, 32, False)
    assert info.norm_scope == PER_FRAME and "v1" in info.summary()
    assert not any(k.endswith("pe") for k in canonical)
    import json

    v1 = json.loads(fx.motion_adapter_config_json("v1", "micro").read_text())
    _, info = _detect_file(path, adapter_config=v1)
    assert (info.family, info.position_length, info.norm_scope) == (detect.V1, 24, NormScope(False, True))
    _, info = _detect_file(path, adapter_config=fx.motion_adapter_config("v3", "micro"))
    assert (info.family, info.position_length) == (detect.V3, 32)
    _, info = _detect_file(path, adapter_config=dict(v1, motion_norm_num_groups=16, motion_num_attention_heads=4))
    assert (info.norm_groups, info.heads) == (16, 4)


def test_extra_keys_are_stripped():
    sd = _motion("v3")
    extra = {"conv_in.weight": torch.zeros(32, 4, 3, 3), "down_blocks.0.resnets.0.conv1.weight": torch.zeros(2),
             "animatediff_config": "dummy"}
    canonical, info = normalize_motion_state_dict({**sd, **extra})
    assert set(canonical) == set(sd) and info.family == detect.V3
    # A DDP-style prefix on every key is harmless too.
    canonical, info = normalize_motion_state_dict({f"module.{k}": v for k, v in sd.items()})
    assert set(canonical) == set(sd)


def test_animatelcm_table_under_its_own_name():
    sd = fx.motion_state_dict("animatelcm", "original", "micro", store_positions=True)
    assert any(k.endswith("pos_encoder.pos_encoding") for k in sd)
    canonical, info = normalize_motion_state_dict(sd)
    assert (info.family, info.position_length, info.stored_positions) == (detect.LCM, 64, True)
    assert any(k.endswith("pos_encoder.pe") for k in canonical) and not any(k.endswith("pos_encoding") for k in canonical)
    build_motion_set(canonical, info)


# --- files that are not motion modules --------------------------------------------------------------------

def test_refuses_full_checkpoint():
    sd = {"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(320, 4, 3, 3),
          "first_stage_model.decoder.conv_in.weight": torch.zeros(4)}
    e = _error(sd)
    assert "full Stable Diffusion checkpoint" in e.problem and "Load Checkpoint" in e.fix


def test_refuses_motion_lora():
    sd = load_state_dict(str(fx.motion_lora_file("micro")), "motion_model")
    e = _error(sd, input_name="my_motion")
    assert "motion LoRA" in e.problem and "Load AnimateDiff Motion LoRA" in e.fix and e.input_name == "my_motion"


def test_refuses_image_lora_and_domain_adapter():
    kohya = {"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.zeros(4, 320),
             "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight": torch.zeros(320, 4)}
    e = _error(kohya)
    assert "image LoRA" in e.problem and "LoRA loader" in e.fix
    adapter = load_state_dict(str(fx.domain_adapter_file("tiny")), "motion_model")
    e = _error(adapter)
    assert "domain adapter" in e.problem and "LoRA loader" in e.fix


def test_detects_animatelcm_i2v():
    # as released: a .ckpt with a top-level state_dict holding the motion modules and img_encoder.*
    path = fx.motion_module_file("animatelcm_i2v", "original", "micro", ext=".ckpt", dtype="fp32")
    raw = load_state_dict(str(path), "motion_model", "motion module")
    canonical, info = normalize_motion_state_dict(raw)
    assert info.family == detect.LCM_I2V and info.beta_schedule == "lcm_i2v" and not info.stored_positions
    assert not any(k.startswith("img_encoder.") for k in canonical)
    assert "image encoder (32/64/128/128 channels" in info.summary()
    extras = image_condition_weights({"module." + k: v for k, v in raw.items()})
    assert set(extras) == {k for k in raw if k.startswith("img_encoder.")} and len(extras) == 2 + 8 * 4 + 2 * 2
    assert torch.equal(extras["img_encoder.body.2.in_conv.weight"], raw["img_encoder.body.2.in_conv.weight"])


def test_refuses_broken_image_encoders():
    sd = dict(fx.motion_state_dict("animatelcm_i2v", "original", "micro"))
    e = _error({k: v for k, v in sd.items() if k != "img_encoder.body.3.block1.weight"})
    assert "lacks 1 of its" in e.problem and "img_encoder.body.3.block1.weight" in e.problem
    e = _error({**sd, "img_encoder.body.0.skep.weight": torch.zeros(32, 32, 1, 1)})
    assert "variant" in e.problem and "AnimateLCM_sd15_i2v.ckpt" in e.fix
    e = _error({**sd, "img_encoder.body.4.block1.weight": torch.zeros(64, 64, 3, 3)})
    assert "widths do not match" in e.problem
    e = _error({**sd, "img_encoder.conv_in.weight": torch.zeros(32, 9, 3, 3)})
    assert "conv_in" in e.problem
    encoder = {k: v for k, v in sd.items() if k.startswith("img_encoder.")}
    e = _error({**_motion("v3"), **encoder})
    assert "AnimateDiff v3" in e.problem and "AnimateLCM_sd15_i2v.ckpt" in e.fix


def test_sparsectrl_is_sent_to_its_loader():
    e = _error({**_motion(), "controlnet_cond_embedding.conv_in.weight": torch.zeros(2)})
    assert "SparseCtrl" in e.problem and "Load AnimateDiff SparseCtrl" in e.fix


@pytest.mark.parametrize("layout", ["original", "diffusers"])
def test_detects_pia(layout):
    sd = fx.motion_state_dict("pia", layout, "micro", dtype="fp32")
    assert sd["conv_in.weight"].shape == (32, 9, 3, 3)
    canonical, info = normalize_motion_state_dict(sd)
    assert info.family == "PIA" and info.mid_channels is None and info.position_length == 32
    assert info.norm_scope.resnet and not info.norm_scope.motion and info.beta_schedule == "sqrt_linear"
    assert not any(k.startswith("conv_in.") for k in canonical)
    extras = image_condition_weights({"module." + k: v for k, v in sd.items()})
    assert set(extras) == {"conv_in.weight", "conv_in.bias"} and torch.equal(extras["conv_in.weight"], sd["conv_in.weight"])
    assert image_condition_weights(fx.motion_state_dict("v3", layout, "micro")) == {}


@pytest.mark.parametrize("extra,words", [
    ({"conv_in.weight": torch.zeros(32, 8, 3, 3), "conv_in.bias": torch.zeros(32)}, "takes 9 channels"),
    ({"conv_in.weight": torch.zeros(32, 9, 3, 3)}, "incomplete conv_in"),
])
def test_refuses_broken_pia(extra, words):
    e = _error({**_motion(), **extra})
    assert words in e.problem and "pia.ckpt" in e.fix


def test_refuses_file_without_motion_modules():
    e = _error({"down_blocks.0.resnets.0.conv1.weight": torch.zeros(2), "time_embedding.linear_1.weight": torch.zeros(2)})
    assert "no motion modules" in e.problem and "mm_sd_v15_v2" in e.fix
    e = _error({"animatediff_config": "x"})
    assert "no tensors" in e.problem


def test_refuses_mixed_layouts():
    sd = {**_motion(), **{k.replace("motion_modules", "temporal_attentions").replace("temporal_transformer.", ""): v
                          for k, v in _motion("v3").items() if "up_blocks.0" in k}}
    assert "mixes" in _error(sd).problem


def test_refuses_unknown_variant_keys():
    sd = _motion()
    sd["down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.1.norms.0.weight"] = torch.zeros(32)
    e = _error(sd)
    assert "down_blocks.0.motion_modules.0" in e.problem and "transformer_blocks.1.norms.0.weight" in e.problem


# --- truncated and partial files --------------------------------------------------------------------------

def _without(sd, fragment):
    return {k: v for k, v in sd.items() if fragment not in k}


@pytest.mark.parametrize("fragment,words", [
    ("up_blocks.3.motion_modules.2.temporal_transformer.proj_out.weight", "'up_blocks.3.motion_modules.2' lacks 1 of its 26"),
    ("up_blocks.3.motion_modules.2.", "up_blocks.3 has 2 motion modules where the other levels have 3"),
    ("up_blocks.3.", "4 down levels but 3 up levels"),
    ("down_blocks.1.", "no motion modules for down_blocks.1"),
    ("down_blocks.0.motion_modules.0.temporal_transformer.norm.", "'down_blocks.0.motion_modules.0' lacks 2 of its 26"),
    ("down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0.ff.", "lacks its feed-forward"),
    ("mid_block.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.1.pos_encoder", "one attention block"),
    ("mid_block.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.", "'mid_block.motion_modules.0' lacks 10"),
])
def test_refuses_partial_state_dicts(fragment, words):
    e = _error(_without(_motion(), fragment))
    assert words in e.problem and "incomplete" in e.problem and "download" in e.fix


def test_refuses_missing_tables_and_bad_shapes():
    sd = _without(_motion(), "up_blocks.1.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0.pos")
    sd = _without(sd, "up_blocks.1.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.1.pos")
    assert "1 motion modules lack the position tables" in _error(sd).problem
    sd = _motion()
    sd["down_blocks.2.motion_modules.1.temporal_transformer.proj_in.weight"] = torch.zeros(128, 64)
    assert "proj_in.weight (128, 64) (expected (128, 128))" in _error(sd).problem


def test_truncated_files(tmp_path):
    for ext in (".safetensors", ".ckpt"):
        src = fx.motion_module_file("v3", "original", "micro", ext=ext)
        data = src.read_bytes()
        dst = tmp_path / f"cut{ext}"
        dst.write_bytes(data[: len(data) // 2])
        with pytest.raises(AnimaPoseError) as e:
            load_state_dict(str(dst), "motion_model", "motion module")
        assert "truncated" in e.value.problem and "download" in e.value.fix


class _Pickled:
    """A custom class: loading it needs pickled code, which weights_only refuses."""


def test_ckpt_needing_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": _motion(), "config": _Pickled()}, path)
    with pytest.raises(AnimaPoseError) as e:
        load_state_dict(str(path), "motion_model", "motion module")
    assert "pickled" in e.value.problem and "safetensors" in e.value.fix
