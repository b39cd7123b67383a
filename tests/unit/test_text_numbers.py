"""Numbers typed as text get the range and count rules of their widget twins, checked by the one parser each node
runs when the prompt is queued and when it executes: multival per-frame factors, PIA affinities, SparseCtrl keyframe
indices, camera pose files and prompt-travel schedules (and its text guard). Also the backstop that names the
likely control when a model output turns non-finite, and the error type's stable module name."""

from __future__ import annotations

import math

import pytest
import torch

from comfyui_animapose.animapose.errors import AnimaPoseError
from comfyui_animapose.animapose.motion import MAX_FRAMES
from comfyui_animapose.animapose.motion.addons.camera_trajectories import (
    TRAJECTORY_NODE,
    parse_pose_text,
    preset_trajectory,
)
from comfyui_animapose.animapose.motion.addons.pia_affinity import PIA_NODE, affinity_schedule, parse_affinity
from comfyui_animapose.animapose.motion.addons.sparsectrl_keyframes import (
    KEYFRAMES_NODE,
    keyframe_plan,
    parse_frame_indices,
)
from comfyui_animapose.animapose.motion.controls.multival import MULTIVAL_NODE, Multival, parse_per_frame
from comfyui_animapose.animapose.motion.controls.prompt_travel import NODE as TRAVEL_NODE
from comfyui_animapose.animapose.motion.controls.prompt_travel import TEXT_LIMIT, encode_schedule, parse_schedule
from comfyui_animapose.animapose.motion.sampling.stages import APPLY_NODE, MotionStage, non_finite_error
from comfyui_animapose.animapose.numerics import check_model_output


def _refused(call, *words, node=None, input_name=None):
    with pytest.raises(AnimaPoseError) as e:
        call()
    message = str(e.value)
    for w in words:
        assert w in message, f"{w!r} missing from: {message}"
    if node is not None:
        assert e.value.node == node, message
    if input_name is not None:
        assert e.value.input_name == input_name, message
    assert "Fix:" in message
    return e.value


# -- multival per_frame: the 'value' widget's range -10..10, at most 4096 items/frames -------------------------------

@pytest.mark.parametrize("text,words", [
    ("0: 1e30", ["1e+30", "outside -10..10"]),
    ("0: -100", ["-100", "outside -10..10"]),
    ("1, 10.5", ["item 2", "10.5"]),
    ("0: 1, 1" + "0" * 20 + ": 1", ["item 2", "outside 0..4095"]),
    ("4096: 1", ["outside 0..4095"]),
    ("1" * 5000 + ": 1", ["outside 0..4095"]),  # more digits than Python converts: still the range error
    (", ".join(["1"] * (MAX_FRAMES + 1)), ["4097 items"]),
])
def test_per_frame_follows_the_value_widget(text, words):
    _refused(lambda: parse_per_frame(text), *words, node=MULTIVAL_NODE, input_name="per_frame")


def test_per_frame_accepts_the_widget_range():
    assert parse_per_frame("0: -10, 4095: 10") == (None, [(0, -10.0), (4095, 10.0)])
    assert parse_per_frame(", ".join(["0.5"] * MAX_FRAMES))[0] == [0.5] * MAX_FRAMES


# -- PIA affinity: 0..1 as PIA's help says, at most 'frames' values, fewer padded with the last -----------------------

@pytest.mark.parametrize("text,frames,words", [
    ("1e30, 1, 1, 1", 4, ["value 1", "outside 0..1"]),
    ("-5, 1, 1, 1", 4, ["value 1 (-5)", "outside 0..1"]),
    ("1, 1.01", 4, ["value 2"]),
    (", ".join(["1"] * 100), 4, ["100 values for a clip of 4 frames", "at most 4 values"]),
    ("1, nan", 4, ["not a finite number"]),
    ("1, x", 4, ["'x'"]),
    (" , ", 4, ["no numbers"]),
])
def test_affinity_rules(text, frames, words):
    _refused(lambda: parse_affinity(text, frames), *words, node=PIA_NODE, input_name="custom_affinity")
    _refused(lambda: affinity_schedule(frames, "small motion", text), *words, node=PIA_NODE)


