"""reliability.md §3b: faults the server must survive, on the real engine and
demo model in this process (so a test can hold or fail a model step). After
each fault: the idle invariant (no KV block, queue or batch left) and the
reference greedy request gives the same tokens as before.
SIGTERM drain is tested in tests/e2e/test_e2e_shutdown.py."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator

import httpx
import pytest
from fake_engine import FakeEngine, FakeScript
from fault_harness import MAX_BATCH_SIZE, MAX_TOTAL_TOKENS, InProcessDemo, in_process_demo
from reliability_support import (
    REFERENCE_REQUEST,
    assert_error_body,
    assert_idle,
    reference_tokens,
    sample,
    sse_data_events,
    wait_for,
)
from server_harness import live_server

from pytgi.server.app import build_app

DROPPED = 'tgi_request_failure{err="dropped"}'
LONG = {"inputs": "The list type", "parameters": {"max_new_tokens": 100, "ignore_eos": True}}


@pytest.fixture(scope="module")
def demo() -> Iterator[InProcessDemo]:
    with in_process_demo() as served:
        yield served


@pytest.fixture(autouse=True)
def leaves_server_as_found(demo: InProcessDemo) -> Iterator[None]:
    yield
    demo.executor.resume()
    demo.executor.fail_steps = 0
    assert_idle(demo.url)
    assert reference_tokens(demo.url) == demo.reference


def send_raw(url: str, path: str, body: dict, rcvbuf: int | None = None) -> socket.socket:
    """A request on a raw socket whose answer the test may never read."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect((host, int(port)))
    payload = json.dumps(body).encode()
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload
    )
    return sock


def stream_lines(response: httpx.Response, num_events: int) -> list[str]:
    events = []
    for line in response.iter_lines():
        if line.startswith("data:"):
            events.append(line)
            if len(events) == num_events:
                break
    return events


def greedy_in_thread(url: str, results: list[tuple[int, ...]]) -> threading.Thread:
    thread = threading.Thread(target=lambda: results.append(reference_tokens(url)))
    thread.start()
    return thread


# --- disconnects ----------------------------------------------------------------------------


def test_disconnect_mid_stream_frees_the_request_and_spares_neighbours(demo: InProcessDemo) -> None:
    dropped = sample(demo.url, DROPPED)
    neighbour: list[tuple[int, ...]] = []
    # Steps park after the first few, so the stream cannot finish its 100 tokens
    # (and count as a success) before the hang-up reaches the server.
    steps_before = demo.executor.num_steps
    demo.executor.pause_when(lambda step: demo.executor.num_steps > steps_before + 4)
    try:
        with httpx.stream("POST", f"{demo.url}/generate_stream", json=LONG, timeout=60.0) as response:
            assert len(stream_lines(response, 3)) == 3
            thread = greedy_in_thread(demo.url, neighbour)
        wait_for(lambda: sample(demo.url, DROPPED) == dropped + 1, what="stream counted as dropped")
    finally:
        demo.executor.resume()
    thread.join(timeout=60)
    assert neighbour == [demo.reference]


def step_until(demo: InProcessDemo, condition: Callable[[], bool], what: str) -> None:
    """With the engine paused: let one step through at a time until `condition()` holds."""
    executor = demo.executor
    for _ in range(50):
        if condition():
            return
        parked = executor.num_parked
        executor.step_once()
        wait_for(lambda parked=parked: executor.num_parked > parked, what="the next step")
    raise AssertionError(f"{what} not reached in 50 steps")


def test_disconnect_while_queued_is_never_scheduled(demo: InProcessDemo) -> None:
    executor = demo.executor
    dropped = sample(demo.url, DROPPED)
    with_streams = []
    executor.pause_when()  # from now on every step waits for the test
    try:
        for _ in range(MAX_BATCH_SIZE):
            with_streams.append(httpx.stream("POST", f"{demo.url}/generate_stream", json=LONG, timeout=60.0))
            with_streams[-1].__enter__()
        step_until(demo, lambda: sample(demo.url, "tgi_batch_current_size") == MAX_BATCH_SIZE, "a full batch")
        num_scheduled = len(executor.scheduled_ids)
        with httpx.stream("POST", f"{demo.url}/generate_stream", json=LONG, timeout=60.0):
            step_until(demo, lambda: sample(demo.url, "tgi_queue_size") == 1, "one request queued")
        wait_for(lambda: sample(demo.url, DROPPED) == dropped + 1, what="queued stream dropped")
        executor.resume()
        wait_for(lambda: sample(demo.url, "tgi_queue_size") == 0, what="queue emptied")
        assert len(executor.scheduled_ids) == num_scheduled  # never allocated, never scheduled
    finally:
        executor.resume()
        for stream in with_streams:
            stream.__exit__(None, None, None)


