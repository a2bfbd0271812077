"""The real server on the demo model, driven by real clients and raw HTTP."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from huggingface_hub import InferenceClient

PROMPTS = [f"Question {i}: what does the {topic} do in Python?" for i, topic in enumerate(
    ["list", "dict", "with statement", "for loop", "import system", "yield keyword", "lambda", "class",
     "tuple", "set", "string", "int", "float", "generator", "decorator", "exception"]
)]


def wait_idle(server, timeout_s: float = 10.0) -> None:
    """The invariant after any test: no request left, no KV block held."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (
            server.metric("pytgi_kv_cache_blocks_in_use") == 0
            and server.metric("tgi_queue_size") == 0
            and server.metric("tgi_batch_current_size") == 0
        ):
            return
        time.sleep(0.05)
    raise AssertionError("server did not return to idle")


@pytest.fixture(autouse=True)
def idle_after(demo_server):
    yield
    wait_idle(demo_server)


def generate(server, prompt: str, **parameters) -> dict:
    body = {"inputs": prompt, "parameters": {"max_new_tokens": 24, "details": True, **parameters}}
    response = httpx.post(f"{server.url}/generate", json=body, timeout=120.0)
    assert response.status_code == 200, response.text
    return response.json()


def test_inference_client_text_generation(demo_server):
    client = InferenceClient(demo_server.url)
    prompt = "The list type"
    # The client posts to TGI's `/`, where return_full_text defaults to true for
    # a model with no Hub pipeline tag: the prompt comes back first.
    text = client.text_generation(prompt, max_new_tokens=20)
    assert text.startswith(prompt) and len(text) > len(prompt)
    output = client.text_generation(prompt, max_new_tokens=20, details=True)
    assert output.generated_text == text
    assert output.details.finish_reason in ("length", "eos_token")
    assert len(output.details.tokens) == output.details.generated_tokens
    assert prompt + "".join(t.text for t in output.details.tokens if not t.special) == text
    plain = client.text_generation(prompt, max_new_tokens=20, return_full_text=False)
    assert prompt + plain == text


def test_inference_client_streaming(demo_server):
    client = InferenceClient(demo_server.url)
    full = client.text_generation("A dictionary", max_new_tokens=20)
    pieces = list(client.text_generation("A dictionary", max_new_tokens=20, stream=True))
    assert "A dictionary" + "".join(pieces) == full
    events = list(client.text_generation("A dictionary", max_new_tokens=20, stream=True, details=True))
    assert events[-1].generated_text == full
    assert events[-1].details.generated_tokens == len(events)


def test_raw_sse_framing(demo_server):
    body = {"inputs": "The for statement", "parameters": {"max_new_tokens": 8, "details": True}}
    with httpx.stream("POST", f"{demo_server.url}/generate_stream", json=body, timeout=60.0) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = response.read().decode()
    events = [json.loads(line[len("data:"):]) for line in raw.split("\n") if line.startswith("data:")]
    assert "[DONE]" not in raw
    assert [e["index"] for e in events] == list(range(1, len(events) + 1))
    assert all(e["generated_text"] is None and e["details"] is None for e in events[:-1])
    assert events[-1]["generated_text"] is not None
    assert events[-1]["details"]["generated_tokens"] == len(events)


def test_batch_invariance_greedy(demo_server):
    alone = [generate(demo_server, p)["details"]["tokens"] for p in PROMPTS]

    async def concurrently():
        async with httpx.AsyncClient(timeout=300.0) as client:
            bodies = [{"inputs": p, "parameters": {"max_new_tokens": 24, "details": True}} for p in PROMPTS]
            responses = await asyncio.gather(*(client.post(f"{demo_server.url}/generate", json=b) for b in bodies))
        return [r.json()["details"]["tokens"] for r in responses]

    together = asyncio.run(concurrently())
    for one, many in zip(alone, together, strict=True):
        assert [t["id"] for t in one] == [t["id"] for t in many]


def test_seeded_sampling_reproducible_in_a_batch(demo_server):
    params = {"do_sample": True, "temperature": 0.9, "top_k": 50, "seed": 1234}
    alone = generate(demo_server, PROMPTS[0], **params)["details"]

    async def with_others():
        async with httpx.AsyncClient(timeout=300.0) as client:
            target = {"inputs": PROMPTS[0], "parameters": {"max_new_tokens": 24, "details": True, **params}}
            others = [
                {"inputs": p, "parameters": {"max_new_tokens": 24, "do_sample": True, "seed": i}}
                for i, p in enumerate(PROMPTS[1:8])
            ]
            responses = await asyncio.gather(
                *(client.post(f"{demo_server.url}/generate", json=b) for b in [*others[:4], target, *others[4:]])
            )
        return responses[4].json()["details"]

    batched = asyncio.run(with_others())
    assert alone["seed"] == batched["seed"] == 1234
    assert [t["id"] for t in alone["tokens"]] == [t["id"] for t in batched["tokens"]]


