"""Every pack node has a help page where the frontend's node library and help panel look for one
(``/extensions/<pack folder>/docs/<NodeId>.md``, frontends 1.32.9 and 1.58.1), served by the running ComfyUI and
equal to what workshop/authoring/help_pages.py renders from that server's own ``/object_info``: a schema change
without regenerating the pages fails here."""

from __future__ import annotations

import urllib.error
import urllib.request

from comfyui_animapose.workshop.authoring.help_pages import OUT, pages
from comfyui_animapose.workshop.env import PACK_DIR_NAME


def _fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""


def test_help_pages_are_served_and_up_to_date(comfy_server):
    info = comfy_server.object_info()
    module = {v["python_module"] for k, v in info.items() if k.startswith("AnimaPose_")}
    # the frontend takes the folder name from python_module ("custom_nodes.<folder>")
    assert module == {f"custom_nodes.{PACK_DIR_NAME}"}, module
    want = pages(info)
    assert len(want) == len([k for k in info if k.startswith("AnimaPose_")]) > 30
    stale, missing = [], []
    for node_id, text in want.items():
        status, served = _fetch(f"{comfy_server.url}/extensions/{PACK_DIR_NAME}/docs/{node_id}.md")
        if status != 200:
            missing.append(f"{node_id}: HTTP {status}")
        elif served != text:
            stale.append(node_id)
    assert not missing, f"help pages not served: {missing}"
    assert not stale, (f"help pages differ from the node schemas: {stale}; run "
                       "python -m comfyui_animapose.workshop.authoring.help_pages")
    extra = sorted(p.stem for p in OUT.glob("*.md") if p.stem not in want)
    assert not extra, f"help pages of nodes that do not exist: {extra}"
    # a page shows the node's display name and every input's tooltip
    page = want["AnimaPose_LoadMotionModel"]
    assert page.startswith("# Load AnimateDiff Motion Model\n"), page[:200]
    assert "| `model_name` | choice |" in page and "**In short:**" in page
