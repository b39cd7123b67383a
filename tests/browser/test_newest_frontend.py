"""A smoke set on the newest frontend the pack is tested with (workshop/browser/helpers.py NEWEST_FRONTEND, installed
by ``scripts/provision.sh --browser``), served by a second ComfyUI 0.3.75 through ``--front-end-root``: what users
of current ComfyUI see. Every template loads with no missing node and converts to its API file; the node search
lists the pack's nodes first; a node's info text is readable in both renderers; the pose-archive button uploads;
the pack's code raises no console error. Nothing is sampled here: the pinned frontend's tier runs the templates."""

from __future__ import annotations

import json
import logging
import time

import pytest

from comfyui_animapose.workshop.browser.checks import (
    INFO_TEXT,
    api_twin,
    assert_loaded_cleanly,
    assert_no_overlap,
    assert_text_visible,
    pose_zip,
    search,
    send_executed,
    toast_shown,
    upload_with_button,
    warnings_first,
)
from comfyui_animapose.workshop.browser.helpers import (
    ARTIFACTS,
    EXTENSION_NAME,
    FRONTEND_ONLY,
    NEWEST_FRONTEND,
    RENDERERS,
    newest_frontend_root,
    open_frontend,
    prompt_diff,
    workflow_files,
    workflows_dir,
)

log = logging.getLogger(__name__)

SEARCHES = {"AnimateDiff": None, "DreamPose": None, "motion lora": "AnimaPose_LoadMotionLoRA",
            "DensePose": "AnimaPose_DensePoseUVEstimator"}


@pytest.fixture(scope="module")
def newest_server(tmp_path_factory):
    root = newest_frontend_root()
    if not (root / "index.html").is_file():
        pytest.fail(f"frontend {NEWEST_FRONTEND} is not installed at {root}: run scripts/provision.sh --browser")
    from comfyui_animapose.workshop.models import TEST_DREAMPOSE, TEST_PROFILE, demo_files
    from comfyui_animapose.workshop.server import TEST_SERVER_THREADS, ComfyServer, prepare_base_dir

    base = prepare_base_dir(tmp_path_factory.mktemp("comfy-base-newest"), demo_files(TEST_PROFILE, TEST_DREAMPOSE))
    server = ComfyServer(base, threads=TEST_SERVER_THREADS, extra_args=("--front-end-root", str(root))).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def newest_page(browser, newest_server):
    with open_frontend(browser, newest_server.url) as fe:
        yield fe


@pytest.fixture
def nui(newest_page):
    newest_page.reset()
    return newest_page


@pytest.fixture(scope="module")
def newest_types(newest_server) -> set[str]:
    return set(newest_server.object_info())


def test_serves_the_newest_frontend_and_loads_the_pack_js_once(nui):
    version = nui.call("() => window.__COMFYUI_FRONTEND_VERSION__ ?? null")
    assert version == NEWEST_FRONTEND, f"the server serves frontend {version}, not {NEWEST_FRONTEND}"
    nui.page.wait_for_function("(name) => app.extensions.some((e) => e.name === name)", arg=EXTENSION_NAME,
                               timeout=30_000)
    names = nui.call("() => app.extensions.map((e) => e.name)")
    assert names.count(EXTENSION_NAME) == 1, names
    assert not nui.pack_errors(), "errors naming the pack:\n" + "\n".join(nui.pack_errors())


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.relative_to(workflows_dir()).as_posix())
def test_template_loads_and_converts(nui, newest_types, path):
    data = json.loads(path.read_text())
    mark = nui.mark()
    nui.load(data, path.name)
    prompt = assert_loaded_cleanly(nui, data, path.name, newest_types)
    twin = api_twin(path)
    if twin is not None:
        diffs = prompt_diff(prompt, json.loads(twin.read_text()), ignore=FRONTEND_ONLY)
        assert not diffs, f"{path.name}: the template's graph differs from {twin.name}:\n" + "\n".join(diffs)
    errors = nui.pack_errors(*mark)
    assert not errors, f"{path.name}: errors naming the pack:\n" + "\n".join(errors)


@pytest.mark.parametrize("query", SEARCHES)
def test_search_lists_pack_nodes_first(nui, newest_server, query):
    info = newest_server.object_info()
    names = {v["display_name"]: k for k, v in info.items() if k.startswith("AnimaPose_")}
    results = search(nui, query)
    assert results, f"no search results for {query!r}"
    first = names.get(results[0])
    assert first is not None, f"{query!r}: first result {results[0]!r} is not a pack node ({results[:6]})"
    if SEARCHES[query]:
        assert first == SEARCHES[query], f"{query!r}: first result {results[0]!r} ({results[:6]})"


@pytest.mark.parametrize("renderer", RENDERERS)
def test_info_text_and_upload_button(nui, newest_server, renderer):
    mark = nui.mark()
    nui.set_renderer(renderer)
    try:
        ids = nui.call("""() => {
            app.graph.clear();
            const a = LiteGraph.createNode('AnimaPose_LoadMotionModel');
            a.pos = [100, 100];
            app.graph.add(a);
            const b = LiteGraph.createNode('AnimaPose_ApplyMotionModel');
            b.pos = [100, a.pos[1] + a.size[1] + 60];
            app.graph.add(b);
            const c = LiteGraph.createNode('AnimaPose_LoadDensePoseUV');
            c.pos = [700, 100];
            app.graph.add(c);
            return [a.id, b.id, c.id];
        }""")
        nui.fit_view(ids, zoom=0.7)
        send_executed(nui, ids[0], INFO_TEXT)
        nui.page.wait_for_timeout(500)
        nui.fit_view(ids, zoom=0.7)
        assert toast_shown(nui, "download looks truncated"), "no warning toast on screen"
        nui.reset()
        nui.screenshot(ARTIFACTS / f"newest_{NEWEST_FRONTEND}_info_text_{renderer}.png")
        assert_text_visible(nui, ids[0], warnings_first(INFO_TEXT), f"{NEWEST_FRONTEND} {renderer}")
        assert_no_overlap(nui, f"{NEWEST_FRONTEND} {renderer}")

        name = f"poses_newest_{renderer}_{int(time.time())}.zip"
        assert upload_with_button(nui, ids[2], name, pose_zip()) == name
        assert (newest_server.base / "input" / name).is_file()
        errors = nui.pack_errors(*mark)
        assert not errors, "errors naming the pack:\n" + "\n".join(errors)
    finally:
        nui.set_renderer("classic")
