"""Driving the real ComfyUI frontend from pytest: the page session, the workflow files, and the mapping from a
shrunk API prompt back onto the widgets of the loaded graph.

Everything that waits is bounded: Playwright calls carry timeouts and page-side async calls are raced against a
timer (``Frontend.call``), because ``page.evaluate`` itself has no timeout.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import TimeoutError as PlaywrightTimeout

from ..env import REPO

log = logging.getLogger(__name__)

WORKFLOWS_ENV = "ANIMAPOSE_WORKFLOWS_DIR"
ARTIFACTS = REPO / "artifacts" / "browser"
PACK_MARK = "animapose"  # names the pack's JS files (/extensions/<pack>/animapose.js) and its extension
EXTENSION_NAME = "animapose.nodeInfo"
# The frontend's own widget for a node's progress text, where the pack's nodes show what they detected
# (useNodeProgressText in frontends 1.32.9 and 1.58.1).
INFO_WIDGET = "$$node-text-preview"
# The newest comfyui-frontend-package the pack is tested with; scripts/provision.sh --browser installs it into
# $AP_HOME/frontend-<version> (tests/unit/test_frontend_pin.py keeps both equal), and the browser tier's smoke set
# (tests/browser/test_newest_frontend.py) runs on it through ComfyUI's --front-end-root.
NEWEST_FRONTEND = "1.58.1"
# Widgets the frontend adds that are not backend inputs (it sends them along; the backend ignores them): LoadVideo's
# preview, the pose loader's upload button.
FRONTEND_ONLY = ("video-preview", "upload pose archive (.zip)")
VUE_SETTING = "Comfy.VueNodes.Enabled"  # "Nodes 2.0", the Vue renderer (in 1.32.9 as a beta)
RENDERERS = ("classic", "vue")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
# "Nodes 2.0" banner; the first-run templates dialog is kept away by Comfy.TutorialCompleted in the base
# directory's user settings (workshop/server.py writes it).
INIT_SCRIPT = "try { localStorage.setItem('vueNodesBannerDismissed', 'true'); } catch (e) {}"
APP_READY = "() => !!(window.app && window.app.graph && window.app.canvas)"
FINISHED = ("execution_success", "execution_error", "execution_interrupted")

# Installed once per page load: records execution events and what the frontend reported as missing node types.
INSTALL_HOOKS = """() => {
  if (window.__ap) return false;
  window.__ap = {events: [], missing: [], toasts: []};
  for (const type of ['execution_start', 'execution_cached', 'execution_success', 'execution_error',
                      'execution_interrupted']) {
    app.api.addEventListener(type, (e) => window.__ap.events.push({type, detail: e.detail}));
  }
  const show = app.showMissingNodesError.bind(app);
  app.showMissingNodesError = (types) => {
    for (const t of types) window.__ap.missing.push(typeof t === 'string' ? t : t.type);
    return show(types);
  };
  // Toasts (load-time validation warnings, alerts), seen as the toast store's actions.
  app.extensionManager?.toast?.$onAction?.(({name, args}) => {
    if (name === 'add' || name === 'addAlert') {
      const m = args[0];
      window.__ap.toasts.push(typeof m === 'string' ? m : `${m?.summary ?? ''}: ${m?.detail ?? ''}`);
    }
  });
  return true;
}"""


def newest_frontend_root() -> Path:
    """The static folder of the newest frontend, for ComfyUI's --front-end-root."""
    from ..env import AP_HOME

    return Path(AP_HOME) / f"frontend-{NEWEST_FRONTEND}" / "comfyui_frontend_package" / "static"


