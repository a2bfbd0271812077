"""Golden files pin the exact JSON of each route's answer and of each SSE event.

Each case runs over the fake engine (deterministic), is compared with
tests/server/golden/<case>.json, and every 200 answer is also validated
against the response model that /api-doc/openapi.json documents for it, so
the document and the wire cannot drift apart. After a deliberate contract
change, rewrite the files with `PYTGI_UPDATE_GOLDEN=1 pytest tests/server/test_golden_responses.py`
and review the diff.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import pydantic
import pytest
from fake_engine import FakeEngine, FakeScript
from server_harness import make_client, sse_events

from pytgi.server import openai_schemas as schemas_openai
from pytgi.server import tgi_response_schemas as schemas

GOLDEN_DIR = Path(__file__).parent / "golden"
UPDATE = os.environ.get("PYTGI_UPDATE_GOLDEN") == "1"

GenerateDetails = {"details": True, "decoder_input_details": True, "top_n_tokens": 2, "max_new_tokens": 4}

# name -> (method, path, JSON body or None, model of a 200 answer (per SSE event for streams))
CASES: dict[str, tuple[str, str, Any, Any]] = {
    "generate_plain": ("POST", "/generate", {"inputs": "Hi there", "parameters": {"max_new_tokens": 3}},
                       schemas.GenerateResponse),
    "generate_details": ("POST", "/generate", {"inputs": "Hi there", "parameters": GenerateDetails},
                         schemas.GenerateResponse),
    "generate_sampled_seed": ("POST", "/generate",
                              {"inputs": "Hi", "parameters": {"details": True, "do_sample": True, "seed": 7}},
                              schemas.GenerateResponse),
    "generate_best_of": ("POST", "/generate",
                         {"inputs": "Hi", "parameters": {"best_of": 2, "do_sample": True, "details": True,
                                                         "max_new_tokens": 2}},
                         schemas.GenerateResponse),
    "generate_full_text_stop": ("POST", "/generate",
                                {"inputs": "Say", "parameters": {"return_full_text": True, "stop": [" How"],
                                                                 "details": True}},
                                schemas.GenerateResponse),
    "compat_list": ("POST", "/", {"inputs": "Hi", "parameters": {"max_new_tokens": 2}},
                    schemas.CompatGenerateResponse),
    "stream_details": ("POST", "/generate_stream",
                       {"inputs": "Hi there", "parameters": {"details": True, "top_n_tokens": 1,
                                                             "max_new_tokens": 3}},
                       schemas.StreamResponse),
    "compat_stream": ("POST", "/", {"inputs": "Hi", "stream": True, "parameters": {"max_new_tokens": 2}},
                      schemas.StreamResponse),
    "tokenize": ("POST", "/tokenize", {"inputs": "Hé there"}, schemas.TokenizeResponse),
    "info": ("GET", "/info", None, schemas.Info),
    "vertex": ("POST", "/vertex", {"instances": [{"inputs": "Hi", "parameters": {"seed": 1,
                                                                               "max_new_tokens": 2}}]},
               schemas.VertexResponse),
    "chat": ("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3,
                                              "logprobs": True, "top_logprobs": 1}, schemas_openai.ChatCompletion),
    "chat_stream": ("POST", "/v1/chat/completions",
                    {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "stream": True,
                     "stream_options": {"include_usage": True}}, schemas_openai.ChatStreamEvent),
    "completion": ("POST", "/v1/completions", {"prompt": ["a", "b"], "max_tokens": 2, "seed": 1},
                   schemas_openai.CompletionFinal),
    "completion_stream": ("POST", "/v1/completions", {"prompt": "a", "max_tokens": 2, "stream": True},
                          schemas_openai.CompletionStreamEvent),
    "chat_tokenize": ("POST", "/chat_tokenize", {"messages": [{"role": "user", "content": "hi"}]},
                      schemas_openai.ChatTokenizeResponse),
    "models": ("GET", "/v1/models", None, schemas_openai.ModelList),
    "error_chat_template": ("POST", "/v1/chat/completions",
                            {"messages": [{"role": "user", "content": "hi"}], "tool_choice": "x",
                             "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, None),
    "error_chat_stream": ("POST", "/v1/chat/completions",
                          {"messages": [{"role": "user", "content": "hi"}], "stream": True, "top_p": 2}, None),
    "error_completion_suffix": ("POST", "/v1/completions", {"prompt": "a", "suffix": "b"}, None),
    "error_validation": ("POST", "/generate", {"inputs": "Hi", "parameters": {"temperature": 0}}, None),
    "error_stream_validation": ("POST", "/generate_stream", {"inputs": "Hi", "parameters": {"top_p": 1.0}},
                                None),
    "error_body": ("POST", "/generate", {"inputs": 5}, None),
    "error_not_found": ("GET", "/nope", None, None),
    "error_method": ("GET", "/generate", None, None),
    "error_stream_generation": ("POST", "/generate_stream", {"inputs": "fail now"}, None),
}


def fail_script(request: Any, seed: int) -> FakeScript:
    return FakeScript(fail_after=1) if (request.prompt or "").startswith("fail") else FakeScript()


def answer(name: str) -> dict[str, Any]:
    method, path, body, _ = CASES[name]
    random.seed(1234)  # the fake engine draws unset seeds (best_of) from `random`
    client, _ = make_client(FakeEngine(script_for=fail_script))
    response = client.request(method, path, json=body)
    content_type = response.headers["content-type"].split(";")[0]
    if content_type == "text/event-stream":
        # The OpenAI streams end with the literal `[DONE]`, kept as a string.
        text = response.text.replace("data: [DONE]", 'data: "[DONE]"')
        payload: Any = sse_events(text)
    else:
        payload = response.json()
    return {"status": response.status_code, "content_type": content_type, "body": without_clock(payload)}


def without_clock(value: Any) -> Any:
    """`created` is the answer's unix time: pinned to 0 for comparison."""
    if isinstance(value, dict):
        return {k: 0 if k == "created" else without_clock(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_clock(v) for v in value]
    return value


@pytest.mark.parametrize("name", sorted(CASES))
def test_answer_matches_golden_file(name: str) -> None:
    got = answer(name)
    path = GOLDEN_DIR / f"{name}.json"
    if UPDATE:
        path.write_text(json.dumps(got, indent=2, ensure_ascii=False) + "\n")
    assert got == json.loads(path.read_text()), f"{name} changed; see the module docstring"


@pytest.mark.parametrize("name", sorted(n for n, case in CASES.items() if case[3] is not None))
def test_answer_validates_against_documented_model(name: str) -> None:
    model: type[pydantic.BaseModel] = CASES[name][3]
    got = answer(name)
    assert got["status"] == 200
    values = got["body"] if got["content_type"] == "text/event-stream" else [got["body"]]
    for value in values:
        if value != "[DONE]":
            model.model_validate(value)


@pytest.mark.parametrize("name", sorted(n for n, case in CASES.items() if case[3] is None))
def test_errors_have_the_error_shape(name: str) -> None:
    got = answer(name)
    if got["content_type"] == "text/event-stream":
        # A stream reports its error as its last event, after any token events.
        assert got["status"] == 200
        events = [e for e in got["body"] if e != "[DONE]"]
        *tokens, error = events
        for token in tokens:
            schemas.StreamResponse.model_validate(token)
        if isinstance(error.get("error"), dict):  # the OpenAI streams' error shape
            schemas_openai.OpenAIStreamError.model_validate(error)
            return
    else:
        assert got["status"] >= 400
        error = got["body"]
    schemas.ErrorResponse.model_validate(error)
