"""DensePose UV estimation: export signatures, parity of the per-box conversion with an independent reference,
person choice, missing detections, smoothing, alignment and refusals. Pure torch (no ComfyUI)."""

from __future__ import annotations

import logging

import pytest
import torch

from comfyui_animapose.animapose.densepose.convert import box_chart, int_box_xywh, paste
from comfyui_animapose.animapose.densepose.estimate import check_photos, estimate, to_uint8_rgb
from comfyui_animapose.animapose.densepose.model import DensePoseModel, load_densepose
from comfyui_animapose.animapose.densepose.sequence import (
    alignment,
    apply_alignment,
    body_box,
    choose_person,
    jitter,
    nearest_sources,
    smooth_uv,
)
from comfyui_animapose.animapose.errors import AnimaPoseError
from comfyui_animapose.workshop.fixtures.densepose import dancer_frames, densepose_torchscript_file
from comfyui_animapose.workshop.parity import mutations
from comfyui_animapose.workshop.references.densepose_reference import (
    reference_chart_result,
    reference_frame,
    reference_paste,
    run_export,
)

log = logging.getLogger(__name__)
TOL = 1e-5


def _frames(frames=6, h=80, w=64, seed=0, person=True) -> torch.Tensor:
    return torch.from_numpy(dancer_frames(frames, h, w, seed, person)).float() / 255.0


@pytest.fixture(scope="module", params=["tuple", "dict"])
def export(request):
    return request.param, load_densepose(str(densepose_torchscript_file(request.param)))


def test_signatures_detected_from_forward():
    assert load_densepose(str(densepose_torchscript_file("tuple"))).signature == "tuple"
    assert load_densepose(str(densepose_torchscript_file("dict"))).signature == "dict"


