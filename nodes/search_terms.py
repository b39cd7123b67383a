"""What the node library's search and badges read besides names: search aliases (the words AnimateDiff-Evolved's
users type, so a search for "ade" or "context options" finds the pack's node) and the experimental flag (training
nodes, as ComfyUI flags its own).

``io.Schema`` gained ``search_aliases`` after 0.3.75 (0.11); a field the running ComfyUI's schema lacks is left out
(detected on the dataclass, never by version), so older ComfyUI builds the same schema as before.
"""

from __future__ import annotations

import dataclasses

from comfy_api.latest import io

_ADE = ["animatediff", "ade", "animatediff-evolved"]

# node ID without the pack's prefix -> aliases
SEARCH_ALIASES = {
    "LoadMotionModel": [*_ADE, "motion model", "load animatediff model", "gen2", "motion module"],
    "LoadMotionLoRA": [*_ADE, "motion lora", "load motion lora"],
    "ApplyMotionModel": [*_ADE, "apply animatediff model", "motion model", "gen2", "use evolved sampling"],
    "ContextWindows": [*_ADE, "context options", "context windows", "looped uniform", "standard static"],
    "PromptTravel": [*_ADE, "prompt travel", "prompt schedule", "batch prompt schedule"],
    "MotionMultival": [*_ADE, "multival", "effect multival", "scale multival"],
    "MotionKeyframe": [*_ADE, "ad keyframe", "motion keyframe"],
    "FreeNoise": [*_ADE, "freenoise", "noise layers", "sample settings"],
    "FreeNoiseModel": [*_ADE, "freenoise", "context options"],
    "FreeInitSampler": [*_ADE, "freeinit", "free init iterations", "sample settings"],
    "FreeInit": [*_ADE, "freeinit", "free init iterations"],
    "PIAImage": [*_ADE, "pia", "image to video", "i2v"],
    "AnimateLCMI2VImage": [*_ADE, "animatelcm i2v", "lcm i2v", "image to video", "ref latent"],
    "LoadSparseCtrl": [*_ADE, "sparsectrl", "sparse control", "load sparsectrl model"],
    "SparseCtrlKeyframes": [*_ADE, "sparsectrl", "sparse index method", "keyframes"],
    "LoadCameraCtrl": [*_ADE, "cameractrl", "camera control", "load cameractrl model"],
    "CameraTrajectory": [*_ADE, "cameractrl", "camera poses", "camera trajectory"],
    "ApplyCameraCtrl": [*_ADE, "cameractrl", "camera control", "apply cameractrl"],
    "TrainMotionModule": [*_ADE, "train motion lora", "motion lora training"],
}

EXPERIMENTAL = {"TrainMotionModule", "DreamPoseFinetuneUNet", "DreamPoseFinetuneVAE"}


def schema_fields() -> set[str]:
    """The fields of the running ComfyUI's ``io.Schema``."""
    return {f.name for f in dataclasses.fields(io.Schema)}


def with_search_terms(schema, prefix: str, fields: set[str] | None = None):
    """``schema`` with this pack's aliases and flags for the fields ``fields`` (default: the running ComfyUI's)."""
    fields = schema_fields() if fields is None else fields
    key = schema.node_id[len(prefix):] if schema.node_id.startswith(prefix) else schema.node_id
    if "search_aliases" in fields and key in SEARCH_ALIASES and not getattr(schema, "search_aliases", None):
        schema.search_aliases = list(SEARCH_ALIASES[key])
    if "is_experimental" in fields and key in EXPERIMENTAL:
        schema.is_experimental = True
    return schema
