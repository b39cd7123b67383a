"""Sampling a DreamPose video jointly over the frame axis, for a DreamPose MODEL carrying AnimateDiff motion modules.

DreamPose draws every frame on its own; the DreamPose Sampler's default ("per_frame") splits the clip into batches of
``frames_per_batch`` frames, which changes nothing for independent frames. Motion modules make the frames of one UNet
call a clip, so there the split would silently change the result (each batch its own clip). ``frame_mode: joint``
samples the whole latent in one ``guider.sample`` call instead, and the per-frame mode refuses a MODEL with motion
modules, so the choice is always made in the graph.

How the frames stay aligned in the joint call (all of it ComfyUI's own machinery, checked in
``tests/comfy/test_dreampose_joint.py``):

- the pose windows travel as ``noise_concat`` and reach the UNet as ``c_concat`` with one row per latent frame, the
  adapter tokens as ``c_crossattn`` (one row, repeated to the batch, or one row per frame);
- dual CFG's three conds are batched by ``calc_cond_batch`` as whole chunks of the frame batch (``cond_or_uncond``
  lists them), and the motion modules split the batch into those chunks (``stages.frames_per_chunk``), so e(I, p),
  e(I, 0) and e(0, 0) are each their own clip;
- with context windows on the MODEL (*AnimateDiff Context Options / Windows*) the pack's ``FrameWindowHandler`` slices
  every per-frame conditioning tensor (pose windows, per-frame tokens) to each window's frames;
- the noise is drawn once for the whole latent, so *DreamPose Shared Noise* and *AnimateDiff FreeNoise* give the
  clip exactly the noise they define.
"""

from __future__ import annotations

from ..errors import AnimaPoseError, require_choice

FRAME_MODES = ["per_frame", "joint"]
SAMPLER_NODE = "DreamPose Sampler"


def motion_stages(guider) -> list:
    """The AnimateDiff motion stages attached to the guider's MODEL (empty for a plain DreamPose MODEL)."""
    from ..motion.sampling.stages import stages_of

    patcher = getattr(guider, "model_patcher", None)
    options = getattr(patcher, "model_options", {}) or {}
    patches = options.get("transformer_options", {}).get("patches", {})
    return stages_of(patches.get("forward_timestep_embed_patch"))


def check_frame_mode(guider, frame_mode: str) -> str:
    """``frame_mode`` when it fits the guider's MODEL: per-frame batches would cut a motion module's clip apart."""
    frame_mode = require_choice(frame_mode, FRAME_MODES, "frame_mode")
    if frame_mode == "per_frame" and motion_stages(guider):
        names = ", ".join(s.name for s in motion_stages(guider))
        raise AnimaPoseError(
            "frame_mode", f"the guider's MODEL carries a motion module ({names}), and per_frame sampling would make "
            "every batch of frames_per_batch frames a separate clip",
            "set frame_mode to joint (the whole video as one clip; add 'AnimateDiff Context Options / Windows' to the "
            "MODEL for long videos), or sample the DreamPose MODEL without 'Apply AnimateDiff Motion Model'",
            node=SAMPLER_NODE)
    return frame_mode


def sample_joint(guider, sampler, sigmas, noise, latent: dict) -> dict:
    """All frames of ``latent`` in one sampling run (one clip for the motion modules; context windows, when the
    MODEL has them, split it): SamplerCustomAdvanced's run, with the DreamPose Sampler's frame checks and output."""
    from .pipeline import sample_frames

    frames = latent["samples"].shape[0]
    # one batch of all frames is one guider.sample call over the whole clip with the whole clip's noise
    return sample_frames(guider, sampler, sigmas, noise, latent, frames_per_batch=frames)
