"""The synthetic animation dataset and the clip analyser: seeded, captions match what is drawn, the analyser finds the
drawn object's colour, shape, path and size, and tells coherent clips from independent frames.

The coherence thresholds used on generated clips (tests/comfy/test_demo_motion.py) are checked here against the
ground truth: every synthetic clip passes them and frames drawn from different clips fail them.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from comfyui_animapose.workshop.synthetic.analyse import analyse_frames, clip_metrics, foreground_masks, shape_from_fill
from comfyui_animapose.workshop.synthetic.shapes import (
    COLOURS,
    MOTIONS,
    SHAPES,
    make_clips,
    read_dataset,
    write_dataset,
)


def test_seeded_and_varied():
    a = make_clips(6, seed=11)
    b = make_clips(6, seed=11)
    c = make_clips(6, seed=12)
    assert all(torch.equal(x[0], y[0]) and x[1] == y[1] for x, y in zip(a, b))
    assert not all(torch.equal(x[0], y[0]) for x, y in zip(a, c))
    clip, caption, spec = a[0]
    assert clip.shape == (16, 64, 64, 3) and clip.dtype == torch.float32
    assert float(clip.min()) >= 0 and float(clip.max()) <= 1
    assert caption == f"a {spec.colour} {spec.shape} {spec.motion}"
    many = make_clips(60, seed=0)
    assert {s.shape for _, _, s in many} == set(SHAPES)
    assert {s.colour for _, _, s in many} == set(COLOURS)
    assert {s.motion for _, _, s in many} == set(MOTIONS)


def test_fixed_attributes():
    for _, caption, spec in make_clips(5, seed=3, motion="moving right", colour="red"):
        assert spec.motion == "moving right" and spec.colour == "red" and caption.endswith("moving right")


def test_travel_edge_to_edge_keeps_the_other_draws():
    """``travel=(1, 1)``: every linear clip crosses the frame from edge to edge (the centre from radius + 1 to size -
    radius - 1); the same number of draws, so shapes, colours and radii match the default clips of that seed."""
    default = make_clips(8, seed=5, motion="moving right")
    full = make_clips(8, seed=5, motion="moving right", travel=(1.0, 1.0))
    for (_, caption, spec), (_, full_caption, full_spec) in zip(default, full):
        assert full_caption == caption and full_spec.radius == spec.radius
        lo, hi = spec.radius + 1.0, 64 - spec.radius - 1.0
        assert abs(full_spec.path[0, 0] - lo) < 1e-9 and abs(full_spec.path[-1, 0] - hi) < 1e-9
        assert spec.path[-1, 0] - spec.path[0, 0] < 0.66 * (hi - lo)  # the default: 45-65% of the span
    for _, _, spec in make_clips(4, seed=5, motion="moving left", travel=(1.0, 1.0)):
        assert abs(spec.path[0, 0] - (64 - spec.radius - 1.0)) < 1e-9


@pytest.mark.parametrize("seed", range(4))
def test_analyser_recovers_ground_truth(seed):
    for clip, _, spec in make_clips(12, seed=seed):
        stats = analyse_frames(clip)
        m = clip_metrics(clip)
        assert m["present"] == 1.0
        assert m["colour"] == spec.colour
        assert shape_from_fill(m["fill"]) == spec.shape
        # centroid within a pixel of the drawn path (triangles: their centroid sits below the circumcentre)
        path = np.array([s.centroid for s in stats]) * 64
        tolerance = 3.5 if spec.shape == "triangle" else 1.0
        assert np.abs(path - spec.path).max() < tolerance
        if spec.motion == "moving right":
            assert m["displacement"][0] > 0.2
        if spec.motion == "moving left":
            assert m["displacement"][0] < -0.2


def test_masks_follow_background():
    frame = torch.full((1, 32, 32, 3), 0.2)
    frame[0, 10:20, 12:18] = torch.tensor([0.9, 0.1, 0.1])
    mask = foreground_masks(frame)[0]
    assert mask.sum() == 60 and mask[10:20, 12:18].all()


def _independent(seed: int) -> torch.Tensor:
    clips = make_clips(16, seed=seed)
    return torch.stack([clips[k][0][k] for k in range(16)])


def test_coherence_thresholds_separate_real_from_independent():
    """The coherence thresholds: all 48 ground-truth clips pass, all 8 clips of frames from different clips fail."""
    from comfyui_animapose.workshop.thresholds import COHERENT, INDEPENDENT_IOU_MAX

    for clip, _, spec in make_clips(48, seed=100):
        m = clip_metrics(clip)
        assert m["area_cv"] < COHERENT["area_cv"] and m["colour_spread"] < COHERENT["colour_spread"]
        assert m["iou"] > INDEPENDENT_IOU_MAX
        if spec.motion != "bouncing":  # a reflection is a kink; generated clips are judged on the median
            assert m["jerk"] < COHERENT["jerk"]
    for seed in range(8):
        assert clip_metrics(_independent(seed))["iou"] < INDEPENDENT_IOU_MAX


def test_dataset_round_trip(tmp_path):
    write_dataset(tmp_path, 2, seed=4, frames=5, size=32)
    data = read_dataset(tmp_path)
    made = make_clips(2, seed=4, frames=5, size=32)
    assert [c for _, c in data] == [c for _, c, _ in made]
    for (v, _), (ref, _, _) in zip(data, made):
        assert v.shape == (5, 32, 32, 3)
        assert float((v - ref).abs().max()) <= 0.5 / 255 + 1e-6  # 8-bit PNG rounding only
