"""The update loop every trainer of the pack shares: DreamPose's subject finetune (stages 2a/2b), DreamPose stage 1
and AnimateDiff motion-module / MotionLoRA training.

One step is one AdamW update (betas 0.9/0.999, weight decay 1e-2, eps 1e-8, constant lr; the defaults of the official
DreamPose scripts and of AnimateDiff's train.py, which uses ``torch.optim.AdamW`` with weight decay 1e-2 and eps 1e-8)
with the gradient norm clipped to 1.0 (both official recipes clip at 1.0). Precision is fp32, or bf16 / fp16 autocast
over fp32 master weights. The loop checks ComfyUI's interrupt flag before every update, so Cancel stops a run at the
next step, and reports (step, total, loss) after each update.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Callable

import torch

from ..comfy_seam import comfy_model_management
from ..errors import AnimaPoseError
from .settings import PRECISIONS

log = logging.getLogger(__name__)

ADAMW = {"betas": (0.9, 0.999), "weight_decay": 1e-2, "eps": 1e-8}
MAX_GRAD_NORM = 1.0
LOG_EVERY = 50

# (step, total, loss) after every update
ProgressFn = Callable[[int, int, float], None]


def training_device() -> torch.device:
    return comfy_model_management.get_torch_device()


@contextlib.contextmanager
def training_mode():
    """Gradients on, even inside ComfyUI's node execution, which runs under ``torch.inference_mode()``."""
    with torch.inference_mode(False), torch.enable_grad():
        yield


class Precision:
    """fp32, or bf16 / fp16 autocast over fp32 master weights (fp16 with dynamic loss scaling, CUDA only)."""

    def __init__(self, name: str, device: torch.device, input_name: str = "precision"):
        if name not in PRECISIONS:
            raise AnimaPoseError(input_name, f"unknown precision '{name}'", f"use one of {', '.join(PRECISIONS)}")
        if name == "fp16" and device.type != "cuda":
            raise AnimaPoseError(input_name, f"fp16 autocast with loss scaling needs a CUDA GPU; training runs on "
                                 f"{device.type}", "choose bf16 (memory-saving, works on CPUs and recent GPUs) or fp32")
        if name == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise AnimaPoseError(input_name, "this GPU has no bf16 support", "choose fp16 or fp32")
        self.name = name
        self.device = device
        self.dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[name]
        self.scaler = torch.amp.GradScaler("cuda") if name == "fp16" else None

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)


class Updater:
    """AdamW with the official settings, gradient clipping and the precision's loss scaling."""

    def __init__(self, params: list, learning_rate: float, precision: Precision, clip_params: list):
        self.params = params
        self.clip_params = clip_params
        self.precision = precision
        self.optimizer = torch.optim.AdamW(params, lr=learning_rate, **ADAMW)

    def backward(self, loss: torch.Tensor, scale: float = 1.0) -> None:
        loss = loss * scale
        (self.precision.scaler.scale(loss) if self.precision.scaler else loss).backward()

    def step(self) -> None:
        scaler = self.precision.scaler
        if scaler is not None:
            scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.clip_params, MAX_GRAD_NORM)
        if scaler is not None:
            scaler.step(self.optimizer)
            scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)


def run_updates(label: str, steps: int, loss_fn: Callable[[], torch.Tensor], updater: Updater,
                progress: ProgressFn | None = None, log_every: int = LOG_EVERY) -> list[float]:
    """``steps`` updates of ``loss_fn()`` (which draws its own randomness), interruptible; the per-step losses."""
    losses = []
    log.info("%s: %d steps", label, steps)
    for step in range(steps):
        comfy_model_management.throw_exception_if_processing_interrupted()
        loss_t = loss_fn()
        updater.backward(loss_t)
        updater.step()
        loss = float(loss_t.detach())
        losses.append(loss)
        if progress is not None:
            progress(step + 1, steps, loss)
        if (step + 1) % log_every == 0 or step + 1 in (1, steps):
            log.info("%s: step %d/%d, loss %.5f", label, step + 1, steps, loss)
    return losses


def checkpoint_modules(modules) -> None:
    """Gradient checkpointing on modules of our own training copies, with ComfyUI's LoRA-trainer helper."""
    from ..comfy_seam import train_checkpoint_patch as patch

    for m in modules:
        patch(m)


def uncheckpoint(module: torch.nn.Module) -> None:
    """Removes the checkpointing wrappers again, so a trained copy that leaves is an ordinary module."""
    for m in module.modules():
        m.__dict__.pop("org_forward", None)
        m.__dict__.pop("forward", None)


def highest_modules(module: torch.nn.Module) -> list:
    """The outermost submodules with their own forward (below containers): what gradient checkpointing wraps."""
    from ..comfy_seam import find_all_highest_child_module_with_forward

    return find_all_highest_child_module_with_forward(module)


def effective_weights(patcher, prefix: str, device: torch.device) -> dict[str, torch.Tensor]:
    """fp32 copies of a ModelPatcher's weights under ``prefix`` with its weight patches (LoRAs, merges) applied,
    keyed without the prefix.

    Read through ``get_key_patches`` (the original weights plus their patches, whatever ComfyUI currently has loaded
    or patched in place), so the model is not loaded and nothing of it is touched.
    """
    from ..comfy_seam import comfy_lora

    out = {}
    for key, entries in patcher.get_key_patches(prefix).items():
        base, convert = entries[0]
        weight = convert(base.detach().to(device=device, dtype=torch.float32, copy=True), inplace=True)
        if len(entries) > 1:
            weight = comfy_lora.calculate_weight(entries[1:], weight, key)
        out[key[len(prefix):]] = weight
    return out


def trainable_unet(model, device: torch.device, in_channels: int | None = None) -> torch.nn.Module:
    """An fp32 copy of the MODEL's UNet (patches applied) with plain, trainable torch layers. ``in_channels`` widens
    ``conv_in``: the SD weights are kept for the first channels and the new ones start at zero (stage 1's init; the
    official code also left the bias at random and, at its last commit, crashed on the shape)."""
    from ..comfy_seam import comfy_ops

    weights = effective_weights(model, "diffusion_model.", device)
    config = dict(model.model.model_config.unet_config)
    if in_channels is not None and in_channels != config["in_channels"]:
        old = weights["input_blocks.0.0.weight"]
        wide = torch.zeros(old.shape[0], in_channels, *old.shape[2:], device=device)
        wide[:, :old.shape[1]] = old
        weights["input_blocks.0.0.weight"] = wide
        config["in_channels"] = in_channels
    # Built on the meta device and given the copies as its parameters: one fp32 copy in memory, not two.
    config.update(dtype=torch.float32, device="meta", operations=comfy_ops.disable_weight_init)
    unet = type(model.model.diffusion_model)(**config)
    unet.load_state_dict(weights, strict=True, assign=True)
    left = [n for n, t in [*unet.named_parameters(), *unet.named_buffers()] if t.is_meta]
    if left:
        raise RuntimeError(f"UNet tensors without weights after the copy: {left[:3]}")
    # No dropout or batch statistics in an SD UNet, so eval mode changes nothing but keeps it explicit.
    return unet.eval().requires_grad_(True)
