"""The pack's public node API, as saved workflows depend on it: node IDs, display names, categories, input names with
their sections (required/optional), types and choices, and output types, names and order. Read from ComfyUI's
``/object_info``; tooltips and descriptions are left out (they may be improved freely).

``tests/server/public_api.json`` is the committed snapshot; the server tier checks that the running pack differs
from it only by additions (new nodes, new optional inputs, new choices). After adding to the API on purpose:
``python -m comfyui_animapose.workshop.public_api --write`` (starts a server on an empty base directory).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from .env import REPO

PREFIX = "AnimaPose_"
SNAPSHOT = REPO / "tests" / "server" / "public_api.json"


def public_api(object_info: dict) -> dict:
    api = {}
    for node_id, info in sorted(object_info.items()):
        if not node_id.startswith(PREFIX):
            continue
        inputs = {}
        for section in ("required", "optional"):
            entries = []
            for name in info.get("input_order", {}).get(section, []):
                spec = info["input"][section][name]
                kind = spec[0]
                options = spec[1].get("options") if kind == "COMBO" and len(spec) > 1 else \
                    (kind if isinstance(kind, list) else None)
                entries.append([name, "COMBO" if isinstance(kind, list) else kind, options])
            inputs[section] = entries
        api[node_id] = {"display_name": info.get("display_name"), "category": info.get("category"),
                        "output_node": info.get("output_node", False), "inputs": inputs,
                        "outputs": [list(t) for t in zip(info["output"], info["output_name"], info["output_is_list"])]}
    return api


def differences(old: dict, new: dict) -> list[str]:
    """What ``new`` removes or changes of ``old`` (additions are allowed: new nodes, inputs appended to a section,
    new optional inputs, new choices)."""
    out = []
    for node_id, a in old.items():
        b = new.get(node_id)
        if b is None:
            out.append(f"{node_id}: removed")
            continue
        for field in ("display_name", "category", "output_node", "outputs"):
            if a[field] != b[field]:
                out.append(f"{node_id}: {field} {a[field]!r} -> {b[field]!r}")
        for section in ("required", "optional"):
            names_b = [e[0] for e in b["inputs"].get(section, [])]
            if names_b[: len(a["inputs"][section])] != [e[0] for e in a["inputs"][section]]:
                out.append(f"{node_id}: {section} inputs {[e[0] for e in a['inputs'][section]]} -> {names_b}")
            by_name = {e[0]: e for e in b["inputs"].get(section, [])}
            for name, kind, options in a["inputs"][section]:
                e = by_name.get(name)
                if e is None:
                    continue
                if e[1] != kind:
                    out.append(f"{node_id}: input {name} type {kind} -> {e[1]}")
                if options is not None and not set(options) <= set(e[2] or []):
                    out.append(f"{node_id}: input {name} lost choices {sorted(set(options) - set(e[2] or []))}")
        added = [e[0] for e in b["inputs"].get("required", [])][len(a["inputs"]["required"]):]
        if added:
            out.append(f"{node_id}: new required inputs {added} (saved workflows lack them; make them optional)")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m comfyui_animapose.workshop.public_api", description=__doc__)
    ap.add_argument("--write", action="store_true", help=f"write the snapshot ({SNAPSHOT.relative_to(REPO)})")
    args = ap.parse_args()
    from .server import TEST_SERVER_THREADS, ComfyServer, prepare_base_dir

    with tempfile.TemporaryDirectory() as tmp:
        server = ComfyServer(prepare_base_dir(Path(tmp)), threads=TEST_SERVER_THREADS).start()
        try:
            api = public_api(server.object_info())
        finally:
            server.stop()
    text = json.dumps(api, indent=1, sort_keys=True) + "\n"
    if args.write:
        SNAPSHOT.write_text(text)
        print(SNAPSHOT)
    else:
        diff = differences(json.loads(SNAPSHOT.read_text()), api)
        print("\n".join(diff) or "no differences")


if __name__ == "__main__":
    main()
