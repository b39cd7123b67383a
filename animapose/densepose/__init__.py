"""DensePose UV estimation from photos and video frames with the public TorchScript DensePose exports.

- ``model``: loading a TorchScript file, telling which published export signature it has, running it on a frame.
- ``convert``: detectron2's per-box chart-result conversion (segmentation and U/V resampled into the box) and
  pasting the chosen person into a frame-sized canvas.
- ``sequence``: person choice, filling frames without a detection, temporal smoothing, alignment to the subject.
- ``estimate``: the whole frame loop the node calls.

Pure torch: ComfyUI is not imported; the node hands in the device, the dtype decision, a progress callback and the
interrupt check.
"""
