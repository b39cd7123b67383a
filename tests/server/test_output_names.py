"""Names of the files the nodes write, in the real server: a bad name is refused before any work, and good names
(sub-folders included) land where the loaders list them.

A refusal at queue time is the proof that nothing ran: POST /prompt answers 400 and nothing is queued. A name that
arrives through a link is only known when the node starts; it is refused then, before the first training step (a
million steps would take hours, the refusal takes seconds). Nothing is written in any case.
"""

from __future__ import annotations

import time

import pytest

from comfyui_animapose.workshop.graphs import train_motion_prompt
from comfyui_animapose.workshop.hostile import CASES
from comfyui_animapose.workshop.server import ExecutionFailed

TRAIN, SAVE = "Train AnimateDiff Motion Module", "Save DreamPose Model"
NODES = {"AnimaPose_TrainMotionModule": TRAIN, "AnimaPose_SaveDreamPose": SAVE}
STEPS = 1000000


def _train(save_name, mode="motion_lora", steps=STEPS) -> dict:
    p = train_motion_prompt(mode, steps)
    p["9"]["inputs"]["save_name"] = save_name
    return p


def _save_dreampose(prefix) -> dict:
    return {"1": {"class_type": "AnimaPose_LoadDreamPose",
                  "inputs": {"unet_name": "unet_epoch_20.pth", "adapter_name": "adapter_20.pth"}},
            "3": {"class_type": "AnimaPose_SaveDreamPose",
                  "inputs": {"model": ["1", 0], "adapter": ["1", 1], "filename_prefix": prefix}}}


def _files(server) -> set[str]:
    """Every file below the models and output folders (links to folders not followed)."""
    base = server.base
    return {str(p.relative_to(base)) for d in ("models", "output") for p in (base / d).rglob("*")
            if p.is_file() or p.is_symlink()}


def _refused_when_queued(server, prompt, node: str, input_name: str, words: str) -> str:
    before = _files(server)
    with pytest.raises(ExecutionFailed) as err:
        server.queue(prompt)
    message = str(err.value)
    assert message.startswith("POST /prompt -> HTTP 400"), message
    for part in (node, f"input '{input_name}'", words, "Fix:"):
        assert part in message, f"{part!r} missing from: {message}"
    assert _files(server) == before
    return message


def _table_rows() -> list:
    """The output-name rows of the hostile table whose name is typed in (not linked), as (case, prompt, node, input,
    words)."""
    rows = []
    for case, (_, edit, node_class, input_name, words) in CASES.items():
        if input_name not in ("save_name", "filename_prefix"):
            continue
        prompt = edit({})
        (node,) = [n for n in prompt.values() if n["class_type"] == node_class]
        if isinstance(node["inputs"][input_name], str):
            rows.append(pytest.param(prompt, NODES[node_class], input_name, words, id=case))
    return rows


@pytest.mark.parametrize("prompt, node, input_name, words", _table_rows())
def test_typed_bad_names_refused_when_queued(comfy_server, prompt, node, input_name, words):
    _refused_when_queued(comfy_server, prompt, node, input_name, words)


def test_more_bad_names_refused_when_queued(comfy_server):
    _refused_when_queued(comfy_server, _train("v2_lora_ZoomIn"), TRAIN, "save_name", "is the name of a released model")
    _refused_when_queued(comfy_server, _train("walk.safetensors"), TRAIN, "save_name", "the extension is added")
    _refused_when_queued(comfy_server, _save_dreampose("a\\b"), SAVE, "filename_prefix", "(U+005C)")


def test_names_that_depend_on_the_model_folder(comfy_server, tmp_path):
    """A file of the same name with another extension (the loader would list the name twice), and a sub-folder that
    is a link leading out of the model folder; both in the folder the mode saves into."""
    folder = comfy_server.base / "models" / "animatediff_motion_lora"
    (folder / "names_twin.ckpt").write_bytes(b"x")
    (folder / "names_elsewhere").symlink_to(tmp_path, target_is_directory=True)
    _refused_when_queued(comfy_server, _train("names_twin"), TRAIN, "save_name",
                         "models/animatediff_motion_lora already has 'names_twin.ckpt'")
    _refused_when_queued(comfy_server, _train("names_elsewhere/x"), TRAIN, "save_name",
                         "leads outside models/animatediff_motion_lora")
    assert not list(tmp_path.iterdir())


def test_linked_name_refused_before_the_first_step(comfy_server):
    """A name from a linked String node is only known when the node starts: refused then, in seconds, not after a
    million steps."""
    prompt = _train(["50", 0])
    prompt["50"] = {"class_type": "PrimitiveString", "inputs": {"value": "../x"}}
    before = _files(comfy_server)
    start = time.monotonic()
    try:
        with pytest.raises(ExecutionFailed) as err:
            comfy_server.run(prompt, timeout=120)
    finally:
        if time.monotonic() - start > 110:
            comfy_server.interrupt()  # it trains: stop it, so the next tests get the server
    elapsed = time.monotonic() - start
    message = str(err.value)
    for part in (TRAIN, "input 'save_name'", "the folder part '..'", "Fix:"):
        assert part in message, message
    assert elapsed < 60, f"{elapsed:.0f} s: the name was refused after training started"
    assert _files(comfy_server) == before


def test_sub_folder_names_save_where_the_loaders_list_them(comfy_server):
    lora_folder = comfy_server.base / "models" / "animatediff_motion_lora"
    entry = comfy_server.run(_train("names people/anna walk", steps=1), timeout=600)
    assert (lora_folder / "names people" / "anna walk.safetensors").is_file(), entry
    assert "saved " in str(entry["outputs"]["9"])
    loras = comfy_server.object_info()["AnimaPose_LoadMotionLoRA"]["input"]["required"]["lora_name"]
    assert "names people/anna walk.safetensors" in str(loras)

    comfy_server.run(_save_dreampose("names people/anna"), timeout=600)
    folder = comfy_server.base / "models" / "dreampose" / "names people"
    assert sorted(f.name for f in folder.iterdir()) == ["anna_00001_adapter.safetensors", "anna_00001_unet.safetensors"]
