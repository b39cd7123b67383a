"""AnimateDiff motion-module or MotionLoRA training from the command line (long runs); the recipe is in
``animapose/training/motion.py``, the command-line convention in ``common.py``.

    python -m comfyui_animapose.workshop.train.motion --base models/checkpoints/v1-5-pruned-emaonly.safetensors \\
        --data my_clips --mode motion_lora --motion-module models/animatediff_models/mm_sd_v15_v2.ckpt \\
        --output models/animatediff_motion_lora/my_lora.safetensors --steps 500

Data: a folder with one subfolder of PNG frames (sorted by name) per video, each with an optional ``caption.txt``
(``--synthetic N`` writes N synthetic clips of moving shapes there first, with captions).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ...animapose.errors import AnimaPoseError
from ...animapose.training.settings import MODES, PRECISIONS, MotionTrainSettings
from . import common


def build_parser() -> argparse.ArgumentParser:
    d = MotionTrainSettings()
    p = common.parser("motion", __doc__)
    p.add_argument("--base", required=True, help="SD1.5 checkpoint (image model, frozen; its CLIP and VAE are used)")
    p.add_argument("--data", required=True, help="folder of videos: one subfolder of PNG frames (+ caption.txt) each")
    p.add_argument("--output", required=True, help="file to write (.safetensors or .ckpt), original layout")
    p.add_argument("--mode", choices=MODES, default=d.mode)
    p.add_argument("--motion-module", help="starting motion module (required for motion_lora; continues training for "
                                           "motion_module; default: a new zero-initialised one)")
    p.add_argument("--synthetic", type=int, default=0, help="first write this many synthetic clips into --data")
    p.add_argument("--synthetic-motion", help="pin the synthetic clips' motion (e.g. 'moving right')")
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--lr", type=float, default=d.learning_rate, help="AdamW learning rate, constant")
    p.add_argument("--lora-rank", type=int, default=d.lora_rank)
    p.add_argument("--frames", type=int, default=d.frames, help="frames per training clip")
    p.add_argument("--stride", type=int, default=d.stride, help="frame step inside a clip")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="clips per update")
    p.add_argument("--uncond-probability", type=float, default=d.uncond_probability,
                   help="share of clips trained on the empty prompt (AnimateDiff: 0.1)")
    p.add_argument("--min-timestep", type=int, default=d.min_timestep,
                   help="draw timesteps from [this, 1000) only (the original recipe: 0)")
    p.add_argument("--width", type=int, default=None, help="resize frames to this width (default: as stored)")
    p.add_argument("--height", type=int, default=None)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--precision", choices=PRECISIONS, default=d.precision)
    p.add_argument("--no-gradient-checkpointing", action="store_true", help="faster, more memory")
    p.add_argument("--save-dtype", choices=["fp32", "fp16"], default="fp32")
    return p


def settings_from_args(args) -> MotionTrainSettings:
    return MotionTrainSettings(mode=args.mode, steps=args.steps, learning_rate=args.lr, lora_rank=args.lora_rank,
                               frames=args.frames, stride=args.stride, batch_size=args.batch_size,
                               uncond_probability=args.uncond_probability, min_timestep=args.min_timestep, seed=args.seed,
                               precision=args.precision,
                               gradient_checkpointing=not args.no_gradient_checkpointing)


def train(args) -> list[Path]:
    """Loads the models, encodes the captions, trains, saves; ComfyUI must be importable."""
    import comfy.sd
    import torch

    from ...animapose.motion.sampling.inflate import load_motion_model
    from ...animapose.training import motion as mt
    from ..synthetic.shapes import read_dataset, write_dataset

    if args.synthetic:
        fixed = {"motion": args.synthetic_motion} if args.synthetic_motion else {}
        write_dataset(args.data, args.synthetic, args.seed, frames=max(16, args.frames), **fixed)
    size = (args.height, args.width) if args.width and args.height else None
    data = read_dataset(args.data, size)
    if not data:
        raise AnimaPoseError("data", f"no PNG frames under '{args.data}'", "one subfolder of PNG frames per video")
    model, clip, vae, _ = comfy.sd.load_checkpoint_guess_config(args.base)
    motion = load_motion_model(args.motion_module, Path(args.motion_module).name) if args.motion_module else None
    captions = sorted({c for _, c in data})
    with torch.no_grad():
        contexts = [clip.encode_from_tokens_scheduled(clip.tokenize(c))[0][0] for c in captions]
        empty = clip.encode_from_tokens_scheduled(clip.tokenize(""))[0][0]
    clips = mt.Clips([v for v, _ in data], [captions.index(c) for _, c in data], contexts, empty)
    result = mt.train_motion(model, vae, clips, settings_from_args(args), motion)
    dtype = torch.float16 if args.save_dtype == "fp16" else torch.float32
    if args.mode == "motion_lora":
        return [mt.save_motion_lora(result.lora_pairs, args.output, dtype)]
    return [mt.save_motion_module(result.motion_state, args.output, dtype)]


def main(argv: list[str] | None = None) -> int:
    return common.main(build_parser(), train, argv)


if __name__ == "__main__":
    sys.exit(main())
