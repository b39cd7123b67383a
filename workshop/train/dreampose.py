"""DreamPose stage 1: dataset-level training of the UNet and adapter on UBC-Fashion-style videos, from the command line
(the convention both trainers follow is in ``common.py``)::

    python -m comfyui_animapose.workshop.train.dreampose --data UBC_train --clip models/clip_vision/clip-vit-base-patch32 \\
        --base models/checkpoints/sd-v1-4.ckpt --output models/dreampose

It runs in-process with ComfyUI rather than with diffusers: the model is the same native UNet and the loss the same
``finetune.diffusion_loss`` the subject-finetune nodes train, SD1.x checkpoints load in every format ComfyUI reads,
the outputs load straight into 'Load DreamPose UNet + Adapter', and diffusers stays a test-only dependency.

Data: ``ROOT/<video>/frame_N.png`` with ``frame_N_densepose.npy`` beside each frame ((2, H, W) UV in [0, 1]); frames
without a pose file are skipped, and ROOT itself may be the one video folder. Each sample, as in train.py, takes a
conditioning frame i and a random target frame j of the same video; an epoch conditions on every frame once.

Defaults are the paper's and the official scripts': AdamW lr 5e-6 (betas 0.9/0.999, weight decay 1e-2, eps 1e-8),
constant, no warm-up, UNet gradients clipped to 1.0, batches of 4 pairs with gradient accumulation 4 (16 pairs per
update, the paper's batch), 5 epochs, and conditioning dropout 5% pose / 5% image / 5% both. Differences:
- Dropout is drawn per sample; train.py drew it once per batch, dropping all of a batch's poses or images together.
- The pose input is the 5-frame window j-2 .. j+2 of the target's video (clamped at the ends), the design the paper
  describes and the windows inference feeds. The official code repeated pose j five times, which is what the released
  checkpoint learned; ``--pose-window repeat`` reproduces that.
- Starting from an SD1.x checkpoint, ``conv_in`` is widened to 14 channels with the pose channels at zero and the SD
  bias kept (the official code left the bias at random, and at its last commit crashed on the zeroing line); the adapter
  starts from the official identity init. ``--unet``/``--adapter`` resume from DreamPose files instead (the VAE then
  comes from ``--vae`` or the ``--base`` checkpoint).
- Random crops are off by default, as in train.py; ``--crop-probability`` applies the subject finetune's crops.
Two options for small CPU runs (off by default): ``--cache-features`` keeps each conditioning frame's CLIP tokens and
VAE latent (and, without crops, each target's latent and pose window) after their first use, since the frozen CLIP
and VAE give the same result every time; ``--reference-frames N`` conditions only on the first N frames of each video
(every frame stays a target), so fewer 640x512 reference pictures need encoding. ``--narrow RATIO`` (the demo's tiny
model only) trains the narrow twin of a 320-wide one-level UNet whose weights are zero outside its first 320/RATIO
channels (``workshop/synthetic/tiny_models.py``: the twin computes exactly what the wide UNet computes, at a fraction
of the cost); the files are written wide.
Files are written in the official layouts and names, ``unet_epoch_E`` and ``adapter_E`` (E the epoch index, from 0),
as safetensors by default or as .pth for the official scripts.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ...animapose.dreampose.adapter import vae_encode_input
from ...animapose.dreampose.augment import UNET_CROP, CropPolicy, crop_draws, crop_pair, draw_dropout
from ...animapose.dreampose.poses import pose_windows, read_uv_file
from ...animapose.errors import AnimaPoseError
from . import common

log = logging.getLogger(__name__)

POSE_WINDOWS = ("neighbours", "repeat")
FORMATS = ("safetensors", "pth")
_FRAME = re.compile(r"^(.*?)(\d+)\.png$", re.IGNORECASE)


@dataclass
class Stage1Config:
    data: str
    clip: str
    output: str
    base: str | None = None
    unet: str | None = None
    adapter: str | None = None
    vae: str | None = None
    epochs: int = 5
    max_steps: int | None = None
    batch_size: int = 4
    grad_accumulation: int = 4
    learning_rate: float = 5e-6
    pose_dropout: float = 0.05
    image_dropout: float = 0.05
    both_dropout: float = 0.05
    pose_window: str = "neighbours"
    crop_probability: float = 0.0
    width: int = 512
    height: int = 640
    fit: str = "letterbox"
    seed: int = 0
    precision: str = "fp32"
    gradient_checkpointing: bool = True
    save_every: int = 1
    file_format: str = "safetensors"
    log_every: int = 10
    cache_features: bool = False
    reference_frames: int | None = None
    narrow: int | None = None


@dataclass
class Stage1Result:
    steps: int
    losses: list[float]
    files: list[Path] = field(default_factory=list)
    unet_state: dict | None = None  # the trained weights (ComfyUI keys), for callers that keep going in-process
    adapter: object = None
    probe: tuple[float, float] | None = None  # loss on a fixed batch before and after training


# -- data ----------------------------------------------------------------------------------------------------

def find_videos(root: str) -> list[list[tuple[str, str]]]:
    """[[(frame png, its UV npy), ...] per video, frames in frame-number order]: every folder under ``root`` (or
    ``root`` itself) holding ``frame_N.png`` files with a ``frame_N_densepose.npy`` beside them."""
    if not os.path.isdir(root):
        raise AnimaPoseError("data", f"'{root}' is not a folder", "give the dataset folder (one subfolder per video)")
    videos = []
    for folder, _, files in sorted(os.walk(root)):
        names = set(files)
        frames = []
        for name in files:
            m = _FRAME.match(name)
            pose = name[:-4] + "_densepose.npy"
            if m and pose in names:
                frames.append((int(m.group(2)), os.path.join(folder, name), os.path.join(folder, pose)))
        if frames:
            videos.append([(png, npy) for _, png, npy in sorted(frames)])
    if not videos:
        raise AnimaPoseError("data", f"no frame_N.png with a frame_N_densepose.npy beside it under '{root}'",
                             "lay the dataset out as ROOT/<video>/frame_N.png + frame_N_densepose.npy (UBC-Fashion "
                             "frames with DreamPose's utils/densepose.py output)")
    return videos


def read_picture(path: str) -> torch.Tensor:
    """An RGB file as a ComfyUI IMAGE (1, H, W, 3) in [0, 1]."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr)[None]


