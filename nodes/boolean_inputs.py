"""Refusing a non-boolean value for a boolean input when the prompt is queued.

ComfyUI converts a BOOLEAN widget value with ``bool()`` while it validates a queued prompt, before any node code sees
it, so an API client's ``"maybe"`` (or ``"false"``, which is non-empty text) arrives as True. The pack registers one
handler on the server's documented ``add_on_prompt_handler`` hook; it runs before validation and replaces such a value
of one of the pack's boolean inputs by ``NotBoolean``: text that still reads as what the client sent (in the error
ComfyUI returns) but whose ``bool()`` raises the pack's message. ComfyUI's own conversion then refuses the prompt,
naming the input, and nothing runs. Values of other packs' nodes are left alone.
"""

from __future__ import annotations

import functools
import logging

from comfy_api.latest import io

from ..animapose.errors import AnimaPoseError

log = logging.getLogger(__name__)


class NotBoolean(str):
    """What the client sent to a boolean input, as text; ``bool()`` of it raises the refusal."""

    def __new__(cls, sent, message: str):
        obj = super().__new__(cls, sent if isinstance(sent, str) else repr(sent))
        obj.message = message
        return obj

    def __bool__(self):
        raise ValueError(self.message)


@functools.cache
def boolean_inputs() -> dict[str, tuple[type, tuple[str, ...]]]:
    """class_type -> (node class, names of its BOOLEAN inputs), for the pack's nodes that have any."""
    from . import ALL_NODES

    out = {}
    for cls in ALL_NODES:
        try:
            schema = cls.define_schema()
        except Exception:
            log.warning("AnimaPose: could not read the inputs of %s; its boolean inputs are not checked when queued",
                        cls.__name__, exc_info=True)
            continue
        names = tuple(spec.id for spec in schema.inputs if isinstance(spec, io.Boolean.Input))
        if names:
            out[schema.node_id] = (cls, names)
    return out


def refuse_non_booleans(json_data):
    """The on-prompt handler: marks every non-boolean value of a pack boolean input (links are left alone)."""
    prompt = json_data.get("prompt") if isinstance(json_data, dict) else None
    if not isinstance(prompt, dict):
        return json_data
    known = boolean_inputs()
    for node in prompt.values():
        if not isinstance(node, dict) or node.get("class_type") not in known:
            continue
        inputs = node.get("inputs")
        if not isinstance(inputs, dict):
            continue
        cls, names = known[node["class_type"]]
        for name in names:
            if name not in inputs:
                continue
            value = inputs[name]
            if isinstance(value, dict) and "__value__" in value:  # ComfyUI unwraps this form before converting
                value = value["__value__"]
            if isinstance(value, bool) or (isinstance(value, list) and len(value) == 2):
                continue
            shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
            error = AnimaPoseError(name, f"{shown} is not true or false (ComfyUI would read any non-empty text, "
                                   "'false' included, as true)", "send true or false (a JSON boolean)",
                                   node=cls.DISPLAY)
            inputs[name] = NotBoolean(value, str(error))
    return json_data


def register() -> None:
    """Adds the handler to the running server once (there is no server when the nodes are imported by tests)."""
    try:
        from server import PromptServer
    except ImportError:
        return
    server = getattr(PromptServer, "instance", None)
    if server is None:
        return
    if any(getattr(h, "__name__", "") == refuse_non_booleans.__name__ and getattr(h, "__module__", "") == __name__
           for h in server.on_prompt_handlers):
        return
    server.add_on_prompt_handler(refuse_non_booleans)
