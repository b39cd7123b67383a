"""Context windows on the frame axis, through ComfyUI's own ``IndexListContextHandler``.

The handler slices the latent batch (dim 0 = frames) into windows, runs each through the model and fuses the
overlaps. ComfyUI 0.3.75 wrote it for video latents that keep frames on dim 2 with a batch of one, and three
places break when the frames are the batch itself; ``FrameWindowHandler`` subclasses it and fixes exactly those:

- the step lookup compares the sampler's sigmas with the whole per-frame timestep tensor (a shape error as soon
  as the batch is longer than the step count): it uses the one sigma the batch shares;
- per-frame tensors inside ``model_conds`` (e.g. a ``c_concat`` with one row per frame) are only sliced when
  their ``ndim < dim``, never for dim 0: they are sliced to the window's frames;
- a ControlNet's hint images stay the whole clip, so every window would be guided by the first frames' hints:
  each window gets a shallow copy of the ControlNet chain whose hints are that window's frames (a control with a
  ``for_window(frames, window)`` method, SparseCtrl, makes its own window copy).

It also moves the progress bar after every window: with thousands of frames one step takes minutes, and a bar
that only moves per step looks frozen (the value runs over steps x windows, so it agrees with the sampler's own
per-step updates).
"""

from __future__ import annotations

import copy

import torch

from ...comfy_seam import comfy_context_windows as cw
from ...comfy_seam import comfy_utils
from ...errors import AnimaPoseError, require_choice

SCHEDULES = [cw.ContextSchedules.UNIFORM_STANDARD, cw.ContextSchedules.STATIC_STANDARD,
             cw.ContextSchedules.UNIFORM_LOOPED]
FUSE_METHODS = list(cw.ContextFuseMethods.LIST_STATIC)


class FrameWindowHandler(cw.IndexListContextHandler):
    def set_step(self, timestep: torch.Tensor, model_options: dict):
        super().set_step(timestep.flatten()[:1], model_options)
        self._steps = max(1, len(model_options["transformer_options"]["sample_sigmas"]) - 1)

    def combine_context_window_results(self, x_in, sub_conds_out, sub_conds, window, window_idx, total_windows,
                                       timestep, conds_final, counts_final, biases_final):
        super().combine_context_window_results(x_in, sub_conds_out, sub_conds, window, window_idx, total_windows,
                                               timestep, conds_final, counts_final, biases_final)
        if total_windows > 1:
            steps = getattr(self, "_steps", 1)
            step = min(getattr(self, "_step", 0), steps - 1)
            comfy_utils.ProgressBar(steps * total_windows).update_absolute(
                step * total_windows + window_idx + 1, steps * total_windows)

    def get_resized_cond(self, cond_in, x_in, window, device=None):
        resized = super().get_resized_cond(cond_in, x_in, window, device)
        if resized is None:
            return None
        frames = x_in.size(0)
        for item in resized:
            model_conds = item.get("model_conds")
            if isinstance(model_conds, dict):
                item["model_conds"] = {k: _window_cond(v, frames, window, device) for k, v in model_conds.items()}
            if item.get("control") is not None:
                item["control"] = window_control(item["control"], frames, window)
        return resized


def _window_cond(value, frames, window, device):
    cond = getattr(value, "cond", None)
    if isinstance(cond, torch.Tensor) and cond.ndim > 0 and cond.size(0) == frames:
        return value._copy_with(window.get_tensor(cond, device, dim=0))
    return value


def window_control(control, frames, window):
    if hasattr(control, "for_window"):
        # Controls whose hints are not one row per frame (SparseCtrl keyframes) place them for the window themselves.
        return control.for_window(frames, window)
    c = copy.copy(control)
    hint = getattr(control, "cond_hint_original", None)
    if isinstance(hint, torch.Tensor) and hint.ndim > 0 and hint.size(0) == frames:
        c.cond_hint_original = window.get_tensor(hint, dim=0)
        c.cond_hint = None  # the processed hint is a cache of the original; rebuild it for the window
    if getattr(control, "previous_controlnet", None) is not None:
        c.previous_controlnet = window_control(control.previous_controlnet, frames, window)
    return c


def set_context_windows(model, context_length: int, context_overlap: int, context_schedule: str, context_stride: int,
                        closed_loop: bool, fuse_method: str):
    require_choice(context_schedule, SCHEDULES, "context_schedule")
    require_choice(fuse_method, FUSE_METHODS, "fuse_method")
    if context_overlap >= context_length:
        raise AnimaPoseError("context_overlap", f"an overlap of {context_overlap} frames leaves nothing new in windows "
                             f"of {context_length}", f"set context_overlap below {context_length} (4 is typical)")
    m = model.clone()
    m.model_options["context_handler"] = FrameWindowHandler(
        context_schedule=cw.get_matching_context_schedule(context_schedule),
        fuse_method=cw.get_matching_fuse_method(fuse_method),
        context_length=context_length, context_overlap=context_overlap, context_stride=context_stride,
        closed_loop=closed_loop, dim=0)
    # Memory estimates then cover one window, not the whole clip.
    cw.create_prepare_sampling_wrapper(m)
    return m