# What a person sees of a pack node's info text: the innermost element of the node (Nodes 2.0: the node's own
# element; classic: the frontend's DOM widget overlay) whose rendered text (innerText) starts with the text's first
# line, how much of it is cut (an ancestor of fixed height scrolls or clips it), whether it is on screen, and
# whether another element covers it (elementFromPoint at its first and last line).
VISIBLE_TEXT = """([id, first]) => {
  const norm = (t) => (t || '').replace(/\\s+/g, ' ').trim();
  const vue = !!app.extensionManager?.setting?.get?.('%s');
  const roots = vue ? [...document.querySelectorAll(`[data-node-id="${id}"]`)]
                    : [...document.querySelectorAll('.dom-widget')];
  let best = null, root = null;
  for (const r of roots) for (const el of [r, ...r.querySelectorAll('*')]) {
    if (!norm(el.innerText).startsWith(norm(first))) continue;
    if (!best || best.contains(el)) { best = el; root = r; }
  }
  if (!best) return null;
  let over = 0;
  const rect = best.getBoundingClientRect();
  // cut: the text runs past the bottom of an ancestor that clips or scrolls it (the node's element included)
  over = Math.max(0, best.scrollHeight - best.clientHeight);
  const where = [];
  for (let e = best.parentElement; e; e = e.parentElement) {
    if (getComputedStyle(e).overflowY !== 'visible') {
      const cut = rect.bottom - e.getBoundingClientRect().bottom;
      if (cut > over) { over = cut; where.push(`${e.tagName}.${e.className}`.slice(0, 80)); }
    }
    if (e === root) break;
  }
  const covered = [];
  for (const y of [rect.top + 4, rect.bottom - 4]) {
    const hit = document.elementFromPoint(rect.left + Math.min(20, rect.width / 2), y);
    if (!hit || !root.contains(hit)) covered.push(hit ? `${hit.tagName}.${hit.className}`.slice(0, 120) : 'nothing');
  }
  const inView = rect.width > 0 && rect.height > 0 && rect.top >= 0 && rect.left >= 0
    && rect.bottom <= innerHeight && rect.right <= innerWidth;
  return {text: best.innerText, over: Math.round(over), cutBy: where, covered, inView, vue,
          rect: [rect.left, rect.top, rect.width, rect.height]};
}""" % VUE_SETTING

# Nodes 2.0 lays nodes out as DOM elements: their screen rectangles, for the overlap check (the nodes' own size
# does not follow the element in frontend 1.5x).
DOM_NODE_RECTS = """() => Object.fromEntries([...document.querySelectorAll('[data-node-id]')].map((e) => {
  const r = e.getBoundingClientRect();
  return [e.getAttribute('data-node-id'), [r.left, r.top, r.width, r.height]];
}))"""


def dom_overlaps(rects: dict) -> list[str]:
    """Pairs of node elements (Nodes 2.0) that overlap on screen, by more than a pixel."""
    out, items = [], sorted(rects.items())
    for i, (a, ra) in enumerate(items):
        for b, rb in items[i + 1:]:
            if ra[2] <= 0 or rb[2] <= 0:
                continue
            if (ra[0] + 1 < rb[0] + rb[2] and rb[0] + 1 < ra[0] + ra[2]
                    and ra[1] + 1 < rb[1] + rb[3] and rb[1] + 1 < ra[1] + ra[3]):
                out.append(f"node {a} {[round(v) for v in ra]} overlaps node {b} {[round(v) for v in rb]}")
    return out


def visible_lines(text: str) -> list[str]:
    return [ln.strip() for ln in text.split("\n") if ln.strip()]


# -- workflow files ---------------------------------------------------------------------------------------------

def workflows_dir() -> Path:
    """The repo's workflows/ folder, or ANIMAPOSE_WORKFLOWS_DIR (for development against other files)."""
    override = os.environ.get(WORKFLOWS_ENV)
    return Path(override).resolve() if override else REPO / "workflows"


def workflow_files() -> list[Path]:
    root = workflows_dir()
    return sorted(root.rglob("*.json")) if root.is_dir() else []


def is_api_format(data) -> bool:
    return (isinstance(data, dict) and bool(data) and "nodes" not in data
            and all(isinstance(v, dict) and "class_type" in v for v in data.values()))


def is_ui_format(data) -> bool:
    return isinstance(data, dict) and isinstance(data.get("nodes"), list) and "links" in data


def shrink_api_prompt(prompt: dict) -> dict:
    """The CPU-sizing of an API prompt (workshop/workflows.py); it also gives seeds fresh values."""
    from ..workflows import shrink_api_prompt as shrink

    return shrink(prompt)


def expected_class_types(data: dict, backend_types: set[str]) -> Counter:
    """The node class types an API prompt made from this workflow file must hold (a multiset).

    API format: every node. UI format: nodes the backend knows (Reroute, Note and PrimitiveNode are frontend-only)
    that are neither muted (mode 2) nor bypassed (mode 4); subgraph instances count as their inner nodes."""
    if is_api_format(data):
        return Counter(n["class_type"] for n in data.values())
    subgraphs = {sg["id"]: sg for sg in (data.get("definitions") or {}).get("subgraphs", []) if "id" in sg}

    def count(nodes, depth=0) -> Counter:
        c = Counter()
        for n in nodes or []:
            if n.get("mode", 0) in (2, 4):
                continue
            if n.get("type") in subgraphs and depth < 16:
                c += count(subgraphs[n["type"]].get("nodes"), depth + 1)
            elif n.get("type") in backend_types:
                c[n["type"]] += 1
        return c

    return count(data.get("nodes"))