def test_fewer_affinities_repeat_the_last_as_pias_presets_do():
    assert affinity_schedule(4, "small motion", "1") == [1.0, 1.0, 1.0, 1.0]
    assert affinity_schedule(5, "small motion", "1, 0.5") == [1.0, 0.5, 0.5, 0.5, 0.5]
    assert affinity_schedule(3, "small motion", "1, 0.9, 0.8") == [1.0, 0.9, 0.8]
    # without a frame count (a linked 'frames' when the prompt is queued) only the values are checked
    assert parse_affinity(", ".join(["0.5"] * 100)) == [0.5] * 100
    # the presets are padded the same way
    assert affinity_schedule(8, "style transfer (large motion)") == [0.5] + [0.2] * 7


# -- SparseCtrl keyframe indices ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text,words", [
    ("0, 1000000000", ["item 2", "outside -4096..4095"]),
    ("-4097", ["outside -4096..4095"]),
    ("9" * 5000, ["outside -4096..4095"]),
    ("0, 1.5", ["item 2", "not a whole number"]),
    ("0, --1", ["not a whole number"]),
    ("0, ٣", ["not a whole number"]),
    ("3, 3", ["frame 3 is listed twice"]),
    (", ".join(str(i) for i in range(MAX_FRAMES + 1)), ["4097 frame numbers"]),
])
def test_frame_indices_refused_when_queued(text, words):
    _refused(lambda: parse_frame_indices(text), *words, node=KEYFRAMES_NODE, input_name="frame_indices")


def test_frame_indices_accepted():
    assert parse_frame_indices(" ") is None
    assert parse_frame_indices("0; -1, +4") == [0, -1, 4]
    assert parse_frame_indices("-4096, 4095") == [-4096, 4095]


@pytest.mark.parametrize("indices,images,frames,words", [
    ([0, 99], 2, 16, ["frame 99 is outside the clip of 16 frames", "0 to 15"]),
    ([-99], 1, 16, ["frame -99 is outside the clip of 16 frames"]),
    ([0, 1, 2], 2, 16, ["3 frame numbers but only 2 hint image(s)"]),
    ([0, -4], 2, 4, ["0 and -4 both name frame 0"]),
])
def test_keyframe_plan_errors_name_the_keyframes_node(indices, images, frames, words):
    """Raised inside the sampler (only it knows the clip's length), owned by the keyframes node."""
    _refused(lambda: keyframe_plan(indices, images, frames), *words, node=KEYFRAMES_NODE, input_name="frame_indices")


# -- camera pose files: the presets' limits, and one frame rule for presets and files ------------------------------

def _pose_line(t=0, fx=0.47, fy=0.84, rot=((1, 0, 0), (0, 1, 0), (0, 0, 1)), move=(0, 0, 0)) -> str:
    values = [t, fx, fy, 0.5, 0.5, 0, 0]
    for row, m in zip(rot, move):
        values += [*row, m]
    return " ".join(str(v) for v in values)


def _pose_file(*lines) -> str:
    return "https://example.com/clip\n" + "\n".join(lines) + "\n"


@pytest.mark.parametrize("line,words", [
    (_pose_line(move=(1e30, 0, 0)), ["1e+30", "beyond the 10000"]),
    (_pose_line(fx=2e4), ["20000", "beyond the 10000"]),
    (_pose_line(rot=((2, 0, 0), (0, 2, 0), (0, 0, 2))), ["not a rotation"]),
    (_pose_line(rot=((-1, 0, 0), (0, 1, 0), (0, 0, 1))), ["not a rotation"]),
    (_pose_line(fx=0), ["focal length of 0 or less"]),
])
def test_pose_file_numbers(line, words):
    _refused(lambda: parse_pose_text(_pose_file(_pose_line(), line)), *words, input_name="pose_file")


def test_pose_file_limits_accept_real_files():
    # RealEstate10K timestamps are microseconds: that column is not read, so it has no limit
    t = parse_pose_text(_pose_file(_pose_line(t=45545000), _pose_line(t=45578000, move=(0.1, 0, 9999))))
    assert t.frames == 2 and not t.exact
    _refused(lambda: parse_pose_text(_pose_file(*[_pose_line()] * (MAX_FRAMES + 1))), "4097 poses",
             node=TRAJECTORY_NODE)


def test_one_frame_rule_for_presets_and_pose_files():
    """A preset is made for exactly 'frames' frames (like Prompt Travel's frames): a 4096-frame move on a 4-frame
    latent is refused just like a 1-frame one. A pose file covers a clip of at most its length and a shorter clip
    follows its first poses (said in its description)."""
    preset = preset_trajectory("zoom in", 4)
    preset.check_clip(4, APPLY_NODE)
    for frames in (1, 4096):
        _refused(lambda: preset_trajectory("zoom in", frames).check_clip(4, APPLY_NODE),
                 f"made for {frames} frames but the latent has 4", "set 'frames'", node=APPLY_NODE, input_name="camera")
    pose = parse_pose_text(_pose_file(*[_pose_line()] * 6))
    pose.check_clip(4, APPLY_NODE)
    pose.check_clip(6, APPLY_NODE)
    assert "first poses" in pose.describe()
    _refused(lambda: pose.check_clip(8, APPLY_NODE), "has 6 frames but the latent has 8", node=APPLY_NODE)


