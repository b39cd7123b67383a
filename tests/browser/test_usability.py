"""The pack as a new user meets it in the real frontend: nodes found by the words users type, titles and output
names that read, templates that load from the Templates dialog (with a screenshot of each), layouts readable at fit
view on a 1600x1000 window, and the pose input (combo of input folders, .zip upload, checked before anything runs).

Generic on purpose: every pack node and every shipped UI workflow is checked, so nodes and workflows added later are
covered without editing this file."""

from __future__ import annotations

import base64
import json
import logging
import time
import urllib.parse
import urllib.request

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from comfyui_animapose.workshop.browser.checks import pose_zip, search
from comfyui_animapose.workshop.browser.helpers import ARTIFACTS, safe_name, workflows_dir
from comfyui_animapose.workshop.browser.layout import (
    GEOMETRY,
    OVERLAYS,
    covered,
    cut_titles,
    fit_zoom,
    group_problems,
    node_overlaps,
    on_screen,
)
from comfyui_animapose.workshop.env import PACK_DIR_NAME
from comfyui_animapose.workshop.server import ExecutionFailed

log = logging.getLogger(__name__)

VIEW = {"width": 1600, "height": 1000}
PREFIX = "AnimaPose_"
# query -> the node that must come first (None: any pack node); every pack node whose display name holds all the
# query's words must also come before every node of other packs or of ComfyUI.
SEARCHES = {
    "AnimateDiff": None,
    "Apply AnimateDiff": "AnimaPose_ApplyMotionModel",
    "Load AnimateDiff Model": "AnimaPose_LoadMotionModel",
    "context options": "AnimaPose_ContextWindows",
    "DreamPose": None,
    "DensePose": "AnimaPose_DensePoseUVEstimator",  # from a video: the first step of a DreamPose run
}
BAD_LOAD = ("Zod", "valid version", "Invalid workflow", "Workflow Validation")


@pytest.fixture
def big(ui):
    """The shared page at 1600x1000 for the test, back to its own size afterwards."""
    old = ui.page.viewport_size
    ui.page.set_viewport_size(VIEW)
    ui.call("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))", timeout=10)
    try:
        yield ui
    finally:
        ui.page.keyboard.press("Escape")
        ui.page.set_viewport_size(old)


@pytest.fixture(scope="module")
def pack_nodes(comfy_server) -> dict[str, dict]:
    return {k: v for k, v in comfy_server.object_info().items() if k.startswith(PREFIX)}


def ui_workflow_files():
    root = workflows_dir()
    return sorted(root.glob("*.json")) if root.is_dir() else []


# -- node search -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("query", SEARCHES)
def test_search_finds_pack_nodes_first(ui, pack_nodes, query):
    names = {v["display_name"]: k for k, v in pack_nodes.items()}
    results = search(ui, query)
    assert results, f"no search results for {query!r}"
    ids = [names.get(label) for label in results]
    log.info("search %r: %s", query, results[:8])
    assert ids[0] is not None, f"{query!r}: first result {results[0]!r} is not a pack node ({results[:6]})"
    want = SEARCHES[query]
    if want:
        assert ids[0] == want, f"{query!r}: first result {results[0]!r}, expected " \
                               f"{pack_nodes[want]['display_name']!r} ({results[:6]})"
    words = query.lower().split()
    matching = [k for k, v in pack_nodes.items() if all(w in v["display_name"].lower() for w in words)]
    assert matching, f"no pack node's display name holds {words}"
    first_other = next((i for i, x in enumerate(ids) if x is None), len(ids))
    shown = [i for i, x in enumerate(ids) if x in matching]
    assert set(ids[:first_other]) >= set(matching) and all(i < first_other for i in shown), \
        f"{query!r}: pack nodes {matching} should all come before other nodes; got {results[:12]}"


# -- titles and output names --------------------------------------------------------------------------------------

