"""The trainers' command lines (motion module / MotionLoRA, DreamPose stage 1), one convention (``common``)."""
