#!/usr/bin/env python
"""Writes ``js/docs/<NodeId>.md``: the help page of every pack node, from its schema and ``docs/nodes.md``.

The frontend's node library and help panel fetch a custom node's help from
``/extensions/<pack folder>/docs/<NodeId>/<lang>.md``, then ``/extensions/<pack folder>/docs/<NodeId>.md``
(frontends 1.32.9 and 1.58.1 alike); ComfyUI serves ``WEB_DIRECTORY`` (``js/``) at ``/extensions/<pack folder>/``.
Each page is rendered from what ``/object_info`` serves for the node (display name, description, inputs with their
tooltips, outputs) and from the node's row of the table in ``docs/nodes.md`` (what it does), so nothing is written
twice by hand. Run after changing a node's schema or that table; the server tier renders every page from the running
server's ``/object_info`` and compares it with what the server serves.
"""

from __future__ import annotations

import argparse
import re
import sys

from ..env import REPO

OUT = REPO / "js" / "docs"
NODES_DOC = REPO / "docs" / "nodes.md"
BLOB = "https://github.com/animapose/comfyui-animapose/blob/main/"
# The topic page of each menu category (docs/nodes.md links them all).
TOPICS = {
    "AnimaPose/AnimateDiff": ("docs/animatediff.md", "AnimateDiff in AnimaPose"),
    "AnimaPose/DreamPose": ("docs/dreampose.md", "DreamPose in AnimaPose"),
}
TRAINING = ("docs/training.md", "Training")


def node_rows(text: str | None = None) -> dict[str, str]:
    """display name -> "What it does" of docs/nodes.md's table of every node."""
    rows = {}
    for line in (NODES_DOC.read_text() if text is None else text).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) == 3 and cells[0] not in ("Node", "---"):
            rows[cells[0]] = cells[2]
    return rows


def _relink(text: str) -> str:
    """docs/nodes.md's relative links point into docs/; on a help page they point at the repository."""
    return re.sub(r"\]\(([\w.-]+\.md)\)", lambda m: f"]({BLOB}docs/{m.group(1)})", text)


def _kind(spec) -> str:
    kind = spec[0] if isinstance(spec, (list, tuple)) and spec else spec
    if isinstance(kind, list):  # a V1-style combo: the option list itself
        return "choice"
    return {"COMBO": "choice", "INT": "integer", "FLOAT": "number", "BOOLEAN": "on/off", "STRING": "text"}.get(
        str(kind), f"`{kind}`")


def _default(spec) -> str:
    opts = spec[1] if isinstance(spec, (list, tuple)) and len(spec) > 1 and isinstance(spec[1], dict) else {}
    # combo defaults are often the first file of a model folder: they differ per install, so they are left out
    if "default" not in opts or _kind(spec) in ("choice", "text"):
        return ""
    d = opts["default"]
    return f" (default {str(d).lower() if isinstance(d, bool) else d})"


def _one_line(text: str) -> str:
    return " ".join(str(text or "").split())


def render(info: dict, what_it_does: str | None) -> str:
    """The help page of one node, from its ``/object_info`` entry and its row in docs/nodes.md."""
    lines = [f"# {info['display_name']}", "", _one_line(info.get("description")), ""]
    if what_it_does:
        lines += [f"**In short:** {_relink(what_it_does)}", ""]
    order = info.get("input_order") or {k: list(v) for k, v in info.get("input", {}).items()}
    rows = []
    for group in ("required", "optional"):
        specs = info.get("input", {}).get(group, {})
        for name in order.get(group, []):
            spec = specs.get(name)
            if spec is None:
                continue
            opts = spec[1] if isinstance(spec, (list, tuple)) and len(spec) > 1 and isinstance(spec[1], dict) else {}
            tip = _one_line(opts.get("tooltip", "")).replace("|", "\\|")
            extra = "" if group == "required" else " (optional)"
            rows.append(f"| `{name}` | {_kind(spec)}{_default(spec)}{extra} | {tip} |")
    if rows:
        lines += ["## Inputs", "", "| Input | Kind | What it does |", "|---|---|---|", *rows, ""]
    outputs = list(info.get("output", []))
    if outputs:
        names = info.get("output_name") or outputs
        tips = info.get("output_tooltips") or [None] * len(outputs)
        lines += ["## Outputs", "", "| Output | Type | What it is |", "|---|---|---|"]
        for name, kind, tip in zip(names, outputs, tips):
            lines.append(f"| `{name}` | `{kind}` | {_one_line(tip).replace('|', chr(92) + '|')} |")
        lines.append("")
    if info.get("output_node"):
        lines += ["This is an output node: a graph that ends in it runs without a save or preview node.", ""]
    more = [("docs/nodes.md", "All nodes")]
    topic = TOPICS.get(info.get("category", ""))
    if topic:
        more.append(topic)
    if "Train" in info["display_name"] or "Finetune" in info["display_name"]:
        more.append(TRAINING)
    lines += ["## More", ""] + [f"- [{title}]({BLOB}{path})" for path, title in more] + [""]
    return "\n".join(lines)


def pages(object_info: dict, rows: dict[str, str] | None = None) -> dict[str, str]:
    """NodeId -> help page, for every pack node of an ``/object_info`` answer."""
    rows = node_rows() if rows is None else rows
    return {node_id: render(info, rows.get(info["display_name"]))
            for node_id, info in sorted(object_info.items()) if node_id.startswith("AnimaPose_")}


def object_info() -> dict:
    """What ``/object_info`` serves for the pack's nodes, computed in-process from the node classes."""
    import asyncio

    from .. import comfy_env

    comfy_env.bootstrap()
    from ...nodes import AnimaPoseExtension, register_model_folders

    register_model_folders()
    return {cls.define_schema().node_id: cls.GET_NODE_INFO_V1()
            for cls in asyncio.run(AnimaPoseExtension().get_node_list())}


def main() -> int:
    argparse.ArgumentParser(prog=f"python -m {__spec__.name}", description=__doc__.split("\n\n")[0]).parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    want = pages(object_info())
    missing = sorted(n for n, p in want.items() if "**In short:**" not in p)
    if missing:
        print(f"no row in {NODES_DOC.relative_to(REPO)} for: {', '.join(missing)}", file=sys.stderr)
        return 1
    for stale in OUT.glob("*.md"):
        if stale.stem not in want:
            stale.unlink()
    for node_id, text in want.items():
        (OUT / f"{node_id}.md").write_text(text)
    print(f"{len(want)} help pages in {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
