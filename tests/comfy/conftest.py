"""In-process ComfyUI: ``comfy`` imported on the CPU before any test module imports it, plus the shared
tiny-model fixtures of the AnimateDiff tests."""

import pytest

from comfyui_animapose.workshop import comfy_env

comfy_env.bootstrap()


@pytest.fixture(scope="session")
def tiny():
    """(model, clip, vae, positive, negative) of the 1-level SD1.5 fixture."""
    import comfy.sd

    from comfyui_animapose.workshop.fixtures.sd15 import sd15_checkpoint

    model, clip, vae, _ = comfy.sd.load_checkpoint_guess_config(str(sd15_checkpoint("tiny", "taesd")))
    positive = clip.encode_from_tokens_scheduled(clip.tokenize("a fox running in snow"))
    negative = clip.encode_from_tokens_scheduled(clip.tokenize("blurry"))
    return model, clip, vae, positive, negative


@pytest.fixture(scope="session")
def tiny_motion():
    from comfyui_animapose.animapose.motion.sampling.inflate import load_motion_model
    from comfyui_animapose.workshop.fixtures.motion import motion_module_file

    return load_motion_model(str(motion_module_file("v2", "original", "tiny", ext=".ckpt")), "mm_sd_v15_v2.ckpt")


@pytest.fixture(scope="session")
def animated(tiny, tiny_motion):
    from comfyui_animapose.animapose.motion.sampling.inflate import apply_motion_model

    return apply_motion_model(tiny[0], tiny_motion).model


@pytest.fixture(scope="module")
def small_model():
    """The SD1.5-block-layout fixture (320 channels, TAESD) without CLIP or VAE; per module, because some tests pad
    its shared conv_in weights through the patcher and check the model afterwards."""
    import comfy.sd

    from comfyui_animapose.workshop.fixtures.sd15 import sd15_checkpoint

    model, *_ = comfy.sd.load_checkpoint_guess_config(str(sd15_checkpoint("small", "taesd")), output_vae=False,
                                                      output_clip=False)
    return model
