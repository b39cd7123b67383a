"""Every shipped API-format workflow runs from the ComfyUI queue and writes a decodable animation."""

from __future__ import annotations

import json

import av
import numpy as np
import pytest
from PIL import Image, ImageSequence

from comfyui_animapose.workshop.workflows import shipped, shrink_api_prompt

WORKFLOWS = shipped(api_only=True)


def _frames(prompt: dict) -> int:
    for node in prompt.values():
        if node["class_type"] == "EmptyLatentImage":
            return node["inputs"]["batch_size"]
        if node["class_type"] in ("AnimaPose_PIAImage", "AnimaPose_AnimateLCMI2VImage"):
            return node["inputs"]["frames"]
    return 8  # the DreamPose demo pose sequence


def _decode(path) -> list[np.ndarray]:
    """Every frame of an animated WEBP (PIL; ffmpeg cannot decode animated WebP) or an MP4 (PyAV)."""
    if path.suffix == ".webp":
        with Image.open(path) as im:
            return [np.asarray(fr.convert("RGB")) for fr in ImageSequence.Iterator(im)]
    with av.open(str(path)) as container:
        return [fr.to_ndarray(format="rgb24") for fr in container.decode(video=0)]


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_workflow_runs(comfy_server, path):
    prompt = shrink_api_prompt(json.loads(path.read_text()))
    entry = comfy_server.run(prompt, timeout=900)
    files = [f for f in comfy_server.output_files(entry) if f.suffix in (".webp", ".mp4")]
    assert files, f"{path.name} wrote no animation: {entry['outputs']}"
    for f in files:
        assert f.is_file() and f.stat().st_size > 0
        frames = _decode(f)
        assert len(frames) == _frames(prompt), f"{f.name}: {len(frames)} frames"
        h, w, _ = frames[0].shape
        # DreamPose frames are 64x80: the poses' size, and in video-to-video the (trained) subject photo's size
        assert (w, h) in ((64, 64), (64, 80)), f"{f.name}: {w}x{h}"
        assert any((a != b).any() for a, b in zip(frames, frames[1:])), f"{f.name}: all frames identical"