def widget_updates(before: dict, after: dict) -> dict[str, dict]:
    """{node id: {input name: new value}} for every literal (non-link) input the shrink changed."""
    updates: dict[str, dict] = {}
    for nid, node in after.items():
        old_inputs = before.get(nid, {}).get("inputs", {})
        for name, value in node.get("inputs", {}).items():
            if isinstance(value, list):
                continue
            if name not in old_inputs or old_inputs[name] != value:
                updates.setdefault(nid, {})[name] = value
    return updates


def prompt_diff(actual: dict, expected: dict, ignore: tuple[str, ...] = ()) -> list[str]:
    """Readable differences between two API prompts (node set, class types, input values)."""
    diffs = []
    for nid in sorted(set(actual) | set(expected), key=str):
        a, e = actual.get(nid), expected.get(nid)
        if a is None or e is None:
            diffs.append(f"node {nid}: {'missing' if a is None else 'unexpected'} in the frontend's prompt")
            continue
        if a.get("class_type") != e.get("class_type"):
            diffs.append(f"node {nid}: class {a.get('class_type')} != {e.get('class_type')}")
        ai, ei = a.get("inputs", {}), e.get("inputs", {})
        for name in sorted(set(ai) | set(ei)):
            if name in ignore:
                continue
            if ai.get(name, "<absent>") != ei.get(name, "<absent>"):
                diffs.append(f"node {nid} ({e.get('class_type')}).{name}: {ai.get(name, '<absent>')!r} "
                             f"!= expected {ei.get(name, '<absent>')!r}")
    return diffs


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "workflow"


# -- JS run in the page ---------------------------------------------------------------------------------------

# Writes {node id: {widget name: value}} onto the graph. Ids of nodes inside subgraphs are "outer:inner". A widget
# whose input is linked (to a PrimitiveNode) is set on the node that feeds it. Returns what could not be set.
SET_WIDGETS = """(updates) => {
  const failures = [];
  const linkOf = (graph, id) => graph.getLink ? graph.getLink(id)
      : (graph.links instanceof Map ? graph.links.get(id) : graph.links[id]);
  for (const [id, values] of Object.entries(updates)) {
    let graph = app.graph, node = null;
    for (const part of String(id).split(':')) {
      if (node) graph = node.subgraph;
      node = graph ? graph.getNodeById(isNaN(+part) ? part : +part) : null;
      if (!node) break;
    }
    if (!node) { failures.push(`node ${id} is not on the graph`); continue; }
    for (const [name, value] of Object.entries(values)) {
      let target = node.widgets?.find((w) => w.name === name);
      const input = node.inputs?.find((i) => i.name === name || i.widget?.name === name);
      if (input && input.link != null) {
        const link = linkOf(node.graph, input.link);
        const origin = link ? node.graph.getNodeById(link.origin_id) : null;
        target = origin?.widgets?.[0];
        if (!target) { failures.push(`${id}.${name} is linked to a node without a widget`); continue; }
      }
      if (!target) { failures.push(`${id} (${node.type}) has no widget ${name}`); continue; }
      target.value = value;
    }
  }
  app.graph.setDirtyCanvas(true, true);
  return failures;
}"""

# Every node on the graph (and inside subgraphs) whose type the frontend has not registered.
UNREGISTERED = """() => {
  const bad = [];
  const visit = (graph, path) => {
    for (const n of graph.nodes ?? graph._nodes ?? []) {
      const known = n.type in LiteGraph.registered_node_types || app.graph.subgraphs?.has?.(n.type);
      if (!known || n.has_errors) bad.push(`${path}${n.id}: ${n.type}${known ? ' (has_errors)' : ''}`);
      if (n.subgraph) visit(n.subgraph, `${path}${n.id}:`);
    }
  };
  visit(app.graph, '');
  return bad;
}"""

