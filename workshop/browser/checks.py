"""Checks the browser tier makes on both frontends (the pinned 1.32.9 and the newest, tests/browser/
test_newest_frontend.py): a workflow loads cleanly and converts to its API file, a node's info text is readable
where a person looks, nodes do not overlap, the node search, the pose-archive upload button."""

from __future__ import annotations

import io
import re
import time
import zipfile
from collections import Counter

import numpy as np

from .helpers import (
    DOM_NODE_RECTS,
    FRONTEND_ONLY,
    dom_overlaps,
    expected_class_types,
    is_api_format,
    prompt_diff,
    visible_lines,
)
from .layout import GEOMETRY, node_overlaps

UPLOAD_BUTTON = "upload pose archive (.zip)"


def api_twin(path):
    """workflows/api/<stem>.json of a template workflows/<title>.json, if the template is a shipped one."""
    from ..workflows import API_WORKFLOWS, TEMPLATE_TITLES

    stems = {title: stem for stem, title in TEMPLATE_TITLES.items()}
    twin = API_WORKFLOWS / f"{stems.get(path.stem, path.stem)}.json"
    return twin if twin.is_file() and twin != path else None


def assert_loaded_cleanly(ui, data: dict, name: str, backend_types: set[str]) -> dict:
    """No missing node types on the canvas, and ``app.graphToPrompt()`` gives the file's node class types.
    Returns that prompt."""
    missing = ui.missing_node_types()
    assert not missing, f"{name}: node types missing in the frontend: {missing}"
    prompt = ui.graph_to_prompt()
    got = Counter(n["class_type"] for n in prompt.values())
    want = expected_class_types(data, backend_types)
    assert got == want, (f"{name}: graphToPrompt gave node types {dict(sorted(got.items()))}, the file has "
                         f"{dict(sorted(want.items()))}")
    if is_api_format(data):
        # loadApiJson keeps the ids and writes every literal input into its widget: the round trip is exact.
        diffs = prompt_diff(prompt, data, ignore=FRONTEND_ONLY)
        assert not diffs, f"{name}: the frontend changed the API prompt on load:\n" + "\n".join(diffs)
    return prompt


def warnings_first(text: str) -> str:
    """The order the nodes send their text in (nodes/common.py warnings_first)."""
    lines = text.split("\n")
    warn = [ln for ln in lines if re.search(r"\bwarning\b", ln, re.I)]
    return "\n".join(warn + [ln for ln in lines if ln not in warn])


INFO_TEXT = ("v2, original layout, for SD1.5 (453.2 M parameters)\n"
             "4 levels: down widths 320/640/1280/1280 (2 per level), up widths 1280/1280/640/320 (3 per level); "
             "mid block: yes (1280 channels)\nframe positions: 32 frames (stored table)\n"
             "GroupNorm: per frame (original v2 code); motion LoRAs trained on this module apply\n"
             "WARNING: the file is 1.2 GB but the release is 1.7 GB: the download looks truncated; download it again")


def assert_text_visible(ui, node_id, text: str, where: str) -> None:
    """What a person sees on the node: every line of ``text`` in the rendered text of one element of the node,
    nothing of it cut or covered, on screen."""
    want = visible_lines(text)
    seen = ui.visible_text(node_id, want[0])
    assert seen is not None, f"{where}: node {node_id} shows no element whose text starts with {want[0]!r}"
    assert visible_lines(seen["text"]) == want, (f"{where}: node {node_id} shows {seen['text']!r}, "
                                                 f"the backend sent {text!r}")
    if seen["over"] > 2:
        dbg = ui.call("(id) => { const n = app.graph.getNodeById(+id); const r = window.__animapose?.textNeed?.(n);"
                      " return {need: r?.need, have: r?.have, min: r?.widget?.options?.getMinHeight?.(), size: n.size,"
                      " dw: [...document.querySelectorAll('.dom-widget')].map((e) => e.innerText.slice(0, 30))}; }",
                      str(node_id))
        raise AssertionError(f"{where}: node {node_id}'s text is cut by {seen['over']} px: {seen} {dbg}")
    assert not seen["covered"], f"{where}: node {node_id}'s text is covered by {seen['covered']}"
    assert seen["inView"], f"{where}: node {node_id}'s text is off screen: {seen['rect']}"