def window_frames(index: int, length: int, mode: str) -> list[int]:
    """Frame positions of the 5 pose slots of target ``index`` in a video of ``length`` frames."""
    if mode == "repeat":
        return [index] * 5
    return [min(max(index + k, 0), length - 1) for k in range(-2, 3)]


# -- training --------------------------------------------------------------------------------------------------

class _Stage1:
    def __init__(self, config: Stage1Config):
        from ...animapose.dreampose import checkpoint, finetune
        from ...animapose.dreampose.adapter import EmbeddingAdapter
        from ...animapose.dreampose.pipeline import (
            OFFICIAL_HW,
            fit_channels_first,
            fit_images,
            load_clip_b32,
            reference_features,
        )

        self.config, self.ft = config, finetune
        self._fit_images, self._fit_poses, self._features = fit_images, fit_channels_first, reference_features
        self.official_hw = OFFICIAL_HW
        if config.pose_window not in POSE_WINDOWS:
            raise AnimaPoseError("pose_window", f"unknown '{config.pose_window}'", f"use one of {POSE_WINDOWS}")
        if config.width % 8 or config.height % 8:
            raise AnimaPoseError("width", f"{config.width}x{config.height} is not a multiple of 8", "use 512x640")
        self.videos = find_videos(config.data)
        if config.reference_frames is not None and config.reference_frames < 1:
            raise AnimaPoseError("reference_frames", "must be at least 1", "leave it out to condition on every frame")
        self.frames = [(v, k) for v, video in enumerate(self.videos)
                       for k in range(min(len(video), config.reference_frames or len(video)))]
        self._references: dict[int, tuple] = {}
        self._targets: dict[tuple[int, int], tuple] = {}
        self.device = finetune.training_device()
        self.precision = finetune.Precision(config.precision, self.device)
        self.clip_vision = load_clip_b32(config.clip, "clip")
        model = vae = adapter = None
        if config.base is not None:
            import comfy.sd

            if not os.path.isfile(config.base):
                raise AnimaPoseError("base", f"'{config.base}' does not exist", "give an SD1.x checkpoint file")
            try:
                out = comfy.sd.load_checkpoint_guess_config(config.base, output_vae=config.vae is None,
                                                            output_clip=False, output_model=config.unet is None)
            except RuntimeError as e:  # ComfyUI's "could not detect model type" and friends
                raise AnimaPoseError("base", f"'{config.base}' is not a checkpoint ComfyUI can load ({e})",
                                     "give an SD1.x checkpoint (e.g. sd-v1-4.ckpt)") from e
            model, vae = out[0], out[2]
            if model is not None:
                finetune.check_model(model, "base", in_channels=None)
            if model is not None and model.model.model_config.unet_config.get("context_dim") != 768:
                raise AnimaPoseError("base", "DreamPose starts from Stable Diffusion 1.x (cross-attention width 768, "
                                     "the adapter's token width)", "use sd-v1-4 (the paper's) or another SD1.x model")
        if config.unet is not None:
            model = checkpoint.load_unet(config.unet, "unet")
            adapter_path = config.adapter or config.unet.replace("unet_epoch", "adapter")
            adapter = checkpoint.read_adapter(adapter_path, "adapter")
        if model is not None and model.model.model_config.unet_config.get("in_channels") not in (
                4, finetune.DREAMPOSE_IN_CHANNELS):
            raise AnimaPoseError("base", "the UNet takes extra input channels (an inpainting or other special model)",
                                 "start from a plain SD1.x text-to-image checkpoint such as sd-v1-4")
        if model is None:
            raise AnimaPoseError("base", "no starting model", "give --base (an SD1.x checkpoint) or --unet and "
                                 "--adapter (DreamPose files to resume from)")
        if config.vae is not None:
            vae = checkpoint.read_vae(config.vae, "vae")
        if vae is None:
            raise AnimaPoseError("vae", "no VAE: a DreamPose UNet file holds none", "give --vae (e.g. vae_N.pth or "
                                 "the SD1.4 VAE) or --base (an SD1.x checkpoint whose VAE is used)")
        self.vae = vae
        self.alphas = finetune.noise_schedule(model, "base" if config.base else "unet")
        self.latent_format = model.model.latent_format
        self.unet_config = dict(model.model.model_config.unet_config, in_channels=finetune.DREAMPOSE_IN_CHANNELS)
        self.unet = finetune.trainable_unet(model, self.device, in_channels=finetune.DREAMPOSE_IN_CHANNELS)
        if config.narrow:
            self.unet = narrow_twin(self.unet, self.unet_config, config.narrow, self.device)
        if adapter is None:
            # The official init (identity over the CLIP tokens, the rest PyTorch's default), seeded.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(config.seed)
                adapter = EmbeddingAdapter().init_official()
        self.adapter = finetune.adapter_copy(adapter, self.device)
        del model
        if config.gradient_checkpointing:
            finetune.checkpoint_modules(finetune.unet_checkpoint_modules(self.unet))
        self.crop = CropPolicy(config.crop_probability, UNET_CROP.margin)
        self.generator = torch.Generator().manual_seed(config.seed)
        with torch.no_grad():  # what image dropout conditions on: the features of a black picture
            self.black = self._reference(torch.zeros(1, *OFFICIAL_HW, 3))

    def _reference(self, pictures: torch.Tensor):
        clip_tokens, latents = self._features(self.clip_vision, self.vae, pictures)
        return clip_tokens.to(self.device), latents.to(self.device)

    def _target(self, video: int, j: int, generator: torch.Generator, augment: bool):
        """(target latent (1, 4, h, w), pose window (1, 10, h, w)) of frame j of a video."""
        cacheable = self.config.cache_features and not (augment and self.crop.probability > 0)
        if cacheable and (video, j) in self._targets:
            if augment:  # the draws an uncropped sample makes, so caching leaves the random sequence alone
                crop_draws((self.config.height, self.config.width), self.crop, generator)
            return self._targets[(video, j)]
        out = self._encode_target(video, j, generator, augment)
        if cacheable:
            self._targets[(video, j)] = out
        return out

    def _encode_target(self, video: int, j: int, generator: torch.Generator, augment: bool):
        c = self.config
        frames = self.videos[video]
        picture = self._fit_images(read_picture(frames[j][0]), (c.height, c.width), c.fit).movedim(-1, 1)
        slots = window_frames(j, len(frames), c.pose_window)
        uv = torch.stack([read_uv_file(frames[k][1], "data") for k in slots])
        maps = self._fit_poses(uv, (c.height, c.width), c.fit)
        if augment:
            picture, maps = self._crop(picture, maps, generator)
        with torch.no_grad():  # the [0, 1] picture reaches the encoder as it is, as in training
            raw = self.vae.encode(vae_encode_input(picture.movedim(1, -1), "clean"))
        target = self.latent_format.process_in(raw.float()).to(self.device)
        windows = pose_windows(maps, tuple(target.shape[-2:]), "clamp", "clean")[2:3]
        return target, windows.to(self.device)

    def _crop(self, picture: torch.Tensor, maps: torch.Tensor, generator: torch.Generator):
        """One crop for the target picture and all five pose maps."""
        stacked = torch.cat([picture.expand(maps.shape[0], -1, -1, -1), maps], dim=1)
        out, _, _ = crop_pair(stacked, None, self.crop, generator)
        return out[:1, :3], out[:, 3:]

    def micro_batch(self, order: list[int], generator: torch.Generator | None = None,
                    train: bool = True) -> torch.Tensor:
        """The loss of one micro-batch of conditioning frames ``order``; ``train=False`` without dropout and crops
        (the fixed probe batch)."""
        c = self.config
        generator = generator or self.generator
        targets, windows, drops = [], [], []
        for index in order:
            video, i = self.frames[index]
            j = int(torch.randint(0, len(self.videos[video]), (1,), generator=generator))
            drops.append(draw_dropout(generator, c.pose_dropout, c.image_dropout, c.both_dropout) if train else "none")
            target, window = self._target(video, j, generator, augment=train)
            targets.append(target)
            windows.append(window if drops[-1] not in ("pose", "both") else torch.zeros_like(window))
        with torch.no_grad():
            clip_tokens, ref_latents = self._references_of(order)
            for k, drop in enumerate(drops):
                if drop in ("image", "both"):
                    clip_tokens[k], ref_latents[k] = self.black[0][0], self.black[1][0]
        return self.ft.diffusion_loss(self.unet, self.adapter, clip_tokens, ref_latents, torch.cat(targets),
                                      torch.cat(windows), self.alphas, generator, self.precision)

    @torch.no_grad()
    def _references_of(self, order: list[int]):
        """(CLIP tokens, VAE latents) of the conditioning frames ``order``, encoded together (cached ones reused)."""
        c = self.config
        todo = [k for k in dict.fromkeys(order) if k not in self._references] if c.cache_features else list(order)
        if todo:
            pictures = [self._fit_images(read_picture(self.videos[self.frames[k][0]][self.frames[k][1]][0]),
                                         self.official_hw, c.fit) for k in todo]
            tokens, latents = self._reference(torch.cat(pictures))
            if not c.cache_features:
                return tokens, latents
            for n, k in enumerate(todo):
                self._references[k] = (tokens[n:n + 1], latents[n:n + 1])
        parts = [self._references[k] for k in order]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    def wide_state(self) -> dict[str, torch.Tensor]:
        """The trained UNet's weights in the layout of the starting model (widened back from a narrow twin)."""
        state = {k: v.detach().cpu() for k, v in self.unet.state_dict().items()}
        if self.config.narrow:
            from ..synthetic.tiny_models import expand_unet

            state = expand_unet(state, self.config.narrow)
        return state

    @torch.no_grad()
    def probe(self) -> float:
        """The loss on one fixed batch (the first frames, fixed targets, timesteps and noise): comparable before and
        after training, unlike the per-update losses, which see different samples."""
        order = list(range(min(len(self.frames), self.config.batch_size)))
        return float(self.micro_batch(order, torch.Generator().manual_seed(self.config.seed + 1), train=False))


