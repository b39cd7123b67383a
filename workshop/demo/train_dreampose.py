#!/usr/bin/env python
"""Trains the demo's tiny DreamPose on synthetic people, from one seed, with the pack's stage-1 command line, and
writes its narrow fp16 weights to ``demo_models/`` (about 2.5 MB):

    python -m comfyui_animapose.workshop.demo.train_dreampose [--output demo_models] [--seed 0] [--steps 3000]

Steps (all seeded):
1. the dataset: synthetic people (``workshop/synthetic/people.py``) in the UBC-Fashion layout, 64x80 frames;
2. the starting checkpoint: an SD1.x single file holding the smallest UNet ComfyUI detects as SD1.x (one level of
   320 channels), made by widening a 40-channel twin (``workshop/synthetic/tiny_models.py``; PyTorch's default
   init: this UNet learns from scratch, not from SD's weights), and the hand-set colour
   autoencoder of ``workshop/synthetic/people_vae.py`` in TAESD's layout, its latents scaled by 8 (``vae_scale``) to
   about SD's spread (at 1 they are a tenth of it, and the model learned the noise but hardly the colours);
3. ``workshop/train/dreampose.py`` (stage 1: ``conv_in`` widened to 14 channels with the pose channels at zero, UNet +
   adapter, 5-frame pose windows, 5/5/5% dropout) with ``--narrow 8``: it trains the 40-channel twin, which computes
   exactly what the 320-wide UNet computes, and the full 768-wide adapter, with the tiny CLIP ViT-B/32 test fixture
   (2 random layers; frozen, as in the paper);
4. ``dreampose_unet_narrow.safetensors`` (the twin, LDM keys), ``dreampose_adapter.safetensors`` and
   ``dreampose_training.json`` (recipe, loss curve, time, peak RSS).
``assemble`` turns them into the files the shipped workflows load (``unet_epoch_20.pth`` widened to 320 channels,
``adapter_20.pth``, ``vae_1499.pth``, ``clip-vit-base-patch32/``, and ``subject.png`` / ``subject_densepose.npy``: an
unseen subject's photo and UV map); ``workshop/fixtures/dreampose_trained.py`` does that into the fixture cache. Run
under ``nice -n 10`` on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import shutil
import sys
import time
from pathlib import Path

from ..env import REPO

FRAME_HW = (80, 64)  # (height, width): latent 10x8
VIDEOS = 24
FRAMES = 8
UNSEEN_SUBJECT_SEED = 9000  # held out of training: the finetuning claims use it
RECIPE = dict(steps=3000, batch_size=8, lr=2e-3, reference_frames=1, narrow=8, latent_gain=8.0)
UNET_FILE = "dreampose_unet_narrow.safetensors"
ADAPTER_FILE = "dreampose_adapter.safetensors"
META_FILE = "dreampose_training.json"


def base_checkpoint(path: Path, seed: int, ratio: int) -> None:
    """The starting SD1.x checkpoint: the widened tiny UNet (LDM keys) + the people autoencoder (TAESD keys)."""
    import safetensors.torch

    from ..synthetic.people_vae import people_taesd_state_dict
    from ..synthetic.tiny_models import expand_unet, narrow_unet

    unet = narrow_unet(ratio, seed)  # PyTorch's default init, as the AnimateDiff demo's image UNet
    wide = expand_unet(unet.state_dict(), ratio)
    sd = {"model.diffusion_model." + k: v.contiguous() for k, v in wide.items()}
    sd.update({"first_stage_model." + k: v
               for k, v in people_taesd_state_dict(latent_gain=RECIPE["latent_gain"]).items()})
    safetensors.torch.save_file(sd, str(path), metadata={"format": "pt"})


def train(output: Path, seed: int = 0, steps: int = RECIPE["steps"], threads: int = 1) -> dict:
    """Trains and writes the narrow files and their record into ``output``; returns the record. One thread by
    default: the result depends on the thread count (float summation order), and on a shared two-core machine an
    update took 0.06-0.1 s with one thread, 2.7 s with two."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _train(output, seed, steps)
    finally:
        torch.set_num_threads(previous)


