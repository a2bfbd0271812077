"""Finding a system Chromium for Playwright, and a page on the chat of a live server.

Playwright drives the browser that Debian's `chromium` package installs
(`scripts/install-browser.sh`); `playwright install` is never used, since it
downloads a browser build from a CDN that CI machines cannot reach.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import ViewportSize

CHROMIUM_ENV = "PYTGI_CHROMIUM"  # an explicit browser binary, when it is not on PATH
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome-stable", "google-chrome")
API_KEY = "s3cret-key"  # of the server started with --api-key
DESKTOP_VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
PHONE_VIEWPORT: ViewportSize = {"width": 390, "height": 844}
# While an answer streams, the page's <body> says data-state="streaming"; "idle" once it settled.
# Waits use selectors or JS functions: the page's Content-Security-Policy forbids eval(), which
# Playwright would use to poll a bare JS expression.
IDLE = "body[data-state=idle]"
STREAMING_TEXT = "body[data-state=streaming] .message.assistant .text:not(:empty)"
DEMO_MODEL_SHOWN = "#model-id:text-is('pytgi/demo')"


def find_chromium() -> str | None:
    explicit = os.environ.get(CHROMIUM_ENV)
    if explicit:
        return explicit if Path(explicit).is_file() else None
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path is not None:
            return path
    return None


def skip_reason() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    if find_chromium() is None:
        return (f"no Chromium found (looked for {', '.join(CHROMIUM_NAMES)} on PATH and ${CHROMIUM_ENV}); "
                "run scripts/install-browser.sh or `make test-browser`")
    return None
