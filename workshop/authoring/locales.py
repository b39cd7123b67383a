#!/usr/bin/env python
"""Writes ``locales/en/nodeDefs.json``: every pack node's display name and description, from the node schemas.

The frontend names a running node in its job progress panel by the node's title, and for a node placed without a
custom title it looks the name up in these translations, falling back to the node ID; ComfyUI's own nodes ship such
files, and ComfyUI serves a custom node pack's ``locales/`` at ``/i18n``. Run after adding or renaming a node; the
server tier checks the file against ``/object_info``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from .. import comfy_env
from ..env import REPO

OUT = REPO / "locales" / "en" / "nodeDefs.json"


def node_defs() -> dict[str, dict[str, str]]:
    comfy_env.bootstrap()
    from ...nodes import AnimaPoseExtension, register_model_folders

    register_model_folders()  # the schemas list the model folders' files

    out = {}
    for cls in asyncio.run(AnimaPoseExtension().get_node_list()):
        schema = cls.define_schema()
        out[schema.node_id] = {"display_name": schema.display_name, "description": schema.description}
    return dict(sorted(out.items()))


def main() -> int:
    argparse.ArgumentParser(prog=f"python -m {__spec__.name}", description=__doc__.split("\n\n")[0]).parse_args()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(node_defs(), indent=2, ensure_ascii=False) + "\n")
    print(OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