def test_titles_fit_and_outputs_are_lower_case(big, pack_nodes):
    ui = big
    for node_id, info in pack_nodes.items():
        assert not info["display_name"].startswith(PREFIX), f"{node_id} shows its ID as its name"
        for name in info.get("output_name") or []:
            assert name == name.lower() and name not in info["output"], \
                f"{node_id}: output name {name!r} (types {info['output']})"
    made = ui.call("""(types) => {
        app.graph.clear();
        const cols = 6, y = Array(cols).fill(60);
        return types.map((t, i) => {
            const n = LiteGraph.createNode(t);
            const c = y.indexOf(Math.min(...y));  // shortest column next: a compact sheet for the screenshot
            n.pos = [40 + 440 * c, y[c]];
            y[c] += n.size[1] + (LiteGraph.NODE_TITLE_HEIGHT ?? 30) + 30;
            app.graph.add(n);
            return {type: t, title: n.title, outputs: (n.outputs ?? []).map((o) => o.label ?? o.localized_name ?? o.name),
                    width: n.size[0], need: window.__animapose.titleWidth(n.title)};
        });
    }""", sorted(pack_nodes))
    for m in made:
        assert m["title"] == pack_nodes[m["type"]]["display_name"], m
        assert m["width"] >= m["need"], f"{m['title']!r} is cut: node {m['width']:.0f} px, title needs {m['need']} px"
        assert all(o == o.lower() for o in m["outputs"]), m
    geo = ui.call(GEOMETRY)
    assert not cut_titles(geo), cut_titles(geo)
    assert not node_overlaps(geo), node_overlaps(geo)
    ui.fit_view(zoom=0.95)
    ui.screenshot(ARTIFACTS / "pack_nodes.png")


# -- templates ------------------------------------------------------------------------------------------------------

def open_pack_templates(ui) -> list[str]:
    """Opens the Templates dialog on the pack's entry; returns the template names in the order shown."""
    ui.call("() => app.extensionManager.command.execute('Comfy.BrowseTemplates')")
    nav = ui.page.locator("div[role=button]", has_text=PACK_DIR_NAME).first
    nav.wait_for(state="visible", timeout=30_000)
    nav.click()
    cards = ui.page.locator('[data-testid^="template-workflow-"]')
    ui.page.wait_for_function(
        "(n) => document.querySelectorAll('[data-testid^=\"template-workflow-\"]').length === n",
        arg=len(ui_workflow_files()), timeout=20_000)
    return [t.removeprefix("template-workflow-") for t in cards.evaluate_all("(els) => els.map((e) => e.dataset.testid)")]


def test_templates_list_titles_and_thumbnails(big, comfy_server):
    ui = big
    files = ui_workflow_files()
    listed = comfy_server.get("/workflow_templates").get(PACK_DIR_NAME, [])
    assert sorted(listed) == sorted(p.stem for p in files), f"the server lists {listed}"
    shown = open_pack_templates(ui)
    assert sorted(shown) == sorted(p.stem for p in files)
    for name in shown:
        assert " " in name and not name.endswith(".api"), f"{name!r} is a raw file name, not a title"
    # the numbers in front give the order under the dialog's alphabetical sort
    assert sorted(shown) == sorted(shown, key=lambda n: int(n.split(" ", 1)[0]) if n[0].isdigit() else 99)
    for p in files:
        jpg = p.with_suffix(".jpg")
        assert jpg.is_file(), f"no thumbnail {jpg.name} (workshop/demo/job.py writes them)"
        assert jpg.stat().st_size < 200_000, f"{jpg.name} is {jpg.stat().st_size} bytes; keep thumbnails small"
        url = f"{comfy_server.url}/api/workflow_templates/{PACK_DIR_NAME}/{urllib.parse.quote(jpg.name)}"
        with urllib.request.urlopen(url, timeout=10) as r:
            assert r.status == 200 and r.read(3) == b"\xff\xd8\xff", url
    ui.page.wait_for_function("""(prefix) => [...document.querySelectorAll(`[data-testid^="${prefix}"] img`)]
        .every((i) => i.complete && i.naturalWidth > 0)""", arg="template-workflow-", timeout=20_000)
    ui.screenshot(ARTIFACTS / "templates_dialog.png")