def train_stage1(config: Stage1Config) -> Stage1Result:
    """Runs stage 1 and writes the checkpoints; returns the losses (one per update) and the files."""
    from ...animapose.dreampose.finetune import Updater, training_mode

    c = config
    with training_mode():
        run = _Stage1(c)
        updater = Updater([*run.unet.parameters(), *run.adapter.parameters()], c.learning_rate, run.precision,
                          clip_params=list(run.unet.parameters()))
        per_update = c.batch_size * c.grad_accumulation
        steps_per_epoch = max(1, math.ceil(len(run.frames) / per_update))
        total = steps_per_epoch * c.epochs if c.max_steps is None else min(c.max_steps, steps_per_epoch * c.epochs)
        log.info("DreamPose stage 1: %d videos, %d frames, %d updates of %d pairs (%d epochs) on %s",
                 len(run.videos), len(run.frames), total, per_update, c.epochs, run.device)
        result, started, step = Stage1Result(0, []), time.monotonic(), 0
        probe_before = run.probe()
        for epoch in range(c.epochs):
            order = torch.randperm(len(run.frames), generator=run.generator).tolist()
            for s in range(steps_per_epoch):
                if step >= total:
                    break
                chunk = order[s * per_update:(s + 1) * per_update] or order[:per_update]
                parts = [chunk[k:k + c.batch_size] for k in range(0, len(chunk), c.batch_size)]
                loss_sum = 0.0
                for part in parts:
                    loss = run.micro_batch(part)
                    updater.backward(loss, scale=len(part) / len(chunk))
                    loss_sum += float(loss.detach()) * len(part) / len(chunk)
                updater.step()
                step += 1
                result.losses.append(loss_sum)
                if step % c.log_every == 0 or step == total:
                    log.info("step %d/%d (epoch %d): loss %.5f, %.1f s/step", step, total, epoch, loss_sum,
                             (time.monotonic() - started) / step)
            last = step >= total or epoch == c.epochs - 1
            if (epoch + 1) % c.save_every == 0 or last:
                result.files += save_checkpoint(run.wide_state(), run.unet_config, run.adapter, c.output, epoch,
                                                c.file_format)
            if step >= total:
                break
        result.steps = step
        result.probe = (probe_before, run.probe())
        log.info("loss on the fixed probe batch: %.5f before, %.5f after %d updates", *result.probe, step)
        result.unet_state = run.wide_state()
        result.adapter = run.adapter.requires_grad_(False).eval().to("cpu")
    return result


