"""Generic layout of a workflow graph for the Templates dialog: nodes sorted into stages (groups, left to right in
the order the work happens), stacked in compact columns chosen so the whole graph is readable at fit-to-view on a
1600x1000 window, the Note first, the opening view set to show everything.

``stages(api_prompt, object_info)`` is plain Python (unit-testable; it reads only the prompt's links and the node
types' output types from ``/object_info``); ``LAYOUT_JS`` places the nodes in the real frontend, where node sizes
are known. ``workshop/authoring/export_ui_workflows.py`` runs both for every workflow in workflows/api/, so a workflow added
later is laid out the same way without editing anything here.
"""

from __future__ import annotations

import re

# Outputs that are data flowing through a run, not models being built.
DATA_TYPES = {"IMAGE", "LATENT", "CONDITIONING", "MASK", "NOISE", "SAMPLER", "SIGMAS", "GUIDER", "VIDEO", "AUDIO",
              "STRING", "INT", "FLOAT", "BOOLEAN", "LOSS_MAP", "ANIMAPOSE_POSES", "*"}
SAMPLING_TYPES = {"NOISE", "SAMPLER", "SIGMAS", "GUIDER"}
MEDIA_TYPES = {"IMAGE", "VIDEO", "AUDIO", "MASK"}
TRAINING = re.compile(r"Finetune|Train", re.I)

# (key, group title, colour) in the order the groups appear, left to right.
STAGES = [
    ("models", "Models", "#3f5159"),
    ("inputs", "Inputs & conditioning", "#3f553f"),
    ("finetune", "Finetune", "#59503f"),
    ("sample", "Sample", "#4f3f59"),
    ("output", "Decode & save", "#593f45"),
]


def stages(prompt: dict, object_info: dict) -> dict[str, str]:
    """{node id: stage key} for an API-format prompt."""
    def outs(nid):
        return set(object_info.get(prompt[nid]["class_type"], {}).get("output", []) or [])

    def links(nid):
        return [(name, str(v[0])) for name, v in prompt[nid].get("inputs", {}).items()
                if isinstance(v, list) and len(v) == 2 and str(v[0]) in prompt]

    def link_types(nid):
        # the type an input carries is the source's output type at that slot
        types = set()
        for name, v in prompt[nid].get("inputs", {}).items():
            if isinstance(v, list) and len(v) == 2 and str(v[0]) in prompt:
                src_outs = object_info.get(prompt[str(v[0])]["class_type"], {}).get("output", []) or []
                if isinstance(v[1], int) and v[1] < len(src_outs):
                    types.add(src_outs[v[1]])
        return types

    consumers: dict[str, set[str]] = {nid: set() for nid in prompt}
    for nid in prompt:
        for _, src in links(nid):
            consumers[src].add(nid)
    stage: dict[str, str] = {}
    for nid, node in prompt.items():
        if TRAINING.search(node["class_type"]) or "LOSS_MAP" in outs(nid):
            stage[nid] = "finetune"
    # models: every output is a model-like type and everything it reads comes from models (fixpoint)
    changed = True
    while changed:
        changed = False
        for nid in prompt:
            if nid in stage:
                continue
            o = outs(nid)
            if o and not (o & DATA_TYPES) and all(stage.get(src) == "models" for _, src in links(nid)):
                stage[nid] = "models"
                changed = True
    # output: output nodes, and nodes making media only for them (decoders, video assembly), from the sinks back
    info = {nid: object_info.get(prompt[nid]["class_type"], {}) for nid in prompt}
    changed = True
    while changed:
        changed = False
        for nid in prompt:
            if nid in stage:
                continue
            o = outs(nid)
            sink = bool(info[nid].get("output_node")) and not consumers[nid]
            feeds_output = (o and o <= MEDIA_TYPES and consumers[nid]
                            and all(stage.get(c) == "output" for c in consumers[nid])
                            and link_types(nid) & (MEDIA_TYPES | {"LATENT"}))
            if sink or info[nid].get("output_node") and not (o & DATA_TYPES - MEDIA_TYPES) or feeds_output:
                stage[nid] = "output"
                changed = True
    for nid in prompt:
        if nid in stage:
            continue
        o, lt = outs(nid), link_types(nid)
        if o & SAMPLING_TYPES or ("LATENT" in o and lt & {"LATENT", "MODEL", "GUIDER", "NOISE"}):
            stage[nid] = "sample"
        else:
            stage[nid] = "inputs"
    return stage


