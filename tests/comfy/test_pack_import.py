"""The pack is imported the way ComfyUI imports it: one package rooted at the checkout (``comfyui_animapose``,
relative imports inside), never with the repository root on ``sys.path``, so ``import nodes`` is always ComfyUI's
``nodes.py`` and there is one copy of every pack module."""

from __future__ import annotations

import sys
from pathlib import Path

import comfyui_animapose
from comfyui_animapose.workshop.env import COMFYUI, REPO


def test_the_pack_is_this_checkout_and_nodes_is_comfyuis():
    import nodes

    assert Path(comfyui_animapose.__file__).resolve() == REPO / "__init__.py"
    assert Path(nodes.__file__).resolve() == (COMFYUI / "nodes.py").resolve()
    assert all(Path(p or ".").resolve() != REPO for p in sys.path), "the repository root is on sys.path"


def test_one_copy_of_every_pack_module():
    from comfyui_animapose.animapose.errors import AnimaPoseError
    from comfyui_animapose.nodes.common import PackNode

    names = [n for n, m in sys.modules.items() if m is not None and Path(getattr(m, "__file__", None) or "").is_absolute()
             and Path(m.__file__).resolve().is_relative_to(REPO)
             and not Path(m.__file__).resolve().is_relative_to(REPO / "tests")]  # pytest names test files itself
    # pytest itself imports the repository root's __init__.py under a name of its own (`__init__`, or the checkout
    # folder's name: the root is a package, and pytest looks for a setup_module in every package above a test); that
    # file only defines names and imports nothing
    names = [n for n in names if not (n != "comfyui_animapose"
                                      and Path(sys.modules[n].__file__).resolve() == REPO / "__init__.py"
                                      and "nodes" not in vars(sys.modules[n])
                                      and {"WEB_DIRECTORY", "comfy_entrypoint"} <= set(vars(sys.modules[n])))]
    assert names and all(n == "comfyui_animapose" or n.startswith("comfyui_animapose.") for n in names), names
    assert PackNode.__module__ == "comfyui_animapose.nodes.common" and AnimaPoseError is comfyui_animapose.animapose.errors.AnimaPoseError