@pytest.mark.parametrize("path", ui_workflow_files(), ids=lambda p: p.stem)
def test_template_loads_from_dialog(big, path):
    ui = big
    data = json.loads(path.read_text())
    mark = ui.mark()
    ui.call("() => { app.graph.clear(); }")
    open_pack_templates(ui)
    ui.page.locator(f'[data-testid="template-workflow-{path.stem}"]').first.click()
    want = len(data["nodes"])
    try:
        ui.page.wait_for_function("(n) => !document.querySelector('[data-testid^=\"template-workflow-\"]') "
                                  "&& app.graph.nodes.length === n", arg=want, timeout=30_000)
    except PlaywrightTimeout:
        dialogs = ui.call("() => [...document.querySelectorAll('.p-dialog')].map((d) => d.innerText.slice(0, 200))")
        pytest.fail(f"{path.stem}: the template did not load ({ui.call('() => app.graph.nodes.length')} nodes, "
                    f"want {want}); dialogs: {dialogs}; toasts: {ui.toasts()}; errors: {ui.errors(*mark)[-5:]}")
    bad = [t for t in ui.toasts() if any(b in t for b in BAD_LOAD)]
    bad += [e for e in ui.errors(*mark) if any(b in e for b in BAD_LOAD)]
    assert not bad, f"{path.stem}: {bad}"
    assert not ui.missing_node_types(), ui.missing_node_types()
    ui.call("() => new Promise((r) => setTimeout(r, 500))")
    geo = ui.call(GEOMETRY)
    opening = ui.screenshot(ARTIFACTS / f"template_{safe_name(path.stem)}_opening.png")
    everything = [n["rect"] for n in geo["nodes"]] + [g["rect"] for g in geo["groups"]]
    off = [r for r in everything if not on_screen(r, geo)]
    assert not off, f"{path.stem}: {len(off)} nodes/groups outside the opening view ({opening})"
    hidden = covered(geo, ui.call(OVERLAYS))
    assert not hidden, f"{path.stem}: in the opening view the frontend's overlays cover nodes: {hidden} ({opening})"
    assert geo["ds"]["scale"] >= geo["lowQuality"], f"{path.stem}: opening zoom {geo['ds']['scale']:.2f}"
    ui.fit_view(zoom=0.95)
    shot = ui.screenshot(ARTIFACTS / f"template_{safe_name(path.stem)}.png")
    log.info("%s: loaded from the Templates dialog, %d nodes, opening zoom %.2f, screenshots %s, %s", path.stem, want,
             geo["ds"]["scale"], opening, shot)


