"""Draining before exit: requests still running at the end of the grace period are
ended by the server with their error (an SSE error event, or a 503), not cut off."""

from __future__ import annotations

import json
import threading

import httpx
from fake_engine import FakeEngine, FakeScript
from server_harness import live_server, make_app, wait_until


def test_streams_and_requests_still_running_at_the_deadline_end_with_an_error() -> None:
    engine = FakeEngine(script=FakeScript(hold_after=1))  # never finishes on its own
    app, _ = make_app(engine)
    with live_server(app) as url:
        results: dict[str, object] = {}

        def stream(path: str, body: dict) -> None:
            with httpx.stream("POST", url + path, json=body, timeout=30) as response:
                results[path] = [line for line in response.iter_lines() if line.startswith("data:")]

        def plain() -> None:
            response = httpx.post(url + "/generate", json={"inputs": "hi"}, timeout=30)
            results["/generate"] = (response.status_code, response.json())

        threads = [
            threading.Thread(target=stream, args=("/generate_stream", {"inputs": "hi"})),
            threading.Thread(target=stream, args=("/v1/chat/completions",
                                                  {"messages": [{"role": "user", "content": "hi"}],
                                                   "stream": True})),
            threading.Thread(target=plain),
        ]
        for thread in threads:
            thread.start()
        wait_until(lambda: engine.num_running == 3, timeout_s=10)
        app.state.pytgi.limiter.begin_drain(0.2)  # what SIGTERM does, with a short grace period
        for thread in threads:
            thread.join(timeout=20)
        wait_until(lambda: engine.num_running == 0, timeout_s=10)

    tgi_events = [json.loads(line[5:]) for line in results["/generate_stream"]]  # type: ignore[union-attr]
    assert tgi_events[0]["token"]["text"] == "Hello"
    assert tgi_events[-1] == {"error": "Server is shutting down", "error_type": "unavailable"}
    chat_lines = results["/v1/chat/completions"]
    assert chat_lines[-1] == "data: [DONE]"  # type: ignore[index]
    assert json.loads(chat_lines[-2][5:])["error"]["message"] == "Server is shutting down"  # type: ignore[index]
    assert results["/generate"] == (503, {"error": "Server is shutting down", "error_type": "unavailable"})
    assert len(engine.aborted) == 3