@pytest.mark.parametrize("w,h", [(37, 53), (1, 1), (120, 90), (64, 64)])
def test_box_conversion_matches_reference(w, h):
    g = torch.Generator().manual_seed(w * 1000 + h)
    s = 28
    coarse, fine = torch.randn(2, s, s, generator=g), torch.randn(25, s, s, generator=g) * 3
    u, v = torch.rand(25, s, s, generator=g), torch.rand(25, s, s, generator=g)
    box = torch.tensor([3.7, 5.2, 3.7 + w + 0.6, 5.2 + h + 0.9])
    ref_box, ref_labels, ref_uv = reference_chart_result(coarse, fine, u, v, box)
    x, y, bw, bh = int_box_xywh(box)
    assert [x, y, max(bw, 1), max(bh, 1)] == ref_box
    labels, uv = box_chart(coarse, fine, u, v, bw, bh)
    assert torch.equal(labels, ref_labels)
    assert (uv - ref_uv).abs().max() <= TOL
    # pasting, including a box that reaches past the frame's edge
    for height, width in ((200, 180), (y + bh // 2 + 1, x + bw // 2 + 1)):
        cl, cuv = paste(labels, uv, x, y, height, width)
        rl, ruv = reference_paste(ref_box, ref_labels, ref_uv, height, width)
        assert torch.equal(cl, rl) and (cuv - ruv).abs().max() <= TOL


def test_box_rounding_is_detectron2s():
    # x, y truncated; w, h from the float difference, truncated (not x1 and y1 truncated separately)
    assert int_box_xywh(torch.tensor([10.9, 3.2, 20.3, 9.1])) == (10, 3, 9, 5)


def test_estimate_matches_reference_on_both_exports(export):
    signature, model = export
    frames = _frames()
    got = estimate(model, frames, person="largest")
    u8 = to_uint8_rgb(frames)
    worst = 0.0
    for i in range(frames.shape[0]):
        out = run_export(model.module, u8[i], signature)
        boxes = out["boxes"]
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        labels, uv = reference_frame(out, int(areas.argmax()), frames.shape[1], frames.shape[2])
        assert torch.equal(got.labels[i].long(), labels)
        worst = max(worst, float((got.uv[i] - uv).abs().max()))
        assert (labels > 0).float().mean() > 0.05  # a real body, not an empty map
    log.info("%s export: max |UV - reference| = %.3g over %d frames", signature, worst, frames.shape[0])
    assert worst <= TOL
    # the official layout: (N, 2, H, W), U and V in [0, 1], exactly 0 off the body
    assert got.uv.shape == (frames.shape[0], 2, frames.shape[1], frames.shape[2])
    assert got.uv.min() >= 0 and got.uv.max() <= 1
    assert (got.uv[:, :, got.labels[0] == 0][0] == 0).all()


def test_both_exports_get_their_own_layout_and_colour_order():
    frames = _frames(3)
    a = estimate(load_densepose(str(densepose_torchscript_file("tuple"))), frames)
    b = estimate(load_densepose(str(densepose_torchscript_file("dict"))), frames)
    assert torch.equal(a.labels, b.labels) and (a.uv - b.uv).abs().max() <= TOL
    # the check is sensitive: the same frames with red and blue swapped give other poses
    c = estimate(load_densepose(str(densepose_torchscript_file("tuple"))), frames[..., [2, 1, 0]], check=False)
    assert not torch.equal(a.labels, c.labels)


def test_person_choice():
    boxes = torch.tensor([[0, 0, 10, 10], [0, 0, 30, 40], [5, 5, 25, 25]], dtype=torch.float32)
    scores = torch.tensor([0.7, 0.6, 0.9])
    assert choose_person(boxes, scores, "largest") == 1
    assert choose_person(boxes, scores, "highest score") == 2
    assert choose_person(boxes, None, "highest score") == 0  # exports without scores list rows by score
    assert choose_person(boxes, scores, "first") == 0
    assert choose_person(boxes[:0], None, "largest") is None
    model = load_densepose(str(densepose_torchscript_file("tuple")))
    frames = _frames(2)
    largest = estimate(model, frames, person="largest")
    first = estimate(model, frames, person="first")
    # the fixture's first row is the upper half of the figure, the largest the whole figure
    lb, fb = body_box(largest.labels[0] > 0), body_box(first.labels[0] > 0)
    assert fb[3] < lb[3] - 10 and abs(fb[1] - lb[1]) <= 2


def test_missing_frames_error_or_nearest():
    model = load_densepose(str(densepose_torchscript_file("tuple")))
    frames = _frames(6)
    empty = _frames(6, person=False)
    mixed = frames.clone()
    mixed[[0, 3, 4]] = empty[[0, 3, 4]]
    with pytest.raises(AnimaPoseError, match=r"no person was found in 3 of 6 frames \(frames 0, 3, 4.*'nearest'"):
        estimate(model, mixed)
    got = estimate(model, mixed, missing="nearest")
    assert got.filled == [(0, 1), (3, 2), (4, 5)]
    full = estimate(model, frames)
    for i, s in [(0, 1), (1, 1), (2, 2), (3, 2), (4, 5), (5, 5)]:
        assert torch.equal(got.uv[i], full.uv[s])
    assert nearest_sources([False, True, False, False, True]) == [1, 1, 1, 4, 4]
    with pytest.raises(AnimaPoseError, match="no person was found in any of the 6 frames"):
        estimate(model, empty, missing="nearest")


def _jittered_sequence(frames=24, h=64, w=48, noise=0.04, seed=0):
    """A slowly moving two-part body with disjoint UV ranges per part, plus per-frame UV noise."""
    from comfyui_animapose.animapose.dreampose.poses import synthetic_uv_sequence

    clean = synthetic_uv_sequence(frames, h, w, seed)
    fg = (clean > 0).any(1)
    xs = torch.arange(w)[None, None, :].expand(frames, h, w)
    centre = (xs * fg).sum((1, 2), keepdim=True) / fg.sum((1, 2), keepdim=True)
    labels = torch.where(fg, torch.where(xs < centre, 1, 2), 0).long()
    # part 1 in [0.05, 0.45], part 2 in [0.55, 0.95]: a value from the other part would be visible
    clean = torch.where(labels[:, None] == 1, 0.05 + 0.4 * clean, 0.55 + 0.4 * clean) * fg[:, None]
    g = torch.Generator().manual_seed(seed + 1)
    noisy = (clean + noise * torch.randn(clean.shape, generator=g).clamp(-1.2, 1.2)) * fg[:, None]
    return labels, clean, noisy


def test_smoothing_reduces_jitter_and_keeps_edges():
    labels, clean, noisy = _jittered_sequence()
    smoothed = smooth_uv(labels, noisy, radius=2)
    before, after = jitter(labels, noisy), jitter(labels, smoothed)
    fg = labels > 0
    err_before = float((noisy - clean).abs().sum(1)[fg].mean() / 2)
    err_after = float((smoothed - clean).abs().sum(1)[fg].mean() / 2)
    log.info("smoothing r=2: jitter %.4f -> %.4f (%.2fx), error vs clean %.4f -> %.4f", before, after,
             before / after, err_before, err_after)
    assert after < 0.5 * before and err_after < err_before
    # edges stay: the background is exactly 0 and every frame's silhouette is unchanged
    assert ((smoothed != 0).any(1) == fg).all()
    assert (smoothed[:, :, ~fg[0]][0] == 0).all()
    # no blending across parts: each part keeps its own UV range
    for part, (lo, hi) in {1: (0.0, 0.5), 2: (0.5, 1.0)}.items():
        values = smoothed.permute(1, 0, 2, 3)[:, labels == part]
        assert values.min() >= lo and values.max() <= hi
    assert torch.equal(smooth_uv(labels, noisy, radius=0), noisy)


def test_alignment_matches_subject_box():
    labels, clean, _ = _jittered_sequence(frames=3, h=80, w=64)
    subject = torch.zeros(120, 96, dtype=torch.bool)
    subject[20:110, 30:70] = True
    a = alignment(labels[0] > 0, subject)
    out_labels, out_uv = apply_alignment(labels, clean, a)
    assert out_uv.shape == (3, 2, 120, 96)
    got = body_box(out_labels[0] > 0)
    want = body_box(subject)
    assert abs(got[1] - want[1]) <= 1 and abs(got[3] - want[3]) <= 1
    assert abs((got[0] + got[2]) - (want[0] + want[2])) <= 2
    # nearest sampling: every output value is one of the input values, background stays 0
    assert set(out_uv[0, 0].unique().tolist()) <= set(clean[0, 0].unique().tolist())
    assert ((out_uv[0] != 0).any(0) == (out_labels[0] > 0)).all()
    assert "scale" in a.describe() and "shift" in a.describe()


def test_refuses_other_files(tmp_path):
    with pytest.raises(AnimaPoseError, match="TorchScript model of another kind.*forward\\(Tensor x\\) -> Tensor"):
        load_densepose(str(densepose_torchscript_file("other")))
    wrong = load_densepose(str(densepose_torchscript_file("wrong_outputs")))
    with pytest.raises(AnimaPoseError, match="not a DensePose chart export: its fine segmentation has shape"):
        estimate(wrong, _frames(1))
    torch.save({"w": torch.zeros(2)}, tmp_path / "weights.pth")
    (tmp_path / "notes.torchscript").write_text("not a model")
    for name in ("weights.pth", "notes.torchscript"):
        with pytest.raises(AnimaPoseError, match=f"input 'model_name': '{name}' is not a TorchScript file.*Fix:"):
            load_densepose(str(tmp_path / name))


def _viridis_render(h=80, w=64):
    from comfyui_animapose.animapose.dreampose.poses import VIRIDIS

    img = VIRIDIS[0].expand(h, w, 3).clone()
    img[20:60, 20:44] = VIRIDIS[5]
    img[10:20, 25:39] = VIRIDIS[8]
    return img[None]


def _skeleton_render(h=80, w=64):
    img = torch.zeros(1, h, w, 3)
    img[0, 10:60, 30:33] = torch.tensor([1.0, 0.0, 0.0])
    img[0, 30:33, 15:50] = torch.tensor([0.0, 1.0, 0.0])
    img[0, 60:75, 25:28] = torch.tensor([0.0, 0.0, 1.0])
    return img


@pytest.mark.parametrize("kind,pattern", [("viridis", "Viridis colour-mapped DensePose"),
                                          ("skeleton", "OpenPose/DWPose skeleton"),
                                          ("uv", "DensePose UV map")])
def test_refuses_pose_renders_as_photos(kind, pattern):
    if kind == "viridis":
        images = _viridis_render()
    elif kind == "skeleton":
        images = _skeleton_render()
    else:
        labels, clean, _ = _jittered_sequence(frames=2, h=80, w=64)
        images = torch.cat([clean, torch.zeros_like(clean[:, :1])], 1).movedim(1, -1)
    with pytest.raises(AnimaPoseError, match=f"input 'images': the pictures look like .*{pattern}.*expects photos"
                                             ".*Fix: connect the video frames"):
        check_photos(images)


def test_accepts_photos():
    check_photos(_frames(4))
    grey = _frames(2).mean(-1, keepdim=True).expand(-1, -1, -1, 3)
    check_photos(grey)


def test_progress_and_interrupt():
    model = load_densepose(str(densepose_torchscript_file("tuple")))
    ticks = []
    estimate(model, _frames(3), progress=ticks.append)
    assert ticks == [1, 1, 1]

    class Stop(Exception):
        pass

    calls = []

    def interrupt():
        calls.append(1)
        if len(calls) == 2:
            raise Stop

    with pytest.raises(Stop):
        estimate(model, _frames(5), interrupt=interrupt)
    assert len(calls) == 2 and model.device == torch.device("cpu")


# -- the input convention, pinned against the public code that calls each export --------------------------------
# "dict" (dajes/DensePose-TorchScript, the exporter's own releases): run.py reads the frame with cv2.imread (BGR,
# (H, W, 3) uint8), turns it into a tensor with torch.from_numpy and calls the module with it; the scripted
# detectron2/engine/defaults.py DefaultPredictor.forward(original_image, bgr=True) takes "an image of shape
# (H, W, C)" in BGR ("Always take BGR image as the input").
# "tuple" (LayerNorm/DensePose-TorchScript-with-hint-image, as comfyui_controlnet_aux's DenseposeDetector calls it):
# the RGB uint8 numpy frame goes through rearrange(torch.from_numpy(image), 'h w c -> c h w') into the module.

class _Seen(Exception):
    pass


class _Recorder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.inputs = []

    def forward(self, image, bgr: bool = True):
        self.inputs.append(image)
        raise _Seen


def _recorded(call, signature):
    frame = torch.zeros(4, 6, 3, dtype=torch.uint8)
    frame[..., 0], frame[..., 1], frame[..., 2] = 10, 20, 30  # R, G, B
    recorder = _Recorder()
    with pytest.raises(_Seen):
        call(recorder, frame, signature)
    return recorder.inputs[0]


def check_input_convention(call):
    tuple_in = _recorded(call, "tuple")
    assert tuple_in.dtype == torch.uint8 and tuple_in.shape == (3, 4, 6)
    assert tuple_in[:, 0, 0].tolist() == [10, 20, 30]  # 'h w c -> c h w' of the RGB frame
    dict_in = _recorded(call, "dict")
    assert dict_in.dtype == torch.uint8 and dict_in.shape == (4, 6, 3)
    assert dict_in[0, 0].tolist() == [30, 20, 10]  # cv2.imread's BGR, channels last


def _pack_call(module, frame, signature):
    DensePoseModel(module, signature, "recorder")(frame)


def test_input_convention_is_the_public_callers():
    check_input_convention(_pack_call)
    check_input_convention(run_export)  # the reference the parity test runs the exports with


def test_mutation_dict_export_fed_rgb(monkeypatch):
    mutations.densepose_dict_export_fed_rgb(monkeypatch)
    with pytest.raises(AssertionError):
        check_input_convention(_pack_call)