# -- layouts -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ui_workflow_files(), ids=lambda p: p.stem)
def test_layout_reads_at_fit_view(big, path):
    ui = big
    data = json.loads(path.read_text())
    ui.load(data, path.name)
    geo = ui.call(GEOMETRY)
    assert not node_overlaps(geo), f"{path.stem}: " + "\n".join(node_overlaps(geo))
    assert not group_problems(geo), f"{path.stem}: " + "\n".join(group_problems(geo))
    assert not cut_titles(geo), f"{path.stem}: " + "\n".join(cut_titles(geo))
    # reading order: rows top to bottom, left to right in a row
    titles = [g["title"] for g in sorted(geo["groups"], key=lambda g: (round(g["rect"][1] / 200), g["rect"][0]))]
    assert titles == sorted(titles, key=lambda t: int(t.split(".")[0])), f"groups out of order: {titles}"
    zoom = fit_zoom(geo)
    assert zoom >= geo["lowQuality"], (f"{path.stem}: fit view zoom {zoom:.2f} is below {geo['lowQuality']}, where the "
                                       "frontend stops drawing text")
    notes = [n for n in geo["nodes"] if n["type"] in ("Note", "MarkdownNote")]
    assert notes and all(on_screen(n["rect"], geo) for n in notes), f"{path.stem}: the Note is not in the opening view"
    # previews that load later (the subject photo) must not make nodes overlap
    ui.call("""() => new Promise((resolve) => {
        const t0 = Date.now();
        const ready = () => app.graph.nodes.every((n) => !n.imgs || n.imgs.every((i) => i.complete));
        const tick = () => (ready() || Date.now() - t0 > 8000) ? resolve(true) : setTimeout(tick, 100);
        tick();
    })""", timeout=15)
    ui.call("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")
    ui.call("() => { app.canvas.draw(true, true); }")
    geo = ui.call(GEOMETRY)
    assert not node_overlaps(geo), f"{path.stem} after previews loaded: " + "\n".join(node_overlaps(geo))
    log.info("%s: %d nodes in %d groups, fit zoom %.2f (text drawn from %.2f)", path.stem, len(geo["nodes"]),
             len(geo["groups"]), zoom, geo["lowQuality"])


# -- pose input -----------------------------------------------------------------------------------------------------

def test_pose_input_combo_upload_and_check_before_running(ui, comfy_server):
    node = ui.call("""() => {
        app.graph.clear();
        const n = LiteGraph.createNode('AnimaPose_LoadDensePoseUV');
        n.pos = [100, 100]; app.graph.add(n);
        const w = n.widgets.find((x) => x.name === 'folder');
        return {id: n.id, type: w.type, values: [...(w.options.values ?? [])],
                upload: n.widgets.some((x) => x.type === 'button')};
    }""")
    assert node["type"] == "combo" and "dreampose_poses" in node["values"], node
    assert node["upload"], "no upload button on the pose loader"
    name = f"poses_upload_{int(time.time())}.zip"
    picked = ui.call("""async ([id, b64, name]) => {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const n = app.graph.getNodeById(id);
        const got = await window.__animapose.uploadPoseArchive(n, new File([bytes], name, {type: 'application/zip'}));
        return {got, value: n.widgets.find((x) => x.name === 'folder').value};
    }""", [node["id"], base64.b64encode(pose_zip()).decode(), name])
    assert picked == {"got": name, "value": name}, picked
    assert (comfy_server.base / "input" / name).is_file()
    # the refreshed node list offers it too
    listed = comfy_server.object_info()["AnimaPose_LoadDensePoseUV"]["input"]["required"]["folder"]
    assert name in json.dumps(listed)
    # queued through the frontend's own prompt conversion, with a preview as output
    prompt = ui.graph_to_prompt()
    prompt["99"] = {"class_type": "PreviewImage", "inputs": {"images": [str(node["id"]), 1]}}
    entry = comfy_server.run(prompt, timeout=120)
    text = "\n".join(entry["outputs"][str(node["id"])]["text"])
    assert text.startswith("3 frames of UV poses, 12x16"), text
    ui.screenshot(ARTIFACTS / "pose_input.png")

    # refused when queued, before any node runs: outside the input folder, and a bad archive
    (comfy_server.base / "input" / "not_poses.zip").write_bytes(b"not a zip")
    for value, words in (("../models", ("outside ComfyUI's input folder",)),
                         (str(comfy_server.base / "models"), ("outside ComfyUI's input folder",)),
                         ("not_poses.zip", ("not a readable .zip",))):
        bad = json.loads(json.dumps(prompt))
        bad[str(node["id"])]["inputs"]["folder"] = value
        with pytest.raises(ExecutionFailed) as e:
            comfy_server.queue(bad)
        msg = json.dumps(e.value.details)
        for part in ("Load DensePose UV Poses", "input 'folder'", "Fix:", *words):
            assert part in msg, f"{value!r}: {part!r} not in {msg[:600]}"
