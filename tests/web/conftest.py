"""Fixtures of the browser tests: one Chromium (via Playwright) and live demo-model servers.

Every fixture here depends on `browser`, which skips when no Chromium or no
Playwright is found, so no server is started on machines that cannot run the tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from browser_support import API_KEY, DESKTOP_VIEWPORT, find_chromium, skip_reason
from live_server import LiveServer

if TYPE_CHECKING:  # playwright may be missing: the fixtures then skip
    from playwright.sync_api import Browser, Page


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=find_chromium())
        yield browser
        browser.close()


def start_server(log: Path, *args: str) -> LiveServer:
    server = LiveServer(["--max-batch-total-tokens", "32768", *args], log)
    try:
        server.wait_healthy()
    except Exception:
        server.stop()
        print(log.read_text())
        raise
    return server


@pytest.fixture(scope="module")
def chat_server(browser: Browser, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    log = tmp_path_factory.mktemp("chat-server") / "server.log"
    server = start_server(log)
    yield server
    assert server.stop() == 0, log.read_text()[-5000:]


@pytest.fixture(scope="module")
def keyed_server(browser: Browser, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    log = tmp_path_factory.mktemp("keyed-server") / "server.log"
    server = start_server(log, "--api-key", API_KEY)
    yield server
    assert server.stop() == 0, log.read_text()[-5000:]


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=DESKTOP_VIEWPORT)
    page = context.new_page()
    # Generous: two CPU cores may be shared with a whole test suite. Conditions, not sleeps.
    page.set_default_timeout(60_000)
    yield page
    context.close()
