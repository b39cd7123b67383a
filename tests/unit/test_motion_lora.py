"""Motion LoRA parsing: the original loader's key mapping and update rule, other namings, and refusals."""

from __future__ import annotations

import pytest
import torch

from comfyui_animapose.animapose.checkpoints import load_state_dict
from comfyui_animapose.animapose.errors import AnimaPoseError
from comfyui_animapose.animapose.motion.formats.detect import build_motion_set, normalize_motion_state_dict
from comfyui_animapose.animapose.motion.formats.lora import lora_delta, parse_motion_lora
from comfyui_animapose.workshop.fixtures import motion as fx


def _reference_merge(weights: dict[str, torch.Tensor], lora: dict[str, torch.Tensor], alpha: float) -> dict[str, torch.Tensor]:
    """The original repository's rule (animatediff/utils/convert_lora_safetensor_to_diffusers.py,
    load_diffusers_lora), restated: for each down key, the weight name is the key without 'processor.',
    '_lora', 'down.' and 'up.', with 'to_out.' read as 'to_out.0.'; the weight gains alpha * up @ down."""
    merged = dict(weights)
    for key, down in lora.items():
        if "up." in key:
            continue
        up = lora[key.replace(".down.", ".up.")]
        name = key.replace("processor.", "").replace("_lora", "").replace("down.", "").replace("up.", "")
        name = name.replace("to_out.", "to_out.0.")
        merged[name] = merged[name] + alpha * torch.mm(up.float(), down.float())
    return merged


def _lora_sd(profile="micro", **kw):
    return load_state_dict(str(fx.motion_lora_file(profile, **kw)), "lora_name", "motion LoRA")


def _error(sd, input_name="lora_name") -> AnimaPoseError:
    with pytest.raises(AnimaPoseError) as e:
        parse_motion_lora(sd, input_name)
    assert f"input '{input_name}'" in str(e.value) and "Fix: " in str(e.value)
    return e.value


def test_parse_and_delta_equal_the_original_rule():
    lora = _lora_sd(rank=4)
    canonical, info = normalize_motion_state_dict(fx.motion_state_dict("v2", "original", "micro", dtype="fp32"))
    weights = build_motion_set(canonical, info).state_dict()
    parsed = parse_motion_lora(lora)
    assert len(parsed) == 21 * 2 * 4 == len(lora) // 2
    assert set(parsed) <= set(weights)
    alpha = 0.8
    ours = dict(weights)
    for key, (up, down) in parsed.items():
        delta = lora_delta(up, down)
        assert delta.dtype == torch.float32 and delta.shape == weights[key].shape and up.shape[1] == 4
        ours[key] = ours[key] + alpha * delta
    reference = _reference_merge(weights, {k: v for k, v in lora.items()}, alpha)
    assert set(reference) == set(weights)
    changed = [k for k in weights if not torch.equal(reference[k], weights[k])]
    assert len(changed) == len(parsed)
    assert all(torch.equal(ours[k], reference[k]) for k in weights)


def test_safetensors_and_ckpt_parse_the_same():
    a = parse_motion_lora(_lora_sd(ext=".safetensors"))
    b = parse_motion_lora(_lora_sd(ext=".ckpt"))
    assert set(a) == set(b) and all(torch.equal(a[k][0], b[k][0]) and torch.equal(a[k][1], b[k][1]) for k in a)


def test_known_key_names():
    parsed = parse_motion_lora(_lora_sd())
    assert "down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0.to_q.weight" in parsed
    assert "mid_block.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.1.to_out.0.weight" in parsed


def _diffusers_names(sd: dict[str, torch.Tensor], style: str) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in sd.items():
        k = "unet." + key.replace(".temporal_transformer", "")
        k = k.replace("attention_blocks.0.", "attn1.").replace("attention_blocks.1.", "attn2.")
        if style == "peft":
            k = k.replace("processor.", "").replace("to_out_lora.", "to_out.0.lora_").replace("_lora.", ".lora_")
            k = k.replace("lora_down.", "lora_A.").replace("lora_up.", "lora_B.")
        out[k] = value
    return out


@pytest.mark.parametrize("style", ["converted", "peft"])
def test_diffusers_namings_parse_to_the_same_update(style):
    lora = _lora_sd()
    renamed = _diffusers_names(lora, style)
    if style == "peft":
        assert "unet.down_blocks.0.motion_modules.0.transformer_blocks.0.attn1.to_out.0.lora_A.weight" in renamed
    else:
        assert "unet.mid_block.motion_modules.0.transformer_blocks.0.attn2.processor.to_v_lora.up.weight" in renamed
    a, b = parse_motion_lora(lora), parse_motion_lora(renamed)
    assert set(a) == set(b) and all(torch.equal(a[k][0], b[k][0]) and torch.equal(a[k][1], b[k][1]) for k in a)


def test_refuses_motion_module():
    e = _error(fx.motion_state_dict("v3", "original", "micro"))
    assert "motion module" in e.problem and "not a motion LoRA" in e.problem and "Load AnimateDiff Motion Model" in e.fix


def test_refuses_image_lora_and_domain_adapter():
    kohya = {"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.zeros(4, 320),
             "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight": torch.zeros(320, 4),
             "lora_unet_down_blocks_0_attentions_0_proj_in.alpha": torch.tensor(4.0)}
    e = _error(kohya, "motion_lora")
    assert "image LoRA" in e.problem and "Load LoRA" in e.fix
    adapter = load_state_dict(str(fx.domain_adapter_file("tiny")), "lora_name")
    e = _error(adapter)
    assert "domain adapter" in e.problem and "Load LoRA" in e.fix


def test_refuses_empty_unmatched_and_broken():
    assert "no LoRA weights" in _error({"animatediff_config": ""}).problem
    assert "no motion LoRA weights" in _error({"foo.weight": torch.zeros(2)}).problem
    kohya_motion = {"lora_unet_down_blocks_0_motion_modules_0_temporal_transformer_proj_in.lora_down.weight": torch.zeros(2, 2)}
    assert "naming AnimaPose does not read" in _error(kohya_motion).problem
    lora = dict(_lora_sd())
    key = "up_blocks.2.motion_modules.1.temporal_transformer.transformer_blocks.0.attention_blocks.0.processor.to_k_lora.up.weight"
    del lora[key]
    e = _error(lora)
    assert "incomplete" in e.problem and "up_blocks.2.motion_modules.1" in e.problem and "no up matrix" in e.problem
    lora = dict(_lora_sd())
    lora[key.replace(".up.", ".down.")] = torch.zeros(3, 64)
    assert "do not fit together" in _error(lora).problem


def test_domain_adapter_fixture_layout():
    sd = torch.load(fx.domain_adapter_file("small"), weights_only=True)
    assert sd.pop("animatediff_config") == ""
    # 16 transformers x 2 attentions x 4 projections x (down, up).
    assert len(sd) == 16 * 2 * 4 * 2
    k = "mid_block.attentions.0.transformer_blocks.0.attn2.processor.to_k_lora.down.weight"
    assert sd[k].shape == (8, 768) and sd[k.replace("down", "up")].shape == (320, 8)
    assert sd["up_blocks.3.attentions.2.transformer_blocks.0.attn1.processor.to_out_lora.down.weight"].shape == (8, 320)
    assert not any(k.startswith("up_blocks.0.") or k.startswith("down_blocks.3.") for k in sd)
