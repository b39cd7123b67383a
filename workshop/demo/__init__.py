"""The main job (``job``: real ComfyUI with the pack, every shipped workflow queued) and the demo models: their training from synthetic data and the measurements behind their claims."""