def test_stop_sequence_and_finish_reasons(demo_server):
    base = generate(demo_server, "The list type", max_new_tokens=30)
    words = base["generated_text"].split()
    assert len(words) >= 3
    stop_word = words[2]
    stopped = generate(demo_server, "The list type", max_new_tokens=30, stop=[stop_word])
    assert stopped["details"]["finish_reason"] == "stop_sequence"
    assert stopped["generated_text"].endswith(stop_word)
    assert generate(demo_server, "The list type", max_new_tokens=3)["details"]["finish_reason"] == "length"


def test_validation_error_body(demo_server):
    response = httpx.post(
        f"{demo_server.url}/generate",
        json={"inputs": "x", "parameters": {"temperature": 0}},
        timeout=30.0,
    )
    assert response.status_code == 422
    assert response.json() == {
        "error": "Input validation error: `temperature` must be strictly positive",
        "error_type": "validation",
    }


def test_disconnect_mid_stream_frees_blocks(demo_server):
    body = {"inputs": "The import system", "parameters": {"max_new_tokens": 500, "ignore_eos": True}}
    with httpx.stream("POST", f"{demo_server.url}/generate_stream", json=body, timeout=60.0) as response:
        for line in response.iter_lines():
            if line.startswith("data:"):
                break  # got a token: leave
    wait_idle(demo_server)


def test_disconnect_non_streaming_frees_blocks(demo_server):
    # ignore_eos: the request is surely still running when the client leaves.
    body = {"inputs": "The import system", "parameters": {"max_new_tokens": 1500, "ignore_eos": True}}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{demo_server.url}/generate", json=body, timeout=1.0)
    wait_idle(demo_server)


def test_prefix_cache_repeated_prompt_same_answer(demo_server):
    prompt = "The with statement is used to wrap the execution of a block. " * 8
    first = generate(demo_server, prompt)
    second = generate(demo_server, prompt)
    assert [t["id"] for t in first["details"]["tokens"]] == [t["id"] for t in second["details"]["tokens"]]


def test_info_and_metrics(demo_server):
    info = httpx.get(f"{demo_server.url}/info", timeout=10.0).json()
    assert info["model_id"] and info["max_total_tokens"] > info["max_input_tokens"]
    assert demo_server.metric("pytgi_kv_cache_blocks_total") > 0
    assert demo_server.metric("tgi_request_count") >= 1


def test_ignore_eos_gives_exact_lengths(demo_server):
    lengths = {generate(demo_server, p, max_new_tokens=40, ignore_eos=True)["details"]["generated_tokens"] for p in PROMPTS[:3]}
    assert lengths == {40}


def test_decoder_input_details_top_n_and_best_of(demo_server):
    prompt = "The list type"
    prompt_ids = [t["id"] for t in httpx.post(f"{demo_server.url}/tokenize", json={"inputs": prompt}).json()]
    body = generate(demo_server, prompt, max_new_tokens=6, decoder_input_details=True, top_n_tokens=3)
    details = body["details"]
    assert [t["id"] for t in details["prefill"]] == prompt_ids
    assert details["prefill"][0]["logprob"] is None
    assert all(t["logprob"] < 0 for t in details["prefill"][1:])
    assert [len(top) for top in details["top_tokens"]] == [3] * 6
    for token, top in zip(details["tokens"], details["top_tokens"], strict=True):
        # Greedy: the chosen token is the most likely one.
        assert top[0]["id"] == token["id"]
    best = generate(demo_server, prompt, max_new_tokens=6, best_of=2, do_sample=True)
    assert len(best["details"]["best_of_sequences"]) == 1


def test_watermark_over_uses_green_tokens(demo_server):
    from pytgi.sampling.watermark import green_list

    prompt = "The list type"
    prompt_ids = [t["id"] for t in httpx.post(f"{demo_server.url}/tokenize", json={"inputs": prompt}).json()]
    body = generate(demo_server, prompt, max_new_tokens=64, ignore_eos=True, watermark=True)
    ids = [t["id"] for t in body["details"]["tokens"]]
    previous = [prompt_ids[-1], *ids[:-1]]
    green = sum(token in set(green_list(prev, 4096, 0.5).tolist()) for prev, token in zip(previous, ids, strict=True))
    # Unwatermarked text lands in the green half about half of the time.
    assert green / len(ids) >= 0.7
