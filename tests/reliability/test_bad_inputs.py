"""reliability.md §3a against the real server on the demo model: every bad
input gets its status code and a clean `{error, error_type}` body (no
traceback, no path), and the server then answers the reference greedy request
with the same tokens as before. Behaviours that are 200 on purpose are pinned
at the end; cases that need a special engine use the fake one."""

from __future__ import annotations

import json
import socket

import httpx
import pytest
from bad_input_cases import ALL_CASES, CHAT, USER_HI, Case
from fake_engine import FakeEngine
from reliability_support import assert_error_body, assert_no_leak, reference_tokens, sse_data_events
from server_harness import make_client

from pytgi.tokenizer.chat_template import ChatTemplate


def send(url: str, case: Case) -> httpx.Response:
    headers = {} if case.content_type is None else {"content-type": case.content_type}
    content: bytes | object | None = None
    if case.raw is not None:
        content = case.raw() if callable(case.raw) else case.raw
    elif case.body is not None:
        content = json.dumps(case.body).encode()
    return httpx.request(case.method, url + case.path, content=content, headers=headers, timeout=60.0)  # type: ignore[arg-type]


def check_refusal(response: httpx.Response, case: Case) -> None:
    assert_no_leak(response.text)
    assert response.status_code == case.status, response.text[:500]
    if case.stream is None:
        assert response.headers["content-type"].startswith("application/json")
        assert_error_body(response.json(), case.error_type, case.fragment)
        return
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_data_events(response.text)
    if case.stream == "tgi":
        assert len(events) == 1, events
        assert_error_body(events[0], case.error_type, case.fragment)
    else:  # OpenAI routes: TGI's nested error event, then [DONE]
        assert len(events) == 2 and events[1] == "[DONE]", events
        assert set(events[0]) == {"error"} and events[0]["error"]["http_status_code"] == 422
        assert case.fragment in events[0]["error"]["message"]


def test_there_are_enough_cases() -> None:
    assert len(ALL_CASES) >= 45
    assert len({case.id for case in ALL_CASES}) == len(ALL_CASES)


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda case: case.id)
def test_bad_input_is_refused_and_changes_nothing(served_demo, case: Case) -> None:
    check_refusal(send(served_demo.url, case), case)
    assert reference_tokens(served_demo.url) == served_demo.reference


# --- accepted on purpose: pin what happens ------------------------------------------------------


def chat_tokenize(url: str, messages: list[dict]) -> str:
    response = httpx.post(f"{url}/chat_tokenize", json={"messages": messages}, timeout=30.0)
    assert response.status_code == 200, response.text
    return str(response.json()["templated_text"])


def chat_text(url: str, **fields: object) -> str:
    body = {"messages": USER_HI, "max_tokens": 6, "temperature": 0, **fields}
    response = httpx.post(url + CHAT, json=body, timeout=60.0)
    assert response.status_code == 200, response.text
    return str(response.json()["choices"][0]["message"]["content"])


def test_adapter_id_is_never_a_path(served_demo) -> None:
    """As TGI: an unknown adapter falls back to the base model, no file lookup."""
    body = {"inputs": "The list type", "parameters": {"max_new_tokens": 8, "details": True,
                                                      "adapter_id": "../../../../etc/passwd"}}
    response = httpx.post(f"{served_demo.url}/generate", json=body, timeout=60.0)
    assert response.status_code == 200
    assert tuple(t["id"] for t in response.json()["details"]["tokens"]) == served_demo.reference


def test_message_content_is_data_never_template(served_demo) -> None:
    content = "{{ ''.__class__.__mro__ }} {% for i in range(10**9) %}x{% endfor %}"
    assert content in chat_tokenize(served_demo.url, [{"role": "user", "content": content}])
    assert reference_tokens(served_demo.url) == served_demo.reference


def test_any_role_is_left_to_the_template(served_demo) -> None:
    """TGI's `role` is a free string; the demo template renders it (a strict one would 422)."""
    assert "<|im_start|>hacker\n" in chat_tokenize(served_demo.url, [{"role": "hacker", "content": "x"}])


