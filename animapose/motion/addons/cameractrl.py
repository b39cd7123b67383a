"""CameraCtrl on an inflated MODEL, through ModelPatcher APIs only.

``apply_cameractrl`` clones a MODEL that already carries a v3 motion model (``inflate.apply_motion_model``) and
attaches, under ``KEY``:
- the CameraCtrl weights' own ModelPatcher as an additional model (ComfyUI loads and offloads it with the UNet);
- a diffusion-model wrapper that, per UNet call, embeds the frames the call holds (all of them, or one context
  window's ``index_list``: the window is embedded as a clip of its own, relative to its first frame) at the
  latent's pixel size, runs the camera encoder on them (cached per window and size for the whole sampling) and
  hands the per-level features to the motion modules through ``transformer_options`` (``CameraCall``);
- an outer-sample wrapper that checks the trajectory against the latent's frames and the encoder's 16 positions.

The motion stages' dispatcher (``stages.py``) asks ``CameraCall.for_module`` for each module it runs, and the
module's first temporal self-attention applies ``h = qkv_merge(h + feature) * strength + h`` (``module.py``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from ...checkpoints import load_state_dict
from ...comfy_seam import comfy_model_management, comfy_model_patcher, comfy_ops, comfy_patcher_extension
from ...errors import AnimaPoseError, require_finite
from ..module import MotionModule
from ..sampling.stages import CAMERA_OPTION, bypassed, frames_per_chunk, stages_of
from .camera_trajectories import CameraTrajectory
from .cameractrl_encoder import CameraCtrlInfo, CameraCtrlModel, build_cameractrl, merge_level, split_cameractrl

log = logging.getLogger(__name__)

KEY = "animapose_cameractrl"
APPLY_NODE = "Apply CameraCtrl to AnimateDiff"


@dataclass
class CameraCtrl:
    """The value carried by the CAMERACTRL socket."""

    patcher: comfy_model_patcher.ModelPatcher
    info: CameraCtrlInfo
    name: str


def load_cameractrl(path: str, name: str, dtype: torch.dtype | None = None) -> CameraCtrl:
    sd = load_state_dict(path, "cameractrl_name", "CameraCtrl file")
    encoder_sd, merges, info = split_cameractrl(sd, "cameractrl_name")
    model = build_cameractrl(encoder_sd, merges, info, operations=comfy_ops.manual_cast)
    # parameters only: the stored position tables stay float32, as for the motion modules
    dtype = dtype or comfy_model_management.unet_dtype()
    for p in model.parameters():
        p.data = p.data.to(dtype)
    patcher = comfy_model_patcher.ModelPatcher(model, load_device=comfy_model_management.get_torch_device(),
                                               offload_device=comfy_model_management.unet_offload_device())
    log.info("AnimaPose: %s: %s", name, info.summary())
    return CameraCtrl(patcher, info, name)


class CameraCall:
    """What one UNet call's motion modules read: the encoder features of the call's frames, per level."""

    def __init__(self, features: list[torch.Tensor], by_module: dict[int, tuple[torch.nn.Module, int]],
                 strength: float, chunks: int, multiple: int):
        self.features = features  # (frames, C, h, w) per level
        self.by_module = by_module  # id(MotionModule) -> (qkv_merge, level)
        self.strength = strength
        self.chunks = chunks
        self.multiple = multiple
        self._laid_out: dict[int, torch.Tensor] = {}
        self.reads = 0  # modules that asked for their features in this call (see check_reads)

    def check_reads(self) -> None:
        """After the UNet call: every motion module CameraCtrl conditions asked for its camera features."""
        if self.reads != len(self.by_module):
            raise bypassed("CameraCtrl's camera features", self.reads, len(self.by_module), APPLY_NODE, "camera")

    def for_module(self, layer, x: torch.Tensor, frames: int):
        entry = self.by_module.get(id(layer))
        if entry is None:
            return None
        self.reads += 1
        merge, level = entry
        feature = self._laid_out.get(level)
        if feature is None:
            f = self.features[level]
            if f.shape[0] != frames or f.shape[-2:] != x.shape[-2:]:
                raise AnimaPoseError(
                    "latent_image", f"CameraCtrl's level-{level} features are {f.shape[-1]}x{f.shape[-2]} for "
                    f"{f.shape[0]} frames where the UNet has {x.shape[-1]}x{x.shape[-2]} for {frames} frames",
                    f"give the sampler a latent whose width and height are multiples of {self.multiple} pixels",
                    node=APPLY_NODE)
            n, c, h, w = f.shape
            # f c h w -> (chunks h w) f c, the layout of the motion module's sequences
            f = f.reshape(1, n, c, h * w).expand(self.chunks, -1, -1, -1).permute(0, 3, 1, 2)
            feature = f.reshape(self.chunks * h * w, n, c).to(dtype=x.dtype)
            self._laid_out[level] = feature
        return merge, feature, self.strength


def _motion_stage(model, ctrl: CameraCtrl):
    """(stage, {path: MotionModule}, levels) of the last motion model on ``model`` that CameraCtrl fits."""
    patches = model.model_options.get("transformer_options", {}).get("patches", {})
    stages = stages_of(patches.get("forward_timestep_embed_patch"))
    if not stages:
        raise AnimaPoseError("model", "this MODEL has no AnimateDiff motion model applied, so CameraCtrl has no "
                             "temporal layers to condition", "apply v3_sd15_mm.ckpt with 'Apply AnimateDiff Motion "
                             "Model' first and connect that MODEL here", node=APPLY_NODE)
    problems = []
    for stage in reversed(stages):
        if stage.patcher is None:
            continue
        motion_set = stage.patcher.model
        modules = {path: m for path, m in motion_set.named_modules() if isinstance(m, MotionModule)}
        missing = [p for p in ctrl.info.merges if p not in modules]
        wrong = [f"{p} ({c} vs {modules[p].temporal_transformer.channels})"
                 for p, c in zip(ctrl.info.merges, ctrl.info.merge_widths)
                 if p in modules and modules[p].temporal_transformer.channels != c]
        levels = len(motion_set.down_blocks)
        widths = [b.motion_modules[0].temporal_transformer.channels for b in motion_set.down_blocks]
        if missing or wrong or levels != len(ctrl.info.channels) or widths != list(ctrl.info.channels):
            what = (f"its adapters expect {missing[0]}, which {stage.name} lacks" if missing else
                    f"adapter widths differ ({wrong[0]})" if wrong else
                    f"its encoder has widths {list(ctrl.info.channels)}, {stage.name} {widths}")
            problems.append(what)
            continue
        if motion_set.mid_block is not None:
            # Same widths, so it would run, but CameraCtrl's adapters were trained on v3's temporal features
            # (AnimateDiff-Evolved ships it only as a v3 model): on v2 weights they add untrained input and the
            # camera path is not followed.
            problems.append(f"{stage.name} is a v2-type motion module (it has a mid-block module), and CameraCtrl's "
                            "adapters were trained on AnimateDiff v3's temporal layers only")
            continue
        return stage, modules, levels
    raise AnimaPoseError("model", f"CameraCtrl does not fit the motion model on this MODEL: "
                         f"{problems[0] if problems else 'no motion modules found'}",
                         "apply AnimateDiff v3 (v3_sd15_mm.ckpt, the model CameraCtrl was trained on) to an SD1.5 "
                         "checkpoint before this node", node=APPLY_NODE)


def apply_cameractrl(model, ctrl: CameraCtrl, trajectory: CameraTrajectory, strength: float = 1.0):
    """A clone of ``model`` whose motion modules follow ``trajectory``; applying again replaces the camera."""
    strength = require_finite(strength, "strength")
    stage, modules, levels = _motion_stage(model, ctrl)
    m = model.clone()
    m.remove_wrappers_with_key(comfy_patcher_extension.WrappersMP.DIFFUSION_MODEL, KEY)
    m.remove_wrappers_with_key(comfy_patcher_extension.WrappersMP.OUTER_SAMPLE, KEY)
    patcher = ctrl.patcher.clone()
    m.set_additional_models(KEY, [patcher])
    net: CameraCtrlModel = patcher.model
    by_module = {id(modules[path]): (net.merges[i], merge_level(path, levels)) for i, path in enumerate(net.paths)}
    multiple = 8 * 2 ** (levels - 1)
    cache: dict[tuple, list[torch.Tensor]] = {}

    def features(index: list[int], h: int, w: int, device, dtype) -> list[torch.Tensor]:
        key = (tuple(index), h, w, device, dtype)
        if key not in cache:
            plucker = trajectory.plucker(h * net.encoder.downscale, w * net.encoder.downscale, index)
            with torch.no_grad():
                out = net.encoder(plucker.to(device=device, dtype=dtype))
            # once per window and size: a non-finite feature would turn every frame black without a word (skipped
            # while torch.compile traces the UNet, where reading a value would break its graph)
            if not torch.compiler.is_compiling() and not all(bool(torch.isfinite(f).all()) for f in out):
                raise AnimaPoseError("camera", f"the camera encoder turned {trajectory.describe()} into NaN or "
                                     f"infinite features (in {dtype})", "check the pose file's numbers (a pose far "
                                     "from the others, a tiny focal length), or run the UNet in bf16 or fp32 instead "
                                     "of fp16", node=APPLY_NODE)
            cache[key] = out
        return cache[key]

    def diffusion_model_wrapper(executor, x, *args, **kwargs):
        args = list(args)
        options = args[4] if len(args) > 4 else kwargs.get("transformer_options", {})
        frames = frames_per_chunk(x, options)
        window = options.get("context_window")
        index = list(getattr(window, "index_list", None) or range(frames))
        if len(index) != frames:
            index = list(range(frames))
        chunks = x.shape[0] // frames
        call = CameraCall(features(index, x.shape[-2], x.shape[-1], x.device, x.dtype), by_module, strength, chunks,
                          multiple)
        options = {**options, CAMERA_OPTION: call}
        if len(args) > 4:
            args[4] = options
        else:
            kwargs["transformer_options"] = options
        out = executor(x, *args, **kwargs)
        call.check_reads()
        return out

    def outer_sample_wrapper(executor, noise, *args, **kwargs):
        frames = noise.shape[0]
        handler = executor.class_obj.model_options.get("context_handler")
        window = getattr(handler, "context_length", None) if getattr(handler, "dim", 0) == 0 else None
        longest = min(window, frames) if window else frames
        trajectory.check_clip(frames, APPLY_NODE)
        if longest > net.encoder.position_length:
            raise AnimaPoseError("camera", f"CameraCtrl's camera encoder covers {net.encoder.position_length} frames, "
                                 f"and this run gives it {longest} at once",
                                 f"sample at most {net.encoder.position_length} frames, or add context windows of "
                                 f"at most {net.encoder.position_length} frames", node=APPLY_NODE)
        if noise.shape[-1] % (multiple // 8) or noise.shape[-2] % (multiple // 8):
            raise AnimaPoseError("latent_image", f"CameraCtrl needs a width and height that are multiples of "
                                 f"{multiple} pixels (its encoder halves the size {levels - 1} times)",
                                 f"give the sampler a latent of a multiple of {multiple} pixels (e.g. 512x512 or "
                                 "384x256)", node=APPLY_NODE)
        cache.clear()
        try:
            return executor(noise, *args, **kwargs)
        finally:
            cache.clear()

    m.add_wrapper_with_key(comfy_patcher_extension.WrappersMP.DIFFUSION_MODEL, KEY, diffusion_model_wrapper)
    m.add_wrapper_with_key(comfy_patcher_extension.WrappersMP.OUTER_SAMPLE, KEY, outer_sample_wrapper)
    log.info("AnimaPose: CameraCtrl %s on %s, %s, strength %g", ctrl.name, stage.name, trajectory.describe(), strength)
    return m
