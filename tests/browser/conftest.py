"""Browser tier fixtures: one headless Chromium (Debian's /usr/bin/chromium, no Playwright browser download) and
one page on the real ComfyUI frontend, served by the session's real ComfyUI server with the pack loaded.

The page is shared by the tests (loading a workflow clears the canvas); ``ui`` resets it before each test and
reloads it if it stopped answering.
"""

from __future__ import annotations

import logging
import os
from urllib.parse import urlsplit

import pytest

from comfyui_animapose.workshop.browser.helpers import (
    CHROMIUM,
    CHROMIUM_ARGS,
    INIT_SCRIPT,
    Frontend,
    record_prompt_post,
)

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
    local = urlsplit(comfy_server.url).netloc  # 127.0.0.1:<port>
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    context.set_default_timeout(60_000)
    context.set_default_navigation_timeout(90_000)
    blocked: list[str] = []

    def only_local(route):
        if urlsplit(route.request.url).netloc == local:
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    context.route("**/*", only_local)
    context.add_init_script(INIT_SCRIPT)
    page = context.new_page()
    fe = Frontend(page, comfy_server.url)
    fe.attach()
    page.on("request", lambda r: record_prompt_post(fe, r))
    try:
        seconds = fe.open()
        log.info("frontend ready in %.1f s", seconds)
        for e in fe.errors():
            log.info("baseline page error (not the pack's): %s", e.splitlines()[0][:300])
        yield fe
    finally:
        if blocked:
            log.info("aborted %d non-local requests, e.g. %s", len(blocked), sorted(set(blocked))[:5])
        context.close()


@pytest.fixture
def ui(frontend):
    frontend.reset()
    return frontend


@pytest.fixture(scope="session")
def backend_types(comfy_server) -> set[str]:
    return set(comfy_server.object_info())
