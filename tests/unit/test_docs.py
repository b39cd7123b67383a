"""Every repository path and command the README and ``docs/`` name exists: a renamed file or module fails here,
not in a reader's terminal.

Read from the Markdown: each code span that starts with a top-level entry of the repository (``nodes/``,
``workshop/``, ``workflows/09 ...json``) is a path that must exist (a ``::name`` suffix must be defined in the file),
each ``./scripts/...`` or ``scripts/...`` command a script, each ``python -m comfyui_animapose...`` a module that can
run (a package with ``__main__``, or a module with a ``__main__`` block), each relative link a file. ``tests/...``
arguments of a command are paths too. The README is a newcomer's page: at most 300 lines.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
from pathlib import Path

import pytest

from comfyui_animapose.workshop.env import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SPAN = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"\]\(([^)\s]+)\)")
MODULE = re.compile(r"python -m (comfyui_animapose[\w.]*)")


def _top_level() -> set[str]:
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split("\n")
    return {f.split("/")[0] for f in files if f} | {"workshop"}


TOP = _top_level()


def _paths(span: str) -> list[str]:
    """The repository paths a code span names: the span itself when it is a path (spaces allowed, as in the
    workflows' names), or the path-like words of a command."""
    first = span.split("/")[0]
    if first in TOP and "/" in span and not span.startswith(("scripts/", "./")) and " --" not in span:
        return [span.split("::")[0].rstrip(".,")]
    words = span.replace("./", "").split()
    return [w.split("::")[0] for w in words if w.split("/")[0] in TOP and "/" in w and not w.startswith("-")]


def _exists(path: str) -> bool:
    if any(c in path for c in "*<{"):
        pattern = re.sub(r"<[^>]*>", "*", path)
        return any(REPO.glob(pattern))
    return (REPO / path).exists()


def _runnable(module: str) -> bool:
    spec = importlib.util.find_spec(module)
    if spec is None:
        return False
    if spec.submodule_search_locations:  # a package: needs __main__
        return importlib.util.find_spec(module + ".__main__") is not None
    return "if __name__ == \"__main__\":" in Path(spec.origin).read_text()


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_named_paths_and_commands_exist(page):
    text = page.read_text()
    missing = []
    for span in SPAN.findall(text):
        for module in MODULE.findall(span):
            if module.endswith("."):  # a placeholder such as comfyui_animapose.workshop.<tool>
                continue
            if not _runnable(module):
                missing.append(f"module {module}")
        for path in _paths(span):
            if not _exists(path):
                missing.append(path)
    for target in LINK.findall(text):
        if "://" in target or target.startswith("#"):
            continue
        path = (page.parent / target.split("#")[0]).resolve()
        if not path.exists():
            missing.append(f"link {target}")
    assert not missing, f"{page.relative_to(REPO)} names what does not exist:\n" + "\n".join(missing)


def test_readme_is_a_newcomers_page():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= 300, len(lines)
    text = "\n".join(lines)
    for command in ("./scripts/demo.sh", "./scripts/test.sh", "git clone", "custom_nodes"):
        assert command in text, command


def test_ci_runs_the_readme_test_command():
    run = (REPO / ".ci" / "run").read_text()
    assert "scripts/test.sh" in run
