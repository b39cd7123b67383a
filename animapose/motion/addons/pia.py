"""PIA (image-to-video through extra input channels) on an inflated MODEL, through ModelPatcher APIs only.

PIA's ``conv_in`` reads 9 channels per frame: the noisy latent (4), a per-frame *affinity* (1, how closely the
frame should follow the input picture) and the picture's latent (4). diffusers' ``UNetMotionModel.from_unet2d``
keeps the image model's weights for the first 4 input channels and its bias, and takes channels 4..8 from the
PIA file; ``attach`` reproduces exactly that as a padded weight patch on the clone (``"diff"`` with
``pad_weight``), so the incoming MODEL keeps its 4-channel ``conv_in`` and a LoRA or model merge still works on
the rest. ``pia_conditioning`` supplies the 5 extra channels as concat conditioning (``noise_concat``, which
ComfyUI concatenates after the noisy latent), so every sampler, CFG and context windows (which slice it per
window) apply unchanged.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

import torch

from ...comfy_seam import comfy_patcher_extension
from ...errors import AnimaPoseError
from .pia_affinity import AFFINITY_MAX, AFFINITY_MIN, PIA_NODE, affinity_schedule

log = logging.getLogger(__name__)

KEY = "animapose_pia"
CONV_KEY = "diffusion_model.input_blocks.0.0.weight"
LATENT_CHANNELS = 4
EXTRA_CHANNELS = 5


@dataclass(frozen=True)
class PIAMarker:
    """Attachment saying that a MODEL reads PIA's image channels (and from which motion model)."""

    name: str
    width: int


# -- the MODEL side ---------------------------------------------------------------------------------------------

def attach(m, motion) -> None:
    """Called by ``apply_motion_model`` on its clone: removes an earlier PIA patch and, for a PIA motion model,
    pads ``conv_in`` to 9 channels with PIA's weights for channels 4..8."""
    detach(m)
    weight = motion.extras.get("conv_in.weight")
    if weight is None:
        return
    # The UNet may still be patched by a clone ComfyUI keeps loaded (a PIA run just before): the checkpoint's own
    # conv_in is then in the patchers' shared backup.
    backup = m.backup.get(CONV_KEY)
    shape = (backup.weight if backup is not None else m.model.diffusion_model.input_blocks[0][0].weight).shape
    if shape[1] != LATENT_CHANNELS or shape[0] != weight.shape[0]:
        raise AnimaPoseError("motion_model", f"PIA's conv_in ({weight.shape[0]} channels from 9) does not fit the "
                             f"model's conv_in ({shape[0]} channels from {shape[1]})",
                             "use PIA with a plain SD1.5 checkpoint (not an inpainting or other 9-channel model)")
    diff = torch.zeros(weight.shape, dtype=torch.float32)
    diff[:, LATENT_CHANNELS:] = weight[:, LATENT_CHANNELS:].float()
    m.add_patches({CONV_KEY: ("diff", (diff, {"pad_weight": True, KEY: True}))}, 1.0)
    m.set_attachments(KEY, PIAMarker(motion.name, int(weight.shape[0])))
    m.add_wrapper_with_key(comfy_patcher_extension.WrappersMP.DIFFUSION_MODEL, KEY, _check_channels)
    m.add_wrapper_with_key(comfy_patcher_extension.WrappersMP.APPLY_MODEL, KEY, _check_concat)


def detach(m) -> None:
    patches = m.patches.get(CONV_KEY)
    if patches:
        kept = [p for p in patches if not _is_ours(p[1])]
        if len(kept) != len(patches):
            if kept:
                m.patches[CONV_KEY] = kept
            else:
                del m.patches[CONV_KEY]
            m.patches_uuid = uuid.uuid4()
    m.remove_attachments(KEY)
    m.remove_wrappers_with_key(comfy_patcher_extension.WrappersMP.DIFFUSION_MODEL, KEY)
    m.remove_wrappers_with_key(comfy_patcher_extension.WrappersMP.APPLY_MODEL, KEY)


def _is_ours(value) -> bool:
    return (isinstance(value, tuple) and len(value) == 2 and value[0] == "diff" and len(value[1]) > 1
            and isinstance(value[1][1], dict) and value[1][1].get(KEY, False))


def _check_channels(executor, x, *args, **kwargs):
    expected = LATENT_CHANNELS + EXTRA_CHANNELS
    if x.shape[1] != expected:
        raise AnimaPoseError(
            "motion_model", f"PIA reads the picture through {EXTRA_CHANNELS} extra input channels, but the UNet got "
            f"{x.shape[1]} channels", f"sample with the positive and negative conditioning from '{PIA_NODE}'",
            node="Apply AnimateDiff Motion Model")
    return executor(x, *args, **kwargs)


