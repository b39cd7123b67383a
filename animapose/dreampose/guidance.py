"""DreamPose's dual classifier-free guidance over the reference image and the pose, as a native ComfyUI guider.

DreamPose predicts, from one UNet call with three batch slots::

    eps = e(0, 0) + s_I * (e(I, 0) - e(0, 0)) + s_p * (e(I, p) - e(I, 0))

where ``e(I, p)`` has the image tokens and the pose windows, ``e(I, 0)`` the image tokens and an all-zero pose, and
``e(0, 0)`` the tokens of an all-black image and a zero pose. (The official pipeline's argument comments swap the
names; its arithmetic is the formula above with ``s1 = s_I`` and ``s2 = s_p``.)

ComfyUI's ``Guider_DualCFG`` ("regular" style) computes ``neg + cfg2 * (middle - neg) + cfg1 * (pos - middle)`` with
the three conds batched by ``calc_cond_batch``; with positive = (I, p), middle = (I, 0), negative = (0, 0) that is the
formula above for ``cfg2 = s_I`` and ``cfg1 = s_p``. The built-in ``DualCFGGuider`` node names them
``cfg_cond2_negative`` (s_I) and ``cfg_conds`` (s_p). Because the guider is ComfyUI's own, every sampler and
scheduler of ``SamplerCustomAdvanced`` works with it.
"""

from __future__ import annotations

import functools

import torch

from ..errors import AnimaPoseError, require_finite
from ..numerics import check_model_output, warn_if_not_finite
from .poses import check_counts

POSE_CHANNELS = 10
GUIDER_NODE = "DreamPose Guider (dual CFG)"
CHECK_KEY = "animapose_dreampose_conditioning"