# Fits the view to the given nodes (all when none) and waits two frames so the canvas and DOM widgets redraw.
FIT_VIEW = """async ([ids, zoom]) => {
  const nodes = (app.graph.nodes ?? app.graph._nodes).filter((n) => !ids || ids.includes(n.id));
  if (nodes.length) {
    const th = LiteGraph.NODE_TITLE_HEIGHT ?? 30;
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    for (const n of nodes) {
      x0 = Math.min(x0, n.pos[0]); y0 = Math.min(y0, n.pos[1] - th);
      x1 = Math.max(x1, n.pos[0] + n.size[0]); y1 = Math.max(y1, n.pos[1] + n.size[1]);
    }
    app.canvas.ds.fitToBounds([x0 - 20, y0 - 20, x1 - x0 + 40, y1 - y0 + 40], {zoom});
    app.canvas.setDirty(true, true);
  }
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  return nodes.length;
}"""

CLOSE_OVERLAYS = """() => {
  try { app.extensionManager?.toast?.removeAll?.(); } catch (e) {}
  for (const b of document.querySelectorAll('.p-toast-close-button, .p-dialog .p-dialog-close-button, '
                                            + '.p-dialog-header-close')) b.click();
  return document.querySelectorAll('.p-dialog').length;
}"""


# -- the page session -----------------------------------------------------------------------------------------

