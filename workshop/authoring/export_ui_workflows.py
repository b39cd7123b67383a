"""Regenerates the drag-and-drop (UI-format) workflows from the API-format ones, with the real frontend.

Each ``workflows/api/<name>.json`` is loaded into ComfyUI's own frontend (``app.loadApiJson``), laid out by
``workshop/authoring/layout.py`` (groups per stage, compact columns, the Note first, opening view = fit view on a
1600x1000 window), and serialised with ``app.graph.serialize()`` to ``workflows/<title>.json`` (the title the
Templates dialog shows, ``workshop/workflows.py:TEMPLATE_TITLES``; the stem when a workflow has none). Run it
after changing an API workflow (``workshop/authoring/export_ui_workflows.py [NAME ...]`` with the provisioned venv python; names
limit it to those workflows); the browser tier then loads, converts and queues both files.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

from ..browser.helpers import CHROMIUM, CHROMIUM_ARGS, INIT_SCRIPT, Frontend
from ..models import demo_files
from ..server import ComfyServer, prepare_base_dir
from ..workflows import WORKFLOWS, template_name
from .layout import LAYOUT_JS, SAFE, plan

log = logging.getLogger("animapose.export")

NOTES = {
    "animatediff_txt2vid": (
        "AnimaPose prompt-to-animation (AnimateDiff)\n\n"
        "Models: any SD1.5 checkpoint in models/checkpoints; a motion module (mm_sd_v15_v2.ckpt, v3_sd15_mm.ckpt, "
        "AnimateLCM, Lightning...) in models/animatediff_models.\n"
        "The latent batch is the frame count: 16 frames is AnimateDiff's sweet spot (at most the module's position "
        "length, shown on the loader). beta_schedule 'autoselect' picks the schedule the module was trained with."),
    "animatediff_long_context": (
        "AnimaPose long animation (48 frames) with context windows\n\n"
        "Windows of 16 frames overlapping by 4 are sampled and fused each step, so clips longer than the motion "
        "module's positions work and memory stays that of one window."),
    "animatediff_img2vid": (
        "AnimaPose picture-to-animation (PIA)\n\n"
        "Models: an SD1.5 checkpoint in models/checkpoints; pia.ckpt (PIA's motion module with its 9-channel conv_in) in "
        "models/animatediff_models.\n"
        "The picture becomes frame 0; 'affinity' sets how far later frames may move from it (PIA's presets: small / "
        "moderate / large motion, loops, style transfer) or give your own per-frame list. PIA was trained at 512x512."),
    "animatediff_lcm_img2vid": (
        "AnimaPose picture-to-animation (AnimateLCM-I2V)\n\n"
        "Models: an SD1.5 checkpoint in models/checkpoints; AnimateLCM_sd15_i2v.ckpt (AnimateLCM's motion modules with "
        "an image encoder) in models/animatediff_models. The authors also apply their spatial LoRA "
        "AnimateLCM_sd15_i2v_lora.safetensors at 0.8: add ComfyUI's LoraLoaderModelOnly after the checkpoint.\n"
        "The picture's features enter the UNet's down blocks; 'motion_scale' (0.8) trades identity for motion. The "
        "Apply node's autoselect gives the authors' LCM schedule; sample with the lcm sampler, 4-8 steps, CFG 1-2."),
    "animatediff_sparsectrl_keyframes": (
        "AnimaPose keyframes-to-animation (SparseCtrl RGB)\n\n"
        "Models: an SD1.5 checkpoint; v3_sd15_mm.ckpt in models/animatediff_models; v3_sd15_sparsectrl_rgb.ckpt in "
        "models/controlnet (the official configs also apply v3_sd15_adapter.ckpt as a LoRA at 1.0).\n"
        "The keyframe images go through ComfyUI's own Apply ControlNet node (with the VAE); 'AnimaPose SparseCtrl "
        "Keyframes' puts image n on frame number n of its list ('0, -1' = first and last frame), every other frame "
        "is masked out. Official settings: DDIM, 25 steps, CFG 8.5."),
    "animatediff_cameractrl": (
        "AnimaPose camera moves (CameraCtrl on AnimateDiff v3)\n\n"
        "Models: an SD1.5 checkpoint; v3_sd15_mm.ckpt and CameraCtrl_pruned.safetensors (or the release's "
        "CameraCtrl.ckpt) in models/animatediff_models.\n"
        "The camera path is a preset (pan, zoom, orbit, turn, tilt, roll; 'speed' scales each step) or a "
        "RealEstate10K pose file from the input folder, as CameraCtrl's own assets/pose_files. CameraCtrl was "
        "trained at 384x256 on 16 frames; its encoder covers 16 frames at once (use context windows of at most "
        "16 for longer clips)."),
    "animatediff_prompt_travel": (
        "AnimaPose prompt travel (32 frames) with motion keyframes\n\n"
        "Prompt Travel turns 'frame: prompt' lines into per-frame conditioning, blending the embeddings between "
        "keyframes (frames must match the latent's batch). The Motion Multival ramps the motion amount from 0.7 to 1.1 "
        "over the frames; the second Motion Keyframe calms it to 0.8 for the last 30% of the steps."),
    "animatediff_long_freenoise": (
        "AnimaPose long animation (64 frames): context windows + FreeNoise (+ FreeInit)\n\n"
        "Windows of 16 frames start every 12 frames (overlap 4); FreeNoise gives every window a shuffled copy of "
        "the first window's noise (context_stride = context_length - context_overlap), which together is the "
        "FreeNoise paper's method (the paper slides by 4 frames: overlap 12 and stride 4, 3x the work). The "
        "FreeInit sampler (optional: connect KSamplerSelect straight to the sampler "
        "input to skip it) runs 2 passes, each restarting from the low frequencies of the previous result."),
    "dreampose_pose_to_video": (
        "AnimaPose DreamPose: one photo + a DensePose UV sequence -> video\n\n"
        "Models in models/dreampose: unet_epoch_20.pth, adapter_20.pth, a VAE (vae_*.pth or any SD1.x VAE); CLIP "
        "ViT-B/32 (openai/clip-vit-base-patch32 folder) in models/clip_vision.\n"
        "Poses: a folder of frame_N_densepose.npy (2,H,W) UV arrays (or a .zip of them) in ComfyUI's input folder, "
        "picked in Load DensePose UV Poses (its button uploads a .zip; press R after adding a folder).\n"
        "image_cfg (s_I) 8 and pose_cfg (s_p) 3 follow the paper's demo; frames_per_batch trades memory for speed."),
    "dreampose_pose_to_video_motion": (
        "AnimaPose DreamPose with a motion module: one photo + UV poses -> video sampled as one clip\n\n"
        "Models: as for pose-to-video, plus a motion module trained for this DreamPose UNet in "
        "models/animatediff_models (the pack trains one for its tiny DreamPose with workshop/demo/temporal_dreampose.py; "
        "an SD1.5 module such as mm_sd_v15_v2.ckpt fits the released DreamPose's layout but was never trained with it: "
        "docs/tiny-dreampose.md).\n"
        "Apply AnimateDiff Motion Model inflates the DreamPose MODEL (beta_schedule 'use existing': DreamPose's own "
        "schedule); the DreamPose Sampler's frame_mode 'joint' samples all frames as one clip, each frame with its own "
        "pose window; context windows split videos longer than 16 frames."),
    "animatediff_train_motion_lora": (
        "AnimaPose: train a MotionLoRA on your clips, then animate with it\n\n"
        "Load Image reads an animated GIF/WebP as one batch of frames (or use a video loader); frames_per_video splits "
        "it into videos, one caption line per video. Train Motion Module freezes the image model and trains a LoRA "
        "on the motion module's temporal attention (mode motion_lora) or a whole motion module (motion_module), and "
        "saves it to models/animatediff_motion_lora (or animatediff_models) when save_name is set. Cancel stops at "
        "the next step; the graph then samples with the trained motion."),
    "dreampose_finetune_then_animate": (
        "AnimaPose DreamPose: finetune on your subject, then animate\n\n"
        "1. Finetune UNet + Adapter (paper: 500 steps, lr 1e-5), then the VAE decoder (1500 steps, lr 5e-5), on the "
        "subject photo(s) and their DensePose UV maps. Both train copies; set steps to 0 to skip a stage.\n"
        "2. Save DreamPose Model writes <prefix>_00001_unet/_adapter/_vae.safetensors to models/dreampose (the counter "
        "grows with every save, nothing is overwritten; load them later with the DreamPose loaders instead of "
        "finetuning again).\n"
        "3. The finetuned model, adapter and VAE drive the pose-to-video graph at once.\n"
        "Several photos: batch them into one IMAGE (e.g. Batch Images) and give a pose folder with one "
        "frame_N_densepose.npy per photo, in the same order.\n"
        "Memory: the UNet stage holds fp32 weights, gradients and AdamW state of the 860 M-parameter UNet, about "
        "14 GB (computed) plus activations, which gradient checkpointing and bf16 keep small."),
    "dreampose_video_to_video": (
        "AnimaPose DreamPose: a driving video + one photo -> video\n\n"
        "Models: as for pose-to-video (models/dreampose, CLIP ViT-B/32 in models/clip_vision), plus a TorchScript "
        "DensePose export in models/densepose: densepose_r50_fpn_dl.torchscript or densepose_r101_fpn_dl.torchscript "
        "(the files of comfyui_controlnet_aux, found in its ckpts folder too).\n"
        "The estimator turns the video's frames into DensePose UV poses: person 'largest', frames without a person "
        "take the nearest frame's pose, smoothing 2 frames, and the poses are scaled and moved so the dancer's body "
        "matches the subject photo's. The output video keeps the driving video's frame rate."),
}

# Extra height kept free under nodes whose previews appear later (a loaded photo, a saved animation), so nothing
# overlaps once they show.
GROW = {"LoadImage": 330, "LoadVideo": 380, "SaveAnimatedWEBP": 280, "SaveAnimatedPNG": 280, "SaveImage": 280, "PreviewImage": 280,
        "SaveVideo": 280, "SaveWEBM": 280}
VIEW = (1600, 1000)  # the window the opening view is made for

LOAD = """async ([api, name]) => { app.clean(); await app.loadApiJson(api, name);
  const r = app.canvas.canvas.getBoundingClientRect(); return [r.width, r.height]; }"""


def export(fe, api: dict, stem: str, object_info: dict) -> dict:
    """The UI-format graph of one API prompt, laid out by workshop/authoring/layout.py in the page ``fe``."""
    view = fe.call(LOAD, [api, template_name(stem)], timeout=60)
    groups = plan(api, object_info)
    res = fe.call(LAYOUT_JS, [groups, NOTES.get(stem, ""), view, GROW, SAFE], timeout=120)
    log.info("%s: %d groups in %d row(s), %.0fx%.0f px, opening zoom %.2f in a %dx%d canvas", stem, len(groups),
             res["rows"], *res["size"], res["zoom"], *view)
    return res["workflow"]


def main() -> int:
    ap = argparse.ArgumentParser(prog=f"python -m {__spec__.name}", description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", help="workflows/api/ names to export (default: all)")
    only = set(ap.parse_args().names)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        server = ComfyServer(prepare_base_dir(Path(tmp), demo_files("tiny"))).start()
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
                context = browser.new_context(viewport={"width": VIEW[0], "height": VIEW[1]})
                context.route("**/*", lambda r: r.continue_() if r.request.url.startswith(server.url) else r.abort())
                context.add_init_script(INIT_SCRIPT)
                fe = Frontend(context.new_page(), server.url)
                fe.attach()
                fe.open()
                object_info = server.object_info()
                for api_path in sorted((WORKFLOWS / "api").glob("*.json")):
                    stem = api_path.stem
                    if only and stem not in only:
                        continue
                    api = json.loads(api_path.read_text())
                    ui = export(fe, api, stem, object_info)
                    for old in (WORKFLOWS / (stem + ".json"),):  # the file name before templates had titles
                        if old.exists() and template_name(stem) != stem:
                            old.unlink()
                    out = WORKFLOWS / (template_name(stem) + ".json")
                    out.write_text(json.dumps(ui, indent=1) + "\n")
                    log.info("wrote %s (%d nodes, %d links)", out, len(ui["nodes"]), len(ui["links"]))
                browser.close()
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