def _check_concat(executor, x, t, c_concat=None, *args, **kwargs):
    # an APPLY_MODEL wrapper: it reads values, which inside a torch.compile'd diffusion model would break its graph
    if isinstance(c_concat, torch.Tensor) and c_concat.shape[1] == EXTRA_CHANNELS:
        check_pia_channels(c_concat)
    return executor(x, t, c_concat, *args, **kwargs)


def check_pia_channels(extra: torch.Tensor) -> None:
    """Backstop for values that reached the UNet without passing the PIA node's checks (a conditioning edited by
    another node): an affinity outside 0..1 or a non-finite picture latent makes PIA's UNet output NaN, i.e. black
    frames. Two reductions over a (batch, 5, h, w) tensor per model call, before the UNet runs."""
    affinity = extra[:, :1]
    low, high = float(affinity.min()), float(affinity.max())
    if not (AFFINITY_MIN <= low and high <= AFFINITY_MAX):  # also catches NaN, which compares false
        raise AnimaPoseError("custom_affinity", f"the affinity reaching the UNet spans {low:g}..{high:g}, outside "
                             f"{AFFINITY_MIN:g}..{AFFINITY_MAX:g} (NaN or huge values turn every frame black)",
                             "use a preset, or custom values between 0 and 1, and connect this node's conditioning "
                             "straight to the sampler", node=PIA_NODE)
    if not bool(torch.isfinite(extra[:, 1:]).all()):
        raise AnimaPoseError("image", "the picture's latent holds NaN or infinite values",
                             "check the picture and the VAE that encodes it (a NaN pixel or a broken VAE file)",
                             node=PIA_NODE)


def is_pia_model(model) -> bool:
    return model.get_attachment(KEY) is not None


# -- the conditioning side --------------------------------------------------------------------------------------

def pia_concat(image_latent: torch.Tensor, schedule: list[float]) -> torch.Tensor:
    """``(frames, 5, h, w)``: the affinity channel, then the (model-scaled) picture latent, for every frame."""
    frames = len(schedule)
    _, _, h, w = image_latent.shape
    mask = torch.tensor(schedule, dtype=torch.float32).view(frames, 1, 1, 1).expand(frames, 1, h, w)
    return torch.cat([mask, image_latent[:1].float().expand(frames, -1, -1, -1)], dim=1).contiguous()


def encode_picture(model, vae, image: torch.Tensor, method: str) -> torch.Tensor:
    """The model-scaled latent ``(1, 4, h, w)`` of the first picture of ``image``, cropped to whole latent pixels."""
    ratio = vae.spacial_compression_encode()
    h, w = image.shape[1] // ratio, image.shape[2] // ratio
    if h < 1 or w < 1:
        raise AnimaPoseError("image", f"the picture ({image.shape[2]}x{image.shape[1]}) is smaller than one latent "
                             f"pixel ({ratio}x{ratio})", f"use a larger picture ({method} was trained at 512x512)")
    if image.shape[0] > 1:
        log.info("AnimaPose %s: using the first of %d pictures", method, image.shape[0])
    return model.model.process_latent_in(vae.encode(image[:1, : h * ratio, : w * ratio, :3]))


def pia_conditioning(model, positive, negative, vae, image: torch.Tensor, frames: int, preset: str,
                     custom: str = "") -> tuple[list, list, dict]:
    """PIA's inputs for a sampler: conditionings carrying the concat channels and an empty latent of ``frames``
    at the picture's size (rounded down to whole latent pixels). The picture is the clip's first frame."""
    if not is_pia_model(model):
        raise AnimaPoseError("model", "this MODEL has no PIA motion model applied, so nothing would read the picture",
                             "load pia.ckpt with 'Load AnimateDiff Motion Model', apply it with 'AnimaPose Apply "
                             "Motion Model' and connect that MODEL here")
    schedule = affinity_schedule(frames, preset, custom)
    latent = encode_picture(model, vae, image, "PIA")
    h, w = latent.shape[-2:]
    concat = pia_concat(latent, schedule)

    def with_concat(conditioning):
        return [[t[0], {**t[1], "noise_concat": concat}] for t in conditioning]

    empty = torch.zeros(frames, LATENT_CHANNELS, h, w)
    return with_concat(positive), with_concat(negative), {"samples": empty}
