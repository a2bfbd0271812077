"""Non-streamed routes over the fake engine: bodies, details shapes, headers, errors."""

from __future__ import annotations

import pytest
from fake_engine import FakeEngine, FakeScript, make_limits, make_model_info
from server_harness import make_client

from pytgi.protocol import GrammarSpec


def test_generate_default_body_has_no_details() -> None:
    client, engine = make_client()
    response = client.post("/generate", json={"inputs": "Hi there", "parameters": {"max_new_tokens": 3}})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"generated_text": "Hello world!"}
    assert engine.finished == [engine.requests[0].request_id]


def test_generate_details_shape() -> None:
    client, _ = make_client()
    response = client.post("/generate", json={"inputs": "Hi there", "parameters": {"details": True}})
    body = response.json()
    assert body["generated_text"] == "Hello world! How are you"  # EOS text is not in the text
    details = body["details"]
    assert list(details) == ["finish_reason", "generated_tokens", "seed", "prefill", "tokens"]
    assert details["finish_reason"] == "eos_token"
    assert details["generated_tokens"] == len(details["tokens"]) == 7
    assert details["seed"] is None  # greedy
    assert details["prefill"] == []
    assert details["tokens"][0] == {"id": 10, "text": "Hello", "logprob": -0.5, "special": False}
    assert details["tokens"][-1] == {"id": 2, "text": "</s>", "logprob": -0.1, "special": True}


def test_generate_sampling_reports_seed() -> None:
    client, engine = make_client()
    body = client.post(
        "/generate", json={"inputs": "Hi", "parameters": {"details": True, "do_sample": True, "seed": 7}}
    ).json()
    assert body["details"]["seed"] == 7
    body = client.post("/generate", json={"inputs": "Hi", "parameters": {"details": True, "top_k": 3}}).json()
    assert isinstance(body["details"]["seed"], int)


def test_decoder_input_details_alone_turns_details_on() -> None:
    client, _ = make_client()
    body = client.post(
        "/generate", json={"inputs": "a b c", "parameters": {"decoder_input_details": True}}
    ).json()
    prefill = body["details"]["prefill"]
    assert [p["id"] for p in prefill] == [1000, 1001, 1002]
    assert prefill[0] == {"id": 1000, "text": "w0", "logprob": None}
    assert all(p["logprob"] == -1.0 for p in prefill[1:])


def test_top_tokens_only_when_asked() -> None:
    client, _ = make_client()
    body = client.post(
        "/generate",
        json={"inputs": "Hi", "parameters": {"details": True, "top_n_tokens": 2, "max_new_tokens": 2}},
    ).json()
    top = body["details"]["top_tokens"]
    assert len(top) == 2 and all(len(alternatives) == 2 for alternatives in top)
    assert top[0][1] == {"id": 11, "text": "Hello~1", "logprob": -1.5, "special": False}


def test_non_finite_logprobs_are_null() -> None:
    script = FakeScript(texts=("a", "b"), logprobs=(float("-inf"), float("nan")))
    client, _ = make_client(FakeEngine(script=script))
    tokens = client.post("/generate", json={"inputs": "Hi", "parameters": {"details": True}}).json()[
        "details"
    ]["tokens"]
    assert [t["logprob"] for t in tokens[:2]] == [None, None]


def test_return_full_text_prepends_prompt() -> None:
    client, _ = make_client()
    body = client.post(
        "/generate", json={"inputs": "Say:", "parameters": {"return_full_text": True, "max_new_tokens": 2}}
    ).json()
    assert body == {"generated_text": "Say:Hello world"}


def test_generate_headers() -> None:
    client, _ = make_client(compute_type="1-test-gpu")
    response = client.post("/generate", json={"inputs": "héllo there", "parameters": {"max_new_tokens": 3}})
    headers = response.headers
    assert headers["x-compute-type"] == "1-test-gpu"
    assert float(headers["x-compute-time"]) >= 0
    assert headers["x-compute-characters"] == "11"
    for name in ("x-total-time", "x-validation-time", "x-queue-time", "x-inference-time", "x-time-per-token"):
        assert headers[name].isdigit(), name
    assert headers["x-prompt-tokens"] == "2"
    assert headers["x-generated-tokens"] == "3"


def test_compute_type_defaults_from_device() -> None:
    client, _ = make_client()
    assert client.post("/generate", json={"inputs": "x"}).headers["x-compute-type"] == "cpu"
    gpu = FakeEngine(model_info=make_model_info(device="cuda"))
    client, _ = make_client(gpu)
    assert client.post("/generate", json={"inputs": "x"}).headers["x-compute-type"] == "gpu+optimized"


