"""The comfy-side parity harness: each format's reference run and the pack's run on the same inputs, shared by the comfy-tier tests and ``python -m comfyui_animapose.workshop.parity``."""
