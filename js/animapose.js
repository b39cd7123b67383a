// AnimaPose front-end, kept small and renderer-neutral (classic LiteGraph canvas and Nodes 2.0 alike): no canvas
// drawing, no mouse handlers, no menu patches, no DOM widgets of its own.
// - What a node detected or applied (the motion module's format on the loader, warnings first) is sent by the node
//   itself as ComfyUI progress text, which the frontend draws on the node in both renderers without this file. A
//   node whose result comes from the cache does not run and sends nothing, so its UI text output (which ComfyUI
//   sends again for cached nodes) is handed to the frontend's own progress-text handler here. Warning lines also
//   raise one of the frontend's toasts. On the classic canvas a node that grows moves the nodes and groups below it
//   down instead of covering them.
// - An upload button (a native button widget) on the DensePose UV loader for a .zip of .npy pose files: it lands in
//   ComfyUI's input folder and becomes the picked choice.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const EXTENSION = "animapose.nodeInfo";
// the frontend's own widget for a node's progress text (useNodeProgressText in 1.32.9 and 1.58.1)
const INFO_WIDGET = "$$node-text-preview";
const UPLOAD_WIDGET = "upload pose archive (.zip)";
const POSE_LOADER = "AnimaPose_LoadDensePoseUV";
const MIN_WIDTH = 360;
const GAP = 20; // space kept between a grown node and what it pushes down
const WARNING = /\bwarning\b/i;

// ComfyUI can serve this folder twice (pyproject [tool.comfy] web and WEB_DIRECTORY register it under the
// project name and the folder name); register once.
if (!app.extensions?.some((e) => e.name === EXTENSION)) {
  app.registerExtension({
    name: EXTENSION,
    setup() {
      // switching renderers changes every node's size: make room again for the texts shown
      app.ui?.settings?.addEventListener?.("Comfy.VueNodes.Enabled.change", async () => {
        // the other renderer mounts and sizes the nodes over several frames
        await new Promise((r) => setTimeout(r, 400));
        await frames(4);
        const graph = app.graph;
        const shown = (graph?.nodes ?? graph?._nodes ?? [])
          .filter((n) => n.widgets?.some((w) => w.name === INFO_WIDGET && w.value))
          .sort((a, b) => a.pos[1] - b.pos[1]);
        // twice: a text's box reaches its final height a few frames after the first pass moved nodes
        for (let pass = 0; pass < 2; pass++) {
          for (const n of shown) await makeRoom(n);
          await new Promise((r) => setTimeout(r, 200));
        }
      });
    },
    async beforeRegisterNodeDef(nodeType, nodeData) {
      if (!nodeData?.name?.startsWith("AnimaPose_")) return;
      const onExecuted = nodeType.prototype.onExecuted;
      nodeType.prototype.onExecuted = function (message) {
        onExecuted?.apply(this, arguments);
        const text = message?.text?.join("\n");
        if (text) showInfo(this, text);
      };
      const onNodeCreated = nodeType.prototype.onNodeCreated;
      nodeType.prototype.onNodeCreated = function () {
        const r = onNodeCreated?.apply(this, arguments);
        if (nodeData.name === POSE_LOADER) addPoseUpload(this);
        fitTitle(this);
        return r;
      };
    },
  });
}

const vueNodes = () => !!app.extensionManager?.setting?.get?.("Comfy.VueNodes.Enabled");

// A new node is at least as wide as its title, so the display name is never cut ("DreamPose Finetune UNet + A...").
export function titleWidth(title) {
  measureCtx ??= document.createElement("canvas").getContext("2d");
  measureCtx.font = `${LiteGraph.NODE_TEXT_SIZE ?? 14}px ${LiteGraph.NODE_FONT ?? "Arial"}`;
  // the frontend draws the title in the node's width less two title heights (drawTitleText) and cuts the rest
  return Math.ceil(measureCtx.measureText(title).width) + 2 * (LiteGraph.NODE_TITLE_HEIGHT ?? 30) + 4;
}
let measureCtx = null;

function fitTitle(node) {
  const need = titleWidth(node.title ?? "");
  if (node.size[0] < need) node.setSize?.([need, node.size[1]]);
}

// Warning lines first (in their order), then the rest; the nodes send them in this order already.
export function warningsFirst(text) {
  const lines = text.split("\n");
  const warn = lines.filter((l) => WARNING.test(l));
  return [...warn, ...lines.filter((l) => !WARNING.test(l))].join("\n");
}

const toasted = new WeakMap();
const frames = (n = 2) => new Promise((r) => { const f = (k) => (k ? requestAnimationFrame(() => f(k - 1)) : r()); f(n); });

// Nodes 2.0 draws progress text as Markdown, which joins lines unless they end in two spaces; the classic renderer
// turns each newline into a line break, where the two spaces do not show. The nodes send their text this way too.
export const forDisplay = (text) => text.split("\n").join("  \n");