# --- compat route ------------------------------------------------------------------------------


def test_compat_returns_a_list_with_full_text_by_default() -> None:
    client, _ = make_client()
    response = client.post("/", json={"inputs": "Say:", "parameters": {"max_new_tokens": 2}})
    assert response.status_code == 200
    assert response.json() == [{"generated_text": "Say:Hello world"}]
    assert "x-compute-time" in response.headers


@pytest.mark.parametrize(
    ("tag", "full_text"), [(None, True), ("text-generation", True), ("summarization", False)]
)
def test_compat_return_full_text_follows_pipeline_tag(tag: str | None, full_text: bool) -> None:
    engine = FakeEngine(model_info=make_model_info(model_pipeline_tag=tag))
    client, _ = make_client(engine)
    text = client.post("/", json={"inputs": "Say:", "parameters": {"max_new_tokens": 1}}).json()[0][
        "generated_text"
    ]
    assert text == ("Say:Hello" if full_text else "Hello")
    explicit = client.post(
        "/", json={"inputs": "Say:", "parameters": {"max_new_tokens": 1, "return_full_text": False}}
    ).json()
    assert explicit == [{"generated_text": "Hello"}]


def test_compat_without_parameters_samples() -> None:
    client, engine = make_client()
    client.post("/", json={"inputs": "x"})
    assert engine.requests[-1].sampling.do_sample is True
    client.post("/generate", json={"inputs": "x", "parameters": {}})
    assert engine.requests[-1].sampling.do_sample is False


# --- best_of -----------------------------------------------------------------------------------


def test_best_of_picks_highest_mean_logprob() -> None:
    scripts = iter(
        [FakeScript(texts=("bad",), logprobs=(-3.0,)), FakeScript(texts=("good",), logprobs=(-0.1,))]
    )
    engine = FakeEngine(script_for=lambda request, seed: next(scripts), limits=make_limits(max_best_of=3))
    client, _ = make_client(engine)
    body = client.post(
        "/generate", json={"inputs": "Q", "parameters": {"best_of": 2, "do_sample": True, "details": True}}
    ).json()
    assert body["generated_text"] == "good"
    others = body["details"]["best_of_sequences"]
    assert len(others) == 1 and others[0]["generated_text"] == "bad"
    assert list(others[0]) == [
        "generated_text",
        "finish_reason",
        "generated_tokens",
        "seed",
        "prefill",
        "tokens",
    ]
    assert isinstance(others[0]["seed"], int)
    ids = {r.request_id for r in engine.requests}
    assert len(ids) == 2 and all(r.sampling.seed is None for r in engine.requests)


def test_best_of_without_details_has_no_sequences() -> None:
    client, engine = make_client()
    body = client.post(
        "/generate", json={"inputs": "Q", "parameters": {"best_of": 2, "do_sample": True}}
    ).json()
    assert list(body) == ["generated_text"]
    assert len(engine.requests) == 2


def test_best_of_errors_are_422() -> None:
    client, engine = make_client()
    response = client.post("/generate", json={"inputs": "Q", "parameters": {"best_of": 3, "do_sample": True}})
    assert response.status_code == 422
    assert response.json() == {
        "error": "Input validation error: `best_of` must be > 0 and <= 2. Given: 3",
        "error_type": "validation",
    }
    response = client.post("/generate", json={"inputs": "Q", "parameters": {"best_of": 2}})
    assert response.json()["error"] == "Input validation error: you must use sampling when `best_of` is > 1"
    assert engine.requests == []


def test_best_of_failure_aborts_siblings() -> None:
    scripts = iter([FakeScript(fail_after=1), FakeScript(delay_s=0.05)])
    engine = FakeEngine(script_for=lambda request, seed: next(scripts))
    client, _ = make_client(engine)
    response = client.post("/generate", json={"inputs": "Q", "parameters": {"best_of": 2, "do_sample": True}})
    assert response.status_code == 424
    assert engine.aborted == [engine.requests[1].request_id]


# --- errors ------------------------------------------------------------------------------------


def test_validation_error_body() -> None:
    client, _ = make_client()
    response = client.post("/generate", json={"inputs": "x", "parameters": {"top_p": 1.0}})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "error": "Input validation error: `top_p` must be > 0.0 and < 1.0",
        "error_type": "validation",
    }


