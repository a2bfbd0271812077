"""/v1/completions over the fake engine: one or several prompts, streamed or not."""

from __future__ import annotations

import json

from fake_engine import FakeEngine, FakeScript
from server_harness import make_client

from pytgi.server import openai_schemas as schemas


def data_lines(text: str) -> list[str]:
    return [line[len("data: "):] for line in text.split("\n") if line.startswith("data: ")]


def test_one_prompt() -> None:
    client, engine = make_client()
    response = client.post("/v1/completions", json={"prompt": "Once upon", "max_tokens": 2, "temperature": 0})
    assert response.status_code == 200
    body = response.json()
    schemas.CompletionFinal.model_validate(body)
    assert body["object"] == "text_completion" and body["model"] == "fake/model"
    assert body["choices"] == [{"index": 0, "text": "Hello world", "logprobs": None, "finish_reason": "length"}]
    assert body["usage"] == {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4}
    assert engine.requests[0].add_special_tokens is True and engine.requests[0].sampling.is_greedy
    assert response.headers["x-prompt-tokens"] == "2" and "x-compute-time" not in response.headers


def test_several_prompts_run_together_and_sum_usage() -> None:
    def script(request, seed):  # type: ignore[no-untyped-def]
        # The second prompt finishes first: choices come in completion order, as in TGI.
        slow = (request.prompt or "").startswith("slow")
        return FakeScript(texts=("a", "b"), delay_s=0.05 if slow else 0.0)

    client, engine = make_client(FakeEngine(script_for=script))
    body = client.post("/v1/completions", json={"prompt": ["slow one", "fast"]}).json()
    assert [c["index"] for c in body["choices"]] == [1, 0]
    assert all(c["finish_reason"] == "stop" and c["text"] == "ab" for c in body["choices"])
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 6, "total_tokens": 9}
    assert len(engine.requests) == 2


def test_stream_interleaves_prompts_and_ends_with_done() -> None:
    client, _ = make_client()
    response = client.post("/v1/completions", json={"prompt": ["a", "b c"], "max_tokens": 2, "stream": True})
    assert response.headers["content-type"] == "text/event-stream"
    lines = data_lines(response.text)
    assert lines[-1] == "[DONE]"
    chunks = [json.loads(line) for line in lines[:-1]]
    for chunk in chunks:
        schemas.CompletionChunk.model_validate(chunk)
    by_index: dict[int, list[dict]] = {0: [], 1: []}
    for chunk in chunks:
        by_index[chunk["choices"][0]["index"]].append(chunk)
    for index, mine in by_index.items():
        assert [c["choices"][0]["text"] for c in mine] == ["Hello", " world"]
        assert [c["choices"][0]["finish_reason"] for c in mine] == ["", "length"]  # TGI's empty string
        assert "usage" not in mine[0]
        assert mine[-1]["usage"]["prompt_tokens"] == index + 1


def test_stream_last_chunk_keeps_the_engine_reason() -> None:
    client, _ = make_client()
    lines = data_lines(client.post("/v1/completions", json={"prompt": "x", "stream": True}).text)
    assert json.loads(lines[-2])["choices"][0]["finish_reason"] == "eos_token"  # not mapped to "stop"


def test_refusals_with_tgi_messages() -> None:
    client, engine = make_client()
    suffix = client.post("/v1/completions", json={"prompt": "x", "suffix": "y"})
    assert suffix.status_code == 422
    assert suffix.json() == {"error": "Suffix is not supported and can be achieved by preprocessing the prompt.",
                             "error_type": "suffix not supported"}
    many = client.post("/v1/completions", json={"prompt": ["a"] * 5})
    assert many.json() == {"error": "Number of prompts exceeds the maximum allowed batch size of 4",
                           "error_type": "batch size exceeded"}
    empty = client.post("/v1/completions", json={"prompt": []})
    assert empty.status_code == 422
    assert "Empty array detected" in empty.json()["error"]
    for option in ({"n": 2}, {"echo": True}, {"logprobs": 1}, {"best_of": 3}, {"logit_bias": {"1": 2}}):
        refused = client.post("/v1/completions", json={"prompt": "x", **option})
        assert refused.status_code == 422, option
        assert "not supported" in refused.json()["error"]
    assert engine.requests == []


def test_a_failing_prompt_fails_the_request_and_aborts_the_others() -> None:
    def script(request, seed):  # type: ignore[no-untyped-def]
        if (request.prompt or "").startswith("fail"):
            return FakeScript(fail_after=1)
        return FakeScript(delay_s=0.05)

    engine = FakeEngine(script_for=script)
    client, _ = make_client(engine)
    response = client.post("/v1/completions", json={"prompt": ["ok", "fail"]})
    assert response.status_code == 424
    assert engine.num_running == 0
    stream = client.post("/v1/completions", json={"prompt": ["ok", "fail"], "stream": True})
    lines = data_lines(stream.text)
    assert json.loads(lines[-2])["error"]["http_status_code"] == 422
    assert lines[-1] == "[DONE]"
    assert engine.num_running == 0


def test_ignore_eos_extension_reaches_the_engine() -> None:
    client, engine = make_client()
    client.post("/v1/completions", json={"prompt": "x", "max_tokens": 3, "ignore_eos": True})
    client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}], "ignore_eos": True})
    client.post("/v1/completions", json={"prompt": "x"})
    assert [r.stopping.ignore_eos for r in engine.requests] == [True, True, False]