function showInfo(node, raw) {
  const text = warningsFirst(raw);
  // the frontend's own handler finds the node by id and fills (or adds) its text preview widget
  api.dispatchCustomEvent("progress_text", { nodeId: String(node.id), text: forDisplay(text) });
  const warnings = text.split("\n").filter((l) => WARNING.test(l));
  if (warnings.length && toasted.get(node) !== text) {
    toasted.set(node, text);
    app.extensionManager?.toast?.add?.({ severity: "warn", summary: node.title ?? node.type,
      detail: warnings.join("\n"), life: 20000 });
  }
  makeRoom(node);
}

// The height (in graph units) the text preview of a node needs on the classic canvas: the frontend's DOM widget
// overlay holds one element per DOM widget (found by the text it shows), scaled with the canvas; the innermost
// element holding the whole text has its full height even where an ancestor cuts it.
function textNeed(node) {
  const w = node.widgets?.find((x) => x.name === INFO_WIDGET);
  if (!w) return null;
  const norm = (t) => (t ?? "").replace(/\s+/g, " ").trim();
  const want = norm(String(w.value ?? ""));
  for (const el of document.querySelectorAll(".dom-widget")) {
    if (norm(el.innerText) !== want) continue;
    let text = el;
    for (const e of el.querySelectorAll("*")) if (norm(e.innerText) === want) text = e;
    uncap(text, el);
    const box = el.getBoundingClientRect();
    const ratio = box.height / (el.offsetHeight || box.height) || 1;
    return { widget: w, have: el.offsetHeight, need: Math.ceil((text.getBoundingClientRect().bottom - box.top) / ratio) + 6 };
  }
  return null;
}

// The frontend's text preview scrolls past a fixed height (200 px in 1.32.9), where a long summary's last lines
// hide behind a scrollbar: the pack's own text shows whole instead.
function uncap(text, root) {
  for (let e = text; e && e !== root.parentElement; e = e.parentElement) {
    if (getComputedStyle(e).maxHeight !== "none") e.style.maxHeight = "none";
  }
}

function uncapVue(node) {
  const w = node.widgets?.find((x) => x.name === INFO_WIDGET);
  const root = document.querySelector(`[data-node-id="${node.id}"]`);
  if (!w || !root) return;
  const norm = (t) => (t ?? "").replace(/\s+/g, " ").trim();
  const want = norm(String(w.value ?? ""));
  let text = null;
  for (const e of root.querySelectorAll("*")) if (norm(e.innerText) === want) text = e;
  if (text) uncap(text, root);
}

async function makeRoom(node) {
  await frames();
  const graph = node.graph ?? app.graph;
  if (!vueNodes()) {
    widen(node, graph);
    for (let i = 0; i < 4; i++) {
      await frames();
      const found = textNeed(node);
      if (!found || found.need <= found.have + 1) break;
      found.widget.options.getMinHeight = () => found.need;
      // other DOM widgets (a prompt's text box) share the node's free height: grow by what is missing
      const height = Math.max(node.computeSize([node.size[0], node.size[1]])[1], node.size[1] + found.need - found.have);
      node.setSize?.([node.size[0], height]);
      node.setDirtyCanvas?.(true, true);
    }
  } else {
    uncapVue(node);
    await frames();  // Nodes 2.0 sizes the node from its DOM; node.size follows it
  }
  if (graph) pushDown(graph, node);
  graph?.setDirtyCanvas?.(true, true);
}

function widen(node, graph) {
  // wider for the text, but only into free room: never over a node on its right
  const th = LiteGraph.NODE_TITLE_HEIGHT ?? 30;
  const top = node.pos[1] - th, bottom = node.pos[1] + node.size[1];
  let room = Infinity;
  for (const o of graph?.nodes ?? graph?._nodes ?? []) {
    if (o === node || o.pos[0] < node.pos[0] + 1) continue;
    if (o.pos[1] - th < Math.max(bottom, top + 400) && o.pos[1] + o.size[1] > top) room = Math.min(room, o.pos[0] - GAP / 2);
  }
  const width = Math.max(node.size[0], Math.min(MIN_WIDTH, room - node.pos[0]));
  node.setSize?.([width, node.computeSize([width, node.size[1]])[1]]);
}

// A node's rectangle in graph units, title included. Nodes 2.0 lays nodes out as DOM elements whose size the
// node's own size does not always follow (frontend 1.5x keeps it in a separate layout store): measure the element.
const rectOf = (n) => {
  const th = LiteGraph.NODE_TITLE_HEIGHT ?? 30;
  const el = vueNodes() ? document.querySelector(`[data-node-id="${n.id}"]`) : null;
  const scale = app.canvas?.ds?.scale || 1;
  if (el) {
    // the element's box in graph units (the canvas draws graph point p at (p + offset) * scale)
    const r = el.getBoundingClientRect();
    const c = app.canvas.canvas.getBoundingClientRect();
    const [ox, oy] = app.canvas.ds.offset ?? [0, 0];
    return [(r.left - c.left) / scale - ox, (r.top - c.top) / scale - oy, r.width / scale, r.height / scale];
  }
  return [n.pos[0], n.pos[1] - th, n.size[0], n.size[1] + th];
};
const overlapsX = (a, b) => a[0] < b[0] + b[2] && b[0] < a[0] + a[2];
const overlaps = (a, b) => overlapsX(a, b) && a[1] < b[1] + b[3] && b[1] < a[1] + a[3];
const inside = (inner, outer) => inner[0] >= outer[0] - 1 && inner[1] >= outer[1] - 1
  && inner[0] + inner[2] <= outer[0] + outer[2] + 1 && inner[1] + inner[3] <= outer[1] + outer[3] + 1;

