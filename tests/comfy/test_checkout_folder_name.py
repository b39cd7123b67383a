"""The in-process tier works whatever the checkout folder is called.

Both the repository and ComfyUI have a top-level ``nodes``. When the folder name is not a Python identifier (a clone
named ``comfyui-animapose``, a CI work folder), pytest puts the repository first on ``sys.path`` before every test
module, and a test's ``import nodes`` found the pack's package instead of ComfyUI's ``nodes.py`` (a CI run:
12 comfy-tier failures, "attempted relative import beyond top-level package"). This runs a probe test in such a copy."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from tests.harness.env import COMFYUI, REPO

PROBE = '''
def test_probe():
    import nodes

    assert hasattr(nodes, "NODE_CLASS_MAPPINGS"), nodes.__file__
'''


def test_import_nodes_is_comfyuis_in_a_checkout_named_like_a_clone(tmp_path):
    copy = tmp_path / "comfyui-animapose"
    for rel in ("__init__.py", "pyproject.toml", "tests/__init__.py", "tests/conftest.py", "tests/comfy/__init__.py",
                "tests/comfy/conftest.py"):
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / rel, copy / rel)
    for folder in ("nodes", "tests/harness"):
        shutil.copytree(REPO / folder, copy / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "tests/comfy/test_probe.py").write_text(PROBE)
    env = {**os.environ, "ANIMAPOSE_COMFYUI": str(COMFYUI)}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/comfy/test_probe.py"],
                         cwd=copy, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "1 passed" in run.stdout
