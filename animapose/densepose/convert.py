"""detectron2's per-box chart-result conversion, and pasting one person into a frame-sized canvas.

For a detected person detectron2 (``densepose.converters.chart_output_to_chart_result``) does:

1. the box (x0, y0, x1, y1) becomes x, y, w, h by float subtraction, then integers by truncation; w and h are at
   least 1;
2. the coarse segmentation (2 channels) and the fine segmentation (25 channels) are resized bilinearly
   (``align_corners=False``) from the head's S x S grid to h x w; a pixel belongs to the person where the coarse
   argmax is not 0, and its label is the fine argmax there (0 elsewhere);
3. U and V (25 channels each) are resized the same way, and each pixel takes the U and V of its label's channel
   (0 where the label is 0).

The result is a (2, h, w) UV map for the box; DreamPose's ``utils/densepose.py`` pastes it into a zero canvas of the
frame's size with its top-left corner at (x, y). Here all four kinds of map are resized in one call and the label's
channel is picked with ``gather``; ``workshop/references/densepose_reference.py`` holds an independent per-part version.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def int_box_xywh(box_xyxy: torch.Tensor) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) -> integer (x, y, w, h) as detectron2 rounds it (float32 subtraction, then truncation)."""
    b = box_xyxy.detach().to("cpu", torch.float32)
    xywh = torch.cat([b[:2], b[2:] - b[:2]])
    x, y, w, h = (int(t) for t in xywh.long().tolist())
    return x, y, w, h


def box_chart(coarse: torch.Tensor, fine: torch.Tensor, u: torch.Tensor, v: torch.Tensor, w: int,
              h: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One person's head outputs ((2|25, S, S) each) -> (labels (h, w) long, uv (2, h, w) float32) for its box."""
    w, h = max(int(w), 1), max(int(h), 1)
    parts = fine.shape[0]
    maps = torch.cat([coarse, fine, u, v]).float()[None]
    maps = F.interpolate(maps, (h, w), mode="bilinear", align_corners=False)[0]
    c = coarse.shape[0]
    person = maps[:c].argmax(0) > 0
    labels = maps[c:c + parts].argmax(0) * person
    uv_all = maps[c + parts:].reshape(2, parts, h, w)
    uv = uv_all.gather(1, labels[None, None].expand(2, 1, h, w)).squeeze(1)
    return labels, uv * (labels > 0)


def paste(labels: torch.Tensor, uv: torch.Tensor, x: int, y: int, height: int,
          width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A box's labels and UV pasted at (x, y) into zero canvases of the frame's size; parts outside are cut off."""
    canvas_uv = torch.zeros(2, height, width, dtype=uv.dtype, device=uv.device)
    canvas_labels = torch.zeros(height, width, dtype=labels.dtype, device=labels.device)
    h, w = labels.shape
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + w, width), min(y + h, height)
    if x1 > x0 and y1 > y0:
        canvas_uv[:, y0:y1, x0:x1] = uv[:, y0 - y:y1 - y, x0 - x:x1 - x]
        canvas_labels[y0:y1, x0:x1] = labels[y0 - y:y1 - y, x0 - x:x1 - x]
    return canvas_labels, canvas_uv


def person_canvas(boxes: torch.Tensor, coarse: torch.Tensor, fine: torch.Tensor, u: torch.Tensor, v: torch.Tensor,
                  index: int, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The frame-sized (labels, uv) of detection ``index``."""
    x, y, w, h = int_box_xywh(boxes[index])
    labels, uv = box_chart(coarse[index], fine[index], u[index], v[index], w, h)
    return paste(labels, uv, x, y, height, width)