def _train(output: Path, seed: int, steps: int) -> dict:
    import safetensors.torch
    import torch

    from ..fixtures.dreampose import tiny_clip_b32_folder
    from ..synthetic import people
    from ..synthetic.tiny_models import shrink_unet
    from ..train.dreampose import run

    started = time.monotonic()
    ratio = RECIPE["narrow"]
    output.mkdir(parents=True, exist_ok=True)
    work = output / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        people.write_ubc_dataset(str(work / "data"), VIDEOS, FRAMES, FRAME_HW, seed=seed)
        base_checkpoint(work / "base.safetensors", seed, ratio)
        # the checkpoint is written at the end only (unreachable epoch count): --max-steps ends the run
        result = run([
            "--data", str(work / "data"), "--clip", str(tiny_clip_b32_folder()), "--base", str(work / "base.safetensors"),
            "--output", str(work / "out"), "--width", str(FRAME_HW[1]), "--height", str(FRAME_HW[0]),
            "--epochs", "1000000", "--max-steps", str(steps), "--batch-size", str(RECIPE["batch_size"]),
            "--grad-accumulation", "1", "--lr", str(RECIPE["lr"]), "--seed", str(seed), "--save-every", "1000000",
            "--no-gradient-checkpointing", "--cache-features", "--reference-frames", str(RECIPE["reference_frames"]),
            "--narrow", str(ratio), "--log-every", "50", "--cpu"])
        narrow = shrink_unet(result.unet_state, ratio)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    half = {k: v.to(torch.float16).contiguous() for k, v in narrow.items()}
    safetensors.torch.save_file(half, str(output / UNET_FILE), metadata={"format": "pt"})
    half = {k: v.detach().to(torch.float16).contiguous() for k, v in result.adapter.state_dict().items()}
    safetensors.torch.save_file(half, str(output / ADAPTER_FILE), metadata={"format": "pt"})
    losses = result.losses
    window = 100 if len(losses) >= 400 else max(1, len(losses) // 4)
    record = {"seed": seed, "videos": VIDEOS, "frames": FRAMES, "frame_hw": list(FRAME_HW), **RECIPE, "steps": steps,
              "torch_threads": torch.get_num_threads(), "loss_window": window,
              "loss_means": [round(sum(losses[k:k + window]) / len(losses[k:k + window]), 4)
                             for k in range(0, len(losses), window)],
              "probe_loss_before_after": [round(v, 4) for v in result.probe],
              "seconds_total": round(time.monotonic() - started),
              "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
    (output / META_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return record


def assemble(models: Path, output: Path) -> dict[str, Path]:
    """The workflows' files in ``output`` (made here) from the narrow files in ``models``."""
    import numpy as np
    import safetensors.torch
    import torch
    from PIL import Image

    from ...animapose.dreampose.checkpoint import unet_diffusers_keys
    from ..fixtures.dreampose import tiny_clip_b32_folder
    from ..synthetic import people
    from ..synthetic import tiny_models as tm
    from ..synthetic.people_vae import people_taesd_state_dict

    ratio = json.loads((models / META_FILE).read_text())["narrow"]  # the recipe the files were trained with
    narrow = safetensors.torch.load_file(str(models / UNET_FILE))
    in_channels = narrow["input_blocks.0.0.weight"].shape[1]
    wide = tm.expand_unet(narrow, ratio)
    output.mkdir(parents=True, exist_ok=True)
    files = {"unet": output / "unet_epoch_20.pth", "adapter": output / "adapter_20.pth",
             "vae": output / "vae_1499.pth", "clip": output / "clip-vit-base-patch32", "subject": output / "subject.png",
             "subject_uv": output / "subject_densepose.npy"}
    torch.save(unet_diffusers_keys(wide, tm.unet_config(tm.WIDE, tm.WIDE_HEADS, in_channels)), files["unet"])
    adapter = safetensors.torch.load_file(str(models / ADAPTER_FILE))
    torch.save({k: v.float() for k, v in adapter.items()}, files["adapter"])
    record = json.loads((models / META_FILE).read_text())
    torch.save(people_taesd_state_dict(latent_gain=record["latent_gain"]), files["vae"])
    if not files["clip"].exists():
        shutil.copytree(tiny_clip_b32_folder(), files["clip"])
    video = people.make_video(people.make_subject(UNSEEN_SUBJECT_SEED), "wave", 1, FRAME_HW, seed=UNSEEN_SUBJECT_SEED)
    # a camera's noise (sigma 1.5%): the DensePose estimator (video-to-video, align: subject) refuses flat renders
    noise = np.random.default_rng(UNSEEN_SUBJECT_SEED).normal(0.0, 0.015, video.frames[0].image.shape)
    Image.fromarray(people.to_uint8(np.clip(video.frames[0].image + noise, 0, 1))).save(files["subject"])
    np.save(files["subject_uv"], video.frames[0].uv.astype(np.float64))
    return files


def main() -> int:
    ap = argparse.ArgumentParser(prog=f"python -m {__spec__.name}", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--output", type=Path, default=REPO / "demo_models")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=RECIPE["steps"])
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the shipped files: 1)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from .. import comfy_env

    comfy_env.bootstrap()
    print(json.dumps(train(args.output, args.seed, args.steps, args.threads), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
