"""The pure-torch runtime modules import nothing from ComfyUI, so they load (and are tested) without it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.harness.env import COMFYUI, comfyui_available

REPO = Path(__file__).resolve().parents[2]
# The ComfyUI integration (animapose.motion.inflate, .context) imports comfy on purpose and is not listed.
PURE = ["animapose.errors", "animapose.checkpoints", "animapose.numerics", "animapose.output_names",
        "animapose.motion", "animapose.motion.module",
        "animapose.motion.multival", "animapose.motion.stages", "animapose.motion.prompt_travel",
        "animapose.motion.freenoise", "animapose.motion.freeinit",
        "animapose.motion.convert", "animapose.motion.detect", "animapose.motion.image_encoder", "animapose.motion.lora",
        "animapose.motion.camera_poses", "animapose.motion.cameractrl_model", "animapose.motion.affinity",
        "animapose.motion.keyframe_indices", "animapose.dreampose.augment",
        "animapose.dreampose.training", "animapose.densepose.model", "animapose.densepose.convert",
        "animapose.densepose.sequence", "animapose.densepose.estimate", "animapose.synthetic",
        "animapose.synthetic.people", "animapose.synthetic.people_metrics", "animapose.synthetic.people_vae",
        "animapose.synthetic.shapes", "animapose.synthetic.analyse", "animapose.training.settings",
        "animapose.paths", "animapose.dreampose.pose_sources"]
COMFY = ("comfy", "comfy_api", "folder_paths", "nodes")


def test_pure_modules_import_without_comfyui():
    # ComfyUI goes on the path when provisioned, so that even a guarded ``try: import comfy`` would succeed and
    # show up in sys.modules instead of failing quietly.
    paths = [str(REPO)] + ([str(COMFYUI)] if comfyui_available() else [])
    script = (
        "import importlib, json, sys\n"
        f"sys.path[:0] = {paths!r}\n"
        f"for name in {PURE!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {COMFY!r})))\n"
    )
    # -I: ignore PYTHON* variables and the user site, so only the paths above decide what is importable.
    result = subprocess.run([sys.executable, "-I", "-c", script], cwd=REPO, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    leaked = json.loads(result.stdout.strip().splitlines()[-1])
    assert leaked == [], f"ComfyUI modules imported: {leaked}"
