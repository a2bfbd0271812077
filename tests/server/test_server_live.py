"""Against a real uvicorn server: concurrency permits, disconnect -> abort, and real clients."""

from __future__ import annotations

import json
import socket
import threading
from urllib.parse import urlparse

import httpx
import pytest
from fake_engine import FakeEngine, FakeScript, make_limits
from server_harness import live_server, make_app, sse_events, wait_until


def held_engine(max_concurrent_requests: int = 128, hold_after: int = 1) -> FakeEngine:
    """Every request emits `hold_after` tokens, then waits for `engine.script.release`."""
    return FakeEngine(
        limits=make_limits(max_concurrent_requests=max_concurrent_requests),
        script=FakeScript(hold_after=hold_after),
    )


def raw_post(base_url: str, path: str, body: dict) -> socket.socket:
    """Send a POST on a raw socket and leave it open, so the test decides when to hang up."""
    url = urlparse(base_url)
    sock = socket.create_connection((url.hostname, url.port), timeout=5)
    payload = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {url.hostname}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    )
    sock.sendall(head.encode() + payload)
    return sock


def read_until(sock: socket.socket, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def test_non_stream_disconnect_aborts_and_frees_the_permit() -> None:
    engine = held_engine(max_concurrent_requests=1)
    app, _ = make_app(engine)
    limiter = app.state.pytgi.limiter
    with live_server(app) as base_url:
        sock = raw_post(base_url, "/generate", {"inputs": "Hi", "parameters": {"max_new_tokens": 5}})
        wait_until(lambda: engine.num_running == 1)
        assert limiter.num_free == 0
        sock.close()
        wait_until(lambda: engine.aborted == [engine.requests[0].request_id])
        wait_until(lambda: limiter.num_free == 1)
        assert engine.num_running == 0
        metrics = httpx.get(base_url + "/metrics").text
        assert 'tgi_request_failure{err="dropped"} 1' in metrics


def test_stream_disconnect_aborts_and_frees_the_permit() -> None:
    engine = held_engine(max_concurrent_requests=1)
    app, _ = make_app(engine)
    limiter = app.state.pytgi.limiter
    with live_server(app) as base_url:
        sock = raw_post(base_url, "/generate_stream", {"inputs": "Hi"})
        assert b'"index":1' in read_until(sock, b"\n\n")
        assert limiter.num_free == 0
        sock.close()
        wait_until(lambda: engine.aborted == [engine.requests[0].request_id])
        wait_until(lambda: limiter.num_free == 1)
        assert 'tgi_request_failure{err="dropped"} 1' in httpx.get(base_url + "/metrics").text
        # The slot is usable again at once.
        engine.script.release.set()
        assert httpx.post(base_url + "/generate", json={"inputs": "Hi"}).status_code == 200


def test_compat_stream_disconnect_with_httpx_aborts() -> None:
    engine = held_engine()
    app, _ = make_app(engine)
    with live_server(app) as base_url, httpx.Client(base_url=base_url) as client:
        body = {"inputs": "Hi", "stream": True}
        with client.stream("POST", "/", json=body) as response:
            first = next(response.iter_lines())
            assert first.startswith("data: ")
        wait_until(lambda: len(engine.aborted) == 1)


def test_overload_is_immediate_and_permits_come_back() -> None:
    engine = held_engine(max_concurrent_requests=1)
    app, _ = make_app(engine)
    with live_server(app) as base_url, httpx.Client(base_url=base_url, timeout=5) as client:
        with client.stream("POST", "/generate_stream", json={"inputs": "Hi"}) as held:
            lines = held.iter_lines()
            assert next(lines).startswith("data: ")
            # Full: 429 at once (no waiting), in-band for streams.
            refused = client.post("/generate", json={"inputs": "Hi"})
            assert refused.status_code == 429
            assert refused.json() == {"error": "Model is overloaded", "error_type": "overloaded"}
            assert client.post("/", json={"inputs": "Hi"}).status_code == 429
            in_band = client.post("/generate_stream", json={"inputs": "Hi"})
            assert in_band.status_code == 200
            assert sse_events(in_band.text) == [{"error": "Model is overloaded", "error_type": "overloaded"}]
            engine.script.release.set()
            rest = "\n".join(lines)
            assert sse_events(rest)[-1]["generated_text"] == "Hello world! How are you"
        assert client.post("/generate", json={"inputs": "Hi"}).status_code == 200
        metrics = client.get("/metrics").text
        assert 'tgi_request_failure{err="overloaded"} 3' in metrics
        assert engine.aborted == []


def test_best_of_takes_one_permit_per_sequence() -> None:
    engine = held_engine(max_concurrent_requests=2)
    app, _ = make_app(engine)
    with live_server(app) as base_url, httpx.Client(base_url=base_url, timeout=5) as client:
        with client.stream("POST", "/generate_stream", json={"inputs": "Hi"}) as held:
            lines = held.iter_lines()  # keep a reference: dropping it closes the connection
            next(lines)
            body = {"inputs": "Hi", "parameters": {"best_of": 2, "do_sample": True}}
            assert client.post("/generate", json=body).status_code == 429
            engine.script.release.set()
        wait_until(lambda: app.state.pytgi.limiter.num_free == 2)
        assert client.post("/generate", json=body).status_code == 200


def test_concurrent_requests_all_complete() -> None:
    engine = FakeEngine(script=FakeScript(delay_s=0.01))
    app, _ = make_app(engine)
    results: list[int] = []
    with live_server(app) as base_url:

        def call() -> None:
            results.append(httpx.post(base_url + "/generate", json={"inputs": "Hi"}, timeout=10).status_code)

        threads = [threading.Thread(target=call) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert results == [200] * 8
    assert app.state.pytgi.limiter.num_free == 128


# --- huggingface_hub's InferenceClient -----------------------------------------------------------

hub = pytest.importorskip("huggingface_hub")
hub_errors = pytest.importorskip("huggingface_hub.errors")


def test_hub_client_stream_with_details() -> None:
    app, _ = make_app()
    with live_server(app) as base_url:
        client = hub.InferenceClient(base_url=base_url)
        events = list(client.text_generation("Hi there", details=True, stream=True, max_new_tokens=3))
        assert [e.token.text for e in events] == ["Hello", " world", "!"]
        assert events[-1].generated_text == "Hi thereHello world!"  # POST / defaults to full text
        assert events[-1].details.finish_reason == "length"
        assert events[-1].details.generated_tokens == 3
        text = "".join(client.text_generation("Hi", stream=True, max_new_tokens=2, return_full_text=False))
        assert text == "Hello world"


def test_hub_client_non_stream_details() -> None:
    app, _ = make_app()
    with live_server(app) as base_url:
        client = hub.InferenceClient(base_url=base_url)
        output = client.text_generation("Hi", details=True, max_new_tokens=2, return_full_text=False)
        assert output.generated_text == "Hello world"
        assert output.details.finish_reason == "length"
        assert [t.text for t in output.details.tokens] == ["Hello", " world"]
        assert client.text_generation("Hi", max_new_tokens=1, return_full_text=False) == "Hello"


def test_hub_client_maps_validation_errors() -> None:
    app, _ = make_app()
    with live_server(app) as base_url:
        client = hub.InferenceClient(base_url=base_url)
        with pytest.raises(hub_errors.ValidationError, match="`top_p` must be > 0.0 and < 1.0"):
            client.text_generation("Hi", top_p=1.0)
        with pytest.raises(hub_errors.ValidationError, match="`temperature` must be strictly positive"):
            list(client.text_generation("Hi", temperature=0.0, stream=True))


def test_hub_client_maps_overload() -> None:
    engine = held_engine(max_concurrent_requests=1)
    app, _ = make_app(engine)
    with live_server(app) as base_url, httpx.Client(base_url=base_url, timeout=5) as raw:
        client = hub.InferenceClient(base_url=base_url)
        with raw.stream("POST", "/generate_stream", json={"inputs": "Hi"}) as held:
            lines = held.iter_lines()  # keep a reference: dropping it closes the connection
            next(lines)
            with pytest.raises(hub_errors.OverloadedError):
                client.text_generation("Hi")
            with pytest.raises(hub_errors.OverloadedError):
                list(client.text_generation("Hi", stream=True))
            engine.script.release.set()


def test_hub_client_maps_generation_errors() -> None:
    app, _ = make_app(FakeEngine(script=FakeScript(fail_after=1)))
    with live_server(app) as base_url:
        client = hub.InferenceClient(base_url=base_url)
        with pytest.raises(hub_errors.GenerationError, match="fake step failed"):
            client.text_generation("Hi")
        with pytest.raises(hub_errors.GenerationError, match="fake step failed"):
            list(client.text_generation("Hi", stream=True))