def assert_no_overlap(ui, where: str) -> None:
    if ui.renderer() == "vue":
        rects = ui.call(DOM_NODE_RECTS)
        assert not dom_overlaps(rects), f"{where}: " + "\n".join(dom_overlaps(rects))
    else:
        geo = ui.call(GEOMETRY)
        assert not node_overlaps(geo), f"{where}: " + "\n".join(node_overlaps(geo))


def send_executed(ui, node_id, text: str) -> None:
    """A node's result as the frontend receives it (ComfyUI sends it again for a node whose result is cached)."""
    ui.call("""([id, text]) => app.api.dispatchCustomEvent('executed', {node: String(id), display_node: String(id),
               output: {text: [text]}, prompt_id: 'browser-test'})""", [node_id, text])



def toast_shown(ui, text: str, timeout: float = 10) -> bool:
    """Whether a notification showing ``text`` is on screen: an element outside the graph's nodes and DOM widgets
    (PrimeVue's toast in 1.32.9, the newer frontends' own), larger than the 1 px screen-reader copies."""
    js = """(text) => [...document.querySelectorAll('body *')].some((e) => {
        if (e.closest('[data-node-id], .dom-widget') || !(e.innerText || '').includes(text)) return false;
        if ([...e.children].some((c) => (c.innerText || '').includes(text))) return false;
        const r = e.getBoundingClientRect();
        return r.width > 4 && r.height > 4 && r.bottom > 0 && r.top < innerHeight;
    })"""
    try:
        ui.page.wait_for_function(js, arg=text, timeout=timeout * 1000)
        return True
    except Exception:
        return False


def search(ui, text: str) -> list[str]:
    """The node search box's results for ``text`` (their labels, in the order shown): frontend 1.32.9's PrimeVue
    autocomplete (options labelled by aria-label) and 1.5x's search dialog (options whose first text line is the
    display name)."""
    ui.call("() => app.extensionManager.command.execute('Workspace.SearchBox.Toggle')")
    box = ui.page.locator(".comfy-vue-node-search-container input, input[placeholder='Add a node...']").first
    box.wait_for(state="visible", timeout=15_000)
    box.fill(text)
    read = """() => {
      const old = [...document.querySelectorAll('li.p-autocomplete-option')];
      if (old.length) return old.map((li) => li.getAttribute('aria-label'));
      return [...document.querySelectorAll('[role=option]')].map((o) => o.innerText.split('\\n')[0].trim());
    }"""
    last, stable_since = None, time.monotonic()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:  # results settle after the search's debounce
        now = ui.page.evaluate(read)
        if now != last:
            last, stable_since = now, time.monotonic()
        elif now and time.monotonic() - stable_since > 0.8:
            break
        time.sleep(0.1)
    ui.page.keyboard.press("Escape")
    return last or []


def pose_zip(frames: int = 3, h: int = 16, w: int = 12) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(frames):
            arr = io.BytesIO()
            np.save(arr, np.random.default_rng(i).random((2, h, w), dtype=np.float32))
            zf.writestr(f"frame_{i}_densepose.npy", arr.getvalue())
    return buf.getvalue()


def upload_with_button(ui, node_id, name: str, data: bytes) -> str:
    """Presses the pose loader's upload button as a person does (Nodes 2.0: the button element; classic canvas: the
    button widget's click handler, which the canvas calls on a click), picks ``data`` as ``name`` in the file
    chooser, and returns the value the loader's folder combo then holds."""
    with ui.page.expect_file_chooser(timeout=15_000) as chooser:
        if ui.renderer() == "vue":
            ui.page.locator(f'[data-node-id="{node_id}"] button', has_text=UPLOAD_BUTTON).first.click()
        else:
            ui.call("([id, name]) => { const n = app.graph.getNodeById(id);"
                    " const w = n.widgets.find((x) => x.name === name);"
                    " w.callback(w.value, app.canvas, n, [0, 0], {}); }", [node_id, UPLOAD_BUTTON])
    chooser.value.set_files({"name": name, "mimeType": "application/zip", "buffer": data})
    ui.page.wait_for_function("([id, name]) => app.graph.getNodeById(id).widgets.find((x) => x.name === 'folder')"
                              ".value === name", arg=[node_id, name], timeout=30_000)
    return ui.call("(id) => app.graph.getNodeById(id).widgets.find((x) => x.name === 'folder').value", node_id)
