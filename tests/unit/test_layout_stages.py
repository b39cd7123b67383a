"""The generic stage grouping of workshop/authoring/layout.py on the shipped API workflows, with the output types the
server reports (a fixed copy of the few /object_info fields the grouping reads)."""

from __future__ import annotations

from comfyui_animapose.workshop.authoring.layout import plan, stages
from comfyui_animapose.workshop.workflows import api_workflow

OUT = {
    "CheckpointLoaderSimple": ["MODEL", "CLIP", "VAE"],
    "AnimaPose_LoadMotionModel": ["ANIMAPOSE_MOTION_MODEL"],
    "AnimaPose_ApplyMotionModel": ["MODEL"],
    "AnimaPose_ContextWindows": ["MODEL"],
    "CLIPTextEncode": ["CONDITIONING"],
    "EmptyLatentImage": ["LATENT"],
    "KSampler": ["LATENT"],
    "VAEDecode": ["IMAGE"],
    "SaveAnimatedWEBP": [],
    "CreateVideo": ["VIDEO"],
    "SaveVideo": [],
    "AnimaPose_LoadDreamPose": ["MODEL", "ANIMAPOSE_DREAMPOSE_ADAPTER"],
    "AnimaPose_LoadDreamPoseVAE": ["VAE"],
    "AnimaPose_LoadCLIPVisionB32": ["CLIP_VISION"],
    "LoadImage": ["IMAGE", "MASK"],
    "AnimaPose_LoadDensePoseUV": ["ANIMAPOSE_POSES", "IMAGE"],
    "AnimaPose_DreamPoseImageConditioning": ["CONDITIONING", "CONDITIONING"],
    "AnimaPose_PoseConditioning": ["CONDITIONING", "CONDITIONING", "CONDITIONING", "LATENT"],
    "AnimaPose_DreamPoseGuider": ["GUIDER"],
    "AnimaPose_SharedNoise": ["NOISE"],
    "KSamplerSelect": ["SAMPLER"],
    "BasicScheduler": ["SIGMAS"],
    "AnimaPose_DreamPoseSampler": ["LATENT"],
    "AnimaPose_DreamPoseDecode": ["IMAGE"],
    "AnimaPose_DreamPoseFinetuneUNet": ["MODEL", "ANIMAPOSE_DREAMPOSE_ADAPTER", "LOSS_MAP"],
    "AnimaPose_DreamPoseFinetuneVAE": ["VAE", "LOSS_MAP"],
    "AnimaPose_SaveDreamPose": [],
}
OUTPUT_NODES = {"SaveAnimatedWEBP", "SaveVideo", "AnimaPose_SaveDreamPose"}
INFO = {k: {"output": v, "output_node": k in OUTPUT_NODES} for k, v in OUT.items()}


def _by_stage(name):
    prompt = api_workflow(name)
    st = stages(prompt, INFO)
    out = {}
    for nid, key in st.items():
        out.setdefault(key, set()).add(prompt[nid]["class_type"])
    return out


def test_txt2vid_stages():
    assert _by_stage("animatediff_txt2vid") == {
        "models": {"CheckpointLoaderSimple", "AnimaPose_LoadMotionModel", "AnimaPose_ApplyMotionModel"},
        "inputs": {"CLIPTextEncode", "EmptyLatentImage"},
        "sample": {"KSampler"},
        "output": {"VAEDecode", "SaveAnimatedWEBP"},
    }


def test_finetune_stages_and_order():
    s = _by_stage("dreampose_finetune_then_animate")
    assert s["finetune"] == {"AnimaPose_DreamPoseFinetuneUNet", "AnimaPose_DreamPoseFinetuneVAE"}
    assert s["models"] == {"AnimaPose_LoadDreamPose", "AnimaPose_LoadDreamPoseVAE", "AnimaPose_LoadCLIPVisionB32"}
    assert {"AnimaPose_SaveDreamPose", "AnimaPose_DreamPoseDecode", "SaveVideo"} <= s["output"]
    assert {"AnimaPose_DreamPoseSampler", "AnimaPose_DreamPoseGuider", "KSamplerSelect"} <= s["sample"]
    groups = plan(api_workflow("dreampose_finetune_then_animate"), INFO)
    assert [g["title"] for g in groups] == ["1. Models", "2. Inputs & conditioning", "3. Finetune", "4. Sample",
                                            "5. Decode & save"]
    prompt = api_workflow("dreampose_finetune_then_animate")
    finetune = [prompt[n]["class_type"] for n in groups[2]["nodes"]]
    assert finetune == ["AnimaPose_DreamPoseFinetuneUNet", "AnimaPose_DreamPoseFinetuneVAE"]  # stage 2a above 2b


def test_every_node_gets_a_stage_for_unknown_types():
    prompt = {"1": {"class_type": "Mystery", "inputs": {}}, "2": {"class_type": "Other", "inputs": {"x": ["1", 0]}}}
    assert set(stages(prompt, {})) == {"1", "2"}
