"""`/generate_stream` and `POST /` with stream:true: SSE framing, events, in-band errors."""

from __future__ import annotations

import asyncio
import json

import pytest
from fake_engine import FakeEngine, FakeScript, make_limits
from server_harness import make_client, sse_events

from pytgi.server.sse import sse_data, with_keepalive


def stream(client, path: str = "/generate_stream", **body: object):  # type: ignore[no-untyped-def]
    return client.post(path, json=body)


def test_stream_framing_and_headers() -> None:
    client, _ = make_client(compute_type="gpu+optimized")
    response = stream(client, inputs="Hi", parameters={"max_new_tokens": 2})
    assert response.status_code == 200
    headers = response.headers
    assert headers["content-type"] == "text/event-stream"
    assert headers["cache-control"] == "no-cache"
    assert headers["x-accel-buffering"] == "no"
    assert headers["x-compute-type"] == "gpu+optimized"
    assert headers["x-compute-characters"] == "2"
    assert "x-compute-time" not in headers
    # Exactly `data: <compact json>\n\n` per event, nothing else, no [DONE].
    chunks = response.text.split("\n\n")
    assert chunks[-1] == ""
    for chunk in chunks[:-1]:
        assert chunk.startswith("data: {") and "\n" not in chunk
        assert json.dumps(json.loads(chunk[6:]), separators=(",", ":"), ensure_ascii=False) == chunk[6:]
    assert "[DONE]" not in response.text


def test_stream_events_and_last_event() -> None:
    client, _ = make_client()
    events = sse_events(stream(client, inputs="Hi", parameters={"max_new_tokens": 3}).text)
    assert [e["index"] for e in events] == [1, 2, 3]
    assert [e["token"]["text"] for e in events] == ["Hello", " world", "!"]
    for event in events[:-1]:
        assert event == {
            "index": event["index"],
            "token": event["token"],
            "generated_text": None,
            "details": None,
        }
    last = events[-1]
    assert last["generated_text"] == "Hello world!"
    assert last["details"] is None  # details not asked


def test_stream_last_event_details() -> None:
    client, _ = make_client()
    events = sse_events(stream(client, inputs="a b c", parameters={"details": True, "do_sample": True}).text)
    last = events[-1]
    assert last["token"] == {"id": 2, "text": "</s>", "logprob": -0.1, "special": True}
    assert last["generated_text"] == "Hello world! How are you"
    details = last["details"]
    assert list(details) == ["finish_reason", "generated_tokens", "seed", "input_length"]
    assert details["finish_reason"] == "eos_token" and details["generated_tokens"] == 7
    assert details["input_length"] == 3 and isinstance(details["seed"], int)


def test_stream_top_tokens_and_multi_token_outputs() -> None:
    client, _ = make_client(FakeEngine(script=FakeScript(tokens_per_output=2)))
    events = sse_events(stream(client, inputs="Hi", parameters={"top_n_tokens": 2, "max_new_tokens": 5}).text)
    assert [e["index"] for e in events] == [1, 2, 3, 4, 5]
    assert all(len(e["top_tokens"]) == 2 for e in events)
    assert events[-1]["generated_text"] == "Hello world! How are"
    assert sum(e["generated_text"] is not None for e in events) == 1
    plain = sse_events(stream(client, inputs="Hi", parameters={"max_new_tokens": 1}).text)
    assert "top_tokens" not in plain[0]


def test_compat_stream_uses_full_text_default() -> None:
    client, _ = make_client()
    events = sse_events(
        stream(client, "/", inputs="Say:", parameters={"max_new_tokens": 2}, stream=True).text
    )
    assert events[-1]["generated_text"] == "Say:Hello world"
    assert len(events) == 2


@pytest.mark.parametrize(
    ("parameters", "error"),
    [
        ({"top_p": 1.0}, "Input validation error: `top_p` must be > 0.0 and < 1.0"),
        (
            {"best_of": 2, "do_sample": True},
            "Input validation error: `best_of` != 1 is not supported when streaming tokens",
        ),
        (
            {"decoder_input_details": True},
            "Input validation error: `decoder_input_details` == true is not supported when streaming tokens",
        ),
        (
            {"max_new_tokens": 100},
            "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 100. "
            "Given: 1 `inputs` tokens and 100 `max_new_tokens`",
        ),
    ],
)
def test_stream_validation_errors_are_in_band(parameters: dict, error: str) -> None:
    client, engine = make_client(FakeEngine(limits=make_limits(max_input_tokens=50, max_total_tokens=100)))
    response = stream(client, inputs="Hi", parameters=parameters)
    assert response.status_code == 200
    expected = json.dumps({"error": error, "error_type": "validation"}, separators=(",", ":"))
    assert response.text == f"data: {expected}\n\n"
    assert engine.aborted == []


def test_stream_generation_error_after_tokens() -> None:
    client, _ = make_client(FakeEngine(script=FakeScript(fail_after=2)))
    events = sse_events(stream(client, inputs="Hi").text)
    assert [e.get("index") for e in events[:2]] == [1, 2]
    assert events[2] == {
        "error": "Request failed during generation: fake step failed",
        "error_type": "generation",
    }
    assert len(events) == 3


def test_stream_incomplete() -> None:
    client, _ = make_client(FakeEngine(script=FakeScript(end_without_finish=True, texts=("a",))))
    events = sse_events(stream(client, inputs="Hi").text)
    assert events[-1] == {
        "error": "Incomplete generation stream",
        "error_type": "incomplete_generation_stream",
    }


def test_stream_metrics_count_success_and_failure() -> None:
    client, _ = make_client()
    stream(client, inputs="Hi")
    stream(client, inputs="Hi", parameters={"temperature": 0})
    text = client.get("/metrics").text
    assert "tgi_request_count 2" in text
    assert "tgi_request_success 1" in text
    assert 'tgi_request_failure{err="validation"} 1' in text


def test_overloaded_stream_is_in_band() -> None:
    client, _ = make_client(FakeEngine(limits=make_limits(max_concurrent_requests=1)))
    app_state = client.app.state.pytgi  # type: ignore[attr-defined]
    permit = app_state.limiter.try_acquire()
    try:
        response = stream(client, inputs="Hi")
        assert response.status_code == 200
        assert sse_events(response.text) == [{"error": "Model is overloaded", "error_type": "overloaded"}]
        generate = client.post("/generate", json={"inputs": "Hi"})
        assert generate.status_code == 429
        assert generate.json() == {"error": "Model is overloaded", "error_type": "overloaded"}
    finally:
        permit.release()
    assert client.post("/generate", json={"inputs": "Hi"}).status_code == 200
    assert app_state.limiter.num_free == 1


def test_keepalive_comment_during_silence() -> None:
    client, _ = make_client(
        FakeEngine(script=FakeScript(texts=("a", "b"), delay_s=0.12)), keepalive_interval_s=0.05
    )
    text = stream(client, inputs="Hi", parameters={"max_new_tokens": 2}).text
    assert ":\n\n" in text
    assert [e["token"]["text"] for e in sse_events(text)] == ["a", "b"]


def test_with_keepalive_does_not_cancel_the_source() -> None:
    async def source():  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.05)
        yield 1
        await asyncio.sleep(0.05)
        yield 2

    async def run() -> list[object]:
        return [item async for item in with_keepalive(source(), 0.02)]

    items = asyncio.run(run())
    assert [i for i in items if i is not None] == [1, 2]
    assert None in items


def test_sse_data_is_compact_utf8() -> None:
    assert sse_data({"a": "é", "b": [1, None]}) == 'data: {"a":"é","b":[1,null]}\n\n'.encode()
