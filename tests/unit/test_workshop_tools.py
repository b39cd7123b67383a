"""Every command-line tool of the workshop runs as ``python -m comfyui_animapose.workshop.<tool> --help``, from any
folder, and prints its usage without doing any work."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from comfyui_animapose.workshop.env import REPO

TOOLS = sorted(
    "comfyui_animapose." + ".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__main__")
    for p in (REPO / "workshop").rglob("*.py") if 'if __name__ == "__main__":' in p.read_text())


def _help(module: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, "--help"], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def helps(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("elsewhere")
    with ThreadPoolExecutor(4) as pool:
        return dict(zip(TOOLS, pool.map(lambda m: _help(m, cwd), TOOLS)))


def test_every_tool_is_found():
    assert len(TOOLS) >= 15 and "comfyui_animapose.workshop.parity" in TOOLS, TOOLS


@pytest.mark.parametrize("module", TOOLS)
def test_help(helps, module):
    run = helps[module]
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.startswith("usage: python -m " + module), run.stdout[:300]


def test_every_workshop_module_imports():
    """Modules that are not tools (the harness, fixtures, parity helpers) import cleanly too, with ComfyUI set up as
    the tests set it up."""
    modules = sorted("comfyui_animapose." + ".".join(p.relative_to(REPO).with_suffix("").parts)
                     for p in (REPO / "workshop").rglob("*.py") if p.name != "__main__.py")
    script = ("import importlib\nfrom comfyui_animapose.workshop import comfy_env\ncomfy_env.bootstrap()\n"
              f"for name in {modules!r}:\n    importlib.import_module(name.removesuffix('.__init__'))\n")
    run = subprocess.run([sys.executable, "-c", script], cwd=REPO / "workshop", capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
