"""AnimateDiff: motion-module formats (detect, convert, lora), the torch module (module), schedules, and the
ComfyUI integration (inflate, context).

The GroupNorm-scope choice is exposed to users, so its names live here, importable without ComfyUI.
"""

NORM_AUTO = "original code (auto)"
NORM_DIFFUSERS = "diffusers"
NORM_CHOICES = [NORM_AUTO, NORM_DIFFUSERS]
