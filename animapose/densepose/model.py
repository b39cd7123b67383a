"""The public TorchScript DensePose exports: loading, telling the two signatures apart, running one frame.

Two exports of detectron2's DensePose R-CNN circulate, both scripted from the same detectron2-free re-implementation
(dajes/DensePose-TorchScript):

- ``"tuple"``: the files comfyui_controlnet_aux downloads (``densepose_r50_fpn_dl.torchscript``,
  ``densepose_r101_fpn_dl.torchscript`` from the Hugging Face repo LayerNorm/DensePose-TorchScript-with-hint-image).
  ``forward(image)`` takes one frame as a uint8 tensor laid out (3, H, W) and returns five tensors: boxes (N, 4)
  as absolute x0, y0, x1, y1 in the frame's pixels, coarse segmentation (N, 2, S, S), fine segmentation
  (N, 25, S, S: background and 24 parts), U (N, 25, S, S) and V (N, 25, S, S), one row per detected person. No
  scores are returned; the rows come out of detectron2's NMS, which orders them by decreasing score. The channel
  order fed here is the one controlnet_aux feeds: RGB.
- ``"dict"``: the files of the exporter's own releases (``densepose_rcnn_R_50_FPN_DL_s1x_fp32.pt``, ...).
  ``forward(image, bgr=True)`` takes one uint8 frame (H, W, 3) in BGR order, as cv2.imread gives it, and returns a
  dict with ``pred_boxes``, ``scores``, ``pred_densepose_coarse_segm``, ``pred_densepose_fine_segm``,
  ``pred_densepose_u`` and ``pred_densepose_v`` (same shapes as above).

Which one a file is comes from the scripted ``forward``'s declared return type, never from the file name; the
outputs are checked against the layout above on every call, so a TorchScript file of another model is refused with
a clear message instead of producing garbage.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import warnings

import torch

from ..errors import AnimaPoseError

log = logging.getLogger(__name__)

FINE_PARTS = 25  # background + 24 body parts
COARSE_CHANNELS = 2  # background / person
DICT_KEYS = ("pred_boxes", "pred_densepose_coarse_segm", "pred_densepose_fine_segm", "pred_densepose_u",
             "pred_densepose_v")

_FIX_FILE = ("use densepose_r50_fpn_dl.torchscript or densepose_r101_fpn_dl.torchscript (the files "
             "comfyui_controlnet_aux uses, from LayerNorm/DensePose-TorchScript-with-hint-image) or a "
             "DensePose-TorchScript release (densepose_rcnn_*.pt) in models/densepose")


@dataclasses.dataclass
class Detections:
    """The people a DensePose export found in one frame, as float32 tensors on the device it ran on."""

    boxes: torch.Tensor  # (N, 4) x0, y0, x1, y1 in frame pixels
    scores: torch.Tensor | None  # (N,) or None when the export returns none (rows are then in score order)
    coarse: torch.Tensor  # (N, 2, S, S)
    fine: torch.Tensor  # (N, 25, S, S)
    u: torch.Tensor  # (N, 25, S, S)
    v: torch.Tensor  # (N, 25, S, S)

    def __len__(self) -> int:
        return self.boxes.shape[0]


class DensePoseModel:
    """A loaded TorchScript DensePose export and the signature it was recognised by."""

    def __init__(self, module: torch.jit.ScriptModule, signature: str, name: str, input_name: str = "model_name"):
        self.module = module
        self.signature = signature
        self.name = name
        self.input_name = input_name
        self.device = torch.device("cpu")
        self.stored_dtype = _floating_dtype(module)

    def to(self, device: torch.device, dtype: torch.dtype) -> "DensePoseModel":
        self.module.to(device=device, dtype=dtype)
        self.device = torch.device(device)
        return self

    @torch.no_grad()
    def __call__(self, frame_rgb_u8: torch.Tensor) -> Detections:
        """One frame, (H, W, 3) uint8 RGB on the model's device -> its detections (float32)."""
        if self.signature == "tuple":
            out = self.module(frame_rgb_u8.permute(2, 0, 1).contiguous())
            if not isinstance(out, (tuple, list)) or len(out) != 5:
                self._wrong(f"forward returned {type(out).__name__} instead of 5 tensors")
            boxes, coarse, fine, u, v = out
            scores = None
        else:
            out = self.module(frame_rgb_u8.flip(-1).contiguous())
            if not isinstance(out, dict):
                self._wrong(f"forward returned {type(out).__name__} instead of a dict")
            missing = [k for k in DICT_KEYS if k not in out]
            if missing:
                self._wrong(f"its output has no {', '.join(missing)} (it has {', '.join(sorted(out)) or 'nothing'})")
            boxes, coarse, fine, u, v = (out[k] for k in DICT_KEYS)
            scores = out.get("scores")
        det = Detections(*(None if t is None else t.float() for t in (boxes, scores, coarse, fine, u, v)))
        self._check(det)
        return det

    def _check(self, det: Detections) -> None:
        n = det.boxes.shape[0] if det.boxes.ndim == 2 else -1
        if det.boxes.ndim != 2 or det.boxes.shape[1] != 4:
            self._wrong(f"its boxes have shape {list(det.boxes.shape)}, not (people, 4)")
        expected = {"coarse segmentation": (det.coarse, COARSE_CHANNELS), "fine segmentation": (det.fine, FINE_PARTS),
                    "U": (det.u, FINE_PARTS), "V": (det.v, FINE_PARTS)}
        size = None
        for what, (t, channels) in expected.items():
            if t.ndim != 4 or t.shape[0] != n or t.shape[1] != channels:
                self._wrong(f"its {what} has shape {list(t.shape)}, not ({n}, {channels}, S, S)")
            size = size or tuple(t.shape[2:])
            if tuple(t.shape[2:]) != size:
                self._wrong(f"its {what} is {t.shape[3]}x{t.shape[2]}, the other maps {size[1]}x{size[0]}")
        if det.scores is not None and tuple(det.scores.shape) != (n,):
            self._wrong(f"its scores have shape {list(det.scores.shape)}, not ({n},)")

    def _wrong(self, problem: str):
        raise AnimaPoseError(self.input_name, f"'{self.name}' is not a DensePose chart export: {problem}", _FIX_FILE)


