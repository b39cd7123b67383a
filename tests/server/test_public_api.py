"""What a user's ComfyUI sees of the pack: one copy of it, under one name, and a node API that only ever grows.

- The pack is linked in once, as ``custom_nodes/comfyui-animapose`` (the folder ``git clone`` gives): ComfyUI imports
  it once, serves its web folder once, and the Templates dialog lists its workflows under one category. A stale link of
  the pack's earlier name (``animapose``) in the base directory is removed when the base directory is prepared.
- Node IDs, input names (with their sections, types and choices) and output order are public API: saved workflows
  depend on them. The running pack is compared with the committed snapshot ``public_api.json``; the only allowed
  differences are additions (``python -m comfyui_animapose.workshop.public_api --write`` after adding on purpose).
"""

from __future__ import annotations

import json
from pathlib import Path

from comfyui_animapose.workshop.env import PACK_DIR_NAME, REPO
from comfyui_animapose.workshop.public_api import SNAPSHOT, differences, public_api
from comfyui_animapose.workshop.server import LEGACY_DIR_NAME, prepare_base_dir


def test_public_api_only_grows(comfy_server):
    api = public_api(comfy_server.object_info())
    snapshot = json.loads(SNAPSHOT.read_text())
    assert len(snapshot) == 35 and set(snapshot) <= set(api)
    diff = differences(snapshot, api)
    assert not diff, "\n".join(diff)


def test_the_pack_is_imported_once_under_one_name(comfy_server):
    log = comfy_server.log_text()
    import_lines = [line for line in log.splitlines() if "seconds:" in line and "custom_nodes" in line]
    pack_lines = [line for line in import_lines if line.rstrip().endswith(("/" + PACK_DIR_NAME, "/" + LEGACY_DIR_NAME))]
    assert len(pack_lines) == 1 and pack_lines[0].rstrip().endswith("/" + PACK_DIR_NAME), import_lines
    scripts = [e for e in comfy_server.get("/extensions") if e.endswith("/animapose.js")]
    assert scripts == [f"/extensions/{PACK_DIR_NAME}/animapose.js"], scripts
    templates = comfy_server.get("/api/workflow_templates")
    ours = {name: files for name, files in templates.items() if any("AnimateDiff" in f or "DreamPose" in f for f in files)}
    assert list(ours) == [PACK_DIR_NAME], list(templates)
    shipped = sorted(p.stem for p in (REPO / "workflows").glob("*.json"))
    assert sorted(ours[PACK_DIR_NAME]) == shipped


def test_preparing_a_base_directory_removes_a_stale_link(tmp_path):
    base = tmp_path / "base"
    (base / "custom_nodes").mkdir(parents=True)
    (base / "custom_nodes" / LEGACY_DIR_NAME).symlink_to(REPO, target_is_directory=True)
    other = tmp_path / "another_pack"
    other.mkdir()
    (base / "custom_nodes" / "another_pack").symlink_to(other, target_is_directory=True)
    prepare_base_dir(base)
    entries = sorted(p.name for p in (base / "custom_nodes").iterdir())
    assert entries == ["another_pack", PACK_DIR_NAME]
    assert Path(base / "custom_nodes" / PACK_DIR_NAME).resolve() == REPO