def depths(prompt: dict) -> dict[str, int]:
    """Longest path from a source, for the order inside a stage (what a node reads comes above it)."""
    memo: dict[str, int] = {}

    def depth(nid, seen=()):
        if nid in memo:
            return memo[nid]
        srcs = [str(v[0]) for v in prompt[nid].get("inputs", {}).values()
                if isinstance(v, list) and len(v) == 2 and str(v[0]) in prompt and str(v[0]) not in seen]
        memo[nid] = 1 + max((depth(s, seen + (nid,)) for s in srcs), default=-1)
        return memo[nid]

    for nid in prompt:
        depth(nid)
    return memo


def plan(prompt: dict, object_info: dict) -> list[dict]:
    """The groups to lay out, in order: [{"title", "color", "nodes": [ids in stacking order]}] (empty stages
    dropped, titles numbered)."""
    st, dp = stages(prompt, object_info), depths(prompt)

    def order(nid):
        return (dp[nid], int(nid) if nid.isdigit() else 10**9, nid)

    groups = []
    for key, title, color in STAGES:
        ids = sorted((nid for nid in prompt if st[nid] == key), key=order)
        if ids:
            groups.append({"title": f"{len(groups) + 1}. {title}", "color": color, "nodes": ids})
    return groups


# Runs in the page after app.loadApiJson: sizes nodes (titles fully shown, room for previews that appear later),
# places the groups as columns, picks each group's column height so fit-to-view zoom is largest, adds the Note in
# front and stores the opening view. Returns the serialised graph and the zoom reached.
# Where the frontend's own overlays sit on a 1600x1000 window (frontend 1.32.9, measured): the tab bar and the
# workflow-name box at the top (the Run bar top right), the side bar on the left, the minimap and the canvas menu at
# the bottom right. The opening view keeps the graph clear of them.
SAFE = {"left": 64, "top": 108, "right": 16, "bottom": 16, "minimap": [265, 265]}