// Moves what the grown node now covers (nodes below it that share its columns, cascading) down just enough, and
// stretches the groups that hold it. Nothing moves up and nothing left or right.
function pushDown(graph, grown) {
  const nodes = [...(graph.nodes ?? graph._nodes ?? [])];
  const groups = [...(graph.groups ?? graph._groups ?? [])];
  const groupRect = (g) => [g.pos[0], g.pos[1], g.size[0], g.size[1]];
  // measured once: a moved Nodes 2.0 element reaches its new place only at the next frame
  const rect = new Map(nodes.map((n) => [n, rectOf(n)]));
  const grownRect = rect.get(grown) ?? rectOf(grown);
  // groups that hold the grown node stretch with it
  for (const g of groups) {
    const r = groupRect(g);
    if (inside([grownRect[0], grownRect[1], grownRect[2], 1], r)) {
      const need = grownRect[1] + grownRect[3] + GAP / 2 - (r[1] + r[3]);
      if (need > 0) g.size = [g.size[0], g.size[1] + need];
    }
  }
  const placed = [grownRect];
  const below = nodes.filter((n) => n !== grown && rect.get(n)[1] > grownRect[1])
    .sort((a, b) => rect.get(a)[1] - rect.get(b)[1]);
  for (const n of below) {
    const r = rect.get(n);
    let need = 0;
    for (const p of placed) {
      if (overlaps([r[0], r[1] - GAP, r[2], r[3] + GAP], p)) need = Math.max(need, p[1] + p[3] + GAP - r[1]);
    }
    if (need > 0) {
      for (const g of groups) {
        const gr = groupRect(g);
        // a group that holds the moved node (and not the grown one) stretches to keep holding it
        if (inside(r, gr) && !inside(grownRect, gr)) g.size = [g.size[0], g.size[1] + need];
      }
      n.pos = [n.pos[0], n.pos[1] + need];
      rect.set(n, [r[0], r[1] + need, r[2], r[3]]);
    }
    placed.push(rect.get(n));
  }
  for (const g of groups) {
    const gr = groupRect(g);
    const holds = nodes.filter((n) => inside(rect.get(n), [gr[0], gr[1], gr[2], gr[3] + 10000]));
    const bottom = Math.max(...holds.map((n) => rect.get(n)[1] + rect.get(n)[3]), -Infinity);
    if (holds.length && bottom + GAP / 2 > gr[1] + gr[3] && holds.includes(grown)) {
      g.size = [g.size[0], bottom + GAP / 2 - gr[1]];
    }
  }
}

function addPoseUpload(node) {
  const combo = node.widgets?.find((w) => w.name === "folder");
  if (!combo || node.widgets.some((w) => w.name === UPLOAD_WIDGET)) return;
  const input = document.createElement("input");
  input.type = "file";
  input.accept = ".zip,application/zip";
  input.style.display = "none";
  document.body.append(input);
  input.onchange = async () => {
    const file = input.files?.[0];
    input.value = "";
    if (file) await uploadPoseArchive(node, file);
  };
  const button = node.addWidget("button", UPLOAD_WIDGET, null, () => input.click());
  button.serialize = false;
  const onRemoved = node.onRemoved;
  node.onRemoved = function () {
    input.remove();
    return onRemoved?.apply(this, arguments);
  };
}

// Uploads a .zip of .npy pose files into ComfyUI's input folder and picks it. Exposed for tests and other scripts.
export async function uploadPoseArchive(node, file) {
  if (!/\.zip$/i.test(file.name)) {
    app.extensionManager?.toast?.add?.({ severity: "error", summary: "AnimaPose",
      detail: `${file.name}: pick a .zip archive of frame_N_densepose.npy files`, life: 6000 });
    return null;
  }
  const body = new FormData();
  body.append("image", file, file.name);
  body.append("type", "input");
  const resp = await api.fetchApi("/upload/image", { method: "POST", body });
  if (resp.status !== 200) {
    app.extensionManager?.toast?.add?.({ severity: "error", summary: "AnimaPose",
      detail: `upload of ${file.name} failed: ${resp.status} ${resp.statusText}`, life: 6000 });
    return null;
  }
  const data = await resp.json();
  const name = data.subfolder ? `${data.subfolder}/${data.name}` : data.name;
  const combo = node.widgets.find((w) => w.name === "folder");
  const values = combo.options.values;
  if (Array.isArray(values) && !values.includes(name)) values.push(name);
  combo.value = name;
  combo.callback?.(name);
  node.setDirtyCanvas?.(true, true);
  return name;
}

if (typeof window !== "undefined") window.__animapose = { uploadPoseArchive, warningsFirst, forDisplay, titleWidth, textNeed, makeRoom };
