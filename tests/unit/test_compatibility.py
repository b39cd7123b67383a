"""The seam's table of ComfyUI internals against the code and the compatibility page, read from the source (no
ComfyUI imported), and the seam's own adapters on stand-ins for what newer ComfyUI hands them."""

from __future__ import annotations

import ast
import re
import subprocess
from types import SimpleNamespace

import pytest
import tomllib
import torch

from comfyui_animapose.animapose import comfy_seam
from comfyui_animapose.animapose.comfy_seam import internals
from comfyui_animapose.workshop.env import REPO

COMFY_TOP = ("comfy", "comfy_extras", "folder_paths")
PAGE = REPO / "docs" / "compatibility.md"
BEGIN, END = "<!-- internals:begin (generated from animapose/comfy_seam/internals.py) -->", "<!-- internals:end -->"


def _files(*folders: str) -> list[str]:
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", *folders], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout.split()
    return [f for f in out if f.endswith(".py") and (REPO / f).is_file()]


def used_internals() -> dict[str, set[str]]:
    """{dotted ComfyUI name: files} of every module attribute, class and function the shipped pack uses: through
    the seam in ``animapose/``, imported directly in ``nodes/`` and ``__init__.py``."""
    found: dict[str, set[str]] = {}
    for path in _files("animapose", "nodes", "__init__.py"):
        if path.startswith("animapose/comfy_seam/"):
            continue
        tree = ast.parse((REPO / path).read_text(), path)
        local: dict[str, str] = {}  # local name -> ComfyUI module
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "comfy_seam" and node.level:
                for a in node.names:
                    if a.name in comfy_seam.MODULES:
                        local[a.asname or a.name] = comfy_seam.MODULES[a.name]
                    elif a.name in comfy_seam.OBJECTS:
                        module, attribute = comfy_seam.OBJECTS[a.name]
                        found.setdefault(f"{module}.{attribute}", set()).add(path)
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.split(".")[0] in COMFY_TOP:
                        local[a.asname or a.name] = a.name
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module \
                    and node.module.split(".")[0] in COMFY_TOP:
                for a in node.names:
                    found.setdefault(f"{node.module}.{a.name}", set()).add(path)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):
                chain, value = [node.attr], node.value
                while isinstance(value, ast.Attribute):
                    chain.insert(0, value.attr)
                    value = value.value
                if not isinstance(value, ast.Name):
                    continue
                dotted = ".".join([value.id, *chain])
                # the longest local module that prefixes the chain, then the attribute right after it
                for name in sorted(local, key=len, reverse=True):
                    if dotted.startswith(name + "."):
                        attribute = dotted[len(name) + 1:].split(".")[0]
                        found.setdefault(f"{local[name]}.{attribute}", set()).add(path)
                        break
    return found


def test_the_scan_sees_seam_imports_attributes_and_direct_imports():
    used = used_internals()
    assert "comfy.model_management.load_models_gpu" in used  # via `from ...comfy_seam import comfy_model_management`
    assert "comfy.ldm.modules.diffusionmodules.openaimodel.UNetModel" in used  # an object through the seam
    assert "comfy.context_windows.IndexListContextHandler" in used  # `... import comfy_context_windows as cw`
    assert "folder_paths.get_full_path" in used and "comfy.utils.ProgressBar" in used  # nodes/ import directly
    assert not any(name.split(".")[0] == "comfy_seam" for name in used)


def test_the_table_names_every_internal_the_pack_uses():
    table = set(internals.names())
    missing = {name: sorted(files) for name, files in used_internals().items() if name not in table}
    assert not missing, f"add these to animapose/comfy_seam/internals.py (why, newer ComfyUI, adapt, read): {missing}"


def test_the_table_lists_nothing_the_pack_stopped_using():
    used = used_internals()
    text = "\n".join((REPO / f).read_text() for f in _files("animapose", "nodes", "__init__.py"))
    stale = []
    for row in internals.INTERNALS:
        if row.name.startswith(COMFY_TOP) and row.name.split(".")[0] in COMFY_TOP:
            # internals listed because newer ComfyUI changed them, though the pack does not call them, say so
            if row.name not in used and "not called by the pack" not in row.why \
                    and not row.why.startswith("not used"):
                stale.append(row.name)
        elif row.name.startswith("ModelPatcher."):
            if not re.search(rf"\.{re.escape(row.name.split('.', 1)[1])}\b", text):
                stale.append(row.name)
    assert not stale, f"listed but unused: {stale}"


