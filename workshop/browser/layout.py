"""Geometry of the graph on the real frontend's canvas: node and group rectangles, overlaps, the fit-view zoom, and
titles cut by the node width. Used by the layout, template and info-box tests."""

from __future__ import annotations

# Node rectangles include the title bar; groups as they are. Nodes inside subgraphs are not on this canvas.
GEOMETRY = """() => {
  const th = LiteGraph.NODE_TITLE_HEIGHT ?? 30;
  const ctx = document.createElement('canvas').getContext('2d');
  ctx.font = `${LiteGraph.NODE_TEXT_SIZE ?? 14}px ${LiteGraph.NODE_FONT ?? 'Arial'}`;
  const nodes = (app.graph.nodes ?? app.graph._nodes).map((n) => ({
    id: n.id, type: n.type, title: n.getTitle?.() ?? n.title, collapsed: !!n.flags?.collapsed,
    rect: [n.pos[0], n.pos[1] - th, n.size[0], n.size[1] + th],
    // drawTitleText cuts the title to the node's width less two title heights
    titleWidth: ctx.measureText(n.getTitle?.() ?? n.title ?? '').width + 2 * th,
  }));
  const groups = (app.graph.groups ?? app.graph._groups ?? []).map((g) => ({
    title: g.title, rect: [g.pos[0], g.pos[1], g.size[0], g.size[1]]}));
  const r = app.canvas.canvas.getBoundingClientRect();
  return {nodes, groups, canvas: [r.width, r.height], ds: {scale: app.canvas.ds.scale, offset: [...app.canvas.ds.offset]},
          lowQuality: app.extensionManager?.setting?.get?.('LiteGraph.Canvas.LowQualityRenderingZoomThreshold') ?? 0.6};
}"""


def overlap(a, b, margin: float = 0.0) -> bool:
    return (a[0] < b[0] + b[2] - margin and b[0] < a[0] + a[2] - margin
            and a[1] < b[1] + b[3] - margin and b[1] < a[1] + a[3] - margin)


def inside(inner, outer, slack: float = 2.0) -> bool:
    return (inner[0] >= outer[0] - slack and inner[1] >= outer[1] - slack
            and inner[0] + inner[2] <= outer[0] + outer[2] + slack and inner[1] + inner[3] <= outer[1] + outer[3] + slack)


def node_overlaps(geo: dict) -> list[str]:
    nodes = [n for n in geo["nodes"] if not n["collapsed"]]
    bad = []
    for i, a in enumerate(nodes):
        for b in nodes[i + 1:]:
            if overlap(a["rect"], b["rect"], margin=1.0):
                bad.append(f"{a['title']} (#{a['id']}) {fmt(a['rect'])} overlaps {b['title']} (#{b['id']}) "
                           f"{fmt(b['rect'])}")
    return bad


def group_problems(geo: dict) -> list[str]:
    """Groups that overlap each other, and nodes (other than notes) that no group holds."""
    bad = []
    gs = geo["groups"]
    for i, a in enumerate(gs):
        for b in gs[i + 1:]:
            if overlap(a["rect"], b["rect"], margin=1.0):
                bad.append(f"group '{a['title']}' overlaps group '{b['title']}'")
    for n in geo["nodes"]:
        if n["type"] in ("Note", "MarkdownNote"):
            continue
        holders = [g["title"] for g in gs if inside(n["rect"], g["rect"])]
        if len(holders) != 1:
            bad.append(f"{n['title']} (#{n['id']}) is in {len(holders)} groups {holders}")
    return bad


def cut_titles(geo: dict) -> list[str]:
    return [f"{n['title']!r} needs {n['titleWidth']:.0f} px, node is {n['rect'][2]:.0f} px"
            for n in geo["nodes"] if not n["collapsed"] and n["titleWidth"] > n["rect"][2]]


def bounds(rects) -> list[float]:
    x0 = min(r[0] for r in rects)
    y0 = min(r[1] for r in rects)
    x1 = max(r[0] + r[2] for r in rects)
    y1 = max(r[1] + r[3] for r in rects)
    return [x0, y0, x1 - x0, y1 - y0]


def fit_zoom(geo: dict, margin: float = 40.0) -> float:
    """The zoom at which everything (nodes and groups) fills the canvas less ``margin`` px a side."""
    b = bounds([n["rect"] for n in geo["nodes"]] + [g["rect"] for g in geo["groups"]])
    w, h = geo["canvas"]
    return min((w - 2 * margin) / b[2], (h - 2 * margin) / b[3])


def on_screen(rect, geo: dict) -> bool:
    """Whether ``rect`` (graph units) lies within the canvas in the current view."""
    s, (ox, oy) = geo["ds"]["scale"], geo["ds"]["offset"]
    x0, y0 = (rect[0] + ox) * s, (rect[1] + oy) * s
    x1, y1 = (rect[0] + rect[2] + ox) * s, (rect[1] + rect[3] + oy) * s
    w, h = geo["canvas"]
    return x0 >= -1 and y0 >= -1 and x1 <= w + 1 and y1 <= h + 1


def fmt(r) -> str:
    return "[" + ", ".join(f"{v:.0f}" for v in r) + "]"


# The frontend's own overlays over the canvas: the minimap and the canvas menu (measured), and the band at the top
# with the tab bar, the workflow-name box and the Run bar (their boxes are not positioned elements).
OVERLAYS = """() => {
  const out = [];
  for (const sel of ['.minimap-main-container', '.p-buttongroup.absolute']) {
    for (const el of document.querySelectorAll(sel)) {
      const r = el.getBoundingClientRect();
      if (r.width > 0 && r.height > 0 && getComputedStyle(el).display !== 'none') out.push([sel, [r.x, r.y, r.width, r.height]]);
    }
  }
  out.push(['top bar', [0, 0, window.innerWidth, 100]]);
  return out;
}"""


def to_screen(rect, geo: dict) -> list[float]:
    s, (ox, oy) = geo["ds"]["scale"], geo["ds"]["offset"]
    return [(rect[0] + ox) * s, (rect[1] + oy) * s, rect[2] * s, rect[3] * s]


def covered(geo: dict, overlays) -> list[str]:
    """Nodes of the current view that one of the frontend's overlays covers."""
    return [f"{n['title']} under {name}" for n in geo["nodes"] for name, r in overlays
            if overlap(to_screen(n["rect"], geo), r)]
