"""The server tier's guard works: a pack that fails to import (which ComfyUI only logs) is detected."""

from __future__ import annotations

from comfyui_animapose.workshop.env import PACK_DIR_NAME
from comfyui_animapose.workshop.server import TEST_SERVER_THREADS, ComfyServer, prepare_base_dir


def test_broken_pack_is_detected(tmp_path):
    base = prepare_base_dir(tmp_path / "base")
    link = base / "custom_nodes" / PACK_DIR_NAME
    link.unlink()
    link.mkdir()
    (link / "__init__.py").write_text("raise ImportError('broken on purpose')\n")
    server = ComfyServer(base, threads=TEST_SERVER_THREADS).start()
    try:
        assert server.pack_import_error() is not None
        assert not any("animapose" in d.get("python_module", "") for d in server.object_info().values())
    finally:
        server.stop()