def test_disconnect_on_a_non_streamed_request_aborts_it(demo: InProcessDemo) -> None:
    executor = demo.executor
    dropped = sample(demo.url, DROPPED)
    executor.pause_when()
    sock = send_raw(demo.url, "/generate", LONG)
    wait_for(lambda: executor.num_parked >= 1, what="request in its prefill step")
    steps = executor.num_steps
    sock.close()
    wait_for(lambda: sample(demo.url, DROPPED) == dropped + 1, what="request dropped")
    executor.resume()
    assert_idle(demo.url)
    assert executor.num_steps - steps <= 1  # aborted right after the held step, not 100 tokens later


@pytest.mark.parametrize("at_token", [1, 5], ids=["during-prefill", "at-last-token"])
def test_disconnect_while_the_step_runs(demo: InProcessDemo, at_token: int) -> None:
    """The client leaves while the step that makes token `at_token` (the last, for 5) is
    running: the step's result and the abort meet; nothing is freed twice."""
    prompt_lengths: dict[str, int] = {}

    def makes_token(step) -> bool:
        prompt_lengths.update((new.request_id, len(new.prompt_token_ids)) for new in step.new_requests)
        return any(c.start_position + len(c.token_ids) == prompt_lengths[c.request_id] + at_token - 1
                   for c in step.chunks)

    dropped = sample(demo.url, DROPPED)
    demo.executor.pause_when(makes_token)
    body = {"inputs": "The list type", "parameters": {"max_new_tokens": 5, "ignore_eos": True}}
    with httpx.stream("POST", f"{demo.url}/generate_stream", json=body, timeout=60.0) as response:
        assert response.status_code == 200
        wait_for(lambda: demo.executor.num_parked >= 1, what="the step is held")
    wait_for(lambda: sample(demo.url, DROPPED) == dropped + 1, what="stream dropped")
    demo.executor.resume()


# --- slow readers and floods ---------------------------------------------------------------------


def test_stalled_reader_never_holds_the_engine(demo: InProcessDemo) -> None:
    """A client that reads nothing: its request still runs to the end and frees
    its blocks (the engine never waits on a socket); others are served meanwhile."""
    sock = send_raw(demo.url, "/generate_stream", LONG, rcvbuf=1024)
    try:
        neighbour: list[tuple[int, ...]] = []
        greedy_in_thread(demo.url, neighbour).join(timeout=60)
        assert neighbour == [demo.reference]
        wait_for(lambda: sample(demo.url, "tgi_request_success") > 0, what="a success")
        assert_idle(demo.url)  # the unread request is done and its KV is back
    finally:
        sock.close()


def test_stalled_reader_is_dropped_after_the_send_timeout() -> None:
    """A client that stops reading (TCP open, window full) is dropped once a send
    waits longer than the app's send timeout: request aborted, permit back."""
    engine = FakeEngine(script=FakeScript(texts=["x" * 16_384] * 400))  # 6.5 MB of events
    app = build_app(engine, version="test", sse_send_timeout_s=0.5)
    with live_server(app) as url:
        sock = send_raw(url, "/generate_stream", {"inputs": "hi"}, rcvbuf=4096)
        try:
            wait_for(lambda: len(engine.aborted) == 1, what="stalled stream aborted")
            limiter = app.state.pytgi.limiter
            wait_for(lambda: limiter.num_free == engine.limits.max_concurrent_requests, what="permit back")
            assert httpx.post(f"{url}/generate", json={"inputs": "hi"}, timeout=30.0).status_code == 200
        finally:
            sock.close()


def open_fds() -> int:
    import os

    return len(os.listdir("/proc/self/fd"))


