"""An independent reference of detectron2's DensePose chart-result conversion and DreamPose's pasting, written from
their documented semantics, step by step and per body part (the runtime resizes everything in one call and picks
channels with ``gather``).

detectron2 (projects/DensePose, ``densepose/converters/chart_output_to_chart_result.py``):
- the XYXY box is converted to XYWH (x1 - x0, y1 - y0 in the box tensor's float type), then each number is made an
  integer with ``.long()`` (truncation toward zero); width and height are raised to at least 1;
- coarse and fine segmentation are each resized with ``F.interpolate(..., (h, w), mode="bilinear",
  align_corners=False)``; labels = fine argmax times (coarse argmax > 0);
- U and V are resized the same way; for every part p = 1..24 the pixels labelled p take channel p of U and V; the
  rest stays 0.
DreamPose ``utils/densepose.py``: the (2, h, w) result is written into a zero (2, H, W) canvas at [y:y+h, x:x+w].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def reference_box_xywh(box_xyxy: torch.Tensor) -> list[int]:
    box = box_xyxy.clone().float().reshape(1, 4)
    box[:, 2] -= box[:, 0]
    box[:, 3] -= box[:, 1]
    return [int(t) for t in box[0].long().tolist()]


def reference_chart_result(coarse: torch.Tensor, fine: torch.Tensor, u: torch.Tensor, v: torch.Tensor,
                           box_xyxy: torch.Tensor) -> tuple[list[int], torch.Tensor, torch.Tensor]:
    """(box xywh, labels (h, w), uv (2, h, w)) for one detection; inputs are (C, S, S) maps."""
    x, y, w, h = reference_box_xywh(box_xyxy)
    w = max(w, 1)
    h = max(h, 1)
    coarse_box = F.interpolate(coarse[None].float(), (h, w), mode="bilinear", align_corners=False)
    fine_box = F.interpolate(fine[None].float(), (h, w), mode="bilinear", align_corners=False)
    labels = fine_box.argmax(dim=1)[0] * (coarse_box.argmax(dim=1)[0] > 0).long()
    u_box = F.interpolate(u[None].float(), (h, w), mode="bilinear", align_corners=False)[0]
    v_box = F.interpolate(v[None].float(), (h, w), mode="bilinear", align_corners=False)[0]
    uv = torch.zeros(2, h, w)
    for part in range(1, u_box.shape[0]):
        where = labels == part
        uv[0][where] = u_box[part][where]
        uv[1][where] = v_box[part][where]
    return [x, y, w, h], labels, uv


def reference_paste(box_xywh: list[int], labels: torch.Tensor, uv: torch.Tensor, height: int,
                    width: int) -> tuple[torch.Tensor, torch.Tensor]:
    x, y, w, h = box_xywh
    canvas = torch.zeros(2, height + h, width + w)  # room for a box reaching past the frame, cut afterwards
    canvas_labels = torch.zeros(height + h, width + w, dtype=torch.long)
    canvas[:, y:y + h, x:x + w] = uv
    canvas_labels[y:y + h, x:x + w] = labels
    return canvas_labels[:height, :width], canvas[:, :height, :width]


def reference_frame(outputs: dict, index: int, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame-sized (labels, uv) of detection ``index`` from a dict of (N, ...) head outputs."""
    box, labels, uv = reference_chart_result(outputs["coarse"][index], outputs["fine"][index], outputs["u"][index],
                                             outputs["v"][index], outputs["boxes"][index])
    return reference_paste(box, labels, uv, height, width)


def run_export(module, frame_rgb_u8: torch.Tensor, signature: str) -> dict:
    """Calls a DensePose export the way its own caller does: controlnet_aux hands the tuple export an RGB (3, H, W)
    uint8 tensor; the exporter's run.py hands the dict export cv2.imread's BGR (H, W, 3) uint8 array."""
    with torch.no_grad():
        if signature == "tuple":
            boxes, coarse, fine, u, v = module(frame_rgb_u8.permute(2, 0, 1).contiguous())
            scores = None
        else:
            bgr = frame_rgb_u8[..., [2, 1, 0]].contiguous()
            out = module(bgr)
            boxes, coarse, fine = out["pred_boxes"], out["pred_densepose_coarse_segm"], out["pred_densepose_fine_segm"]
            u, v, scores = out["pred_densepose_u"], out["pred_densepose_v"], out["scores"]
    return {"boxes": boxes.float(), "coarse": coarse.float(), "fine": fine.float(), "u": u.float(), "v": v.float(),
            "scores": scores}
