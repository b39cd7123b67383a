"""The repository's layout rules, read from the source (no imports run):

- imports run one way: the shipped pack (``__init__.py``, ``nodes/``, ``animapose/``) <- the development kit
  (``workshop/``) <- the tests. The pack never imports the workshop or the tests; nothing imports the tests;
- inside the pack and the workshop imports are relative (the package is ``comfyui_animapose`` wherever it is
  installed, ComfyUI names it after its folder), and nothing loads a module by file path;
- ``sys.path`` is edited only by the ComfyUI bootstrap of the workshop and the trainers' entry point, which put
  ComfyUI (never the repository) on it;
- no module imports another's private names;
- the runtime (``animapose/``) reaches ComfyUI's internals (``comfy.*``, ``comfy_extras.*``) only through the seam
  ``animapose/comfy_seam/``; the node files (``nodes/``, ``__init__.py``) may use the node API and ``comfy.*``;
- ``scripts/`` holds only what a person runs directly, and pyproject's package list covers every shipped package.
"""

from __future__ import annotations

import ast
import subprocess

import tomllib

from comfyui_animapose.workshop.env import REPO

PACK = "comfyui_animapose"
SHIPPED = ("__init__.py", "nodes/", "animapose/")
SYS_PATH_EDITORS = {"workshop/comfy_env.py", "workshop/train/common.py"}
SEAM = "animapose/comfy_seam/"
# The Ray worker's bootstrap sets ComfyUI's options and loads the pack with ComfyUI's own loader: it runs before the
# pack (and so its seam) can be imported in that process.
SEAM_EXEMPT = {"animapose/dreampose/ray_worker.py"}
# ComfyUI's top-level modules and packages: what only the seam (and, for the node API, the node files) may import
COMFYUI_TOP = ("comfy", "comfy_extras", "comfy_api", "comfy_execution", "folder_paths", "node_helpers",
               "latent_preview", "nodes", "server", "execution")


def _python_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "*.py"], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout.split()
    return [f for f in out if (REPO / f).is_file()]


def _module(path: str) -> list[str]:
    parts = path[:-3].split("/")
    return parts[:-1] if parts[-1] == "__init__" else parts


def _imports(path: str):
    """(line, absolute target inside the repository or None, imported names, node) of every import of a file."""
    tree = ast.parse((REPO / path).read_text(), path)
    package = _module(path) if path.endswith("__init__.py") else _module(path)[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.split(".")[0] == PACK:
                target = node.module[len(PACK) + 1:]
            else:
                target = None
            yield node.lineno, target, [a.name for a in node.names], node
        elif isinstance(node, ast.Import):
            for a in node.names:
                target = a.name[len(PACK) + 1:] if a.name.split(".")[0] == PACK else None
                yield node.lineno, target, [], node


def _area(target: str) -> str:
    top = target.split(".")[0] if target else ""
    return {"workshop": "workshop", "tests": "tests"}.get(top, "pack")


def test_imports_run_one_way():
    wrong = []
    for path in _python_files():
        here = "tests" if path.startswith("tests/") else "workshop" if path.startswith("workshop/") else "pack"
        for line, target, names, _ in _imports(path):
            if target is None:
                continue
            there = _area(target)
            if there == "tests" or (here == "pack" and there == "workshop"):
                wrong.append(f"{path}:{line} imports {target}")
    assert not wrong, "imports against the direction pack <- workshop <- tests:\n" + "\n".join(wrong)


def test_pack_and_workshop_import_themselves_relatively():
    absolute = []
    for path in _python_files():
        if path.startswith("tests/"):
            continue
        for line, _, _, node in _imports(path):
            module = getattr(node, "module", None) if isinstance(node, ast.ImportFrom) else None
            names = [module] if module and not node.level else [a.name for a in node.names] \
                if isinstance(node, ast.Import) else []
            for name in names:
                if name and name.split(".")[0] in (PACK, "animapose", "nodes", "workshop", "tests", "scripts"):
                    # `import nodes` is ComfyUI's nodes.py, which the pack's ComfyUI glue may use
                    if name == "nodes" and isinstance(node, ast.Import):
                        continue
                    absolute.append(f"{path}:{line} imports {name}")
    assert not absolute, "absolute imports of the pack from inside it:\n" + "\n".join(absolute)


def test_nothing_loads_modules_by_path_or_edits_sys_path():
    found = []
    for path in _python_files():
        text = (REPO / path).read_text()
        if "spec_from_file_location" in text and path != "tests/unit/test_layout.py":
            found.append(f"{path}: spec_from_file_location")
        tree = ast.parse(text)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr == "path" and isinstance(node.value, ast.Name)
                    and node.value.id == "sys" and path not in SYS_PATH_EDITORS and not path.startswith("tests/")):
                found.append(f"{path}:{node.lineno}: sys.path")
    assert not found, "\n".join(found)


