"""/v1/chat/completions, /chat_tokenize and /v1/models over the fake engine."""

from __future__ import annotations

import json

from fake_engine import FakeEngine, FakeScript
from server_harness import make_client

from pytgi.server import openai_schemas as schemas
from pytgi.tokenizer.chat_template import ChatTemplate

HI = [{"role": "user", "content": "hi"}]
DEMO_PROMPT = "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def chat(client, **body):  # type: ignore[no-untyped-def]
    return client.post("/v1/chat/completions", json={"messages": HI, **body})


def data_lines(text: str) -> list[str]:
    return [line[len("data: "):] for line in text.split("\n") if line.startswith("data: ")]


def test_chat_answer_shape_usage_and_headers() -> None:
    client, engine = make_client()
    response = chat(client, model="tgi")
    assert response.status_code == 200
    body = response.json()
    schemas.ChatCompletion.model_validate(body)
    assert body["object"] == "chat.completion" and body["id"] == "" and body["model"] == "fake/model"
    assert body["system_fingerprint"] == "9.9.9-test-native"
    choice = body["choices"][0]
    assert choice == {
        "index": 0,
        "message": {"role": "assistant", "content": "Hello world! How are you"},
        "logprobs": None,
        "finish_reason": "stop",  # EOS is reported as "stop"
    }
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 7, "total_tokens": 10}
    request = engine.requests[0]
    assert request.prompt == DEMO_PROMPT and request.add_special_tokens is False
    assert response.headers["x-prompt-tokens"] == "3" and response.headers["x-generated-tokens"] == "7"
    assert response.headers["x-compute-characters"] == str(len(DEMO_PROMPT))


def test_chat_echoes_a_requested_model_and_maps_tgi_parameters() -> None:
    client, engine = make_client()
    body = chat(client, model="dummy", temperature=0, top_p=1.0, presence_penalty=0.5, frequency_penalty=0.1,
                max_completion_tokens=2, stop="!", seed=3).json()
    assert body["model"] == "dummy"
    assert body["choices"][0]["finish_reason"] == "length"
    request = engine.requests[0]
    assert request.sampling.do_sample is False and request.sampling.is_greedy  # temperature 0 means greedy
    assert request.sampling.top_p == 1.0  # OpenAI's 1.0 means no filter, not a 422
    assert request.sampling.repetition_penalty == 2.5  # TGI: presence_penalty + 2
    assert request.sampling.frequency_penalty == 0.1
    assert request.stopping.max_new_tokens == 2 and request.stopping.stop == ("!",)
    chat(client)
    sampled = engine.requests[1].sampling
    assert sampled.do_sample and sampled.temperature == 1.0  # absent temperature samples


def test_chat_logprobs() -> None:
    client, engine = make_client()
    body = chat(client, logprobs=True, top_logprobs=2, max_tokens=2).json()
    assert engine.requests[0].sampling.top_n_tokens == 2
    content = body["choices"][0]["logprobs"]["content"]
    assert content[0] == {"token": "Hello", "logprob": -0.5, "top_logprobs": [
        {"token": "Hello~0", "logprob": -0.5}, {"token": "Hello~1", "logprob": -1.5}]}
    assert len(content) == 2


def test_chat_stream_chunks_usage_and_done() -> None:
    client, _ = make_client()
    response = chat(client, stream=True, max_tokens=3, stream_options={"include_usage": True}, logprobs=True)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    lines = data_lines(response.text)
    assert lines[-1] == "[DONE]"
    chunks = [json.loads(line) for line in lines[:-1]]
    for chunk in chunks:
        schemas.ChatCompletionChunk.model_validate(chunk)
    tokens, usage = chunks[:-1], chunks[-1]
    assert [c["choices"][0]["delta"] for c in tokens] == [
        {"role": "assistant", "content": "Hello"},
        {"role": "assistant", "content": " world"},
        {"role": "assistant", "content": "!"},
    ]
    assert [c["choices"][0]["finish_reason"] for c in tokens] == [None, None, "length"]
    assert tokens[0]["choices"][0]["logprobs"]["content"][0]["token"] == "Hello"
    assert usage["choices"] == [] and usage["usage"] == {"prompt_tokens": 3, "completion_tokens": 3,
                                                         "total_tokens": 6}


def test_chat_stream_eos_chunk_has_empty_content() -> None:
    client, _ = make_client()
    chunks = [json.loads(line) for line in data_lines(chat(client, stream=True).text)[:-1]]
    assert chunks[-1]["choices"][0]["delta"]["content"] == ""
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all(c["usage"] is None for c in chunks)


