"""Fixtures of the browser tests: one Chromium (via Playwright) and live demo-model servers.

Every fixture here depends on `browser`, which skips when no Chromium or no
Playwright is found, so no server is started on machines that cannot run the tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from browser_support import API_KEY, DESKTOP_VIEWPORT, find_chromium, skip_reason
from live_server import LiveServer, running_server

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


@pytest.fixture(scope="module")
def chat_server(browser: Browser, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    log = tmp_path_factory.mktemp("chat-server") / "server.log"
    with running_server(["--max-batch-total-tokens", "32768"], log) as server:
        yield server


@pytest.fixture(scope="module")
def keyed_server(browser: Browser, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    log = tmp_path_factory.mktemp("keyed-server") / "server.log"
    with running_server(["--max-batch-total-tokens", "32768", "--api-key", API_KEY], log) as server:
        yield server


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=DESKTOP_VIEWPORT)
    page = context.new_page()
    # Generous: two CPU cores may be shared with a whole test suite. Conditions, not sleeps.
    page.set_default_timeout(60_000)
    yield page
    context.close()
