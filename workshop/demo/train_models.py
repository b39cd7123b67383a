#!/usr/bin/env python
"""Trains the demo's tiny models from one seed and writes them to ``demo_models/`` (narrow fp16 weights, a few MB):

1. synthetic clips of moving shapes (``workshop.synthetic.shapes``, 64x64, 16 frames, captions);
2. the image model: the narrow SD1.5-layout UNet (``workshop.synthetic.tiny_models``) trained on single frames with
   their captions (ε-MSE on SD1.5's noise schedule, 10% empty captions for classifier-free guidance), on the
   constructed TAESD's latents and the seeded CLIP-L's caption features;
3. the motion module: a new zero-initialised narrow v2-type module trained on the clips with the image UNet frozen,
   by the pack's motion trainer (``animapose.training.motion``: the same run, loss, AnimateDiff schedule and update
   loop the node and ``workshop/train/motion.py`` use).
``workshop/models.py`` widens the files into the 320-channel SD1.5 checkpoint and motion module the demo and the
test tiers load (``workshop.synthetic.demo``). Run under ``nice -n 10`` on a shared machine.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import resource
import sys
import time
from pathlib import Path
from types import SimpleNamespace

from ..env import REPO
from ..train.common import comfyui_folder, import_comfy

log = logging.getLogger("train_demo_models")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog=f"python -m {__spec__.name}", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", type=Path, default=REPO / "demo_models")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--clips", type=int, default=96, help="synthetic training clips")
    p.add_argument("--motions", default="moving right,moving left,moving in a circle",
                   help="paths of the training clips (fewer distinct captions: each costs a CLIP-L pass)")
    p.add_argument("--shapes", default="circle,square", help="shapes of the training clips")
    p.add_argument("--image-steps", type=int, default=150)
    p.add_argument("--image-batch", type=int, default=16)
    p.add_argument("--motion-steps", type=int, default=100)
    p.add_argument("--motion-batch", type=int, default=1)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "animapose" / "demo-training",
                   help="where the captions' CLIP features are kept between runs")
    p.add_argument("--ratio", type=int, default=8, help="320 / narrow width (8: 40 channels, one attention head)")
    p.add_argument("--comfyui")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    started = time.monotonic()
    import_comfy(comfyui_folder(args.comfyui), cpu=True)

    import safetensors.torch
    import torch

    from ...animapose.training import motion as mt
    from ...animapose.training.loop import Precision, Updater, run_updates, training_mode
    from ..synthetic import demo
    from ..synthetic import tiny_models as tm
    from ..synthetic.shapes import make_clips

    torch.manual_seed(args.seed)
    motions = tuple(m.strip() for m in args.motions.split(","))
    shapes = tuple(m.strip() for m in args.shapes.split(","))
    data = make_clips(args.clips, args.seed, frames=16, size=64, motions=motions, shapes=shapes)
    videos = torch.stack([v for v, _, _ in data])  # (clips, 16, 64, 64, 3)
    rgb = tm.ENCODE_GAIN * (torch.nn.functional.avg_pool2d(videos.flatten(0, 1).movedim(-1, 1), 8) - 0.5)
    # TAESD's latent scale so that the UNet's latents have unit spread, like SD's own scale factor does for its VAE
    vae_scale = round(float(rgb[:, :3].std()) * demo.SCALE_FACTOR, 4)
    latents = torch.stack([tm.encode_frames(v, vae_scale) for v in videos])  # (clips, 16, 4, 8, 8)
    log.info("%d clips, vae_scale %.4f, latent std %.3f", len(data), vae_scale, float(latents[:, :, :3].std()))

    captions = sorted({c for _, c, _ in data})
    # CLIP-L runs once per caption (minutes on a loaded CPU): its features are kept, keyed by captions and seed
    import hashlib

    key = hashlib.sha256(json.dumps([args.seed + 1, captions]).encode()).hexdigest()[:16]
    cache = args.cache / f"contexts-{key}.pt"
    if cache.is_file():
        contexts, empty = torch.load(cache, weights_only=True)
    else:
        clip = demo.text_encoder(args.seed + 1)
        with torch.no_grad():
            contexts = torch.cat([demo.encode_text(clip, c) for c in captions])
            empty = demo.encode_text(clip, "")
        del clip
        args.cache.mkdir(parents=True, exist_ok=True)
        torch.save((contexts, empty), cache)
    index = torch.tensor([captions.index(c) for _, c, _ in data])

    device = torch.device("cpu")
    with training_mode():
        # -- the image model -------------------------------------------------------------------------------------
        unet = tm.narrow_unet(args.ratio, args.seed).train()
        alphas = demo.sd15_alphas_cumprod()
        g = torch.Generator().manual_seed(args.seed)
        precision = Precision("fp32", device)

        def image_loss():
            b = args.image_batch
            k = torch.randint(0, len(data), (b,), generator=g)
            f = torch.randint(0, 16, (b,), generator=g)
            x0 = latents[k, f]
            ctx = contexts[index[k]].clone()
            drop = torch.rand(b, generator=g) < 0.1
            ctx[drop] = empty[0]
            t = torch.randint(0, 1000, (b,), generator=g)
            noise = torch.randn(x0.shape, generator=g)
            a = alphas[t].view(-1, 1, 1, 1)
            pred = unet(a.sqrt() * x0 + (1 - a).sqrt() * noise, timesteps=t.float(), context=ctx,
                        transformer_options={})
            return torch.nn.functional.mse_loss(pred, noise)

        updater = Updater(list(unet.parameters()), args.lr, precision, clip_params=list(unet.parameters()))
        image_losses = run_updates("demo image UNet", args.image_steps, image_loss, updater, log_every=10)
        unet.eval().requires_grad_(False)
        t_image = time.monotonic() - started

        # -- the motion module, by the pack's motion trainer ----------------------------------------------------------
        c = tm.WIDE // args.ratio
        motion_set = tm.narrow_motion_set(args.ratio, args.seed)
        info = SimpleNamespace(base="custom", family="AnimateDiff v2", down_channels=(c,), up_channels=(c,),
                               mid_channels=c, down_per_level=1, up_per_level=2)
        from ...animapose.motion.formats.detect import NormScope
        from ...animapose.motion.sampling.placement import plan_slots

        frozen = copy.deepcopy(unet)
        slots = plan_slots(frozen, info)
        settings = mt.MotionTrainSettings(mode="motion_module", steps=args.motion_steps, learning_rate=args.lr,
                                          frames=16, batch_size=args.motion_batch, seed=args.seed,
                                          gradient_checkpointing=False)
        run = mt.MotionRun(frozen, motion_set, slots, NormScope(motion=False, resnet=False), list(latents),
                           index.tolist(), list(contexts[:, None]), empty, settings, device)
        result = mt.train_run(run, "demo motion module", log_every=10)

    args.output.mkdir(parents=True, exist_ok=True)
    half = {k: v.detach().to(torch.float16).contiguous() for k, v in unet.state_dict().items()}
    safetensors.torch.save_file(half, str(args.output / demo.UNET_FILE), metadata={"format": "pt"})
    half = {k: v.to(torch.float16).contiguous() for k, v in result.motion_state.items()}
    safetensors.torch.save_file(half, str(args.output / demo.MOTION_FILE), metadata={"format": "pt"})
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    elapsed = time.monotonic() - started
    meta = {"seed": args.seed, "ratio": args.ratio, "vae_scale": vae_scale, "clip_seed": args.seed + 1,
            "clips": args.clips, "motions": list(motions), "shapes": list(shapes), "captions": len(captions), "image_steps": args.image_steps, "image_batch": args.image_batch,
            "motion_steps": args.motion_steps, "motion_batch": args.motion_batch, "lr": args.lr,
            "image_loss_first_last_20": [round(sum(image_losses[:20]) / 20, 4), round(sum(image_losses[-20:]) / 20, 4)],
            "motion_loss_first_last_20": [round(sum(result.losses[:20]) / 20, 4),
                                          round(sum(result.losses[-20:]) / 20, 4)],
            "seconds_image": round(t_image), "seconds_total": round(elapsed), "peak_rss_mib": round(peak)}
    (args.output / demo.META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps(meta, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
