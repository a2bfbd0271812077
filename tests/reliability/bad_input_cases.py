"""The bad inputs of reliability.md §3a that our routes can receive, as data.

Each case is one request and the refusal it must get. `stream` cases answer
HTTP 200 and carry the error as their one SSE event (TGI validates streams
inside the stream: reliability.md note B); OpenAI streams then send `[DONE]`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

JSON = "application/json"
CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
USER_HI = [{"role": "user", "content": "hi"}]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}}}}]
PAYLOAD_LIMIT = 2_000_000


@dataclass(frozen=True)
class Case:
    id: str
    path: str
    body: Any = None  # sent as JSON unless `raw` is set
    raw: bytes | Callable[[], Iterator[bytes]] | None = None  # a callable gives a chunked body
    content_type: str | None = JSON
    status: int = 422
    error_type: str = "validation"
    fragment: str = ""  # must appear in the error message
    method: str = "POST"
    stream: Literal["tgi", "openai"] | None = None


def params(**parameters: Any) -> dict[str, Any]:
    return {"inputs": "The list type", "parameters": parameters}


def chat(**fields: Any) -> dict[str, Any]:
    return {"messages": USER_HI, "max_tokens": 4, **fields}


def oversized_chunks() -> Iterator[bytes]:
    """A body past the payload limit with no Content-Length (chunked transfer)."""
    yield b'{"inputs": "'
    for _ in range(PAYLOAD_LIMIT // 100_000 + 2):
        yield b"x" * 100_000
    yield b'"}'


def raw(case_id: str, path: str, body: bytes, status: int, error_type: str, fragment: str = "") -> Case:
    return Case(case_id, path, raw=body, status=status, error_type=error_type, fragment=fragment)


BODY_CASES = [
    raw("truncated-json", "/generate", b'{"inputs":', 400, "invalid_json", "Failed to parse the request body"),
    raw("body-is-list", "/generate", b"[]", 422, "validation", "Failed to deserialize"),
    raw("body-is-string", "/generate_stream", b'"x"', 422, "validation", "Failed to deserialize"),
    raw("body-is-number", "/tokenize", b"42", 422, "validation", "Failed to deserialize"),
    raw("body-is-null", "/", b"null", 422, "validation", "Failed to deserialize"),
    raw("chat-body-is-list", CHAT, b"[1, 2]", 422, "validation", "Failed to deserialize"),
    raw("completions-body-is-null", COMPLETIONS, b"null", 422, "validation", "Failed to deserialize"),
    raw("vertex-body-is-string", "/vertex", b'"x"', 422, "validation", "Failed to deserialize"),
    raw("invocations-body-is-list", "/invocations", b"[]", 422, "validation", "Failed to deserialize"),
    raw("chat-tokenize-body-is-number", "/chat_tokenize", b"7", 422, "validation", "Failed to deserialize"),
    Case("content-type-text-plain", "/generate", body=params(), content_type="text/plain", status=415,
         error_type="unsupported_media_type"),
    Case("content-type-missing", CHAT, body=chat(), content_type=None, status=415,
         error_type="unsupported_media_type"),
    Case("content-type-form", COMPLETIONS, body={"prompt": "x"}, content_type="application/x-www-form-urlencoded",
         status=415, error_type="unsupported_media_type"),
    Case("payload-over-limit", "/generate", body={"inputs": "x" * (PAYLOAD_LIMIT + 10)}, status=413,
         error_type="payload_too_large"),
    Case("payload-over-limit-chunked", CHAT, raw=oversized_chunks, status=413, error_type="payload_too_large"),
    raw("nested-100k-arrays", "/generate", b"[" * 100_000 + b"]" * 100_000, 400, "invalid_json", "nesting"),
    raw("nested-50k-objects", CHAT, b'{"a":' * 50_000 + b"1" + b"}" * 50_000, 400, "invalid_json", "nesting"),
    raw("nan-literal", "/generate", b'{"inputs":"x","parameters":{"temperature":NaN}}', 400, "invalid_json", "NaN"),
    raw("infinity-literal", CHAT, b'{"messages":[],"temperature":Infinity}', 400, "invalid_json", "Infinity"),
    raw("minus-infinity-literal", "/generate", b'{"inputs":"x","parameters":{"top_p":-Infinity}}', 400,
        "invalid_json"),
    # Valid JSON that Python's float() turns into inf.
    raw("float-overflow", "/generate", b'{"inputs":"x","parameters":{"temperature":1e999}}', 400, "invalid_json",
        "out of range"),
    raw("huge-integer-digits", "/generate", b'{"inputs":"x","parameters":{"seed":' + b"9" * 5000 + b"}}", 400,
        "invalid_json"),
    raw("invalid-utf8", "/generate", b'{"inputs":"\xff\xfe"}', 400, "invalid_json"),
    raw("lone-surrogate", "/generate", b'{"inputs":"a\\ud800b"}', 422, "validation", "tokenizer error"),
    raw("lone-surrogate-tokenize", "/tokenize", b'{"inputs":"a\\udc00"}', 422, "validation", "tokenizer error"),
    raw("lone-surrogate-chat", CHAT, b'{"messages":[{"role":"user","content":"\\ud83d"}]}', 422, "validation",
        "tokenizer error"),
    raw("lone-surrogate-completions", COMPLETIONS, b'{"prompt":"x\\ud800"}', 422, "validation",
        "tokenizer error"),
    Case("lone-surrogate-stream", "/generate_stream", raw=b'{"inputs":"a\\ud800"}', status=200,
         fragment="tokenizer error", stream="tgi"),
    raw("duplicate-key", "/generate", b'{"inputs":"a","inputs":"b"}', 422, "validation", "duplicate field `inputs`"),
    raw("duplicate-nested-key", CHAT, b'{"messages":[{"role":"user","role":"system","content":"x"}]}', 422,
        "validation", "duplicate field `role`"),
]

NATIVE_CASES = [
    Case("unknown-path", "/nope", body={}, status=404, error_type="not_found"),
    Case("get-on-generate", "/generate", method="GET", status=405, error_type="method_not_allowed"),
    Case("missing-inputs", "/generate", body={"parameters": {}}, fragment="missing field `inputs`"),
    Case("inputs-not-string", "/generate", body={"inputs": ["a"]}, fragment="inputs"),
    Case("max-new-tokens-string", "/generate", body=params(max_new_tokens="ten"), fragment="max_new_tokens"),
    Case("seed-negative", "/generate", body=params(seed=-1), fragment="seed"),
    Case("seed-2-pow-70", "/generate", body=params(seed=2**70), fragment="seed"),
    Case("inputs-empty", "/generate", body={"inputs": ""}, fragment="`inputs` cannot be empty"),
    Case("input-too-long", "/generate", body={"inputs": "word " * 450, "parameters": {"max_new_tokens": 1}},
         fragment="`inputs` must have less than 400 tokens. Given: 4"),
    Case("total-too-long", "/generate", body={"inputs": "word " * 300, "parameters": {"max_new_tokens": 300}},
         fragment="must be <= 512. Given: 3"),
    Case("max-new-tokens-zero", "/generate", body=params(max_new_tokens=0), fragment="max_new_tokens"),
    Case("max-new-tokens-negative", "/generate", body=params(max_new_tokens=-5), fragment="max_new_tokens"),
    Case("max-new-tokens-2-pow-40", "/generate", body=params(max_new_tokens=2**40), fragment="max_new_tokens"),
    Case("temperature-zero", "/generate", body=params(temperature=0), fragment="`temperature` must be strictly"),
    Case("temperature-negative", "/", body=params(temperature=-1.0), fragment="`temperature`"),
    Case("repetition-penalty-zero", "/generate", body=params(repetition_penalty=0), fragment="repetition_penalty"),
    Case("frequency-penalty-3", "/generate", body=params(frequency_penalty=3), fragment="frequency_penalty"),
    Case("top-p-zero", "/generate", body=params(top_p=0), fragment="`top_p`"),
    Case("top-p-one", "/generate", body=params(top_p=1.0), fragment="`top_p`"),
    Case("typical-p-one", "/generate", body=params(typical_p=1.0), fragment="`typical_p`"),
    Case("top-k-zero", "/generate", body=params(top_k=0), fragment="`top_k`"),
    Case("five-stop-sequences", "/generate", body=params(stop=list("abcde")), fragment="up to 4 stop sequences"),
    Case("best-of-3", "/generate", body=params(best_of=3, do_sample=True), fragment="`best_of`"),
    Case("best-of-2-greedy", "/generate", body=params(best_of=2), fragment="sampling"),
    Case("best-of-2-seeded", "/generate", body=params(best_of=2, do_sample=True, seed=1), fragment="`seed`"),
    Case("stream-best-of-2", "/generate_stream", body=params(best_of=2, do_sample=True), status=200,
         fragment="`best_of`", stream="tgi"),
    Case("stream-decoder-input-details", "/generate_stream", body=params(decoder_input_details=True),
         status=200, fragment="decoder_input_details", stream="tgi"),
    Case("compat-stream-top-k-negative", "/", body={**params(top_k=-1), "stream": True}, status=200,
         fragment="`top_k`", stream="tgi"),
    Case("top-n-tokens-6", "/generate", body=params(top_n_tokens=6), fragment="`top_n_tokens`"),
    Case("truncate-zero", "/generate", body=params(truncate=0), fragment="`truncate`"),
    Case("truncate-past-max-input", "/generate", body=params(truncate=1000), fragment="`truncate`"),
    Case("grammar-bad-regex", "/generate", body=params(grammar={"type": "regex", "value": "(["}),
         fragment="grammar is not valid"),
    Case("grammar-bad-schema", "/generate", body=params(grammar={"type": "json", "value": {"type": "nope"}}),
         fragment="grammar is not valid"),
    Case("grammar-schema-maximum-1e308", "/generate", body=params(grammar={"type": "json", "value": {
        "type": "object", "properties": {"a": {"type": "number", "maximum": 1e308}}}})),
    Case("grammar-recursive-ref", "/generate", body=params(grammar={"type": "json", "value": {
        "$ref": "#/definitions/a", "definitions": {"a": {"$ref": "#/definitions/a"}}}})),
    Case("grammar-over-size-cap", "/generate", body=params(grammar={"type": "regex", "value": "a" * 300_000}),
         fragment="over the limit"),
    Case("tokenize-missing-inputs", "/tokenize", body={"input": "x"}, fragment="missing field `inputs`"),
    Case("vertex-no-instances", "/vertex", body={"instances": []}, error_type="Input validation error"),
    Case("vertex-instances-not-list", "/vertex", body={"instances": "x"}),
    # TGI's /vertex reports any failed instance as a 500 whose type is its message (tgi-contract §3).
    Case("vertex-empty-inputs", "/vertex", body={"instances": [{"inputs": ""}]}, status=500,
         error_type="Incomplete generation"),
    Case("invocations-unknown-shape", "/invocations", body={"foo": 1}, fragment="SagemakerRequest"),
]

OPENAI_CASES = [
    Case("messages-empty", CHAT, body=chat(messages=[]), fragment="messages"),
    Case("messages-not-list", CHAT, body=chat(messages="hi"), fragment="messages"),
    Case("message-without-content", CHAT, body=chat(messages=[{"role": "user"}]),
         fragment="missing field `content`"),
    Case("message-content-number", CHAT, body=chat(messages=[{"role": "user", "content": 42}]),
         fragment="content"),
    Case("message-role-missing", CHAT, body=chat(messages=[{"content": "x"}]), fragment="missing field `role`"),
    Case("content-part-unknown-type", CHAT, body=chat(messages=[{"role": "user", "content": [
        {"type": "audio", "data": "x"}]}]), fragment="content"),
    Case("content-part-text-missing", CHAT, body=chat(messages=[{"role": "user", "content": [{"type": "text"}]}]),
         fragment="content"),
    Case("tools-and-response-format", CHAT, body=chat(tools=TOOLS, response_format={"type": "json_object"}),
         error_type="tool_error", fragment="mutually exclusive"),
    Case("tool-choice-unknown-function", CHAT, body=chat(tools=TOOLS, tool_choice={
        "type": "function", "function": {"name": "nope"}}), error_type="tool_error", fragment="nope not found"),
    Case("tool-parameters-invalid-schema", CHAT, body=chat(tools=[{"type": "function", "function": {
        "name": "f", "parameters": {"type": "object", "properties": {"a": {"type": "nope"}}}}}],
        tool_choice="required"), fragment="grammar is not valid"),
    Case("tools-not-list", CHAT, body=chat(tools={"a": 1}), fragment="tools"),
    Case("tool-without-function", CHAT, body=chat(tools=[{"type": "function"}]), fragment="function"),
    Case("n-1000", CHAT, body=chat(n=1000), fragment="`n`"),
    Case("top-logprobs-50", CHAT, body=chat(logprobs=True, top_logprobs=50), fragment="`top_n_tokens`"),
    Case("logit-bias-100k", CHAT, body=chat(logit_bias={str(i): 1.0 for i in range(100_000)}),
         fragment="logit_bias"),
    Case("max-tokens-past-context", CHAT, body=chat(max_tokens=10**6), fragment="must be <= 512"),
    Case("max-completion-tokens-past-context", CHAT, body={"messages": USER_HI, "max_completion_tokens": 10**6},
         fragment="must be <= 512"),
    Case("max-tokens-2-pow-40", CHAT, body=chat(max_tokens=2**40), fragment="max_tokens"),
    Case("response-format-unknown-type", CHAT, body=chat(response_format={"type": "yaml"}),
         fragment="response_format"),
    Case("response-format-json-schema-without-schema", CHAT,
         body=chat(response_format={"type": "json_schema", "json_schema": {"name": "x"}}), fragment="schema"),
    Case("response-format-bad-regex", CHAT, body=chat(response_format={"type": "regex", "value": "(["}),
         fragment="grammar is not valid"),
    Case("chat-stream-top-logprobs-50", CHAT, body=chat(stream=True, logprobs=True, top_logprobs=50),
         status=200, fragment="`top_n_tokens`", stream="openai"),
    Case("completions-five-prompts", COMPLETIONS, body={"prompt": ["a"] * 5}, error_type="batch size exceeded"),
    Case("completions-suffix", COMPLETIONS, body={"prompt": "a", "suffix": "b"}, error_type="suffix not supported"),
    Case("completions-token-ids-negative", COMPLETIONS, body={"prompt": [-1, 5]}, fragment="prompt"),
    Case("completions-token-ids-out-of-vocab", COMPLETIONS, body={"prompt": [5, 10**6]}, fragment="prompt"),
    Case("completions-prompt-empty", COMPLETIONS, body={"prompt": ""}, fragment="`inputs` cannot be empty"),
    Case("completions-max-tokens-past-context", COMPLETIONS, body={"prompt": "a", "max_tokens": 10**6},
         fragment="must be <= 512"),
    Case("completions-stream-past-context", COMPLETIONS, body={"prompt": "a", "max_tokens": 10**6, "stream": True},
         status=200, fragment="must be <= 512", stream="openai"),
    Case("chat-tokenize-messages-empty", "/chat_tokenize", body={"messages": []}, fragment="messages"),
    Case("chat-tokenize-without-content", "/chat_tokenize", body={"messages": [{"role": "assistant"}]},
         fragment="missing field `content`"),
    Case("invocations-chat-messages-empty", "/invocations", body={"messages": []}),
]

ALL_CASES = BODY_CASES + NATIVE_CASES + OPENAI_CASES
