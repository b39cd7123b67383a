// AnimaPose front-end: shows what a node detected or applied (the text its Python side returns as UI output,
// e.g. the motion module's format on the loader) in a read-only box on the node.
import { app } from "../../scripts/app.js";

const EXTENSION = "animapose.nodeInfo";
const WIDGET = "animapose_info";

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
    },
  });
}

function showInfo(node, text) {
  let widget = node.widgets?.find((w) => w.name === WIDGET);
  if (!widget) {
    const area = document.createElement("textarea");
    area.readOnly = true;
    area.className = "comfy-multiline-input";
    area.style.cssText = "width:100%;font-size:11px;opacity:0.85;resize:none";
    widget = node.addDOMWidget(WIDGET, "customtext", area, {
      getValue: () => area.value,
      setValue: (v) => (area.value = v),
      // Height follows the text (about 15 px a line), so the whole summary is readable without scrolling.
      getMinHeight: () => 16 + 15 * Math.min(12, (area.value.match(/\n/g)?.length ?? 0) + 1),
      serialize: false,
    });
    widget.serialize = false;
  }
  widget.element.value = text;
  node.setSize?.([Math.max(node.size[0], 360), node.computeSize()[1]]);
  node.setDirtyCanvas?.(true, true);
}
