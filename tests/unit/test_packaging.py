"""What a user installs is the pack, not its workshop.

Two ways a user gets the pack besides ``git clone``: the Comfy registry, whose archive ``comfy node pack`` builds from
the git-tracked files minus the ``.comfyignore`` patterns (gitwildmatch, as comfy-cli matches them), and a wheel
(``pip install`` of the repository), which holds the packages pyproject lists. Both are built here from a clean copy
of the tracked files and listed: they hold the runtime and its data, and none of the workshop, tests, scripts, CI,
docs or demo models.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pathspec

from comfyui_animapose.workshop.env import REPO

LEFT_OUT = ("workshop/", "tests/", "scripts/", ".ci/", "docs/", "demo_models/")
NEEDED = ("__init__.py", "nodes/__init__.py", "nodes/common.py", "animapose/motion/sampling/inflate.py",
          "animapose/dreampose/pipeline.py", "js/animapose.js", "models_info/motion_modules.json",
          "locales/en/nodeDefs.json", "requirements.txt", "LICENSE")


def _tracked() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout.split("\n")
    return [f for f in out if f and (REPO / f).is_file()]


def registry_archive_files() -> list[str]:
    # comfy-cli names the same git-ignore matching "gitwildmatch", which pathspec 1.x renamed
    spec = pathspec.PathSpec.from_lines("gitignore", [
        line.strip() for line in (REPO / ".comfyignore").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")])
    return [f for f in _tracked() if not spec.match_file(f)]


def test_registry_archive_holds_the_pack_only():
    files = registry_archive_files()
    assert not [f for f in files if f.startswith(LEFT_OUT)]
    assert set(NEEDED) <= set(files), set(NEEDED) - set(files)
    assert any(f.startswith("workflows/api/") for f in files) and any(f.endswith(".jpg") for f in files)


def test_wheel_holds_the_pack_only(tmp_path):
    src = tmp_path / "src"
    for f in _tracked():
        (src / f).parent.mkdir(parents=True, exist_ok=True)
        (src / f).write_bytes((REPO / f).read_bytes())
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path / "dist"), str(src)], check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = [n for n in zipfile.ZipFile(wheel).namelist() if not n.split("/")[0].endswith(".dist-info")]
    assert names and all(n.startswith("comfyui_animapose/") for n in names), names[:5]
    inside = {n[len("comfyui_animapose/"):] for n in names}
    assert not [n for n in inside if n.startswith(LEFT_OUT)], sorted(n for n in inside if n.startswith(LEFT_OUT))[:5]
    assert set(NEEDED) <= inside, set(NEEDED) - inside
    runtime = {f for f in _tracked() if f.endswith(".py") and f.startswith(("nodes/", "animapose/"))}
    assert runtime <= inside, sorted(runtime - inside)[:5]
    assert Path(REPO / "workshop").is_dir()