def test_connect_disconnect_flood_leaks_nothing(demo: InProcessDemo) -> None:
    host, port = demo.url.removeprefix("http://").split(":")
    reference_tokens(demo.url)
    baseline = open_fds()
    threads = threading.active_count()
    for i in range(300):
        if i % 3 == 0:  # connect, send nothing
            socket.create_connection((host, int(port))).close()
        elif i % 3 == 1:  # half a request
            sock = socket.create_connection((host, int(port)))
            sock.sendall(b"POST /generate HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"inp")
            sock.close()
        else:  # a whole stream request, gone before the answer
            send_raw(demo.url, "/generate_stream", LONG).close()
    wait_for(lambda: open_fds() <= baseline, what="file descriptors back to baseline")
    # A leak would grow with the 300 cycles; the validation pool may start its second worker.
    assert threading.active_count() <= threads + 2
    assert_idle(demo.url)


# --- model and input failures --------------------------------------------------------------


def test_failed_step_fails_its_requests_and_health_runs_a_real_forward(demo: InProcessDemo) -> None:
    demo.executor.fail_steps = 1
    response = httpx.post(f"{demo.url}/generate", json=REFERENCE_REQUEST, timeout=60.0)
    assert response.status_code == 424
    assert_error_body(response.json(), "generation", "Request failed during generation: injected device error")
    assert_idle(demo.url)
    demo.executor.fail_steps = 1  # the health probe's own forward fails: still unhealthy
    assert httpx.get(f"{demo.url}/health", timeout=60.0).status_code == 503
    steps = demo.executor.num_steps
    assert httpx.get(f"{demo.url}/health", timeout=60.0).status_code == 200
    assert demo.executor.num_steps == steps + 1  # green only after a forward that worked
    assert httpx.get(f"{demo.url}/health", timeout=60.0).status_code == 200
    assert demo.executor.num_steps == steps + 1  # and no probe once healthy


def test_failed_step_ends_streams_with_an_error_event(demo: InProcessDemo) -> None:
    demo.executor.fail_steps = 1
    response = httpx.post(f"{demo.url}/generate_stream", json=LONG, timeout=60.0)
    events = sse_data_events(response.text)
    assert len(events) == 1
    assert_error_body(events[0], "generation", "injected device error")
    demo.executor.fail_steps = 1
    chat = {"messages": [{"role": "user", "content": "hi"}], "stream": True, "max_tokens": 5}
    events = sse_data_events(httpx.post(f"{demo.url}/v1/chat/completions", json=chat, timeout=60.0).text)
    assert events[-1] == "[DONE]" and "injected device error" in events[-2]["error"]["message"]


def test_kv_exhaustion_queues_requests_and_loses_none(demo: InProcessDemo) -> None:
    """Four requests of 8 blocks each share a 16-block cache: they wait (or are
    preempted and recomputed), all finish, each with its solo greedy tokens."""
    body = {"inputs": "word " * 60, "parameters": {"max_new_tokens": 60, "ignore_eos": True, "details": True}}

    def tokens() -> tuple[int, ...]:
        response = httpx.post(f"{demo.url}/generate", json=body, timeout=120.0)
        assert response.status_code == 200, response.text
        return tuple(t["id"] for t in response.json()["details"]["tokens"])

    solo = tokens()
    results: list[tuple[int, ...]] = []
    threads = [threading.Thread(target=lambda: results.append(tokens())) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert results == [solo] * 4
    never_fits = {"inputs": "word", "parameters": {"max_new_tokens": MAX_TOTAL_TOKENS}}
    response = httpx.post(f"{demo.url}/generate", json=never_fits, timeout=60.0)
    assert response.status_code == 422
    assert_error_body(response.json(), "validation", f"must be <= {MAX_TOTAL_TOKENS}")


def test_tokenizer_error_stays_with_its_request(demo: InProcessDemo) -> None:
    neighbour: list[tuple[int, ...]] = []
    thread = greedy_in_thread(demo.url, neighbour)
    for path in ("/generate", "/v1/completions", "/tokenize"):
        key = "prompt" if path == "/v1/completions" else "inputs"
        response = httpx.post(f"{demo.url}{path}", content=b'{"%s": "x\\ud800"}' % key.encode(),
                              headers={"content-type": "application/json"}, timeout=60.0)
        assert response.status_code == 422
        assert_error_body(response.json(), "validation", "tokenizer error")
    thread.join(timeout=60)
    assert neighbour == [demo.reference]
