"""SparseCtrl as a native CONTROL_NET: ComfyUI's own 'Apply ControlNet' nodes attach it to the conditioning, and it
computes its residuals from keyframe hints placed on chosen frames of the clip.

The hint images arrive through the apply node (``set_cond_hint``) as one row per keyframe; ``frame_indices`` (set
by the keyframes node, or spread evenly over the clip when unset) say which frame each row lands on. Every other
frame gets a zero condition and a zero mask, as in AnimateDiff's and diffusers' pipelines. Under context windows
``for_window`` gives each window the keyframes that fall inside it, at their positions in the window.
"""

from __future__ import annotations

import copy
import logging

import torch

from ...checkpoints import load_state_dict
from ...comfy_seam import comfy_controlnet, comfy_latent_formats, comfy_model_management, comfy_ops, comfy_utils
from ...errors import AnimaPoseError
from .sparsectrl_encoder import SparseControlModel, check_slot_names, normalize_sparsectrl_state_dict
from .sparsectrl_keyframes import APPLY_NODE, keyframe_plan, parse_frame_indices

log = logging.getLogger(__name__)



class SparseCtrlControlNet(comfy_controlnet.ControlNet):
    def __init__(self, control_model=None, info=None, norm_across_frames: bool = False, load_device=None,
                 manual_cast_dtype=None):
        latent_format = comfy_latent_formats.SD15() if info is not None and info.uses_latents else None
        super().__init__(control_model, latent_format=latent_format, load_device=load_device,
                         manual_cast_dtype=manual_cast_dtype, extra_conds=[])
        self.info = info
        self.norm_across_frames = norm_across_frames
        self.frame_indices: list[int] | None = None
        self.window: tuple[int, list[int]] | None = None  # (whole clip's frames, this window's frame numbers)
        self.encoded: dict = {}  # processed hint rows per size; shared by the window copies of one hint

    def copy(self):
        c = SparseCtrlControlNet(None, self.info, self.norm_across_frames, self.load_device, self.manual_cast_dtype)
        c.control_model = self.control_model
        c.control_model_wrapped = self.control_model_wrapped
        self.copy_to(c)
        c.frame_indices = self.frame_indices
        c.window = self.window
        c.encoded = self.encoded
        return c

    def set_cond_hint(self, cond_hint, strength=1.0, timestep_percent_range=(0.0, 1.0), vae=None, extra_concat=()):
        out = super().set_cond_hint(cond_hint, strength, timestep_percent_range, vae, list(extra_concat))
        self.encoded = {}
        return out

    def with_frame_indices(self, indices: list[int] | None) -> "SparseCtrlControlNet":
        c = self.copy()
        c.frame_indices = None if indices is None else list(indices)
        return c

    def for_window(self, frames: int, window) -> "SparseCtrlControlNet":
        """The copy that context windows hand to one window (see ``context.window_control``): a shallow copy, so
        what sampling set up (timestep range, model sampling, the shared hint cache) carries over."""
        c = copy.copy(self)
        c.window = (frames, list(window.index_list))
        if self.previous_controlnet is not None:
            from ..sampling.context import window_control

            c.previous_controlnet = window_control(self.previous_controlnet, frames, window)
        return c

    def cleanup(self):
        self.encoded = {}
        super().cleanup()

    def _rows(self, h: int, w: int, device, dtype) -> torch.Tensor:
        key = (h, w, str(device), dtype)
        rows = self.encoded.get(key)
        if rows is not None:
            return rows
        images = self.cond_hint_original
        if self.info.uses_latents:
            if self.vae is None:
                raise AnimaPoseError("vae", "SparseCtrl RGB conditions on VAE latents of its keyframes, but this "
                                     "node got no VAE", "connect the checkpoint's VAE to this node's vae input",
                                     node=APPLY_NODE)
            ratio = self.vae.spacial_compression_encode()
            pixels = comfy_utils.common_upscale(images, w * ratio, h * ratio, self.upscale_algorithm, "center")
            loaded = comfy_model_management.loaded_models(only_currently_used=True)
            rows = self.latent_format.process_in(self.vae.encode(pixels.movedim(1, -1)[..., :3]))
            # ComfyUI lists a model whose patcher was garbage collected as None until its next cleanup.
            comfy_model_management.load_models_gpu([m for m in loaded if m is not None])
        else:
            rows = comfy_utils.common_upscale(images[:, :3], w * 8, h * 8, self.upscale_algorithm, "center")
        rows = rows.to(device=device, dtype=dtype)
        self.encoded[key] = rows
        return rows

    def _hint(self, frames: int, h: int, w: int, device, dtype) -> torch.Tensor:
        rows = self._rows(h, w, device, dtype)
        if self.window is not None:
            total, window = self.window
            plan = [(row, window.index(f)) for row, f in keyframe_plan(self.frame_indices, rows.shape[0], total)
                    if f in window]
        else:
            plan = keyframe_plan(self.frame_indices, rows.shape[0], frames)
        hint = torch.zeros(frames, rows.shape[1] + 1, rows.shape[2], rows.shape[3], device=device, dtype=dtype)
        for row, frame in plan:
            hint[frame, :-1] = rows[row]
            hint[frame, -1] = 1.0
        return hint

    def get_control(self, x_noisy, t, cond, batched_number, transformer_options):
        control_prev = None
        if self.previous_controlnet is not None:
            control_prev = self.previous_controlnet.get_control(x_noisy, t, cond, batched_number, transformer_options)
        if self.timestep_range is not None and (t[0] > self.timestep_range[0] or t[0] < self.timestep_range[1]):
            return control_prev
        dtype = self.manual_cast_dtype or self.control_model.dtype
        if x_noisy.shape[0] % batched_number:
            raise RuntimeError(f"batch {x_noisy.shape[0]} is not a multiple of {batched_number} cond chunks")
        frames = x_noisy.shape[0] // batched_number
        hint = self._hint(frames, x_noisy.shape[2], x_noisy.shape[3], x_noisy.device, dtype)
        hint = hint.repeat(batched_number, 1, 1, 1)
        context = cond.get("crossattn_controlnet", cond["c_crossattn"])
        width = self.info.unet_config["context_dim"]
        if context.shape[-1] != width:
            raise AnimaPoseError("sparsectrl_name", f"this SparseCtrl encoder reads {width}-wide text embeddings but "
                                 f"the prompt's are {context.shape[-1]} wide (a different model family)",
                                 "use SparseCtrl with an SD1.5 checkpoint", node="Load AnimateDiff SparseCtrl")
        timestep = self.model_sampling_current.timestep(t)
        control = self.control_model(hint, timestep.to(dtype), comfy_model_management.cast_to_device(
            context, x_noisy.device, dtype), frames, x_noisy.to(dtype), self.norm_across_frames)
        return self.control_merge(control, control_prev, output_dtype=None)


