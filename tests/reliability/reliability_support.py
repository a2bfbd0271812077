"""Shared by the reliability tests: error-body checks, the reference greedy
request and the idle invariant (reliability.md §2.4)."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

# The prompt every "did the fault change anything?" check sends: greedy, so
# the tokens must be the same before and after each fault.
REFERENCE_REQUEST = {"inputs": "The list type", "parameters": {"max_new_tokens": 8, "details": True}}

# What must never show up in an answer: tracebacks, and paths of this machine.
LEAK_MARKERS = (
    "Traceback",
    'File "',
    "site-packages",
    os.getcwd(),
    str(Path(sys.prefix)),
    str(Path(__file__).resolve().parents[2]),
)


def reference_tokens(url: str) -> tuple[int, ...]:
    response = httpx.post(f"{url}/generate", json=REFERENCE_REQUEST, timeout=60.0)
    assert response.status_code == 200, response.text
    return tuple(token["id"] for token in response.json()["details"]["tokens"])


def assert_no_leak(text: str) -> None:
    for marker in LEAK_MARKERS:
        assert marker not in text, f"answer leaks {marker!r}: {text[:500]}"


def assert_error_body(body: Any, error_type: str, fragment: str = "") -> None:
    """TGI's flat error object: exactly `error` and `error_type`, both strings."""
    assert isinstance(body, dict) and set(body) == {"error", "error_type"}, body
    assert isinstance(body["error"], str) and body["error"], body
    assert body["error_type"] == error_type, body
    assert fragment in body["error"], body


def sse_data_events(text: str) -> list[Any]:
    """`data:` payloads of an SSE body (`[DONE]` kept as the string)."""
    events: list[Any] = []
    for line in text.split("\n"):
        if line.startswith("data:"):
            payload = line[len("data:") :].strip()
            events.append(payload if payload == "[DONE]" else json.loads(payload))
    return events


def metric_values(url: str) -> dict[str, float]:
    """Unlabelled samples of /metrics, by name."""
    values: dict[str, float] = {}
    for line in httpx.get(f"{url}/metrics", timeout=10.0).text.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def wait_for(condition: Callable[[], bool], timeout_s: float = 30.0, what: str = "condition") -> None:
    """Poll until `condition()` holds; never assert on how long it took."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout_s} s")
        time.sleep(0.01)


def is_idle(url: str) -> bool:
    values = metric_values(url)
    return (
        values["pytgi_kv_cache_blocks_in_use"] == 0
        and values["tgi_queue_size"] == 0
        and values["tgi_batch_current_size"] == 0
    )


def assert_idle(url: str) -> None:
    """The idle invariant: no KV block held, nothing queued, nothing running."""
    wait_for(lambda: is_idle(url), what="idle invariant (no blocks, queue or batch)")


def sample(url: str, series: str) -> float:
    """One series of /metrics, labels included (`tgi_request_failure{err="dropped"}`); 0 when absent."""
    for line in httpx.get(f"{url}/metrics", timeout=10.0).text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