def test_no_module_imports_private_names_of_another():
    private = []
    for path in _python_files():
        for line, target, names, _ in _imports(path):
            if target is None or target == ".".join(_module(path)):
                continue
            private += [f"{path}:{line} imports {n} from {target}" for n in names
                        if n.startswith("_") and not n.startswith("__")]
    assert not private, "\n".join(private)


def test_scripts_hold_only_what_a_person_runs():
    scripts = sorted(p.name for p in (REPO / "scripts").iterdir() if p.is_file())
    assert scripts == ["demo.sh", "provision.sh", "test.sh"], scripts


def test_pyproject_packages_every_shipped_package():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert config["package-dir"] == {PACK: "."}
    shipped = {".".join([PACK, *_module(f)]).rstrip(".") for f in _python_files()
               if f.endswith("__init__.py") and f.startswith(SHIPPED)}
    assert shipped == set(config["packages"]), shipped ^ set(config["packages"])
    assert not any(p.startswith((f"{PACK}.workshop", f"{PACK}.tests")) for p in config["packages"])


def _comfyui_imports(path: str) -> list[tuple[int, str]]:
    """(line, module) of every ComfyUI module a file imports, statically or by name through importlib."""
    found = []
    for line, target, _, node in _imports(path):
        if target is not None or getattr(node, "level", 0):
            continue
        names = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
        found += [(line, n) for n in names if n and n.split(".")[0] in COMFYUI_TOP]
    for node in ast.walk(ast.parse((REPO / path).read_text(), path)):
        if (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) in
                ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant)
                and str(node.args[0].value).split(".")[0] in COMFYUI_TOP):
            found.append((node.lineno, str(node.args[0].value)))
    return found


def test_runtime_reaches_comfyui_only_through_the_seam():
    wrong = []
    for path in _python_files():
        if not path.startswith("animapose/") or path.startswith(SEAM) or path in SEAM_EXEMPT:
            continue
        wrong += [f"{path}:{line} imports {name}" for line, name in _comfyui_imports(path)]
    assert not wrong, ("ComfyUI imported outside animapose/comfy_seam/ (add the internal to the seam and its table, "
                       "then import it from there):\n" + "\n".join(wrong))


def test_the_seam_check_sees_every_kind_of_import(tmp_path, monkeypatch):
    # The check above must catch a plain import, a from-import, a submodule and importlib, or it proves nothing.
    sample = tmp_path / "animapose" / "sample.py"
    sample.parent.mkdir()
    sample.write_text("import comfy.utils\nfrom comfy_extras.nodes_train import patch\nimport folder_paths\n"
                      "import importlib\nimportlib.import_module('comfy.sd')\nfrom . import errors\nimport torch\n")
    monkeypatch.setitem(globals(), "REPO", tmp_path)
    assert [n for _, n in _comfyui_imports("animapose/sample.py")] == [
        "comfy.utils", "comfy_extras.nodes_train", "folder_paths", "comfy.sd"]