@dataclass
class Frontend:
    """One page on the real frontend, with everything it logged since it was opened."""

    page: object
    base_url: str
    console: list[dict] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    responses: list[tuple[int, str]] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    prompt_posts: list[dict] = field(default_factory=list)

    def attach(self) -> None:
        p = self.page
        p.on("console", lambda m: self.console.append(
            {"type": m.type, "text": m.text, "url": (m.location or {}).get("url", "")}))
        p.on("pageerror", lambda e: self.page_errors.append(f"{e.name}: {e.message}\n{e.stack or ''}"))
        p.on("response", lambda r: self.responses.append((r.status, r.url)))
        p.on("requestfailed", lambda r: self.failed_requests.append(f"{r.url} ({r.failure})")
             if r.url.startswith(self.base_url) else None)

    def open(self, timeout: float = 90) -> float:
        """Loads the frontend and waits until the app, its graph and canvas exist; returns the seconds it took."""
        t0 = time.monotonic()
        self.page.goto(self.base_url + "/", wait_until="domcontentloaded", timeout=timeout * 1000)
        self.page.wait_for_function(APP_READY, timeout=timeout * 1000, polling=100)
        # window.app is published after app.setup() (extensions loaded, node types registered). The start-up
        # workflow is restored right after; let it land so it cannot replace a graph a test loads.
        try:
            self.page.wait_for_function("() => (app.graph.nodes ?? app.graph._nodes).length > 0", timeout=20_000,
                                        polling=100)
        except PlaywrightTimeout:
            log.info("no start-up workflow appeared within 20 s; going on with an empty graph")
        self.page.evaluate(INSTALL_HOOKS)
        return time.monotonic() - t0

    def call(self, js: str, arg=None, timeout: float = 60):
        """``page.evaluate`` of a (possibly async) JS function, failing after ``timeout`` seconds."""
        wrapped = ("async (arg) => { const f = " + js + "; let timer; const limit = new Promise((_, reject) => {"
                   f" timer = setTimeout(() => reject(new Error('page call timed out after {timeout:g} s')),"
                   f" {int(timeout * 1000)}); }});"
                   " try { return await Promise.race([Promise.resolve().then(() => f(arg)), limit]); }"
                   " finally { clearTimeout(timer); } }")
        return self.page.evaluate(wrapped, arg)

    def healthy(self) -> bool:
        try:
            return bool(self.call(APP_READY + " && !!window.__ap", timeout=10))
        except Exception:
            return False

    def reset(self) -> None:
        """Before a test: overlays closed, missing-node record cleared; reloads the page if it stopped answering."""
        if not self.healthy():
            log.warning("frontend page unhealthy, reloading")
            self.open()
        self.page.keyboard.press("Escape")
        if self.call(CLOSE_OVERLAYS, timeout=10):
            self.page.keyboard.press("Escape")
            try:
                self.page.wait_for_function("() => !document.querySelector('.p-dialog')", timeout=5_000)
            except PlaywrightTimeout:
                log.warning("a dialog stays open over the canvas")
        self.call("() => { window.__ap.missing = []; window.__ap.toasts = []; }", timeout=10)

    # -- what the page said ----------------------------------------------------------------------------------
    def errors(self, since: int = 0, since_pe: int = 0) -> list[str]:
        msgs = [f"console.{m['type']}: {m['text']} @ {m['url']}" for m in self.console[since:] if m["type"] == "error"]
        return msgs + [f"pageerror: {e}" for e in self.page_errors[since_pe:]]

    def pack_errors(self, since: int = 0, since_pe: int = 0) -> list[str]:
        """Console errors and page errors that name the pack's files or extension (ComfyUI's own baseline errors,
        such as 404s for user.css and userdata, do not). The frontend also asks the node registry at api.comfy.org
        about every custom node type it shows, which the page's CSP blocks offline: those name our node IDs but
        are not the pack's errors."""
        return [e for e in self.errors(since, since_pe)
                if PACK_MARK in e.lower() and "https://api.comfy.org/" not in e]

    def set_renderer(self, renderer: str, timeout: float = 30) -> None:
        """Switches between the classic canvas and Nodes 2.0 with the frontend's own setting, and waits until the
        graph's nodes are (or are no longer) DOM elements."""
        vue = renderer == "vue"
        self.call(f"async (v) => {{ await app.extensionManager.setting.set('{VUE_SETTING}', v); }}", vue)
        want = "> 0" if vue else "=== 0"
        self.page.wait_for_function(
            f"() => (app.graph.nodes ?? app.graph._nodes).length === 0 "
            f"|| document.querySelectorAll('[data-node-id]').length {want}", timeout=timeout * 1000)
        self.call("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))", timeout=10)

    def renderer(self) -> str:
        return "vue" if self.call(f"() => !!app.extensionManager.setting.get('{VUE_SETTING}')") else "classic"

    def visible_text(self, node_id, first_line: str) -> dict | None:
        return self.call(VISIBLE_TEXT, [str(node_id), first_line], timeout=10)

    def mark(self) -> tuple[int, int]:
        return len(self.console), len(self.page_errors)

    # -- graph operations ------------------------------------------------------------------------------------
    def load(self, data: dict, name: str, timeout: float = 60) -> str:
        """Puts a workflow file onto the canvas with the frontend's own loader; returns its format."""
        if is_api_format(data):
            # loadApiJson (unlike loadGraphData) keeps the previous graph's node outputs, keyed by node id, and hands
            # them to the new nodes with the same ids (e.g. an animation preview widget from another workflow's
            # SaveAnimatedWEBP "9"); app.clean() is the reset loadGraphData does first.
            self.call("([api, name]) => { app.clean(); return app.loadApiJson(api, name); }", [data, name],
                      timeout=timeout)
            fmt = "api"
        elif is_ui_format(data):
            self.call("([wf, name]) => app.loadGraphData(wf, true, true, name)", [data, name], timeout=timeout)
            fmt = "ui"
        else:
            raise AssertionError(f"{name}: neither a UI workflow (nodes + links) nor an API prompt "
                                 "(node id -> {class_type, inputs})")
        # loadGraphData finishes its redraw on the next animation frame
        self.call("() => new Promise((r) => requestAnimationFrame(() => r(true)))", timeout=10)
        return fmt

    def missing_node_types(self) -> list[str]:
        """Missing types as the frontend reported them (its missing-nodes dialog) plus any node on the graph whose
        type is not registered."""
        reported = self.call("() => [...window.__ap.missing]", timeout=10)
        return [f"reported missing: {t}" for t in reported] + self.call(UNREGISTERED, timeout=10)

    def toasts(self) -> list[str]:
        """Toast messages raised since the last reset."""
        return self.call("() => [...window.__ap.toasts]", timeout=10)

    def graph_to_prompt(self, timeout: float = 60) -> dict:
        return self.call("async () => (await app.graphToPrompt()).output", timeout=timeout)

    def set_widgets(self, updates: dict) -> list[str]:
        return self.call(SET_WIDGETS, updates, timeout=20)

    def fit_view(self, node_ids: list | None = None, zoom: float = 0.9) -> None:
        """Fits the canvas to the nodes (all when None); ``zoom`` is the share of the view they fill."""
        self.call(FIT_VIEW, [node_ids, zoom], timeout=10)

    def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path), timeout=30_000)
        return path

    def queue_and_wait(self, timeout: float = 600, alive=None) -> dict:
        """Queues the graph the way the Run button does (``app.queuePrompt(0, 1)``) and waits for the prompt's
        execution_success / execution_error / execution_interrupted event. Returns
        {"prompt": <posted API prompt>, "prompt_id", "event": {type, detail}, "seconds"}."""
        n_posts = len(self.prompt_posts)
        t0 = time.monotonic()
        with self.page.expect_response(lambda r: r.url.endswith("/api/prompt") and r.request.method == "POST",
                                       timeout=120_000) as resp_info:
            ok = self.call("() => app.queuePrompt(0, 1)", timeout=120)
        resp = resp_info.value
        body = resp.json() if resp.ok else resp.text()
        posted = self.prompt_posts[n_posts]["prompt"] if len(self.prompt_posts) > n_posts else None
        # queuePrompt's own return value is `!lastNodeErrors`, false even for an accepted prompt ({} is
        # truthy), so the HTTP answer decides.
        if not resp.ok or not isinstance(body, dict) or body.get("node_errors") or "prompt_id" not in body:
            raise AssertionError(f"the frontend could not queue the prompt (HTTP {resp.status}, queuePrompt "
                                 f"returned {ok}): {body}")
        pid = body["prompt_id"]
        done = "([pid, kinds]) => window.__ap.events.some((e) => e.detail?.prompt_id === pid && kinds.includes(e.type))"
        deadline = t0 + timeout
        while True:  # waits in slices so a dead server ends the wait early
            try:
                self.page.wait_for_function(done, arg=[pid, list(FINISHED)], polling=250,
                                            timeout=max(1.0, min(10.0, deadline - time.monotonic())) * 1000)
                break
            except PlaywrightTimeout:
                if alive is not None and not alive():
                    raise RuntimeError(f"the ComfyUI server died while running prompt {pid}") from None
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"prompt {pid} sent no execution_success/error within {timeout:g} s") from None
        event = self.call("([pid, kinds]) => window.__ap.events.find((e) => e.detail?.prompt_id === pid && "
                          "kinds.includes(e.type))", [pid, list(FINISHED)], timeout=10)
        return {"prompt": posted, "prompt_id": pid, "event": event, "seconds": time.monotonic() - t0}