def test_chat_refuses_what_it_does_not_implement() -> None:
    client, engine = make_client()
    many = chat(client, n=2)
    assert many.status_code == 422 and "`n`" in many.json()["error"]
    bias = chat(client, logit_bias={"12": 5})
    assert bias.status_code == 422 and "logit_bias" in bias.json()["error"]
    assert chat(client, n=1, logit_bias={}).status_code == 200
    both = chat(client, tools=[], response_format={"type": "json", "value": {"properties": {}}})
    assert both.status_code == 422
    assert both.json() == {"error": "Tool error: Grammar and tools are mutually exclusive", "error_type": "tool_error"}
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    missing = chat(client, tools=[tool], tool_choice="other")
    assert missing.json() == {"error": "Tool error: Tool with name other not found", "error_type": "tool_error"}
    assert len(engine.requests) == 1


def test_chat_validation_errors() -> None:
    client, _ = make_client()
    response = chat(client, temperature=-1)
    assert response.status_code == 422
    assert response.json()["error"] == "Input validation error: `temperature` must be strictly positive"
    # In a stream it is TGI's OpenAI-style error event, then [DONE].
    stream = chat(client, temperature=-1, stream=True)
    assert stream.status_code == 200
    lines = data_lines(stream.text)
    assert json.loads(lines[0]) == {"error": {
        "message": "Input validation error: `temperature` must be strictly positive", "http_status_code": 422}}
    assert lines[-1] == "[DONE]"
    bad = client.post("/v1/chat/completions", json={"messages": "hi"})
    assert bad.status_code == 422 and bad.json()["error_type"] == "validation"


def test_template_errors_are_422_before_any_stream() -> None:
    raising = ChatTemplate("{{ raise_exception('only user turns') }}")
    client, engine = make_client(FakeEngine(chat_template=raising))
    for stream in (False, True):
        response = chat(client, stream=stream)
        assert response.status_code == 422
        assert response.json() == {"error": "Template error: only user turns", "error_type": "template_error"}
    client, _ = make_client(FakeEngine(chat_template=None))
    response = chat(client)
    assert response.json() == {"error": "Template error: template not found", "error_type": "template_error"}
    assert engine.requests == []


def test_messages_are_flattened_for_the_template() -> None:
    client, engine = make_client()
    messages = [
        {"role": "system", "content": [{"type": "text", "text": "Be "}, {"type": "text", "text": "brief."}]},
        {"role": "user", "content": [{"type": "text", "text": "Look: "},
                                     {"type": "image_url", "image_url": {"url": "http://x/cat.png"}}],
         "name": "ann"},
    ]
    client.post("/v1/chat/completions", json={"messages": messages})
    assert engine.requests[0].prompt == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nLook: ![](http://x/cat.png)<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_continuing_a_final_assistant_message() -> None:
    client, engine = make_client()
    messages = [*HI, {"role": "assistant", "content": "Well,"}]
    client.post("/v1/chat/completions", json={"messages": messages})
    assert engine.requests[0].prompt == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nWell,"


def test_chat_tokenize_and_models() -> None:
    client, _ = make_client()
    body = client.post("/chat_tokenize", json={"messages": HI}).json()
    schemas.ChatTokenizeResponse.model_validate(body)
    assert body["templated_text"] == DEMO_PROMPT
    assert [t["text"] for t in body["tokenize_response"]] == DEMO_PROMPT.split()
    models = client.get("/v1/models").json()
    schemas.ModelList.model_validate(models)
    assert models["object"] == "list" and models["data"][0]["id"] == "fake/model"


def test_tool_reply_round_trip_reaches_the_template() -> None:
    client, engine = make_client()
    call = {"id": "0", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    messages = [
        *HI,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "content": "22 C", "tool_call_id": "0"},
    ]
    response = client.post("/v1/chat/completions", json={"messages": messages})
    assert response.status_code == 200
    prompt = engine.requests[0].prompt
    # TGI renders an assistant's tool calls as JSON text, and the tool's answer as a turn of its own.
    assert '<|im_start|>assistant\n[{"id": "0", "type": "function", "function": {"name": "get_weather", ' in prompt
    assert "<|im_start|>tool\n22 C<|im_end|>\n<|im_start|>assistant\n" in prompt


def test_tools_prompt_is_appended_to_the_last_message() -> None:
    client, engine = make_client(FakeEngine(script=FakeScript(texts=('{"function": {"_name": "get_weather", '
                                                                     '"city": "Paris"}}',))))
    tool = {"type": "function", "function": {"name": "get_weather", "description": "Weather",
                                             "parameters": {"type": "object",
                                                            "properties": {"city": {"type": "string"}}}}}
    body = chat(client, tools=[tool], tool_prompt="Use a tool.").json()
    prompt = engine.requests[0].prompt
    # The demo template does not read `tools`: they are shown as JSON after the last message.
    assert "hi\n---\n[" in prompt and '"name": "get_weather"' in prompt and prompt.count("Use a tool.") == 1
    assert engine.requests[0].grammar is not None and engine.requests[0].grammar.kind == "json"
    assert body["choices"][0]["message"] == {"role": "assistant", "tool_calls": [{
        "id": "0", "type": "function",
        "function": {"description": None, "name": "get_weather", "arguments": '{"city": "Paris"}'}}]}
