"""The demo models the pack trained (``demo_models/``, ``workshop/demo/train_models.py``): the widened files are what
ComfyUI and the pack's loaders take (an SD15 checkpoint, an AnimateDiff v2 motion module), they compute what the
narrow trained models compute, the constructed TAESD reproduces block-averaged frames, and sampled clips show motion:
with the motion module one object keeps its colour and size and moves smoothly, without it the frames are
independent. Thresholds: workshop/thresholds.py (measured distributions, with the figures)."""

from __future__ import annotations

import comfy.sample
import comfy.sd
import pytest
import torch

from comfyui_animapose.animapose.motion.sampling.inflate import add_motion_lora, apply_motion_model, load_motion_model
from comfyui_animapose.workshop.demo import motion as dm
from comfyui_animapose.workshop.fixtures.demo import DEMO_MODELS, demo_checkpoint, demo_motion_lora, demo_motion_module
from comfyui_animapose.workshop.models import demo_models_present
from comfyui_animapose.workshop.synthetic import tiny_models as tm
from comfyui_animapose.workshop.synthetic.analyse import clip_metrics
from comfyui_animapose.workshop.synthetic.demo import LORA_FILE, meta, narrow_models
from comfyui_animapose.workshop.synthetic.shapes import make_clips
from comfyui_animapose.workshop.thresholds import DEMO

pytestmark = pytest.mark.skipif(not demo_models_present(), reason="demo_models/ not trained in this checkout")


@pytest.fixture(scope="module")
def wide():
    with torch.inference_mode():
        model, clip, vae, _ = comfy.sd.load_checkpoint_guess_config(str(demo_checkpoint()))
        motion = load_motion_model(str(demo_motion_module()), "mm_sd_v15_v2.ckpt")
    return model, clip, vae, motion


def test_files_are_detected(wide):
    model, clip, vae, motion = wide
    assert type(model.model.model_config).__name__ == "SD15"
    assert model.model.diffusion_model.model_channels == 320
    assert motion.info.family == "AnimateDiff v2" and motion.info.down_channels == (320,)
    assert clip is not None and vae.latent_channels == 4


def test_narrow_twins_compute_what_the_wide_files_compute(wide):
    """Also with the shipped MotionLoRA: the widened file on the wide module adds what the narrow one adds."""
    model, clip, vae, motion = wide
    narrow, narrow_motion = narrow_models(DEMO_MODELS, model, motion)
    wide_lora = add_motion_lora(motion, str(demo_motion_lora()), "wide", 1.0)
    narrow_lora = add_motion_lora(narrow_motion, str(DEMO_MODELS / LORA_FILE), "narrow", 1.0)
    with torch.inference_mode():
        positive = clip.encode_from_tokens_scheduled(clip.tokenize("a red circle moving right"))
        negative = clip.encode_from_tokens_scheduled(clip.tokenize(""))
        latent = torch.zeros(3, 4, 8, 8)
        noise = comfy.sample.prepare_noise(latent, 0)
        outs = [comfy.sample.sample(apply_motion_model(m, mm).model, noise, 2, 5.0, "ddim", "ddim_uniform", positive,
                                    negative, latent, seed=0, disable_pbar=True)
                for m, mm in ((model, motion), (narrow, narrow_motion), (model, wide_lora), (narrow, narrow_lora))]
    # The wide file is the fp16-stored narrow weights widened, loaded in fp32: float reordering only.
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(outs[2], outs[3], rtol=1e-3, atol=1e-3)
    assert not torch.equal(outs[1], outs[3])  # the LoRA acts


def test_constructed_vae_reproduces_block_averages(wide):
    _, _, vae, _ = wide
    frames = make_clips(1, seed=9)[0][0][:4]
    with torch.inference_mode():
        latents = vae.encode(frames)
        decoded = vae.decode(latents)[..., :3].float()
    scale = meta(DEMO_MODELS)["vae_scale"]
    torch.testing.assert_close(latents.float(), tm.encode_frames(frames, scale) / 0.18215, rtol=1e-2, atol=2e-2)
    blocks = torch.nn.functional.avg_pool2d(frames.movedim(-1, 1), 8)
    expected = torch.nn.functional.interpolate(blocks, scale_factor=8).movedim(1, -1)
    assert float((decoded - expected).abs().mean()) < 0.01


@pytest.fixture(scope="module")
def measured():
    """clip_metrics of demo clips over seeds and prompts, with and without the motion module."""
    models = dm.load()
    out = {"motion": [], "still": []}
    for seed in range(DEMO["seeds"]):
        for prompt in DEMO["prompts"]:
            out["motion"].append((prompt, clip_metrics(dm.sample(models, prompt, seed, motion=True))))
            out["still"].append((prompt, clip_metrics(dm.sample(models, prompt, seed, motion=False))))
    return out


def _median(values):
    return float(torch.tensor(values).median())


def test_motion_module_makes_one_coherent_object(measured):
    with_motion = [m for _, m in measured["motion"]]
    assert _median([m["iou"] for m in with_motion]) > DEMO["motion_iou_min"]
    assert _median([m["area_cv"] for m in with_motion]) < DEMO["motion_area_cv_max"]
    assert _median([m["colour_spread"] for m in with_motion]) < DEMO["motion_colour_spread_max"]
    assert _median([m["jerk"] for m in with_motion]) < DEMO["motion_jerk_max"]


