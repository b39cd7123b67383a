"""The newest frontend the browser tier runs on is named in one place for the tests and one for provisioning, and
both name the version the pack was tested with: bumping it is a deliberate change of both and of this test."""

from __future__ import annotations

import re

from comfyui_animapose.workshop.authoring.help_pages import node_rows
from comfyui_animapose.workshop.browser import helpers
from comfyui_animapose.workshop.env import REPO

TESTED = "1.58.1"


def test_newest_frontend_is_pinned_in_both_places():
    assert helpers.NEWEST_FRONTEND == TESTED
    script = (REPO / "scripts" / "provision.sh").read_text()
    pins = re.findall(r"^NEWEST_FRONTEND=(\S+)$", script, re.M)
    assert pins == [TESTED], pins
    assert 'comfyui-frontend-package==$NEWEST_FRONTEND' in script
    assert helpers.newest_frontend_root().parts[-3] == f"frontend-{TESTED}"


def test_every_node_has_a_help_page_and_a_row():
    import json

    names = json.loads((REPO / "locales" / "en" / "nodeDefs.json").read_text())
    pages = {p.stem for p in (REPO / "js" / "docs").glob("*.md")}
    assert pages == set(names), sorted(pages ^ set(names))
    rows = node_rows()
    assert not [v["display_name"] for v in names.values() if v["display_name"] not in rows]


def test_node_rows_read_the_table():
    text = "| Node | In → out | What it does |\n|---|---|---|\n| Load X | file → X | Loads an X |\n"
    assert node_rows(text) == {"Load X": "Loads an X"}
