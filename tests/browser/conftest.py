"""Browser tier fixtures: one headless Chromium (Debian's /usr/bin/chromium, no Playwright browser download) and
one page on the real ComfyUI frontend, served by the session's real ComfyUI server with the pack loaded.

The page is shared by the tests (loading a workflow clears the canvas); ``ui`` resets it before each test and
reloads it if it stopped answering.
"""

from __future__ import annotations

import logging
import os

import pytest

from comfyui_animapose.workshop.browser.helpers import CHROMIUM, CHROMIUM_ARGS, open_frontend

log = logging.getLogger(__name__)


@pytest.fixture(scope="session")
def browser():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: run scripts/provision.sh --browser (installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    try:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, timeout=60_000)
        try:
            yield b
        finally:
            b.close()
    finally:
        pw.stop()


@pytest.fixture(scope="session")
def frontend(browser, comfy_server):
    with open_frontend(browser, comfy_server.url) as fe:
        yield fe


@pytest.fixture
def ui(frontend):
    frontend.reset()
    return frontend


@pytest.fixture(scope="session")
def backend_types(comfy_server) -> set[str]:
    return set(comfy_server.object_info())
