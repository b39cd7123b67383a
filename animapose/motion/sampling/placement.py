"""Where a motion model's modules go in a ComfyUI UNet, and the GroupNorm wrapper of the formats whose original code
normalised ResNets across frames. Shared by the sampling integration (``inflate``, ``injection``) and the motion
trainer, which inserts the same modules into its own frozen copy of the UNet."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...comfy_seam import ResBlock, SpatialTransformer
from ...comfy_seam import UNetUpsample as Upsample
from ...errors import AnimaPoseError
from ..formats.detect import MotionModelInfo
from ..module import group_norm_frames


@dataclass(frozen=True)
class Slot:
    """One motion module's place: ``blocks[index]`` of the UNet, inserted at ``position`` of that sequential."""

    blocks: str  # "input_blocks" | "output_blocks" | "middle_block"
    index: int
    module: str  # dotted path inside MotionModelSet


def plan_slots(unet, info: MotionModelInfo, unet_kind: str | None = None, input_name: str = "motion_model") -> list[Slot]:
    """Where each module of ``info`` goes in a ComfyUI ``UNetModel``; raises when the two do not fit.
    ``unet_kind`` is the checkpoint family ComfyUI detected ("SD1.5", "SDXL", ...), for the error messages."""
    levels = len(unet.channel_mult)
    widths = [unet.model_channels * m for m in unet.channel_mult]
    res_blocks = list(unet.num_res_blocks)
    mm_levels = len(info.down_channels)
    if info.base in ("SD1.5", "SDXL") and unet_kind and info.base != unet_kind:
        raise AnimaPoseError(input_name, f"{info.base} motion module ({info.family}) on an {unet_kind} model",
                             f"load an {unet_kind} motion module, or switch the checkpoint to {info.base}")
    if mm_levels != levels:
        raise AnimaPoseError(input_name, f"the motion module has {mm_levels} levels but the model's UNet has {levels}",
                             "use a motion module made for this kind of checkpoint")
    if list(info.down_channels) != widths or list(info.up_channels) != widths[::-1]:
        raise AnimaPoseError(
            input_name, f"channel widths do not match: motion module {list(info.down_channels)}, UNet {widths}",
            "use a motion module made for this checkpoint family (SD1.5: 320/640/1280/1280, SDXL: 320/640/1280)")
    if any(n != info.down_per_level for n in res_blocks) or any(n + 1 != info.up_per_level for n in res_blocks):
        raise AnimaPoseError(
            input_name, f"the UNet has {res_blocks} res blocks per level, the motion module expects "
            f"{info.down_per_level} per down level and {info.up_per_level} per up level",
            "use a motion module made for this checkpoint family")
    if info.mid_channels is not None:
        if unet.middle_block is None or info.mid_channels != widths[-1]:
            raise AnimaPoseError(input_name, "the motion module has a mid-block module but the UNet's middle block "
                                 "does not fit it", "use a motion module made for this checkpoint family")

    slots = []
    index = 1  # input_blocks[0] is conv_in
    for level in range(levels):
        for j in range(res_blocks[level]):
            slots.append(Slot("input_blocks", index + j, f"down_blocks.{level}.motion_modules.{j}"))
        index += res_blocks[level] + (1 if level < levels - 1 else 0)
    index = 0
    for up in range(levels):
        for j in range(res_blocks[levels - 1 - up] + 1):
            slots.append(Slot("output_blocks", index + j, f"up_blocks.{up}.motion_modules.{j}"))
        index += res_blocks[levels - 1 - up] + 1
    if info.mid_channels is not None:
        slots.append(Slot("middle_block", 0, "mid_block.motion_modules.0"))
    return slots


def unet_kind(model) -> str | None:
    """The checkpoint family of a MODEL, from the model config ComfyUI detected."""
    name = type(model.model.model_config).__name__
    if name.startswith("SDXL"):
        return "SDXL"
    if name.startswith("SD15"):
        return "SD1.5"
    if name.startswith(("SD20", "SD21")):
        return "SD2.x"
    return None


def insert_position(seq) -> int:
    """After the last ResBlock/SpatialTransformer of a block, i.e. before an Upsample (the original order)."""
    layers = list(seq)
    if seq is not None and layers and isinstance(layers[-1], Upsample):
        return len(layers) - 1
    return len(layers)


def mid_position(seq) -> int:
    layers = list(seq)
    attn = [i for i, m in enumerate(layers) if isinstance(m, SpatialTransformer)]
    return attn[-1] + 1 if attn else 1



class RunState:
    frames: int | None = None


class FrameGroupNorm(torch.nn.Module):
    """Wraps one of the UNet's GroupNorms while injected, pooling its statistics over the frames of a clip
    (the original v1/HotshotXL ResNets ran GroupNorm on the 5-D video tensor)."""

    def __init__(self, inner: torch.nn.Module, state: RunState):
        super().__init__()
        self.inner = inner
        self.state = state
        # chained motion models of the same kind share one wrapper; each adds its state while injected
        self.more_states: list[RunState] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames = self.state.frames or next((s.frames for s in self.more_states if s.frames), None)
        if not frames or frames == 1 or x.shape[0] % frames:
            return self.inner(x)
        return group_norm_frames(x, frames, self.inner, True)


def resnet_norm_holders(unet) -> list[torch.nn.Sequential]:
    """The Sequentials whose first layer is a ResBlock GroupNorm or the output GroupNorm (conv_norm_out)."""
    holders = []
    for m in unet.modules():
        if isinstance(m, ResBlock):
            holders += [m.in_layers, m.out_layers]
    return holders + [unet.out]
