"""Test tiers, selected by marker (``pytest -m unit`` ...) and assigned by folder:

- ``tests/unit``:    pure torch; must not import ComfyUI (``test_purity.py`` checks the runtime modules);
- ``tests/comfy``:   the real ``comfy`` package in-process on the CPU;
- ``tests/server``:  the real ``main.py`` in a subprocess with the pack loaded, driven over HTTP;
- ``tests/browser``: headless Chromium driving the real frontend served by that server;
- ``tests/ray``:     a local Ray cluster of two CPU workers (distributed DreamPose sampling, sweeps of workflows).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

TIERS = ("unit", "comfy", "server", "browser", "ray")
HERE = Path(__file__).parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        rel = Path(item.fspath).resolve().relative_to(HERE)
        tier = rel.parts[0] if rel.parts else ""
        if tier in TIERS:
            item.add_marker(getattr(pytest.mark, tier))


def pytest_configure(config):
    logging.getLogger("PIL").setLevel(logging.WARNING)


@pytest.fixture(scope="session")
def comfy_server(tmp_path_factory):
    """One real ComfyUI server per test session, with the pack and the demo models, shared by the server and
    browser tiers. A pack that fails to import fails here: ComfyUI itself only logs it."""
    from comfyui_animapose.workshop.models import TEST_DREAMPOSE, TEST_PROFILE, demo_files
    from comfyui_animapose.workshop.server import TEST_SERVER_THREADS, ComfyServer, prepare_base_dir

    base = prepare_base_dir(tmp_path_factory.mktemp("comfy-base"), demo_files(TEST_PROFILE, TEST_DREAMPOSE))
    server = ComfyServer(base, threads=TEST_SERVER_THREADS).start()
    try:
        err = server.pack_import_error()
        if err:
            pytest.fail(f"the pack failed to import in ComfyUI:\n{err[-4000:]}")
        yield server
    finally:
        server.stop()