def narrow_twin(unet: torch.nn.Module, unet_config: dict, ratio: int, device: torch.device) -> torch.nn.Module:
    """The trainable narrow twin of ``unet`` (see ``workshop/synthetic/tiny_models.py``)."""
    from ..synthetic import tiny_models as tm

    layout = tm.unet_config(tm.WIDE, tm.WIDE_HEADS)
    keys = ("model_channels", "num_heads", "channel_mult", "num_res_blocks", "context_dim", "use_linear_in_transformer")
    given = {k: list(unet_config.get(k) or []) if isinstance(layout[k], list) else unet_config.get(k) for k in keys}
    if ratio not in (2, 4, 8) or any(given[k] != layout[k] for k in keys):
        raise AnimaPoseError("narrow", f"a narrow twin (ratio {ratio}) exists only for the demo's one-level 320-wide "
                             "UNet with 8 heads, at ratio 2, 4 or 8", "leave --narrow out")
    try:
        weights = tm.shrink_unet(unet.state_dict(), ratio)
    except ValueError as e:
        raise AnimaPoseError("narrow", f"the starting UNet is not a widened narrow one: {e}",
                             "leave --narrow out, or start from a checkpoint made by "
                             "workshop/demo/train_dreampose.py") from e
    twin = tm.narrow_unet(ratio, None, unet_config["in_channels"])
    twin.load_state_dict({k: v.to(device) for k, v in weights.items()}, strict=True, assign=True)
    return twin.eval().requires_grad_(True)


