"""DensePose UV pose sequences for DreamPose, and the 5-frame windows its UNet reads.

DreamPose conditions each frame on DensePose **UV** maps (2 channels: U and V surface coordinates in [0, 1], 0 on the
background; no part index). The official tooling saves one ``frame_N_densepose.npy`` of shape (2, H, W) per frame.
The UNet's 10 extra input channels hold the poses of frames i-2 .. i+2 as [u, v] pairs in that order.

Everything here is plain torch/numpy; ComfyUI is not imported.
"""

from __future__ import annotations

import logging
import math
import os
import re

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import AnimaPoseError

log = logging.getLogger(__name__)

WINDOW = 5
# The official code works at this pixel size (height, width) for the 80x64 latent.
OFFICIAL_PIXEL_HW = (640, 512)

_VALID_MODES = ("clamp", "official", "single")
_VALID_RANGES = ("clean", "legacy")

# The 9-colour viridis palette (matplotlib's and OpenCV's viridis at 0, 1/8, ..., 1).
VIRIDIS = torch.tensor([
    [0x44, 0x01, 0x54], [0x47, 0x2C, 0x7A], [0x3B, 0x51, 0x8B], [0x2C, 0x71, 0x8E], [0x21, 0x90, 0x8D],
    [0x27, 0xAD, 0x81], [0x5C, 0xC8, 0x63], [0xAA, 0xDC, 0x32], [0xFD, 0xE7, 0x25],
], dtype=torch.float32) / 255.0

_UV_LAYOUT = ("DreamPose reads DensePose UV: a (2, H, W) array per frame, U then V, values in [0, 1] and 0 on the "
              "background")
UV_FIX = ("export UV maps as frame_N_densepose.npy files of shape (2, H, W) (DreamPose's utils/densepose.py does "
           "this from detectron2 DensePose) and load the folder")


def natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def load_uv_folder(folder: str, input_name: str = "pose_folder") -> torch.Tensor:
    """The UV maps of ``folder`` in natural frame order (frame_2 before frame_10): (N, 2, H, W) float32.

    Reads the ``*_densepose.npy`` files when there are any (the official layout), otherwise every ``.npy`` file.
    """
    if not os.path.isdir(folder):
        raise AnimaPoseError(input_name, f"'{folder}' is not a folder", "give the folder that holds frame_N_densepose.npy")
    names = sorted((n for n in os.listdir(folder) if n.lower().endswith(".npy")), key=natural_key)
    densepose = [n for n in names if n.lower().endswith("_densepose.npy")]
    # The official layout keeps other arrays (keypoints, ...) beside the UV maps; take only the UV maps then.
    names = densepose or names
    if not names:
        raise AnimaPoseError(input_name, f"'{folder}' holds no .npy files", UV_FIX)
    frames = []
    for name in names:
        frames.append(check_uv_array(_load_npy(os.path.join(folder, name), input_name), name, input_name))
    first = frames[0].shape
    for name, arr in zip(names, frames):
        if arr.shape != first:
            raise AnimaPoseError(input_name, f"'{name}' is {arr.shape[2]}x{arr.shape[1]} but '{names[0]}' is "
                                 f"{first[2]}x{first[1]}; all pose maps of a sequence must have one size",
                                 "export every frame's UV map at the same resolution")
    warn_on_gaps(names)
    return torch.from_numpy(np.stack(frames)).float()


def read_uv_file(path: str, input_name: str = "poses") -> torch.Tensor:
    """One ``frame_N_densepose.npy``: (2, H, W) float32 UV, with the same checks as ``load_uv_folder``."""
    return torch.from_numpy(check_uv_array(_load_npy(path, input_name), os.path.basename(path), input_name))


