"""What a node detected reaches the user three ways (nodes/common.py node_info): the UI text output, ComfyUI
progress text on the executing node (which both of the frontend's renderers draw without the pack's JS), and
each warning line in the log under the node's display name. Warning lines come first everywhere."""

from __future__ import annotations

import logging
import sys
import types

from comfy_execution.utils import CurrentNodeContext

from comfyui_animapose.nodes.common import node_info, warnings_first

TEXT = "v2, original layout, for SD1.5\nmm_sd_v15_v2.ckpt\nWARNING: 12 bytes, the release has 1700: truncated"


class FakeServer:
    def __init__(self):
        self.sent = []

    def send_progress_text(self, text, node_id, sid=None):
        self.sent.append((text, node_id))


def test_warnings_first_keeps_order_and_lines():
    assert warnings_first("a\nWARNING: x\nb\nwarning: y") == "WARNING: x\nwarning: y\na\nb"
    assert warnings_first("no warnings here\nat all") == "no warnings here\nat all"
    assert warnings_first("forewarning is a word") == "forewarning is a word"


def test_node_info_text_progress_text_and_log(monkeypatch, caplog):
    fake = FakeServer()
    monkeypatch.setitem(sys.modules, "server",
                        types.SimpleNamespace(PromptServer=types.SimpleNamespace(instance=fake)))
    with caplog.at_level(logging.WARNING), CurrentNodeContext("prompt-1", "17"):
        out = node_info("Load AnimateDiff Motion Model", TEXT)
    ordered = "WARNING: 12 bytes, the release has 1700: truncated\nv2, original layout, for SD1.5\nmm_sd_v15_v2.ckpt"
    assert out.as_dict() == {"text": (ordered,)}
    # Markdown (Nodes 2.0) keeps a line break only where a line ends in two spaces
    assert fake.sent == [(ordered.replace("\n", "  \n"), "17")]
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warned == ["Load AnimateDiff Motion Model: WARNING: 12 bytes, the release has 1700: truncated"]


def test_node_info_outside_a_server_only_returns_the_text(monkeypatch, caplog):
    monkeypatch.delitem(sys.modules, "server", raising=False)
    with caplog.at_level(logging.WARNING):
        out = node_info("Load AnimateDiff Motion Model", "all fine")
    assert out.as_dict() == {"text": ("all fine",)}
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