def save_checkpoint(unet_state: dict, unet_config: dict, adapter, directory: str, epoch: int,
                    file_format: str = "safetensors") -> list[Path]:
    """``unet_epoch_{epoch}`` (diffusers keys) and ``adapter_{epoch}`` in ``directory``, as the official train.py."""
    from ...animapose.dreampose.checkpoint import unet_diffusers_keys

    if file_format not in FORMATS:
        raise AnimaPoseError("format", f"unknown file format '{file_format}'", f"use one of {FORMATS}")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    ext = ".safetensors" if file_format == "safetensors" else ".pth"
    written = []
    for name, sd in ((f"unet_epoch_{epoch}", unet_diffusers_keys(unet_state, unet_config)),
                     (f"adapter_{epoch}", adapter.state_dict())):
        path = out / (name + ext)
        tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in sd.items()}
        tmp = path.with_name(path.name + ".tmp")
        if file_format == "safetensors":
            import safetensors.torch

            safetensors.torch.save_file(tensors, str(tmp), metadata={"format": "pt"})
        else:
            torch.save(tensors, str(tmp))
        os.replace(tmp, path)
        written.append(path)
        log.info("saved %s", path)
    return written


# -- command line ----------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    d = Stage1Config("", "", "")
    p = common.parser("dreampose", "DreamPose stage 1: train the pose-conditioned UNet and the CLIP-VAE adapter on a "
                      "folder of videos (ROOT/<video>/frame_N.png + frame_N_densepose.npy). Defaults are the paper's.")
    p.add_argument("--data", required=True, help="dataset folder: one subfolder of frames and UV maps per video")
    p.add_argument("--clip", required=True, help="openai/clip-vit-base-patch32: its folder or weights file")
    p.add_argument("--output", required=True, help="folder for unet_epoch_E and adapter_E")
    start = p.add_argument_group("starting point")
    start.add_argument("--base", help="SD1.x checkpoint to start from (the paper used SD1.4); gives the UNet unless "
                                      "--unet is given, and the VAE unless --vae is")
    start.add_argument("--unet", help="DreamPose UNet to resume from (unet_epoch_N.pth or .safetensors)")
    start.add_argument("--adapter", help="adapter to resume with (default: the --unet name with unet_epoch -> "
                                         "adapter)")
    start.add_argument("--vae", help="VAE file (needed with --unet unless --base gives one)")
    p.add_argument("--epochs", type=int, default=d.epochs, help="passes over the frames (paper: 5)")
    p.add_argument("--steps", "--max-steps", dest="max_steps", type=int, default=None,
                   help="stop after this many updates")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="pairs per forward pass")
    p.add_argument("--grad-accumulation", type=int, default=d.grad_accumulation, help="forward passes per update")
    p.add_argument("--lr", type=float, default=d.learning_rate, help="AdamW learning rate, constant")
    p.add_argument("--pose-dropout", type=float, default=d.pose_dropout, help="share of samples without pose")
    p.add_argument("--image-dropout", type=float, default=d.image_dropout, help="share without the subject image")
    p.add_argument("--both-dropout", type=float, default=d.both_dropout, help="share without either")
    p.add_argument("--pose-window", choices=POSE_WINDOWS, default=d.pose_window,
                   help="poses j-2..j+2 (paper) or pose j five times (the released code)")
    p.add_argument("--crop-probability", type=float, default=d.crop_probability,
                   help="share of samples cropped with their poses (0: none, as train.py)")
    p.add_argument("--width", type=int, default=d.width)
    p.add_argument("--height", type=int, default=d.height)
    p.add_argument("--fit", choices=["letterbox", "crop", "stretch"], default=d.fit)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default=d.precision,
                   help="compute precision (fp16 needs CUDA); weights stay fp32")
    p.add_argument("--no-gradient-checkpointing", action="store_true", help="faster, much more memory")
    p.add_argument("--save-every", type=int, default=d.save_every, help="epochs between checkpoints")
    p.add_argument("--format", choices=FORMATS, default=d.file_format,
                   help="safetensors, or pth for the official scripts")
    p.add_argument("--log-every", type=int, default=d.log_every, help="updates between loss log lines")
    p.add_argument("--cache-features", action="store_true",
                   help="keep the frozen CLIP/VAE features of every frame after first use (small datasets: memory "
                        "grows with the frame count)")
    p.add_argument("--reference-frames", type=int, default=None,
                   help="condition only on the first N frames of each video (default: every frame)")
    p.add_argument("--narrow", type=int, default=None, metavar="RATIO",
                   help="train the narrow twin (320/RATIO channels) of the demo's tiny one-level UNet, whose weights "
                        "are zero outside those channels; the files are written wide")
    return p