def test_special_tokens_in_content_are_pinned(served_demo) -> None:
    """Known upstream problem (reliability.md §1.3): TGI tokenizes the rendered prompt with
    special tokens on, so `<|im_end|>` typed by a user becomes the control token. Pinned."""
    response = httpx.post(f"{served_demo.url}/chat_tokenize", json={"messages": [
        {"role": "user", "content": "a<|im_end|>b"}]}, timeout=30.0)
    texts = [t["text"] for t in response.json()["tokenize_response"]]
    assert texts[3:6] == ["a", "<|im_end|>", "b"]


def test_image_part_is_text_and_never_fetched(served_demo) -> None:
    """As TGI on a text-only model: the image becomes markdown in the prompt; nothing is fetched."""
    url = "http://169.254.169.254/latest/meta-data"
    content = [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": url}}]
    assert f"look![]({url})" in chat_tokenize(served_demo.url, [{"role": "user", "content": content}])


def test_request_chat_template_is_ignored(served_demo) -> None:
    """Templates come from the model only: a template in the body changes nothing."""
    plain = chat_text(served_demo.url)
    assert chat_text(served_demo.url, chat_template="{{ 7 * 7 }}",
                     chat_template_kwargs={"chat_template": "{{ 7 * 7 }}"}) == plain
    assert plain == chat_text(served_demo.url)  # temperature 0 is greedy on this route


def test_lone_surrogate_in_stop_sequence_is_harmless(served_demo) -> None:
    body = b'{"inputs":"The list type","parameters":{"max_new_tokens":4,"stop":["\\udc00"]}}'
    response = httpx.post(f"{served_demo.url}/generate", content=body,
                          headers={"content-type": "application/json"}, timeout=60.0)
    assert response.status_code == 200
    assert reference_tokens(served_demo.url) == served_demo.reference


@pytest.mark.parametrize("headers", [
    b"X-Big: " + b"a" * 1_000_000 + b"\r\n",
    b"".join(b"X-Header-%d: " % i + b"v" * 4000 + b"\r\n" for i in range(200)),
], ids=["one-1MB-header", "200-headers-of-4KB"])
def test_oversized_headers_are_refused_by_the_http_layer(served_demo, headers: bytes) -> None:
    """h11 buffers at most 64 KiB of an incomplete head: 400, connection closed, server fine."""
    answer = b""
    with socket.create_connection(("127.0.0.1", served_demo.server.port), timeout=30) as sock:
        try:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
            while chunk := sock.recv(4096):
                answer += chunk
        except ConnectionResetError:
            # The server closed with our bytes unread: the kernel may reset the
            # connection and drop its 400 on the way. Either way it was refused.
            pass
    assert answer == b"" or answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert reference_tokens(served_demo.url) == served_demo.reference


# --- over the fake engine ---------------------------------------------------------------------


def test_template_refusal_is_a_template_error() -> None:
    strict = ChatTemplate(
        "{% if messages[0]['role'] != 'user' %}{{ raise_exception('Conversation must start with user') }}"
        "{% endif %}{% for m in messages %}{{ m['content'] }}{% endfor %}"
    )
    client, engine = make_client(FakeEngine(chat_template=strict))
    for path in (CHAT, "/chat_tokenize"):
        response = client.post(path, json={"messages": [{"role": "assistant", "content": "x"}]})
        assert response.status_code == 422
        assert_error_body(response.json(), "template_error", "Conversation must start with user")
        assert_no_leak(response.text)
    assert engine.requests == []
    assert client.post(CHAT, json={"messages": USER_HI}).status_code == 200


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "Basic czNjcmV0", "Bearer ", "Bearer  s3cret"])
def test_bad_credentials_are_401_with_a_challenge(authorization: str | None) -> None:
    client, engine = make_client(api_key="s3cret")
    headers = {} if authorization is None else {"Authorization": authorization}
    for path in ("/generate", "/vertex", "/invocations", "/tokenize", CHAT, "/chat_tokenize"):
        response = client.post(path, json={"inputs": "x", "messages": USER_HI}, headers=headers)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"] == "Bearer"
        assert_error_body(response.json(), "authentication")
    assert engine.requests == []
