"""Training shared by the pack's trainers: the update loop (``loop``) that DreamPose's finetune stages and the
AnimateDiff motion-module / MotionLoRA trainer (``motion``) run, and the motion trainer itself."""
