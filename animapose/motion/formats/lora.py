"""Motion LoRAs: low-rank updates of the temporal-attention projections of a motion module.

The official files (``v2_lora_ZoomIn.ckpt`` ...) store, for each attention block of each motion module,
``...attention_blocks.N.processor.to_{q,k,v,out}_lora.{down,up}.weight``. The original loader finds the weight
by dropping ``processor.`` and ``_lora`` and mapping ``to_out`` to ``to_out.0``, then adds
``alpha * up @ down`` to it: no rank or alpha scaling is stored in the file.

Also accepted, because they name the same matrices:
- diffusers' conversion of those files (``unet.`` prefix, ``attn1/attn2`` for the attention blocks, no
  ``temporal_transformer.``; ``scripts/convert_animatediff_motion_lora_to_diffusers.py``);
- the PEFT naming diffusers writes after loading (``to_q.lora_A.weight`` = down, ``lora_B`` = up) and the older
  ``to_q.lora.down.weight`` naming.
"""

from __future__ import annotations

import logging
import re

import torch

from ...errors import AnimaPoseError

log = logging.getLogger(__name__)

# Any key that some LoRA format uses for its low-rank factors.
_LORA_HINT = re.compile(r"(_lora\.(down|up)\.|\.lora_(down|up|A|B)\.|\.lora\.(down|up)\.|^lora_(unet|te)\d?_)")
_MOTION_HINT = re.compile(r"(motion_modules|temporal_attentions|temporal_transformer)")

_MOTION_LORA_KEY = re.compile(
    r"^(?:base_model\.model\.)?(?:unet\.)?"
    r"(?P<block>down_blocks\.\d+|up_blocks\.\d+|mid_block)\.motion_modules\.(?P<module>\d+)\."
    r"(?:temporal_transformer\.)?transformer_blocks\.(?P<tblock>\d+)\."
    r"(?:attention_blocks\.(?P<attn>\d+)|attn(?P<attn_diffusers>[12]))\."
    r"(?:processor\.)?(?P<proj>to_q|to_k|to_v|to_out)"
    r"(?:_lora\.(?P<a>down|up)|(?:\.0)?\.lora\.(?P<b>down|up)|(?:\.0)?\.lora_(?P<c>down|up|A|B))\.weight$"
)
_FACTOR = {"down": "down", "A": "down", "up": "up", "B": "up"}


def is_lora_key(key: str) -> bool:
    return bool(_LORA_HINT.search(key))


def parse_motion_lora(sd: dict[str, torch.Tensor], input_name: str = "lora_name") -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{motion-module parameter key: (up, down)}``, the keys as in ``MotionModelSet.state_dict()``
    (``down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0.to_q.weight``).
    The update for a strength ``s`` is ``W += s * lora_delta(up, down)``."""
    tensors = {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise AnimaPoseError(input_name, "the file holds no LoRA weights", "choose a motion LoRA file (e.g. v2_lora_ZoomIn.ckpt)")

    factors: dict[str, dict[str, torch.Tensor]] = {}
    ignored = []
    for key, value in tensors.items():
        m = _MOTION_LORA_KEY.match(key)
        if not m:
            ignored.append(key)
            continue
        attn = m["attn"] if m["attn"] is not None else str(int(m["attn_diffusers"]) - 1)
        proj = "to_out.0" if m["proj"] == "to_out" else m["proj"]
        target = (f"{m['block']}.motion_modules.{m['module']}.temporal_transformer.transformer_blocks.{m['tblock']}."
                  f"attention_blocks.{attn}.{proj}.weight")
        factor = _FACTOR[m["a"] or m["b"] or m["c"]]
        if factor in factors.setdefault(target, {}):
            raise AnimaPoseError(input_name, f"the file names the LoRA {factor} matrix of '{target}' twice "
                                 f"(second time as '{key}')", "use one motion LoRA per file")
        factors[target][factor] = value

    if not factors:
        _refuse_foreign(tensors, input_name)
    if ignored:
        log.warning("motion LoRA: ignored %d keys that are not motion-module LoRA factors (e.g. %s)",
                    len(ignored), ", ".join(sorted(ignored)[:3]))

    out = {}
    for target, pair in sorted(factors.items()):
        if set(pair) != {"up", "down"}:
            missing = ({"up", "down"} - set(pair)).pop()
            raise AnimaPoseError(input_name, f"the motion LoRA is incomplete: '{target}' has no {missing} matrix "
                                 "(the file is truncated or damaged)", "download the motion LoRA again")
        up, down = pair["up"], pair["down"]
        if up.dim() != 2 or down.dim() != 2 or up.shape[1] != down.shape[0]:
            raise AnimaPoseError(input_name, f"the LoRA matrices of '{target}' do not fit together (up "
                                 f"{tuple(up.shape)}, down {tuple(down.shape)})", "download the motion LoRA again")
        out[target] = (up, down)
    return out


def _refuse_foreign(tensors: dict[str, torch.Tensor], input_name: str):
    keys = list(tensors)
    lora_keys = [k for k in keys if is_lora_key(k)]
    motion_keys = [k for k in keys if _MOTION_HINT.search(k)]
    if motion_keys and not lora_keys:
        raise AnimaPoseError(input_name, "this is a motion module (motion model), not a motion LoRA",
                             "load it with the Load AnimateDiff Motion Model node and choose a motion LoRA here "
                             "(e.g. v2_lora_ZoomIn.ckpt)")
    if lora_keys and not any(_MOTION_HINT.search(k) for k in lora_keys):
        what = ("the AnimateDiff v3 domain adapter (a LoRA on the image model's spatial attention)"
                if any(".attentions." in k and "processor." in k for k in lora_keys) else "an image LoRA")
        raise AnimaPoseError(input_name, f"this is {what}, not a motion LoRA: none of its weights touch a motion module",
                             "load it with ComfyUI's LoRA loader (Load LoRA) on the model, and choose a motion LoRA here")
    if lora_keys:
        problem = (f"its {len(lora_keys)} LoRA weights on motion modules use a naming AnimaPose does not read "
                   f"(e.g. {', '.join(sorted(lora_keys)[:2])})")
    else:
        problem = f"no motion LoRA weights found among its {len(keys)} tensors (e.g. {', '.join(sorted(keys)[:3])})"
    raise AnimaPoseError(input_name, problem, "choose an AnimateDiff motion LoRA in the original layout (keys "
                         "'...attention_blocks.N.processor.to_q_lora.down.weight') or its diffusers conversion")


def lora_delta(up: torch.Tensor, down: torch.Tensor) -> torch.Tensor:
    """``up @ down`` in float32, the weight update of one projection at strength 1."""
    return up.to(torch.float32) @ down.to(torch.float32)
