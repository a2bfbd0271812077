"""The chat page in a real headless Chromium against the real server on the demo model.

Every wait is on a DOM condition or a server metric, with a timeout; nothing sleeps.
Answers of a known length: the test adds pytgi's `ignore_eos` extension to the page's
request on its way out, so the server generates exactly the max new tokens.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from browser_support import API_KEY, DEMO_MODEL_SHOWN, IDLE, PHONE_VIEWPORT, STREAMING_TEXT
from live_server import LiveServer

if TYPE_CHECKING:  # playwright may be missing: the tests then skip, the module must still import
    from playwright.sync_api import Browser, Locator, Page, Route

PROMPT = "Tell me about lists."
CHAT_ROUTE = "**/v1/chat/completions"

# Records the length of the newest answer each time the DOM changes while it streams.
# A MutationObserver callback runs once per task that changed the DOM, so two distinct
# lengths mean the text arrived in at least two separate network reads.
RECORD_UPDATES = """
window.answerLengths = [];
new MutationObserver(() => {
  const texts = document.querySelectorAll('.message.assistant .text');
  if (texts.length && document.body.dataset.state === 'streaming') {
    window.answerLengths.push(texts[texts.length - 1].textContent.length);
  }
}).observe(document, {subtree: true, childList: true, characterData: true});
"""


def open_chat(page: Page, server: LiveServer) -> None:
    page.goto(f"{server.url}/chat")
    page.wait_for_selector(DEMO_MODEL_SHOWN)


def set_fields(page: Page, **values: str) -> None:
    for field, value in values.items():
        page.fill(f"#{field.replace('_', '-')}", value)


def send(page: Page, text: str) -> None:
    page.fill("#prompt", text)
    page.click("#send")


def last(page: Page, selector: str) -> Locator:
    return page.locator(selector).last


def ignore_eos(page: Page) -> None:
    """From now on the page's chat requests generate exactly their max new tokens."""

    def add_ignore_eos(route: Route) -> None:
        body = json.loads(route.request.post_data or "{}")
        route.continue_(post_data=json.dumps({**body, "ignore_eos": True}))

    page.route(CHAT_ROUTE, add_ignore_eos)


def sent_body(page: Page, text: str) -> dict[str, Any]:
    """Sends `text` and returns the JSON body of the chat request the page made."""
    with page.expect_request(CHAT_ROUTE) as request:
        send(page, text)
    body = request.value.post_data_json
    assert isinstance(body, dict)
    return body


def num_dropped(server: LiveServer) -> float:
    try:
        return server.metric('tgi_request_failure{err="dropped"}')
    except KeyError:  # no request dropped yet
        return 0.0


def wait_until(condition: Callable[[], bool], explain: Callable[[], str], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"condition not met in {timeout_s} s:\n{explain()}"
        time.sleep(0.1)


def test_answer_streams_with_speed_and_time_to_first_token(page: Page, chat_server: LiveServer) -> None:
    page.add_init_script(RECORD_UPDATES)
    open_chat(page, chat_server)
    info = httpx.get(f"{chat_server.url}/info").json()
    limits = page.text_content("#limits") or ""
    assert str(info["max_input_tokens"]) in limits and str(info["max_total_tokens"]) in limits

    ignore_eos(page)
    set_fields(page, max_new_tokens="200")
    send(page, PROMPT)
    page.wait_for_selector(IDLE)

    answer = last(page, ".message.assistant")
    assert answer.locator(".text").text_content()
    stats = answer.locator(".stats").text_content() or ""
    assert re.search(r"TTFT \d+ ms · \d+\.\d tokens/s · 200 tokens · stopped at the max new tokens limit", stats), stats
    lengths = [n for n in page.evaluate("window.answerLengths") if n > 0]
    assert len(set(lengths)) >= 2, lengths  # streamed, not delivered at the end


def test_settings_and_history_are_sent(page: Page, chat_server: LiveServer) -> None:
    open_chat(page, chat_server)
    set_fields(page, system_prompt="You are terse.", temperature="0.5", top_p="1", max_new_tokens="8", seed="7")
    send(page, "What is a tuple?")
    page.wait_for_selector(IDLE)
    first_answer = last(page, ".message.assistant .text").text_content()

    body = sent_body(page, "And a set?")
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "user"]
    assert body["messages"][2]["content"] == first_answer
    assert (body["temperature"], body["top_p"], body["max_tokens"], body["seed"]) == (0.5, 1, 8, 7)
    assert body["stream"] is True and body["model"] == "pytgi/demo"
    page.wait_for_selector(IDLE)

    page.click("#new-chat")
    assert page.locator(".message").count() == 0
    assert [m["role"] for m in sent_body(page, "Fresh start")["messages"]] == ["system", "user"]
    page.wait_for_selector(IDLE)


