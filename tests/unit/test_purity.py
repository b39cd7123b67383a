"""The pure-torch runtime modules import nothing from ComfyUI, so they load (and are tested) without it."""

from __future__ import annotations

import json
import subprocess
import sys

from comfyui_animapose.workshop.env import COMFYUI, comfyui_available

# The ComfyUI integration (motion.sampling.inflate, .context, the add-ons' ModelPatcher glue, ...) imports comfy on
# purpose and is not listed.
PURE = [f"comfyui_animapose.{m}" for m in (
    "animapose.comfy_seam", "animapose.comfy_seam.internals", "animapose.errors", "animapose.checkpoints", "animapose.numerics", "animapose.output_names", "animapose.paths",
    "animapose.motion", "animapose.motion.module",
    "animapose.motion.controls.multival", "animapose.motion.sampling.stages", "animapose.motion.controls.prompt_travel",
    "animapose.motion.controls.freenoise", "animapose.motion.controls.freeinit",
    "animapose.motion.formats.convert", "animapose.motion.formats.detect", "animapose.motion.formats.lora",
    "animapose.motion.addons.lcm_i2v_encoder", "animapose.motion.addons.camera_trajectories",
    "animapose.motion.addons.cameractrl_encoder", "animapose.motion.addons.pia_affinity",
    "animapose.motion.addons.sparsectrl_keyframes", "animapose.dreampose.augment",
    "animapose.dreampose.pose_sources", "animapose.densepose.model", "animapose.densepose.convert",
    "animapose.densepose.sequence", "animapose.densepose.estimate", "animapose.training.settings",
    "workshop.train.dreampose", "workshop.synthetic", "workshop.synthetic.people", "workshop.synthetic.people_metrics",
    "workshop.synthetic.people_vae", "workshop.synthetic.shapes", "workshop.synthetic.analyse")]
COMFY = ("comfy", "comfy_api", "folder_paths", "nodes")


def test_pure_modules_import_without_comfyui():
    # ComfyUI goes on the path when provisioned, so that even a guarded ``try: import comfy`` would succeed and
    # show up in sys.modules instead of failing quietly.
    paths = [str(COMFYUI)] if comfyui_available() else []
    script = (
        "import importlib, json, sys\n"
        f"sys.path[:0] = {paths!r}\n"
        f"for name in {PURE!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {COMFY!r})))\n"
    )
    # -I: ignore PYTHON* variables, the user site and the working folder, so only the venv (where the pack is
    # installed as comfyui_animapose) and the paths above decide what is importable.
    result = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    leaked = json.loads(result.stdout.strip().splitlines()[-1])
    assert leaked == [], f"ComfyUI modules imported: {leaked}"