def _conditioning(tokens, input_name: str) -> list:
    """A CONDITIONING list from a (B, 50, 768) tensor or an existing CONDITIONING (dicts copied, not shared)."""
    if isinstance(tokens, torch.Tensor):
        entries = [[tokens, {}]]
    elif isinstance(tokens, (list, tuple)) and tokens and all(isinstance(e, (list, tuple)) and len(e) == 2 for e in tokens):
        entries = [[e[0], dict(e[1])] for e in tokens]
    else:
        raise AnimaPoseError(input_name, f"expected image tokens or CONDITIONING, got {type(tokens).__name__}",
                             "connect the DreamPose image-embedding output")
    for t, _ in entries:
        if not isinstance(t, torch.Tensor) or t.ndim != 3:
            shape = list(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise AnimaPoseError(input_name, f"image tokens must be [batch, tokens, width], got {shape}",
                                 "connect the DreamPose image-embedding output")
    return entries


def build_conds(image_tokens, uncond_tokens, pose_windows: torch.Tensor) -> tuple[list, list, list]:
    """(positive, middle, negative) CONDITIONING for ``dreampose_guider``.

    positive = image tokens + pose windows, middle = image tokens + zero pose, negative = unconditional (black image)
    tokens + zero pose. ``pose_windows`` is (frames, 10, h, w), one window per latent frame; it travels as
    ``"noise_concat"`` and reaches the UNet as ``c_concat``. Token batches must be 1 (one reference for all frames) or
    the number of frames. The zero pose is explicit so the three conds have equal shapes and ComfyUI batches them
    into one UNet call. It is all zeros in either pose value range, as in the official pipeline (with "legacy"
    windows 0 is not the background value -1).
    """
    if pose_windows.ndim != 4 or pose_windows.shape[1] != POSE_CHANNELS:
        raise AnimaPoseError("poses", f"pose windows must be [frames, {POSE_CHANNELS}, height, width], got "
                             f"{list(pose_windows.shape)}", "build them with the DreamPose pose-window node")
    frames = pose_windows.shape[0]
    zeros = torch.zeros_like(pose_windows)
    out = []
    for tokens, pose, name in ((image_tokens, pose_windows, "image_embeds"), (image_tokens, zeros, "image_embeds"),
                               (uncond_tokens, zeros, "uncond_embeds")):
        entries = _conditioning(tokens, name)
        for t, extra in entries:
            if t.shape[0] not in (1, frames):
                raise AnimaPoseError(name, f"{t.shape[0]} image embeddings for {frames} pose frames",
                                     "use one reference image, or one per frame")
            extra["noise_concat"] = pose
        out.append(entries)
    return out[0], out[1], out[2]


def check_pose_frames(guider, frames: int) -> None:
    """The latent must have one row per pose window (a guider without pose windows is not checked)."""
    for cond in guider.original_conds.get("positive", []):
        windows = cond.get("noise_concat")
        if isinstance(windows, torch.Tensor):
            try:
                check_counts(windows.shape[0], frames, "latent")
            except AnimaPoseError as e:  # raised inside the sampler node: name the guider that checks it
                raise e.for_node(GUIDER_NODE) from None
            return


class PoseTally:
    """What the guider's model calls received, checked so that a ComfyUI which stopped passing the pose windows
    (``noise_concat`` -> ``c_concat``) or the image tokens to the UNet fails the run instead of drawing frames that
    ignore the poses. Counting and shape reads only: no device sync."""

    def __init__(self):
        self.expected = False  # the guider's conds carry pose windows
        self.calls = 0  # model calls in the current step


def has_pose_windows(guider) -> bool:
    return any(isinstance(c.get("noise_concat"), torch.Tensor) for conds in guider.original_conds.values()
               for c in conds)


def _conditioning_check(tally: PoseTally):
    def apply_model_wrapper(executor, x, t, *args, **kwargs):
        c_concat = args[0] if args else kwargs.get("c_concat")
        c_crossattn = args[1] if len(args) > 1 else kwargs.get("c_crossattn")
        tally.calls += 1
        if tally.expected and (not isinstance(c_concat, torch.Tensor) or c_concat.ndim != 4
                               or c_concat.shape[1] != POSE_CHANNELS or c_crossattn is None):
            got = "no c_concat" if not isinstance(c_concat, torch.Tensor) else f"c_concat {list(c_concat.shape)}"
            if c_crossattn is None:
                got += " and no image tokens"
            raise bypassed_conditioning(f"the UNet received {got} instead of the {POSE_CHANNELS}-channel pose "
                                        "windows")
        return executor(x, t, *args, **kwargs)

    return apply_model_wrapper


def bypassed_conditioning(problem: str) -> AnimaPoseError:
    return AnimaPoseError("positive", f"{problem}: this ComfyUI bypassed the conditioning path the pack relies on, "
                          "and the frames would ignore the poses", "update AnimaPose, or use a ComfyUI version listed "
                          "in the pack's docs/compatibility.md, and report the ComfyUI version", node=GUIDER_NODE)


@functools.cache
def _guider_class():
    # Imported here: the module also brings in ComfyUI's node API, which runtime modules do not load at import time.
    from ..comfy_seam import Guider_DualCFG

    class DreamPoseGuider(Guider_DualCFG):
        """``Guider_DualCFG`` that refuses a latent whose frame count differs from the pose windows': ComfyUI would
        silently repeat or trim the windows to the batch, drawing frames with the wrong poses."""

        def sample(self, noise, latent_image, *args, **kwargs):
            check_pose_frames(self, latent_image.shape[0])
            self.pose_tally.expected = has_pose_windows(self)
            out = super().sample(noise, latent_image, *args, **kwargs)
            warn_if_not_finite(out, GUIDER_NODE)
            return out

        def predict_noise(self, x, timestep, model_options={}, seed=None):
            self.pose_tally.calls = 0
            out = super().predict_noise(x, timestep, model_options, seed)
            if self.pose_tally.expected and not self.pose_tally.calls:
                raise bypassed_conditioning("no UNet call of this step went through the guider's conditioning check")
            check_model_output(x, out, lambda: non_finite_guidance(self.cfg2, self.cfg1))
            return out

    return DreamPoseGuider


def non_finite_guidance(image_cfg: float, pose_cfg: float) -> AnimaPoseError:
    """The error for a guided prediction with NaN or infinity (the scales are in their widgets' range, so the UNet
    or its precision is the likely cause)."""
    return AnimaPoseError("model", f"the guided prediction turned NaN or infinite (image_cfg {image_cfg:g}, pose_cfg "
                          f"{pose_cfg:g}), so every frame would come out black", "check the DreamPose UNet file and "
                          "the precision (fp16 can overflow: try --bf16-unet or --fp32-unet), then lower image_cfg "
                          "and pose_cfg", node=GUIDER_NODE)


def dreampose_guider(model, positive: list, middle: list, negative: list, image_cfg: float, pose_cfg: float):
    """ComfyUI's ``Guider_DualCFG`` (regular style) set up as DreamPose's guidance: s_I = image_cfg, s_p = pose_cfg.

    At image_cfg = 1 ComfyUI skips the negative slot and at image_cfg = pose_cfg = 1 the middle one too (the formula
    does not need them), so those settings cost fewer UNet evaluations. The only addition is a frame-count check.
    """
    from ..comfy_seam import comfy_model_patcher, comfy_patcher_extension

    image_cfg, pose_cfg = require_finite(image_cfg, "image_cfg"), require_finite(pose_cfg, "pose_cfg")
    guider = _guider_class()(model)
    guider.set_conds(positive, middle, negative)
    guider.set_cfg(pose_cfg, image_cfg, nested=False)
    # The guider's own copy of the options (CFGGuider shares the MODEL's dict), so the check never reaches the MODEL.
    guider.model_options = comfy_model_patcher.create_model_options_clone(guider.model_options)
    guider.pose_tally = PoseTally()
    comfy_patcher_extension.add_wrapper_with_key(comfy_patcher_extension.WrappersMP.APPLY_MODEL, CHECK_KEY,
                                                 _conditioning_check(guider.pose_tally), guider.model_options,
                                                 is_model_options=True)
    return guider
