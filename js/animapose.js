// AnimaPose front-end:
// - an info box on the pack's nodes that shows what the node detected or applied (the text its Python side returns
//   as UI output, e.g. the motion module's format on the loader). Warnings come first, the box is as tall as the
//   wrapped text (no scrollbar hides a line), and when the node grows the nodes and groups below it move down so
//   nothing overlaps;
// - an upload button on the DensePose UV loader for a .zip of .npy pose files (it lands in ComfyUI's input folder
//   and becomes the picked choice).
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const EXTENSION = "animapose.nodeInfo";
const WIDGET = "animapose_info";
const UPLOAD_WIDGET = "upload pose archive (.zip)";
const POSE_LOADER = "AnimaPose_LoadDensePoseUV";
const FONT_PX = 12;
const FONT_FAMILY = "ui-monospace, Menlo, Consolas, 'DejaVu Sans Mono', monospace";
const LINE_PX = 16;
const PAD_PX = 10; // textarea padding + border, top and bottom together
const MIN_WIDTH = 360;
const MAX_LINES = 40; // a safety cap only; the pack's summaries are far shorter
const GAP = 20; // space kept between a grown node and what it pushes down
const WIDGET_MARGIN = 20; // the frontend gives a DOM widget's element its allotted height less 10 px a side

