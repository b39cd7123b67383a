"""AnimateDiff, along its seams: ``module`` (the motion module as plain torch), ``formats`` (what a file is and its
key layouts: detect, convert, lora), ``sampling`` (the ComfyUI integration: inflate, placement, injection, stages,
residency, context windows, schedules), ``controls`` (multival, FreeInit, FreeNoise, prompt travel) and ``addons``
(the image and camera add-on models: PIA, AnimateLCM-I2V, SparseCtrl, CameraCtrl).

The GroupNorm-scope choice is exposed to users, so its names live here, importable without ComfyUI.
"""

NORM_AUTO = "original code (auto)"
NORM_DIFFUSERS = "diffusers"
NORM_CHOICES = [NORM_AUTO, NORM_DIFFUSERS]

# Storage dtypes a motion module can be loaded in ("default" follows ComfyUI's UNet weight options).
WEIGHT_DTYPE_NAMES = ["default", "fp32", "fp16", "bf16", "fp8_e4m3fn", "fp8_e5m2"]

# The longest clip any 'frames' widget of the pack allows; numbers typed as text (keyframe indices, per-frame lists,
# pose files) follow the same limit, so a schedule cannot ask for more frames than a widget could.
MAX_FRAMES = 4096