def test_without_motion_module_frames_are_independent(measured):
    still = [m for _, m in measured["still"]]
    assert _median([m["jerk"] for m in still]) > DEMO["still_jerk_min"]


def test_motion_module_makes_frames_more_coherent(measured):
    motion = _median([m["iou"] for _, m in measured["motion"]])
    still = _median([m["iou"] for _, m in measured["still"]])
    assert motion > still + DEMO["motion_iou_gain_min"], (motion, still)


def test_long_clip_in_context_windows_keeps_one_object():
    """48 frames sampled in 16-frame context windows (the long-context workflow's settings) keep one object of the
    prompt's colour across the windows."""
    models = dm.load()
    prompt = DEMO["prompts"][1]
    m = clip_metrics(dm.sample(models, prompt, 0, frames=DEMO["long_frames"], context_length=dm.FRAMES))
    assert m["present"] == 1.0 and m["colour"] == prompt.split()[1], m
    assert m["iou"] > DEMO["long_iou_min"], m


def test_prompt_colour_is_honoured(measured):
    hits = [m["colour"] == prompt.split()[1] for prompt, m in measured["motion"]]
    assert sum(hits) / len(hits) >= DEMO["colour_hit_rate_min"]


@pytest.mark.xfail(strict=True, reason="measured on held-out seeds 6-29: the shipped rightward MotionLoRA moves the "
                                       "object right less often than the base module (4 vs 8 of 24; it mostly damps "
                                       "the motion); it looked weakly rightward only on seeds 0-5, where it was chosen")
def test_motion_lora_trained_on_rightward_clips_moves_objects_right():
    """The shipped MotionLoRA (``workshop/demo/direction_lora.py``: the pack's trainer on clips that all move right,
    on the narrow twins), loaded through the pack's loader, makes the demo object move right more often, and further,
    than the base module, over the same seeds and a prompt that names no direction. The seeds are held out: none of
    them took part in choosing the LoRA's training configuration."""
    models = dm.load()
    lora = add_motion_lora(models.motion, str(DEMO_MODELS / LORA_FILE), LORA_FILE, 1.0)
    prompt = DEMO["lora_prompt"]
    base_dx, lora_dx = [], []
    for seed in DEMO["lora_seeds"]:
        base_dx.append(clip_metrics(dm.sample(models, prompt, seed))["displacement"][0])
        lora_dx.append(clip_metrics(dm.sample(models, prompt, seed, motion_model=lora))["displacement"][0])
    rightward = sum(dx > 0.05 for dx in lora_dx), sum(dx > 0.05 for dx in base_dx)
    assert rightward[0] > rightward[1], (base_dx, lora_dx)
    assert _median(lora_dx) > _median(base_dx) + DEMO["lora_dx_margin"], (base_dx, lora_dx)


def test_direction_probe_compares_the_lora_with_the_base_module():
    """``workshop/demo/direction_lora.py --probe``: before training (LoRA ``up`` zero) both rows are the same
    figures; after a few updates they differ, and the probe leaves the trained factors as it found them."""
    from comfyui_animapose.animapose.training import motion as mt
    from comfyui_animapose.animapose.training.loop import training_mode

    models = dm.load()
    with training_mode():
        run = dm.direction_run(models, clips=2, steps=3, rank=4, learning_rate=1e-2, min_timestep=800)
        (row,) = dm.direction_probe(run, timesteps=(900,), clips=2)
        assert row["base"] == row["lora"] and row["base"][0] > 0
        mt.train_run(run, "probe test", log_every=10 ** 9)
        trained = {k: m.up.detach().clone() for k, m in run.loras.items()}
        (row,) = dm.direction_probe(run, timesteps=(900,), clips=2)
    assert row["base"][:2] != row["lora"][:2]
    assert all(torch.equal(m.up, trained[k]) for k, m in run.loras.items())


def test_direction_probe_and_model_of_a_finetuned_module():
    """``workshop/demo/direction_lora.py --mode motion_module --travel 1 1``: the whole demo module finetuned on
    edge-to-edge rightward clips. The probe's "base" row is the module's starting weights (equal rows before training,
    different after), the probe leaves the trained weights in place, and ``trained_motion`` is a new motion model
    holding them, the demo module untouched."""
    from comfyui_animapose.animapose.training import motion as mt
    from comfyui_animapose.animapose.training.loop import training_mode

    models = dm.load()
    demo_state = {k: v.clone() for k, v in models.motion.patcher.model.state_dict().items()}
    with training_mode():
        run = dm.direction_run(models, clips=2, steps=3, learning_rate=1e-2, mode="motion_module", travel=(1.0, 1.0))
        assert not run.loras
        (row,) = dm.direction_probe(run, timesteps=(900,), clips=2)
        assert row["base"] == row["lora"] and row["base"][0] > 0
        mt.train_run(run, "probe test", log_every=10 ** 9)
        trained = run.motion_state()
        (row,) = dm.direction_probe(run, timesteps=(900,), clips=2)
        assert row["base"][:2] != row["lora"][:2]
        assert all(torch.equal(v, trained[k]) for k, v in run.motion_state().items())
        model = dm.trained_motion(models, run, "finetuned")
    held = model.patcher.model.state_dict()
    assert any(not torch.equal(held[k].float(), demo_state[k].float()) for k in demo_state)
    assert all(torch.equal(held[k], trained[k].to(held[k].dtype)) for k in trained)
    assert all(torch.equal(v, demo_state[k]) for k, v in models.motion.patcher.model.state_dict().items())