// ComfyUI can serve this folder twice (pyproject [tool.comfy] web and WEB_DIRECTORY register it under the
// project name and the folder name); register once.
if (!app.extensions?.some((e) => e.name === EXTENSION)) {
  app.registerExtension({
    name: EXTENSION,
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

// A new node is at least as wide as its title, so the display name is never cut ("DreamPose Finetune UNet + A...").
export function titleWidth(title) {
  measureCtx ??= document.createElement("canvas").getContext("2d");
  measureCtx.font = `${LiteGraph.NODE_TEXT_SIZE ?? 14}px ${LiteGraph.NODE_FONT ?? "Arial"}`;
  // the frontend draws the title in the node's width less two title heights (drawTitleText) and cuts the rest
  return Math.ceil(measureCtx.measureText(title).width) + 2 * (LiteGraph.NODE_TITLE_HEIGHT ?? 30) + 4;
}

function fitTitle(node) {
  const need = titleWidth(node.title ?? "");
  if (node.size[0] < need) node.setSize?.([need, node.size[1]]);
}

// Warning lines first (in their order), then the rest: a truncated-download warning must be the first thing read.
export function warningsFirst(text) {
  const lines = text.split("\n");
  const warn = lines.filter((l) => /\bwarning\b/i.test(l));
  return [...warn, ...lines.filter((l) => !/\bwarning\b/i.test(l))].join("\n");
}

let measureCtx = null;

let mirror = null;
const heightCache = new Map();
// The height the textarea needs to show all of its text without scrolling, measured on a hidden copy with the same
// font, padding and wrapping rules at the box's current width (the node's width when the box is not on screen).
function boxHeight(node, area) {
  // the frontend makes the element the node's width less the widget margins; its own offsetWidth is not reliable
  // before the widget is first positioned (it is then 100% of something else)
  const width = Math.round(Math.max(60, node.size[0] - WIDGET_MARGIN));
  const key = `${width}\u0000${area.value}`;
  if (heightCache.has(key)) return heightCache.get(key);
  if (!mirror) {
    mirror = document.createElement("div");
    mirror.setAttribute("aria-hidden", "true");
    document.body.append(mirror);
  }
  // before the box is first laid out its computed style is empty: the inline values are what it will have
  const cs = area.isConnected ? getComputedStyle(area) : {};
  mirror.style.cssText = "position:absolute;left:-10000px;top:0;visibility:hidden;white-space:pre-wrap;"
    + `overflow-wrap:anywhere;word-break:normal;box-sizing:border-box;width:${width}px;`
    + `font-family:${cs.fontFamily || FONT_FAMILY};font-size:${FONT_PX}px;line-height:${LINE_PX}px;`
    + `padding:${cs.paddingTop || "4px"} ${cs.paddingRight || "6px"} ${cs.paddingBottom || "4px"} `
    + `${cs.paddingLeft || "6px"};border:${cs.borderTopWidth || "1px"} solid transparent;`
    + `letter-spacing:${cs.letterSpacing || "normal"};tab-size:${cs.tabSize || 8}`;
  // a trailing newline would collapse in a div but takes a line in a textarea
  mirror.textContent = area.value.endsWith("\n") ? area.value + " " : area.value;
  const h = Math.min(mirror.scrollHeight, PAD_PX + LINE_PX * MAX_LINES) + 4 + WIDGET_MARGIN;
  if (heightCache.size > 200) heightCache.clear();
  if (area.isConnected) heightCache.set(key, h);
  return h;
}

function showInfo(node, raw) {
  const text = warningsFirst(raw);
  let widget = node.widgets?.find((w) => w.name === WIDGET);
  if (!widget) {
    const area = document.createElement("textarea");
    area.readOnly = true;
    area.className = "comfy-multiline-input animapose-info";
    area.style.cssText = `width:100%;font-size:${FONT_PX}px;line-height:${LINE_PX}px;padding:4px 6px;`
      + `font-family:${FONT_FAMILY};`
      + "box-sizing:border-box;resize:none;overflow:hidden;opacity:0.9;white-space:pre-wrap;overflow-wrap:anywhere";
    widget = node.addDOMWidget(WIDGET, "customtext", area, {
      getValue: () => area.value,
      setValue: (v) => (area.value = v),
      // as tall as the wrapped text at the node's current width: every line readable, no scrollbar
      getMinHeight: () => boxHeight(node, area),
      getMaxHeight: () => boxHeight(node, area),
      serialize: false,
    });
    widget.serialize = false;
  }
  widget.element.value = text;
  widget.element.classList.toggle("animapose-warning", /\bwarning\b/i.test(text));
  if (/\bwarning\b/i.test(text)) widget.element.style.borderLeft = "3px solid #e0a030";
  resizeAndMakeRoom(node);
}

function resizeAndMakeRoom(node) {
  const graph = node.graph ?? app.graph;
  const oldBottom = node.pos[1] + node.size[1];
  // wider for the text, but only into free room: never over a node on its right
  const th = LiteGraph.NODE_TITLE_HEIGHT ?? 30;
  const top = node.pos[1] - th, bottom = node.pos[1] + node.size[1];
  let room = Infinity;
  for (const o of graph?.nodes ?? graph?._nodes ?? []) {
    if (o === node || o.pos[0] < node.pos[0] + 1) continue;
    if (o.pos[1] - th < Math.max(bottom, top + 400) && o.pos[1] + o.size[1] > top) room = Math.min(room, o.pos[0] - GAP / 2);
  }
  const width = Math.max(node.size[0], Math.min(MIN_WIDTH, room - node.pos[0]));
  node.setSize?.([width, node.size[1]]);
  const height = node.computeSize([width, node.size[1]])[1];
  // widgets are re-arranged when the size changes; a size that is already right would keep the old box height
  node.setSize?.([width, height + 1]);
  node.setSize?.([width, height]);
  const grow = node.pos[1] + node.size[1] - oldBottom;
  if (graph && grow > 0) pushDown(graph, node, oldBottom);
  node.setDirtyCanvas?.(true, true);
  graph?.setDirtyCanvas?.(true, true);
}

const rectOf = (n) => {
  const th = LiteGraph.NODE_TITLE_HEIGHT ?? 30;
  return [n.pos[0], n.pos[1] - th, n.size[0], n.size[1] + th];
};
const overlapsX = (a, b) => a[0] < b[0] + b[2] && b[0] < a[0] + a[2];
const overlaps = (a, b) => overlapsX(a, b) && a[1] < b[1] + b[3] && b[1] < a[1] + a[3];
const inside = (inner, outer) => inner[0] >= outer[0] - 1 && inner[1] >= outer[1] - 1
  && inner[0] + inner[2] <= outer[0] + outer[2] + 1 && inner[1] + inner[3] <= outer[1] + outer[3] + 1;

// Moves what the grown node now covers (nodes below it that share its columns, cascading) down just enough, and
// stretches the groups that hold it. Nothing moves up and nothing left or right.
function pushDown(graph, grown, oldBottom) {
  const nodes = [...(graph.nodes ?? graph._nodes ?? [])];
  const groups = [...(graph.groups ?? graph._groups ?? [])];
  const groupRect = (g) => [g.pos[0], g.pos[1], g.size[0], g.size[1]];
  // groups that hold the grown node stretch with it
  for (const g of groups) {
    const r = groupRect(g);
    if (inside(rectOf(grown), [r[0], r[1], r[2], Math.max(r[3], oldBottom - r[1] + GAP)])) {
      const need = grown.pos[1] + grown.size[1] + GAP / 2 - (r[1] + r[3]);
      if (need > 0) g.size = [g.size[0], g.size[1] + need];
    }
  }
  const placed = [rectOf(grown)];
  const below = nodes.filter((n) => n !== grown && n.pos[1] >= oldBottom - 1)
    .sort((a, b) => a.pos[1] - b.pos[1]);
  for (const n of below) {
    const r = rectOf(n);
    let need = 0;
    for (const p of placed) {
      if (overlaps([r[0], r[1] - GAP, r[2], r[3] + GAP], p)) need = Math.max(need, p[1] + p[3] + GAP - r[1]);
    }
    if (need > 0) {
      for (const g of groups) {
        const gr = groupRect(g);
        // a group that holds the moved node (and not the grown one) stretches to keep holding it
        if (inside(r, gr) && !inside(rectOf(grown), gr)) g.size = [g.size[0], g.size[1] + need];
      }
      n.pos = [n.pos[0], n.pos[1] + need];
    }
    placed.push(rectOf(n));
  }
  for (const g of groups) {
    const gr = groupRect(g);
    const holds = nodes.filter((n) => inside(rectOf(n), [gr[0], gr[1], gr[2], gr[3] + 10000]));
    const bottom = Math.max(...holds.map((n) => n.pos[1] + n.size[1]), -Infinity);
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

if (typeof window !== "undefined") window.__animapose = { uploadPoseArchive, warningsFirst, titleWidth };