def _load_npy(path: str, input_name: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as e:
        raise AnimaPoseError(input_name, f"'{os.path.basename(path)}' holds pickled Python objects, which are refused "
                             "for safety", "save the UV map as a plain numeric array with np.save") from e
    except (OSError, EOFError) as e:
        raise AnimaPoseError(input_name, f"'{os.path.basename(path)}' could not be read ({e})",
                             "export the pose file again") from e


def check_uv_array(arr: np.ndarray, name: str, input_name: str) -> np.ndarray:
    if not np.issubdtype(arr.dtype, np.floating):
        raise AnimaPoseError(input_name, f"'{name}' holds {arr.dtype} values; {_UV_LAYOUT}",
                             "save float UV coordinates in [0, 1] (divide 8-bit values by 255)")
    if arr.ndim == 3 and arr.shape[0] == 3:
        raise AnimaPoseError(input_name, f"'{name}' has 3 channels {list(arr.shape)}, which looks like DensePose IUV "
                             f"(part index, U, V); {_UV_LAYOUT}",
                             "keep only the U and V channels (iuv[1:3], U and V scaled to [0, 1])")
    if arr.ndim == 3 and arr.shape[-1] == 2 and arr.shape[0] != 2:
        raise AnimaPoseError(input_name, f"'{name}' is channels-last {list(arr.shape)}; {_UV_LAYOUT}",
                             "transpose each array to (2, H, W) before saving")
    if arr.ndim != 3 or arr.shape[0] != 2:
        raise AnimaPoseError(input_name, f"'{name}' has shape {list(arr.shape)}; {_UV_LAYOUT}", UV_FIX)
    if not np.isfinite(arr).all():
        raise AnimaPoseError(input_name, f"'{name}' contains NaN or infinite values", "export the pose file again")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < -1e-6 or hi > 1 + 1e-6:
        if lo < 0 and hi <= 1 + 1e-6:
            why = "it looks normalised to [-1, 1] like test.py's (x - 0.5) / 0.5; the files must hold the raw [0, 1] UV"
        elif hi > 1.5:
            why = "it looks like 8-bit or pixel-unit values"
        else:
            why = "UV coordinates lie in [0, 1]"
        raise AnimaPoseError(input_name, f"'{name}' has values in [{lo:.3g}, {hi:.3g}]; {why}",
                             "save raw DensePose U and V in [0, 1] with 0 on the background")
    return arr.astype(np.float32)


def warn_on_gaps(names: list[str]) -> None:
    numbers = []
    for name in names:
        digits = re.findall(r"\d+", name)
        if not digits:
            return
        numbers.append(int(digits[0]))
    gaps = [(a, b) for a, b in zip(numbers, numbers[1:]) if b != a + 1]
    if gaps:
        # Windows are taken by position in the sequence, so a gap makes distant frames neighbours.
        log.warning("pose frame numbers are not consecutive (e.g. %d -> %d); windows use the sorted order", *gaps[0])


def uv_from_images(images: torch.Tensor, input_name: str = "poses") -> torch.Tensor:
    """An IMAGE batch (N, H, W, C) carrying U in red and V in green (blue empty) -> (N, 2, H, W).

    Colour-mapped DensePose renders and skeleton renders are refused with the reason: they carry part labels or
    keypoints, and the UV coordinates DreamPose needs cannot be recovered from them.
    """
    if images.ndim != 4 or images.shape[-1] not in (3, 4):
        raise AnimaPoseError(input_name, f"expected an IMAGE batch [frames, height, width, 3], got {list(images.shape)}",
                             "connect an IMAGE output")
    rgb = images[..., :3].float().clamp(0.0, 1.0)
    blue = rgb[..., 2]
    # A UV image leaves blue empty while every other pose render uses it, so blue decides; the rest only explains.
    if blue.mean() <= 0.02 and (blue > 0.1).float().mean() <= 0.002:
        if rgb.amax() == 0:
            log.warning("input '%s': every pose image is black (no person); the frames get no pose", input_name)
        return rgb[..., :2].permute(0, 3, 1, 2).contiguous()
    raise AnimaPoseError(input_name, _describe_non_uv(rgb) + "; " + _UV_LAYOUT + " (as an image: U in red, V in green, "
                         "blue empty)", "connect DensePose UV maps: load the frame_N_densepose.npy folder with the "
                         "pose-folder loader, or an IMAGE batch holding U in red and V in green")


def _describe_non_uv(rgb: torch.Tensor) -> str:
    px = rgb.reshape(-1, 3)
    if len(px) > 200_000:  # a subsample is enough to name the kind of image, and keeps long batches cheap
        px = px[torch.linspace(0, len(px) - 1, 200_000).long()]
    spread = px.amax(1) - px.amin(1)
    if (spread <= 2 / 255).float().mean() >= 0.99:
        return "the images are greyscale (red = green = blue), e.g. a depth or line map, not a UV map"
    if near_viridis(px).float().mean() >= 0.9:
        return ("the images are a Viridis colour-mapped DensePose render (e.g. from comfyui_controlnet_aux's "
                "DensePose Estimator): its colours encode the body-part index, not UV coordinates, and UV cannot be "
                "recovered from it")
    dark = px.amax(1) <= 0.05
    fg = px[~dark]
    if dark.float().mean() >= 0.5 and len(fg) > 0:
        pure_hue = (fg.amin(1) <= 0.03) & (fg.amax(1) >= 0.3)
        if pure_hue.float().mean() >= 0.8:
            return ("the images are an OpenPose/DWPose skeleton render: coloured limbs and keypoints on black, with no "
                    "per-pixel body-surface coordinates")
    if _few_flat_colours(px):
        return ("the images are a colour-mapped part segmentation (e.g. a DensePose Parula render): the colours label "
                "body parts, they are not UV coordinates")
    return "the blue channel is not empty, so the images are ordinary colour pictures, not UV maps"


def near_viridis(px: torch.Tensor, tol: float = 0.06) -> torch.Tensor:
    # controlnet_aux paints the background and every part with viridis colours, so nearly all pixels lie on its curve.
    a, b = VIRIDIS[:-1], VIRIDIS[1:]
    seg = b - a
    t = (((px[:, None, :] - a) * seg).sum(-1) / (seg * seg).sum(-1)).clamp(0, 1)
    closest = a + t[..., None] * seg
    return (px[:, None, :] - closest).norm(dim=-1).amin(1) <= tol


def _few_flat_colours(px: torch.Tensor) -> bool:
    quant = (px * 255).round().long()
    codes = quant[:, 0] * 65536 + quant[:, 1] * 256 + quant[:, 2]
    _, counts = torch.unique(codes, return_counts=True)
    top = counts.sort(descending=True).values[:40].sum()
    return bool(top >= 0.95 * len(codes))


def check_counts(num_poses: int, num_frames: int, input_name: str = "poses") -> None:
    """One pose per generated frame; a mismatch is an error, never a silent trim or repeat."""
    if num_poses != num_frames:
        raise AnimaPoseError(input_name, f"{num_poses} pose frames for {num_frames} latent frames; DreamPose draws "
                             "frame i with pose i", f"make the latent batch {num_poses} frames long, or cut the pose "
                             f"sequence to {num_frames} frames before this node")


def pose_windows(uv: torch.Tensor, frames_hw_latent: tuple[int, int], mode: str = "clamp",
                 value_range: str = "clean", input_name: str = "poses") -> torch.Tensor:
    """(N, 2, H, W) UV in [0, 1] -> (N, 10, h, w): row i holds the [u, v] of frames i-2, i-1, i, i+1, i+2.

    Resizing follows the official code: each map is resized bilinearly (no antialias, ``align_corners=False``) to the
    pixel size ``(8h, 8w)`` (640x512 for the official 80x64 latent), then nearest-neighbour to ``(h, w)``.

    ``value_range``:
    - ``"clean"`` (default): the [0, 1] UV the UNet saw in training (train.py and finetune-unet.py; the datasets do
      not normalise poses), background 0.
    - ``"legacy"``: test.py's inference values, ``(x - 0.5) / 0.5``: UV in [-1, 1] and background -1.

    ``mode`` (what stands in for neighbours beyond the sequence ends):
    - ``"clamp"`` (default): the nearest existing frame (frame 0 for i-2 at i = 0).
    - ``"official"``: test.py's fallback, frame i's own pose. test.py finds neighbours by frame number; here they are
      found by position, which is the same for consecutively numbered frames.
    - ``"single"``: frame i's own pose in all five slots: the paper's 1-frame ablation, and what the released
      checkpoint saw in training (train.py repeated pose j five times).
    """
    if mode not in _VALID_MODES:
        raise ValueError(f"mode must be one of {_VALID_MODES}, not {mode!r}")
    if value_range not in _VALID_RANGES:
        raise ValueError(f"value_range must be one of {_VALID_RANGES}, not {value_range!r}")
    if uv.ndim != 4 or uv.shape[1] != 2:
        raise AnimaPoseError(input_name, f"expected UV poses [frames, 2, height, width], got {list(uv.shape)}", UV_FIX)
    h, w = frames_hw_latent
    maps = F.interpolate(uv.float(), (8 * h, 8 * w), mode="bilinear", align_corners=False)
    if value_range == "legacy":
        maps = (maps - 0.5) / 0.5
    maps = F.interpolate(maps, (h, w), mode="nearest")
    index = window_indices(uv.shape[0], mode)
    return maps[index].reshape(uv.shape[0], 2 * WINDOW, h, w)


def window_indices(num_frames: int, mode: str = "clamp") -> torch.Tensor:
    """(N, 5) source frame of each window slot."""
    centre = torch.arange(num_frames)[:, None]
    if mode == "single":
        return centre.expand(num_frames, WINDOW).clone()
    idx = centre + torch.arange(-(WINDOW // 2), WINDOW // 2 + 1)[None, :]
    if mode == "clamp":
        return idx.clamp(0, num_frames - 1)
    outside = (idx < 0) | (idx >= num_frames)
    return torch.where(outside, centre.expand_as(idx), idx)


def synthetic_uv_sequence(frames: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """A smooth moving "body" for tests and demos: (frames, 2, h, w), UV gradients inside an ellipse, 0 outside."""
    g = torch.Generator().manual_seed(seed)
    phase, speed, wobble = (torch.rand(3, generator=g) * torch.tensor([2 * math.pi, 0.6, 0.3]) + 0.2).tolist()
    ys = torch.linspace(0, 1, h)[:, None]
    xs = torch.linspace(0, 1, w)[None, :]
    out = torch.zeros(frames, 2, h, w)
    for f in range(frames):
        cx = 0.5 + 0.2 * math.sin(phase + speed * f)
        cy = 0.5 + 0.05 * math.cos(phase + 0.5 * speed * f)
        rx, ry = 0.18 * (1 + wobble * math.sin(speed * f)), 0.35
        dx, dy = (xs - cx) / rx, (ys - cy) / ry
        inside = dx**2 + dy**2 < 1
        # Strictly positive inside, so a body pixel never reads as background.
        u = 0.05 + 0.9 * (dx + 1) / 2
        v = 0.05 + 0.9 * (dy + 1) / 2
        out[f, 0] = torch.where(inside, u.expand(h, w), torch.zeros(()))
        out[f, 1] = torch.where(inside, v.expand(h, w), torch.zeros(()))
    return out.clamp(0, 1)
