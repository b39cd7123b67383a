"""The model files the demo job and the server/browser tiers put into ComfyUI's models/ folders.

Fixtures are linked under the file names real users have (``mm_sd_v15_v2.ckpt``...), so the shipped example
workflows run unchanged against them. ``profile`` picks the UNet size: "tiny" for fast tests, "small" (SD1.5's
block positions) for the demo. The loader's known-file check reports that these files are not the releases.
"""

from __future__ import annotations

from pathlib import Path

CHECKPOINT_NAME = "v1-5-pruned-emaonly-fp16.safetensors"


def demo_models(profile: str = "tiny") -> dict[str, list[tuple[str, Path]]]:
    """{models/ subfolder: [(file name in that folder, fixture path)]}."""
    from ..fixtures.motion import domain_adapter_file, motion_lora_file, motion_module_file
    from ..fixtures.sd15 import sd15_checkpoint

    return {
        "checkpoints": [(CHECKPOINT_NAME, sd15_checkpoint(profile, "taesd"))],
        "animatediff_models": [
            ("mm_sd_v15_v2.ckpt", motion_module_file("v2", "original", profile, ext=".ckpt")),
            ("v3_sd15_mm.ckpt", motion_module_file("v3", "original", profile, ext=".ckpt")),
        ],
        "animatediff_motion_lora": [("v2_lora_ZoomIn.ckpt", motion_lora_file(profile, ext=".ckpt"))],
        "loras": [("v3_sd15_adapter.ckpt", domain_adapter_file(profile))],
    }