def load_sparsectrl(path: str, name: str, norm_across_frames: bool = False,
                    input_name: str = "sparsectrl_name") -> SparseCtrlControlNet:
    sd, info = normalize_sparsectrl_state_dict(load_state_dict(path, input_name, "SparseCtrl file"), input_name)
    load_device = comfy_model_management.get_torch_device()
    unet_dtype = comfy_model_management.unet_dtype()
    manual_cast = comfy_model_management.unet_manual_cast(unet_dtype, load_device)
    operations = comfy_ops.pick_operations(unet_dtype, manual_cast)
    model = SparseControlModel(info, operations, dtype=unet_dtype)
    check_slot_names(sd, model, input_name)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise AnimaPoseError(input_name, f"the weights do not fit a SparseCtrl encoder of these shapes ({len(missing)} "
                             f"missing, e.g. {missing[:2]}; {len(unexpected)} unexpected, e.g. {unexpected[:2]})",
                             "choose a SparseCtrl file as released (v3_sd15_sparsectrl_rgb.ckpt / _scribble.ckpt)")
    log.info("AnimaPose: %s: %s", name, info.summary())
    return SparseCtrlControlNet(model, info, norm_across_frames, load_device, manual_cast)


def with_keyframes(control_net, frame_indices: str) -> SparseCtrlControlNet:
    if not isinstance(control_net, SparseCtrlControlNet):
        raise AnimaPoseError("control_net", f"this is a {type(control_net).__name__}, not a SparseCtrl encoder",
                             "load SparseCtrl with 'Load AnimateDiff SparseCtrl' and connect it here")
    return control_net.with_frame_indices(parse_frame_indices(frame_indices))