def test_every_row_is_complete_and_names_a_source():
    names = internals.names()
    assert len(names) == len(set(names)), "a row appears twice"
    for row in internals.INTERNALS:
        assert row.why and row.newer and row.adapt, row
        assert row.source in internals.SOURCES, row


def test_the_page_carries_the_table():
    page = PAGE.read_text()
    assert BEGIN in page and END in page, f"{PAGE} lacks the generated table's markers"
    between = page.split(BEGIN, 1)[1].split(END, 1)[0]
    assert between.strip() == internals.markdown_table().strip(), (
        "docs/compatibility.md's table differs from the seam's: run "
        "`python -m comfyui_animapose.workshop.authoring.compatibility`")


def test_seam_names_resolve_lazily_and_unknown_names_fail():
    # resolving is what `from ..comfy_seam import X` does: a name outside the tables is an error, not None
    with pytest.raises(AttributeError, match="no_such_internal"):
        comfy_seam.no_such_internal  # noqa: B018
    assert set(comfy_seam.MODULES).isdisjoint(comfy_seam.OBJECTS)
    seam_names = set(comfy_seam.MODULES) | set(comfy_seam.OBJECTS)
    imported = {a.name for f in _files("animapose") for node in ast.walk(ast.parse((REPO / f).read_text()))
                if isinstance(node, ast.ImportFrom) and node.module == "comfy_seam" for a in node.names}
    assert seam_names <= imported, f"seam names nothing imports: {seam_names - imported}"


class _Patcher:
    def __init__(self, dynamic: bool | None):
        self.dynamic = dynamic
        self.cloned_with = None
        if dynamic is not None:
            self.is_dynamic = lambda: self.dynamic

    def clone(self, **kwargs):
        self.cloned_with = kwargs
        return SimpleNamespace(origin=self)


def test_weights_patcher_leaves_dynamic_vram_for_patching():
    plain = _Patcher(None)  # ComfyUI 0.3.75: no is_dynamic at all
    assert comfy_seam.weights_patcher(plain) is plain and plain.cloned_with is None
    static = _Patcher(False)
    assert comfy_seam.weights_patcher(static) is static
    dynamic = _Patcher(True)  # ModelPatcherDynamic asserts on force_patch_weights: its non-dynamic clone is loaded
    out = comfy_seam.weights_patcher(dynamic)
    assert out.origin is dynamic and dynamic.cloned_with == {"disable_dynamic": True}


class _LazyLinear(torch.nn.Linear):
    """What ComfyUI's Linear is under dynamic VRAM before its state dict is loaded: no weight, no bias yet."""

    def __init__(self, i, o, bias=True):
        torch.nn.Module.__init__(self)
        self.in_features, self.out_features = i, o
        self.weight = None
        self.bias = None
        self.comfy_need_lazy_init_bias = bias


def test_module_shapes_include_layers_not_loaded_yet():
    eager = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Conv2d(5, 2, 3), torch.nn.Linear(2, 4, bias=False))
    lazy = torch.nn.Sequential(_LazyLinear(3, 5), torch.nn.Conv2d(5, 2, 3), _LazyLinear(2, 4, bias=False))
    expected = {k: tuple(v.shape) for k, v in eager.state_dict().items()}
    assert comfy_seam.module_shapes(eager) == expected
    assert comfy_seam.module_shapes(lazy) == expected
    assert {k: tuple(v.shape) for k, v in lazy.state_dict().items()} != expected  # what the old code read


def test_requires_comfyui_is_the_version_the_tests_run():
    required = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["comfy"]["requires-comfyui"]
    tested = re.search(r"grep -q '([\d.]+)' \"\$COMFY.tmp/comfyui_version.py\"",
                       (REPO / "scripts" / "provision.sh").read_text())
    assert tested and required == f">={tested.group(1)}", (required, tested)
    assert f"`>={tested.group(1)}`" in PAGE.read_text()  # the page says why
