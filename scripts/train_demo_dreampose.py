#!/usr/bin/env python
"""Trains the demo's tiny DreamPose on synthetic people, from one seed, with the pack's stage-1 command line.

    python scripts/train_demo_dreampose.py --output OUT [--seed 0] [--steps 150]

Steps (all seeded):
1. the dataset: synthetic people (``animapose/synthetic/people.py``) in the UBC-Fashion layout, 64x80 frames;
2. the starting checkpoint: an SD1.x single file holding the smallest UNet ComfyUI detects as SD1.x (one level of
   320 channels, 21 M parameters; PyTorch-style init with the residual branches' last layers at zero, as the LDM
   code initialises them) and the hand-set colour autoencoder of ``animapose/synthetic/people_vae.py`` in TAESD's
   layout;
3. ``scripts/train_dreampose.py`` (stage 1: UNet + adapter, 5-frame pose windows, 5/5/5% dropout) with the tiny
   CLIP ViT-B/32 test fixture (2 random layers; frozen, as in the paper);
4. the files under the names the shipped workflows use: ``unet_epoch_20.pth``, ``adapter_20.pth``,
   ``vae_1499.pth`` (the autoencoder), ``clip-vit-base-patch32/`` and ``subject.png`` / ``subject_densepose.npy``
   (an unseen subject's photo and its UV map).

Run it under ``nice -n 10`` on a shared machine. ``tests/fixtures/dreampose_trained.py`` calls ``build`` into the
fixture cache, so the tests and the demo train on first use.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FRAME_HW = (80, 64)  # (height, width): latent 10x8
VIDEOS = 12
FRAMES = 8
UNSEEN_SUBJECT_SEED = 9000  # held out of training: the finetuning claims use it
RECIPE = dict(steps=100, batch_size=8, lr=5e-4, reference_frames=1)


def base_checkpoint(path: Path, seed: int) -> None:
    """The starting SD1.x checkpoint: tiny UNet (LDM keys) + the people autoencoder (TAESD keys)."""
    import comfy.ops
    import safetensors.torch
    import torch
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    from animapose.synthetic.people_vae import people_taesd_state_dict
    from tests.fixtures.sd15 import unet_config

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNetModel(**unet_config("tiny"), operations=comfy.ops.disable_weight_init)
        for name, p in unet.named_parameters():
            with torch.no_grad():
                if p.ndim == 1:
                    p.fill_(1.0 if name.endswith("weight") and "norm" in name else 0.0)
                else:
                    p.normal_(0.0, 1.0 / p[0].numel() ** 0.5)
        # LDM's zero_module: each residual branch ends at zero, so the UNet starts near the identity path
        for name, module in unet.named_modules():
            if name.endswith(("out_layers.3", "proj_out")) or name == "out.2":
                for p in module.parameters():
                    torch.nn.init.zeros_(p)
    sd = {"model.diffusion_model." + k: v.contiguous() for k, v in unet.state_dict().items()}
    sd.update({"first_stage_model." + k: v for k, v in people_taesd_state_dict().items()})
    safetensors.torch.save_file(sd, str(path), metadata={"format": "pt"})


def build(output: Path, seed: int = 0, steps: int = RECIPE["steps"]) -> dict[str, Path]:
    """Everything in ``output`` (made here); returns {name: path}."""

    from animapose.synthetic import people
    from tests.fixtures.dreampose import tiny_clip_b32_folder

    output.mkdir(parents=True, exist_ok=True)
    work = output / "work"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir()
    people.write_ubc_dataset(str(work / "data"), VIDEOS, FRAMES, FRAME_HW, seed=seed)
    base_checkpoint(work / "base.safetensors", seed)
    clip = output / "clip-vit-base-patch32"
    if not clip.exists():
        shutil.copytree(tiny_clip_b32_folder(), clip)
    import importlib.util

    from tests.harness.env import COMFYUI

    spec = importlib.util.spec_from_file_location("train_dreampose", REPO / "scripts" / "train_dreampose.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    started = time.monotonic()
    rc = cli.main([
        "--data", str(work / "data"), "--clip", str(clip), "--base", str(work / "base.safetensors"),
        "--output", str(work / "out"), "--width", str(FRAME_HW[1]), "--height", str(FRAME_HW[0]),
        "--epochs", "1000000", "--max-steps", str(steps), "--batch-size", str(RECIPE["batch_size"]),
        "--grad-accumulation", "1", "--lr", str(RECIPE["lr"]), "--seed", str(seed), "--save-every", "5",
        "--no-gradient-checkpointing", "--cache-features", "--reference-frames", str(RECIPE["reference_frames"]),
        "--format", "pth", "--log-every", "5", "--cpu", "--comfyui", str(COMFYUI)])
    if rc:
        raise RuntimeError(f"train_dreampose.py failed with exit code {rc}")
    logging.info("stage 1 took %.0f s", time.monotonic() - started)
    return finalize(output, sorted((work / "out").glob("unet_epoch_*.pth"))[-1])


def finalize(output: Path, unet: Path) -> dict[str, Path]:
    """Moves a stage-1 checkpoint (``unet`` and the adapter beside it) into ``output`` under the workflows' names,
    with the autoencoder, the held-out subject's photo and UV map; removes ``output/work``."""
    import numpy as np
    import torch
    from PIL import Image

    from animapose.synthetic import people
    from animapose.synthetic.people_vae import people_taesd_state_dict

    adapter = unet.with_name(unet.name.replace("unet_epoch", "adapter"))
    files = {"unet": output / "unet_epoch_20.pth", "adapter": output / "adapter_20.pth",
             "vae": output / "vae_1499.pth", "clip": output / "clip-vit-base-patch32", "subject": output / "subject.png",
             "subject_uv": output / "subject_densepose.npy"}
    shutil.move(str(unet), files["unet"])
    shutil.move(str(adapter), files["adapter"])
    torch.save(people_taesd_state_dict(), files["vae"])
    video = people.make_video(people.make_subject(UNSEEN_SUBJECT_SEED), "wave", 1, FRAME_HW, seed=UNSEEN_SUBJECT_SEED)
    Image.fromarray(people.to_uint8(video.frames[0].image)).save(files["subject"])
    np.save(files["subject_uv"], video.frames[0].uv.astype(np.float64))
    shutil.rmtree(output / "work", ignore_errors=True)
    return files


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--output", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=RECIPE["steps"])
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from tests.harness import comfy_env

    comfy_env.bootstrap()
    started = time.monotonic()
    for name, path in build(args.output, args.seed, args.steps).items():
        print(f"{name}: {path}")
    print(f"total {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
