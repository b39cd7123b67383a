"""What a motion-module or motion-LoRA file is, told from its keys and shapes, and the conversions between the layouts in circulation (original, diffusers, ComfyUI/ADE)."""
