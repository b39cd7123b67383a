"""Noise schedules for motion modules, as ComfyUI ``model_sampling`` objects.

The most common silent mismatch in AnimateDiff ports: the original SD1.5 configs say ``beta_schedule: "linear"``
in diffusers' meaning (betas spaced linearly), which is ComfyUI's ``sqrt_linear``; ComfyUI's ``linear`` is SD's
``scaled_linear``. The SDXL beta module was trained with ``scaled_linear`` ending at 0.020, HotshotXL with SDXL's
default, AnimateLCM with the linear betas under LCM (x0) sampling over 100 original steps, AnimateLCM-I2V with
linear betas ending at 0.014 over 200 original steps (its inference-i2v.yaml). ComfyUI's own ModelSamplingDiscrete
``lcm`` (what AnimateDiff-Evolved's ``lcm`` gives too) keeps the checkpoint's scaled-linear betas to 0.012 over 50
original steps: a close neighbour, not the authors' schedule.
"""

from __future__ import annotations

from types import SimpleNamespace

from ...errors import require_choice

AUTOSELECT = "autoselect"
USE_EXISTING = "use existing"
SQRT_LINEAR = "sqrt_linear (AnimateDiff)"
LINEAR_SDXL = "linear (AnimateDiff-SDXL, 0.020)"
LINEAR = "linear (SD default, HotshotXL)"
LCM = "lcm (AnimateLCM)"
LCM_I2V = "lcm (AnimateLCM-I2V)"

CHOICES = [AUTOSELECT, USE_EXISTING, SQRT_LINEAR, LINEAR_SDXL, LINEAR, LCM, LCM_I2V]

# detect.MotionModelInfo.beta_schedule -> choice
BY_RECOMMENDATION = {"sqrt_linear": SQRT_LINEAR, "linear_sdxl": LINEAR_SDXL, "linear": LINEAR, "lcm": LCM, "lcm_i2v": LCM_I2V}

_SETTINGS = {
    SQRT_LINEAR: dict(beta_schedule="sqrt_linear", linear_start=0.00085, linear_end=0.012),
    LINEAR_SDXL: dict(beta_schedule="linear", linear_start=0.00085, linear_end=0.020),
    LINEAR: dict(beta_schedule="linear", linear_start=0.00085, linear_end=0.012),
    LCM: dict(beta_schedule="sqrt_linear", linear_start=0.00085, linear_end=0.012),
    LCM_I2V: dict(beta_schedule="sqrt_linear", linear_start=0.00085, linear_end=0.014),
}
# the scheduler configs' original_inference_steps: AnimateLCM t2v 100, AnimateLCM-I2V 200
LCM_ORIGINAL_STEPS = {LCM: 100, LCM_I2V: 200}


def resolve(choice: str, recommended: str) -> str:
    """The concrete schedule for a node choice; ``autoselect`` follows the motion module's recommendation."""
    require_choice(choice, CHOICES, "beta_schedule")
    if choice == AUTOSELECT:
        return BY_RECOMMENDATION[recommended]
    return choice


def model_sampling(model_patcher, choice: str):
    """A ``model_sampling`` object for ``choice`` (not AUTOSELECT), or None to keep the checkpoint's own."""
    if choice == USE_EXISTING:
        return None
    from ...comfy_seam import comfy_model_base, comfy_model_sampling

    settings = _SETTINGS[choice]
    config = SimpleNamespace(sampling_settings=dict(settings))
    if choice in LCM_ORIGINAL_STEPS:
        from ...comfy_seam import LCM as LCMType
        from ...comfy_seam import ModelSamplingDiscreteDistilled

        class AnimateLCMSampling(ModelSamplingDiscreteDistilled, LCMType):
            original_timesteps = LCM_ORIGINAL_STEPS[choice]

        return AnimateLCMSampling(config)

    prediction = {
        comfy_model_base.ModelType.EPS: comfy_model_sampling.EPS,
        comfy_model_base.ModelType.V_PREDICTION: comfy_model_sampling.V_PREDICTION,
    }.get(model_patcher.model.model_type, comfy_model_sampling.EPS)

    class MotionModelSampling(comfy_model_sampling.ModelSamplingDiscrete, prediction):
        pass

    return MotionModelSampling(config)