LAYOUT_JS = r"""async ([groups, note, view, grow, safe]) => {
  const graph = app.graph;
  const byId = (id) => graph.getNodeById(isNaN(+id) ? id : +id);
  const TH = LiteGraph.NODE_TITLE_HEIGHT ?? 30;
  const GAP = 30, GROUP_PAD = 16, GROUP_TITLE = 24 * 1.4, COL_GAP = 40;
  const ctx = document.createElement('canvas').getContext('2d');
  ctx.font = `${LiteGraph.NODE_TEXT_SIZE ?? 14}px ${LiteGraph.NODE_FONT ?? 'Arial'}`;
  for (const n of graph.nodes) {
    // a title left over from an older display name of a pack node gives way to the current one
    const def = LiteGraph.registered_node_types[n.type]?.title;
    if (def && n.type.startsWith('AnimaPose_') && /^AnimaPose /.test(n.title)) n.title = def;
    const title = n.getTitle?.() ?? n.title;
    const need = Math.ceil(ctx.measureText(title).width) + 2 * TH + 4;  // drawTitleText's room
    const min = n.computeSize();
    const extra = grow[n.type] ?? 0;
    n.setSize([Math.max(n.size[0], min[0], need), Math.max(n.size[1], min[1]) + extra]);
  }
  if (note) {
    const n = LiteGraph.createNode('Note');
    n.widgets[0].value = note;
    graph.add(n);
    n.setSize([380, Math.max(220, 18 * Math.ceil(note.length / 52) + 40)]);
    n.__apNote = true;
  }
  const noteNode = graph.nodes.find((n) => n.__apNote);
  // one group: split its nodes (in order) into columns no taller than h
  const columns = (ids, h) => {
    const cols = [[]];
    let y = 0;
    for (const id of ids) {
      const n = byId(id), nh = n.size[1] + TH;
      if (cols.at(-1).length && y + nh > h) { cols.push([]); y = 0; }
      cols.at(-1).push(n);
      y += nh + GAP;
    }
    return cols;
  };
  // groups left to right; from index `wrap` on, a second row below the first
  const place = (h, wrap) => {
    const placed = [];
    let x = 0, y0 = 0, rowH = 0, width = 0;
    if (noteNode) { noteNode.pos = [0, TH]; x = noteNode.size[0] + COL_GAP; rowH = noteNode.size[1] + TH; }
    groups.forEach((g, i) => {
      if (i === wrap && i > 0) { width = Math.max(width, x - COL_GAP); x = 0; y0 += rowH + COL_GAP; rowH = 0; }
      const cols = columns(g.nodes, h);
      let gx = x + GROUP_PAD, gBottom = 0;
      for (const col of cols) {
        const w = Math.max(...col.map((n) => n.size[0]));
        let y = GROUP_TITLE + GROUP_PAD;
        for (const n of col) {
          n.pos = [gx, y0 + y + TH];
          y += n.size[1] + TH + GAP;
        }
        gBottom = Math.max(gBottom, y - GAP);
        gx += w + GAP;
      }
      const gw = gx - GAP + GROUP_PAD - x;
      placed.push({g, rect: [x, y0, gw, gBottom + GROUP_PAD]});
      rowH = Math.max(rowH, gBottom + GROUP_PAD);
      x += gw + COL_GAP;
    });
    return {placed, width: Math.max(width, x - COL_GAP), height: y0 + rowH};
  };
  const [vw, vh] = view;
  const freeW = vw - safe.left - safe.right, freeH = vh - safe.top - safe.bottom;
  const [mw, mh] = safe.minimap;
  // the graph either stays above the minimap or left of it
  const zoomOf = (r) => {
    const above = Math.min(freeW / r.width, (freeH - mh) / r.height);
    const left = Math.min((freeW - mw) / r.width, freeH / r.height);
    return above >= left ? {z: above, w: freeW, h: freeH - mh} : {z: left, w: freeW - mw, h: freeH};
  };
  const heights = new Set();
  for (const g of groups) {
    let acc = 0;
    for (const id of g.nodes) { const n = byId(id); acc += n.size[1] + TH + GAP; heights.add(acc); heights.add(n.size[1] + TH); }
  }
  let best = null;
  for (let wrap = 0; wrap < Math.max(1, groups.length); wrap++) {
    for (const h of [...heights].sort((a, b) => a - b)) {
      const r = place(h, wrap);
      const z = zoomOf(r);
      if (!best || z.z > best.z.z + 1e-6) best = {h, wrap, z};
    }
  }
  const result = place(best.h, best.wrap);
  for (const g of [...(graph.groups ?? [])]) graph.remove(g);
  for (const {g, rect} of result.placed) {
    const grp = new LiteGraph.LGraphGroup(g.title);
    grp.color = g.color;
    graph.add(grp);
    grp.pos = [rect[0], rect[1]];
    grp.size = [rect[2], rect[3]];
  }
  // examples should reproduce: seeds stay as written instead of the frontend's default "randomize"
  for (const n of graph.nodes) for (const w of n.widgets ?? []) if (w.name === 'control_after_generate') w.value = 'fixed';
  // the opening view: everything inside the free area, centred in it
  const scale = Math.min(1, best.z.z);
  const ox = (safe.left + (best.z.w - result.width * scale) / 2) / scale;
  const oy = (safe.top + (best.z.h - result.height * scale) / 2) / scale;
  const ds = {scale, offset: [ox, oy]};
  graph.extra = graph.extra ?? {};
  graph.extra.ds = ds;
  app.canvas.ds.scale = scale;
  app.canvas.ds.offset = [ox, oy];
  app.canvas.setDirty(true, true);
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  const out = JSON.parse(JSON.stringify(graph.serialize()));
  out.extra = out.extra ?? {};
  out.extra.ds = ds;
  return {workflow: out, zoom: scale, size: [result.width, result.height], rows: best.wrap ? 2 : 1};
}"""