def config_from_args(args: argparse.Namespace) -> Stage1Config:
    if args.base is None and args.unet is None:
        raise AnimaPoseError("base", "no starting model", "use --base SD_CHECKPOINT or --unet FILE")
    return Stage1Config(
        data=args.data, clip=args.clip, output=args.output, base=args.base, unet=args.unet, adapter=args.adapter,
        vae=args.vae, epochs=args.epochs, max_steps=args.max_steps, batch_size=args.batch_size,
        grad_accumulation=args.grad_accumulation, learning_rate=args.lr, pose_dropout=args.pose_dropout,
        image_dropout=args.image_dropout, both_dropout=args.both_dropout, pose_window=args.pose_window,
        crop_probability=args.crop_probability, width=args.width, height=args.height, fit=args.fit, seed=args.seed,
        precision=args.precision, gradient_checkpointing=not args.no_gradient_checkpointing,
        save_every=args.save_every, file_format=args.format, log_every=args.log_every,
        cache_features=args.cache_features, reference_frames=args.reference_frames, narrow=args.narrow)


def run(argv: list[str] | None = None) -> Stage1Result:
    """Parses ``argv`` and trains. ComfyUI must already be importable (``common.import_comfy``)."""
    return train_stage1(config_from_args(build_parser().parse_args(argv)))


def main(argv: list[str] | None = None) -> int:
    return common.main(build_parser(), lambda args: list(train_stage1(config_from_args(args)).files), argv)


if __name__ == "__main__":
    sys.exit(main())