def test_stop_ends_the_generation_on_the_server(page: Page, chat_server: LiveServer) -> None:
    open_chat(page, chat_server)
    num_ended_before = num_dropped(chat_server) + chat_server.metric("tgi_request_success")
    ignore_eos(page)  # some 2000 tokens: seconds of work, long after the first token shows
    set_fields(page, max_new_tokens="2000")
    send(page, PROMPT)
    page.wait_for_selector(STREAMING_TEXT)
    page.click("#stop")

    page.wait_for_selector(IDLE)
    assert page.is_visible("#send") and not page.is_visible("#stop")
    assert "stopped" in (last(page, ".message.assistant .stats").text_content() or "")
    assert page.locator(".message.error").count() == 0
    # The server ends the request: "dropped" once it saw the client leave and aborted it. The demo
    # model is fast, so on a loaded machine the whole answer can be done before the click lands;
    # then it counts as a success. (That a disconnect aborts the generation is asserted without a
    # browser in tests/reliability/test_faults.py.) Either way nothing may keep running.
    wait_until(lambda: num_dropped(chat_server) + chat_server.metric("tgi_request_success") > num_ended_before,
               lambda: httpx.get(f"{chat_server.url}/metrics").text)
    # The route counts the drop when it sees the client leave; the engine thread applies the abort
    # after the step it is running, so the batch empties a step later.
    wait_until(lambda: chat_server.metric("tgi_batch_current_size") == 0 == chat_server.metric("tgi_queue_size"),
               lambda: httpx.get(f"{chat_server.url}/metrics").text)

    set_fields(page, max_new_tokens="8")
    send(page, "Another question")  # the page is usable again
    page.wait_for_selector(IDLE)
    assert page.locator(".message.assistant").count() == 2


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("temperature", "-1", "(422): Input validation error: `temperature` must be strictly positive"),  # in-stream
        ("seed", "-1", "(422): Failed to deserialize the JSON body"),  # before the stream
    ],
)
def test_server_errors_show_as_messages(page: Page, chat_server: LiveServer, field: str, value: str, expected: str) -> None:
    open_chat(page, chat_server)
    set_fields(page, **{field: value})
    send(page, "This will fail")
    page.wait_for_selector(IDLE)
    assert expected in (page.text_content(".message.error") or "")
    assert page.locator(".message.assistant").count() == 0
    assert "unanswered" in (last(page, ".message.user").get_attribute("class") or "")
    assert page.input_value("#prompt") == "This will fail"  # handed back, to send again


def test_overload_and_network_errors_show_as_messages(page: Page, chat_server: LiveServer) -> None:
    open_chat(page, chat_server)
    overloaded = {"error": "Model is overloaded", "error_type": "overloaded"}
    page.route(CHAT_ROUTE, lambda route: route.fulfill(status=429, json=overloaded))
    send(page, "Busy?")
    page.wait_for_selector(IDLE)
    assert "overloaded (429): Model is overloaded" in (last(page, ".message.error").text_content() or "")

    page.unroute(CHAT_ROUTE)
    page.route(CHAT_ROUTE, lambda route: route.abort("connectionrefused"))
    send(page, "Anyone there?")
    page.wait_for_selector(IDLE)
    assert "Could not reach the server" in (last(page, ".message.error").text_content() or "")
    assert page.locator(".message.error").count() == 2


def test_api_key_is_asked_for_kept_and_sent(page: Page, keyed_server: LiveServer) -> None:
    open_chat(page, keyed_server)  # the page and /info are public
    set_fields(page, max_new_tokens="8")
    send(page, PROMPT)
    page.wait_for_selector("#api-key-form:not([hidden])")

    page.fill("#api-key", "wrong")
    page.click("#api-key-form button[type=submit]")
    page.wait_for_selector("#api-key-note:text('refused')")
    page.fill("#api-key", API_KEY)
    page.click("#api-key-form button[type=submit]")
    page.wait_for_selector(".message.assistant .stats:text('TTFT')")
    page.wait_for_selector(IDLE)
    assert page.is_hidden("#api-key-form")
    assert page.evaluate("sessionStorage.getItem('pytgi.apiKey')") == API_KEY

    page.reload()  # the key outlives a reload of the tab
    page.wait_for_selector(DEMO_MODEL_SHOWN)
    with page.expect_request(CHAT_ROUTE) as request:
        send(page, PROMPT)
    assert request.value.headers["authorization"] == f"Bearer {API_KEY}"
    page.wait_for_selector(".message.assistant .stats:text('TTFT')")
    assert page.is_hidden("#api-key-form")


def test_phone_layout_fits_the_screen(browser: Browser, chat_server: LiveServer) -> None:
    context = browser.new_context(viewport=PHONE_VIEWPORT, is_mobile=True, has_touch=True)
    try:
        page = context.new_page()
        open_chat(page, chat_server)
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE_VIEWPORT["width"]
        assert not page.locator("#settings").evaluate("el => el.open")  # folded, the chat comes first
        composer = page.locator("#composer").bounding_box()
        assert composer is not None and composer["y"] + composer["height"] <= PHONE_VIEWPORT["height"]
    finally:
        context.close()