@contextlib.contextmanager
def open_frontend(browser, url: str):
    """A page on the frontend a ComfyUI server at ``url`` serves, in its own browser context that reaches nothing
    but that server (the frontend asks api.comfy.org and others, which would only time out offline)."""
    local = urlsplit(url).netloc  # 127.0.0.1:<port>
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    context.set_default_timeout(60_000)
    context.set_default_navigation_timeout(90_000)
    blocked: list[str] = []

    def only_local(route):
        if urlsplit(route.request.url).netloc == local:
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    context.route("**/*", only_local)
    context.add_init_script(INIT_SCRIPT)
    page = context.new_page()
    fe = Frontend(page, url)
    fe.attach()
    page.on("request", lambda r: record_prompt_post(fe, r))
    try:
        seconds = fe.open()
        log.info("frontend ready in %.1f s", seconds)
        for e in fe.errors():
            log.info("baseline page error (not the pack's): %s", e.splitlines()[0][:300])
        yield fe
    finally:
        if blocked:
            log.info("aborted %d non-local requests, e.g. %s", len(blocked), sorted(set(blocked))[:5])
        context.close()


def record_prompt_post(frontend: Frontend, request) -> None:
    """Request hook: keeps the body of every POST /api/prompt (the prompt exactly as the frontend sent it)."""
    if request.method == "POST" and request.url.endswith("/api/prompt"):
        try:
            frontend.prompt_posts.append(json.loads(request.post_data or "{}"))
        except ValueError:
            frontend.prompt_posts.append({"raw": request.post_data})


def describe_error(event: dict) -> str:
    d = event.get("detail") or {}
    if event.get("type") == "execution_error":
        tb = "".join(d.get("traceback") or [])[-3000:]
        return (f"{d.get('node_type')} (node {d.get('node_id')}): {d.get('exception_type')}: "
                f"{(d.get('exception_message') or '').strip()}\n{tb}")
    return f"{event.get('type')}: {json.dumps(d)[:2000]}"


def native_api_workflow(checkpoint: str, frames: int = 4, steps: int = 4) -> dict:
    """A small graph of ComfyUI's own nodes (no pack nodes), in API format."""
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": checkpoint}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "a red fox in the snow"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "blurry"}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": frames}},
        "5": {"class_type": "KSampler", "inputs": {
            "model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["4", 0], "seed": 1,
            "steps": steps, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}},
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "7": {"class_type": "SaveAnimatedWEBP", "inputs": {
            "images": ["6", 0], "filename_prefix": "browser/native", "fps": 8.0, "lossless": False, "quality": 80,
            "method": "default"}},
    }
