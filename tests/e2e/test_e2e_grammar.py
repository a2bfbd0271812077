"""`grammar` on `/generate` and `/generate_stream` through the real server on the demo model."""

from __future__ import annotations

import json
import re
import time

import httpx
import jsonschema

SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 10}, "count": {"type": "integer", "maximum": 99}},
    "required": ["name", "count"],
    "additionalProperties": False,
}


def post(server, parameters: dict, route: str = "/generate") -> httpx.Response:
    body = {"inputs": "Answer:", "parameters": {"max_new_tokens": 64, "details": True, **parameters}}
    return httpx.post(f"{server.url}{route}", json=body, timeout=120.0)


def test_generate_with_json_grammar(demo_server):
    for seed in range(4):
        grammar = {"type": "json", "value": SCHEMA}
        response = post(demo_server, {"grammar": grammar, "do_sample": True, "seed": seed})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["generated_text"].startswith("{")
        if body["details"]["finish_reason"] == "eos_token":
            jsonschema.validate(json.loads(body["generated_text"]), SCHEMA)


def test_generate_with_regex_grammar_and_best_of(demo_server):
    pattern = "[0-9]{3}-[a-z]{2,5}"
    grammar = {"type": "regex", "value": pattern}
    response = post(demo_server, {"grammar": grammar, "best_of": 2, "do_sample": True})
    assert response.status_code == 200, response.text
    body = response.json()
    # Each best_of sequence runs its own matcher.
    texts = [body["generated_text"]] + [s["generated_text"] for s in body["details"]["best_of_sequences"]]
    assert len(texts) == 2
    assert all(re.fullmatch(pattern, text) for text in texts), texts


def test_json_schema_type_as_a_string_value(demo_server):
    grammar = {"type": "json_schema", "value": {"name": "thing", "schema": SCHEMA, "strict": True}}
    assert post(demo_server, {"grammar": grammar}).status_code == 200
    grammar = {"type": "json", "value": json.dumps(SCHEMA)}
    assert post(demo_server, {"grammar": grammar}).status_code == 200


def test_invalid_grammars_are_422_before_generation(demo_server):
    cases = [
        (
            {"type": "json", "value": {"type": "object"}},
            "grammar is not valid: Grammar must have a 'properties' field",
        ),
        ({"type": "regex", "value": "(unclosed"}, "grammar is not valid: "),
        (
            {"type": "json", "value": {"properties": {"a": {"uniqueItems": True}}}},
            "cannot compile regex from schema: ",
        ),
    ]
    for grammar, message in cases:
        response = post(demo_server, {"grammar": grammar})
        assert response.status_code == 422, response.text
        assert response.json()["error_type"] == "validation"
        assert response.json()["error"].startswith(f"Input validation error: {message}")


def test_stream_reports_an_invalid_grammar_as_an_event(demo_server):
    grammar = {"type": "regex", "value": "(unclosed"}
    response = post(demo_server, {"grammar": grammar, "details": False}, route="/generate_stream")
    assert response.status_code == 200  # TGI: in-handler errors travel inside the stream
    events = [
        json.loads(line[len("data:") :]) for line in response.text.split("\n") if line.startswith("data:")
    ]
    assert events[-1]["error"].startswith("Input validation error: grammar is not valid: ")


def test_stream_with_regex_grammar(demo_server):
    pattern = "(yes|no), [0-9]{2}"
    grammar = {"type": "regex", "value": pattern}
    response = post(demo_server, {"grammar": grammar, "details": False}, route="/generate_stream")
    events = [
        json.loads(line[len("data:") :]) for line in response.text.split("\n") if line.startswith("data:")
    ]
    assert re.fullmatch(pattern, events[-1]["generated_text"])
    deadline = time.monotonic() + 10.0
    while demo_server.metric("pytgi_kv_cache_blocks_in_use") != 0:  # freed within a step of the end
        assert time.monotonic() < deadline, "KV blocks still held"
        time.sleep(0.05)
