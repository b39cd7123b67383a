"""What the nodes check when a prompt is queued: their ``validate_inputs`` run the parser ``execute`` runs (so both
refuse the same numbers typed as text), repeat the range checks ComfyUI skips for the inputs they name, and leave
linked inputs (None at queue time) to ``execute``. And the on-prompt handler that refuses non-boolean values of the
pack's boolean inputs. Over HTTP the same cases are rows of tests/server/test_hostile.py."""

from __future__ import annotations

import importlib

import pytest


def _pack(module: str):
    return importlib.import_module(f"comfyui_animapose.nodes.{module}")


@pytest.mark.parametrize("module,node,values,words", [
    ("animatediff_controls", "MotionMultival", {"per_frame": "0: 1e30"}, "outside -10..10"),
    ("animatediff_controls", "PromptTravel", {"text": "0: a\n9: b", "frames": 4}, "outside the clip's frames 0..3"),
    ("animatediff_controls", "PromptTravel", {"text": "0: a", "frames": 0}, "outside 1..4096"),
    ("animatediff_i2v", "PIAImage", {"frames": 4, "custom_affinity": "1, 1, 1, 1, 1"}, "5 values for a clip of 4"),
    ("animatediff_i2v", "PIAImage", {"frames": 4, "custom_affinity": "-5, 1"}, "outside 0..1"),
    ("animatediff_i2v", "SparseCtrlKeyframes", {"frame_indices": "1000000000"}, "outside -4096..4095"),
])
def test_refused_when_queued(module, node, values, words):
    cls = getattr(_pack(module), node)
    message = cls.validate_inputs(**values)
    assert isinstance(message, str), message
    assert message.startswith(f"{cls.DISPLAY}: input '") and words in message and "Fix:" in message, message


def test_linked_inputs_wait_for_execute():
    """A linked 'frames' is None when the prompt is queued: the values are checked alone, the count when it runs."""
    i2v, controls = _pack("animatediff_i2v"), _pack("animatediff_controls")
    assert i2v.PIAImage.validate_inputs(frames=None, custom_affinity=", ".join(["1"] * 100)) is True
    assert i2v.PIAImage.validate_inputs(frames=4, custom_affinity=None) is True
    assert controls.PromptTravel.validate_inputs(text="0: a\n4095: b", frames=None) is True
    assert controls.MotionMultival.validate_inputs(per_frame=None) is True
    assert controls.MotionMultival.validate_inputs(per_frame="0: 1, 15: 0.5") is True


def test_non_booleans_are_refused_by_the_on_prompt_handler():
    booleans = _pack("boolean_inputs")
    prompt = {
        "1": {"class_type": "AnimaPose_ContextWindows", "inputs": {"closed_loop": "maybe"}},
        "2": {"class_type": "AnimaPose_ContextWindows", "inputs": {"closed_loop": False}},
        "3": {"class_type": "AnimaPose_ContextWindows", "inputs": {"closed_loop": ["9", 0]}},
        "4": {"class_type": "AnimaPose_TrainMotionModule", "inputs": {"gradient_checkpointing": {"__value__": 1}}},
        "5": {"class_type": "SomeOtherPack_Node", "inputs": {"closed_loop": "maybe"}},
    }
    out = booleans.refuse_non_booleans({"prompt": prompt})
    assert out["prompt"] is prompt
    refused = prompt["1"]["inputs"]["closed_loop"]
    assert refused == "maybe"  # what the client sent, for ComfyUI's error payload
    with pytest.raises(ValueError) as e:
        bool(refused)  # what ComfyUI's BOOLEAN conversion does while validating
    assert str(e.value).startswith("AnimateDiff Context Options / Windows: input 'closed_loop': 'maybe' is not true")
    assert prompt["2"]["inputs"]["closed_loop"] is False and prompt["3"]["inputs"]["closed_loop"] == ["9", 0]
    with pytest.raises(ValueError, match="input 'gradient_checkpointing': 1 is not true or false"):
        bool(prompt["4"]["inputs"]["gradient_checkpointing"])
    assert prompt["5"]["inputs"]["closed_loop"] == "maybe" and type(prompt["5"]["inputs"]["closed_loop"]) is str
    assert booleans.refuse_non_booleans({"no_prompt": 1}) == {"no_prompt": 1}


def test_runtime_messages_use_the_display_names():
    """Errors raised during sampling name a node by the runtime's own constant (no node layer adds it there): each
    must be the display name the user sees."""
    from comfyui_animapose.animapose.dreampose.guidance import GUIDER_NODE
    from comfyui_animapose.animapose.motion.addons.camera_trajectories import TRAJECTORY_NODE
    from comfyui_animapose.animapose.motion.addons.cameractrl import APPLY_NODE as CAMERA_APPLY
    from comfyui_animapose.animapose.motion.addons.pia_affinity import PIA_NODE
    from comfyui_animapose.animapose.motion.addons.sparsectrl_keyframes import KEYFRAMES_NODE
    from comfyui_animapose.animapose.motion.controls.multival import MULTIVAL_NODE
    from comfyui_animapose.animapose.motion.controls.prompt_travel import NODE as TRAVEL_NODE
    from comfyui_animapose.animapose.motion.sampling.stages import APPLY_NODE

    ad, i2v, controls, camera, dreampose = (_pack(m) for m in ("animatediff", "animatediff_i2v",
                                                               "animatediff_controls", "animatediff_camera",
                                                               "dreampose"))
    assert ad.ApplyMotionModel.DISPLAY == APPLY_NODE
    assert (i2v.PIAImage.DISPLAY, i2v.SparseCtrlKeyframes.DISPLAY) == (PIA_NODE, KEYFRAMES_NODE)
    assert i2v.LoadSparseCtrl.DISPLAY == "Load AnimateDiff SparseCtrl"
    assert (controls.MotionMultival.DISPLAY, controls.PromptTravel.DISPLAY) == (MULTIVAL_NODE, TRAVEL_NODE)
    assert (camera.CameraTrajectory.DISPLAY, camera.ApplyCameraCtrl.DISPLAY) == (TRAJECTORY_NODE, CAMERA_APPLY)
    assert dreampose.DreamPoseGuider.DISPLAY == GUIDER_NODE