def _floating_dtype(module: torch.nn.Module) -> torch.dtype:
    for p in module.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def signature_of(module: torch.jit.ScriptModule) -> str | None:
    """``"tuple"``, ``"dict"`` or None, from the declared types of ``forward`` (set when the file was scripted or
    traced, so it is known before anything runs)."""
    forward = getattr(module, "forward", None)
    schema = getattr(forward, "schema", None)
    if schema is None:
        return None
    args = [a for a in schema.arguments if a.name != "self"]
    if not args or str(args[0].type) != "Tensor" or any(not a.has_default_value() for a in args[1:]):
        return None
    if len(schema.returns) != 1:
        return None
    ret = schema.returns[0].type
    if isinstance(ret, torch.TupleType):
        elements = ret.elements()
        if len(elements) == 5 and all(str(e) == "Tensor" for e in elements):
            return "tuple"
        return None
    if isinstance(ret, torch.DictType) and str(ret.getKeyType()) == "str" and str(ret.getValueType()) == "Tensor":
        return "dict"
    return None


def describe_forward(module) -> str:
    schema = getattr(getattr(module, "forward", None), "schema", None)
    if schema is None:
        return "no forward method"
    args = ", ".join(f"{a.type} {a.name}" for a in schema.arguments if a.name != "self")
    returns = ", ".join(str(r.type) for r in schema.returns)
    return f"forward({args}) -> {returns}"


def load_densepose(path: str, input_name: str = "model_name") -> DensePoseModel:
    """Loads a TorchScript DensePose export onto the CPU and checks its signature."""
    name = os.path.basename(path)
    # The exports call torchvision's NMS and ROIAlign ops; importing torchvision registers them.
    try:
        import torchvision  # noqa: F401
    except ImportError:  # pragma: no cover - ComfyUI itself requires torchvision
        log.warning("torchvision is not installed; DensePose exports that use its ops will fail to load")
    try:
        with warnings.catch_warnings():
            # torch 2.9+ flags TorchScript as deprecated; these files exist only as TorchScript
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(path, map_location="cpu")
    except (RuntimeError, ValueError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise AnimaPoseError(input_name, f"'{name}' is not a TorchScript file ({first[:160]})", _FIX_FILE) from e
    module.eval()
    signature = signature_of(module)
    if signature is None:
        raise AnimaPoseError(input_name, f"'{name}' is a TorchScript model of another kind: its forward is "
                             f"'{describe_forward(module)[:200]}', while a DensePose export takes one image tensor "
                             "and returns (boxes, coarse segm, fine segm, U, V) or a dict of them", _FIX_FILE)
    log.info("DensePose export '%s': %s signature", name, signature)
    return DensePoseModel(module, signature, name, input_name)