# -- prompt travel: frames and the text guard -------------------------------------------------------------------

def test_prompt_travel_frames_and_text_guard():
    assert parse_schedule("0: a cat\n4095: a dog", None) == [(0, "a cat"), (4095, "a dog")]
    _refused(lambda: parse_schedule("0: a cat\n4096: a dog", None), "outside the clip's frames 0..4095",
             node=TRAVEL_NODE, input_name="text")
    _refused(lambda: parse_schedule("0: a cat\n" + "9" * 5000 + ": a dog", 16), "line 2", "0..15", node=TRAVEL_NODE)
    e = _refused(lambda: parse_schedule("0: a cat\n8: a d\ud800og", 16), "line 2, character 7 is U+D800",
                 node=TRAVEL_NODE, input_name="text")
    assert "surrogate" in e.problem
    long = "0: " + "a cat " * (TEXT_LIMIT // 6)
    _refused(lambda: parse_schedule(long, 16), f"more than the {TEXT_LIMIT:,}", node=TRAVEL_NODE)
    assert parse_schedule(long[:TEXT_LIMIT], 16)[0][0] == 0


class _FakeClip:
    """Encodes a prompt to ``int(prompt)`` tokens of width 768 (the length is all the guard looks at)."""

    def __init__(self):
        self.encoded = []

    def tokenize(self, text):
        return text

    def encode_from_tokens_scheduled(self, tokens):
        self.encoded.append(tokens)
        return [[torch.zeros(1, int(tokens), 768), {"pooled_output": torch.zeros(1, 768)}]]


def test_prompts_of_many_lengths_are_refused_before_the_per_frame_rows_exist():
    """Prompts of 2, 3, 5 and 7 chunks repeat to 210 chunks each: 400 frames of that are 19 GB."""
    schedule = [(0, "154"), (100, "231"), (200, "385"), (300, "539")]
    clip = _FakeClip()
    _refused(lambda: encode_schedule(clip, schedule, 400), "154, 231, 385, 539 tokens", "16170 tokens",
             node=TRAVEL_NODE, input_name="text")
    cond = encode_schedule(_FakeClip(), [(0, "154"), (8, "77")], 16)[0][0]
    assert cond.shape == (16, 154, 768)


# -- the backstop ---------------------------------------------------------------------------------------------------

def _stage(effect=None, scale=None, keyframes=()):
    return MotionStage("animapose", "mm_sd_v15_v2.ckpt", [], effect or Multival(1.0), scale or Multival(1.0), False,
                       keyframes=list(keyframes))


def test_non_finite_output_names_the_likely_control():
    x = torch.zeros(2, 4, 2, 2)
    bad = torch.full((2, 4, 2, 2), math.nan)
    check_model_output(x, torch.zeros(2, 4, 2, 2), lambda: pytest.fail("blamed a finite output"))
    cases = [(_stage(effect=Multival(1e30)), "motion_scale"),
             (_stage(effect=Multival(1.0, frame_points=[(0, 1.0)])), "effect_multival"),
             (_stage(scale=Multival(50.0)), "scale"),
             (_stage(), "motion_scale")]
    for stage, input_name in cases:
        e = _refused(lambda: check_model_output(x, bad, lambda: non_finite_error([stage], 3.5)), "NaN or infinite",
                     "sigma 3.5", "mm_sd_v15_v2.ckpt", node=APPLY_NODE, input_name=input_name)
        assert ("precision" in e.fix) == (input_name == "motion_scale" and stage.effect.value == 1.0)
    # a latent that was already broken is named as such, not blamed on the motion model
    _refused(lambda: check_model_output(bad, bad, lambda: non_finite_error([_stage()], None)), "already holds NaN",
             input_name="latent_image")


def test_error_type_has_a_stable_module_name():
    """ComfyUI reports module + class name; the pack's module is imported under its absolute folder path."""
    assert f"{AnimaPoseError.__module__}.{AnimaPoseError.__qualname__}" == "animapose.errors.AnimaPoseError"
