#!/usr/bin/env python
"""Writes ``locales/en/nodeDefs.json``: every pack node's display name and description, from the node schemas.

The frontend names a running node in its job progress panel by the node's title, and for a node placed without a
custom title it looks the name up in these translations, falling back to the node ID; ComfyUI's own nodes ship such
files, and ComfyUI serves a custom node pack's ``locales/`` at ``/i18n``. Run after adding or renaming a node; the
server tier checks the file against ``/object_info``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.harness import comfy_env  # noqa: E402

OUT = REPO / "locales" / "en" / "nodeDefs.json"


def node_defs() -> dict[str, dict[str, str]]:
    comfy_env.bootstrap()
    # the checkout is the pack's package; its ``nodes`` subpackage must not meet ComfyUI's top-level ``nodes``
    spec = importlib.util.spec_from_file_location("animapose_pack", REPO / "__init__.py",
                                                  submodule_search_locations=[str(REPO)])
    pack = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = pack
    spec.loader.exec_module(pack)
    from animapose_pack.nodes import AnimaPoseExtension, register_model_folders

    register_model_folders()  # the schemas list the model folders' files

    out = {}
    for cls in asyncio.run(AnimaPoseExtension().get_node_list()):
        schema = cls.define_schema()
        out[schema.node_id] = {"display_name": schema.display_name, "description": schema.description}
    return dict(sorted(out.items()))


def main() -> int:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(node_defs(), indent=2, ensure_ascii=False) + "\n")
    print(OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