def test_engine_token_count_errors_are_422() -> None:
    client, _ = make_client(FakeEngine(limits=make_limits(max_input_tokens=3, max_total_tokens=10)))
    response = client.post("/generate", json={"inputs": "a b c d"})
    assert response.status_code == 422
    assert (
        response.json()["error"] == "Input validation error: `inputs` must have less than 3 tokens. Given: 4"
    )
    response = client.post("/generate", json={"inputs": "a b", "parameters": {"max_new_tokens": 9}})
    assert response.json()["error"] == (
        "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 10. "
        "Given: 2 `inputs` tokens and 9 `max_new_tokens`"
    )


def test_generation_error_is_424() -> None:
    client, _ = make_client(FakeEngine(script=FakeScript(fail_after=2)))
    response = client.post("/generate", json={"inputs": "x"})
    assert response.status_code == 424
    assert response.json() == {
        "error": "Request failed during generation: fake step failed",
        "error_type": "generation",
    }


def test_incomplete_generation_is_500() -> None:
    client, _ = make_client(FakeEngine(script=FakeScript(end_without_finish=True)))
    response = client.post("/generate", json={"inputs": "x"})
    assert response.status_code == 500
    assert response.json() == {"error": "Incomplete generation", "error_type": "incomplete_generation"}


def test_unexpected_engine_exception_is_a_generation_error() -> None:
    class Broken(FakeEngine):
        def generate(self, request):  # type: ignore[no-untyped-def]
            async def fail():  # type: ignore[no-untyped-def]
                raise RuntimeError("boom")
                yield

            return fail()

    client, _ = make_client(Broken())
    response = client.post("/generate", json={"inputs": "x"})
    assert response.status_code == 424
    assert response.json()["error"] == "Request failed during generation: boom"


# --- JSON extractor rejections -----------------------------------------------------------------


def test_unknown_fields_are_ignored() -> None:
    client, _ = make_client()
    body = {"inputs": "x", "stream": True, "parameters": {"stop_sequences": ["a"], "presence_penalty": 1}}
    response = client.post("/generate", json=body)
    assert response.status_code == 200 and "generated_text" in response.json()


# --- service routes ----------------------------------------------------------------------------


def test_health_routes() -> None:
    client, engine = make_client()
    for path in ("/", "/health", "/ping"):
        response = client.get(path)
        assert (response.status_code, response.content) == (200, b""), path
    engine.healthy = False
    for path in ("/", "/health", "/ping"):
        response = client.get(path)
        assert response.status_code == 503
        assert response.json() == {"error": "unhealthy", "error_type": "healthcheck"}


def test_info_fields() -> None:
    engine = FakeEngine(model_info=make_model_info(model_id="org/m", model_sha="abc", model_pipeline_tag="x"))
    client, _ = make_client(engine)
    assert client.get("/info").json() == {
        "model_id": "org/m",
        "model_sha": "abc",
        "model_pipeline_tag": "x",
        "max_concurrent_requests": 128,
        "max_best_of": 2,
        "max_stop_sequences": 4,
        "max_input_tokens": 1000,
        "max_total_tokens": 2000,
        "validation_workers": 2,
        "max_client_batch_size": 4,
        "router": "text-generation-router",
        "version": "9.9.9-test",
        "sha": None,
        "docker_label": None,
    }


def test_tokenize() -> None:
    client, _ = make_client()
    response = client.post("/tokenize", json={"inputs": "héllo  world"})
    assert response.status_code == 200
    assert response.json() == [
        {"id": 100, "text": "héllo", "start": 0, "stop": 6},
        {"id": 101, "text": "world", "start": 8, "stop": 13},
    ]


def test_grammar_refused_when_grammar_support_is_disabled() -> None:
    client, engine = make_client(FakeEngine(limits=make_limits(disable_grammar_support=True)))
    response = client.post(
        "/generate",
        json={"inputs": "x", "parameters": {"grammar": {"type": "json", "value": {"properties": {}}}}},
    )
    assert response.status_code == 422
    assert response.json()["error"] == "Input validation error: grammar is not supported"
    assert engine.requests == []


def test_grammar_reaches_the_engine_request() -> None:
    client, engine = make_client()
    response = client.post(
        "/generate",
        json={"inputs": "x", "parameters": {"grammar": {"type": "regex", "value": "[0-9]+"}}},
    )
    assert response.status_code == 200
    assert engine.requests[0].grammar == GrammarSpec(kind="regex", value="[0-9]+")
