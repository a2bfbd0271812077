"""Takes docs/chat-page.png: the chat page mid-answer, at a desktop size.

    .venv/bin/python tests/web/chat_screenshot.py [docs/chat-page.png]

Starts the real server on the demo model, has one short exchange, then sends a
second question and shoots while its answer is still streaming.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))

from browser_support import DEMO_MODEL_SHOWN, DESKTOP_VIEWPORT, IDLE, find_chromium, skip_reason  # noqa: E402
from live_server import LiveServer  # noqa: E402

if TYPE_CHECKING:
    from playwright.sync_api import Page

DEFAULT_OUTPUT = Path(__file__).resolve().parents[2] / "docs" / "chat-page.png"


def fill_settings(page: Page) -> None:
    page.fill("#system-prompt", "You explain Python's standard library.")
    page.fill("#temperature", "0.8")
    page.fill("#max-new-tokens", "400")
    page.fill("#seed", "7")


def ask(page: Page, prompt: str) -> None:
    page.fill("#prompt", prompt)
    page.click("#send")


def shoot(url: str, output: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=find_chromium())
        page = browser.new_page(viewport=DESKTOP_VIEWPORT)
        page.set_default_timeout(60_000)
        page.goto(f"{url}/chat")
        page.wait_for_selector(DEMO_MODEL_SHOWN)
        fill_settings(page)
        ask(page, "What does the list type do?")
        page.wait_for_selector(IDLE)
        ask(page, "How do I read a file line by line?")
        # Mid-answer: some text and live statistics, the Stop button showing.
        page.wait_for_function(
            "() => document.body.dataset.state === 'streaming'"
            " && document.querySelectorAll('.message.assistant .text')[1]?.textContent.length > 120"
        )
        page.screenshot(path=str(output))
        browser.close()  # the disconnect aborts the rest of the answer


def main() -> None:
    reason = skip_reason()
    if reason is not None:
        sys.exit(reason)
    output = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUTPUT
    with tempfile.TemporaryDirectory() as folder:
        server = LiveServer([], Path(folder) / "server.log")
        try:
            server.wait_healthy()
            shoot(server.url, output)
        finally:
            server.stop()
    print(f"wrote {output} ({output.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
