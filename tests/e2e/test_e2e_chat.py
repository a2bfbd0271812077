"""The Messages API on the live demo server, through unmodified clients: `openai`
(sync, async, streaming, completions, models, errors) and huggingface_hub's chat."""

from __future__ import annotations

import asyncio
import json

import httpx
import openai
import pytest
from huggingface_hub import InferenceClient

MESSAGES = [{"role": "user", "content": "What does the list type do?"}]


@pytest.fixture
def client(demo_server):
    return openai.OpenAI(base_url=f"{demo_server.url}/v1", api_key="-", max_retries=0)


def test_openai_chat_is_the_templated_generation(client, demo_server):
    answer = client.chat.completions.create(model="tgi", messages=MESSAGES, max_tokens=16, temperature=0)
    choice = answer.choices[0]
    assert choice.finish_reason in ("stop", "length") and choice.message.role == "assistant"
    assert answer.usage.completion_tokens <= 16
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens
    # The same greedy generation as /generate on the template's output.
    templated = httpx.post(f"{demo_server.url}/chat_tokenize", json={"messages": MESSAGES}).json()
    assert templated["templated_text"].endswith("<|im_start|>assistant\n")
    assert len(templated["tokenize_response"]) == answer.usage.prompt_tokens
    native = httpx.post(f"{demo_server.url}/generate", json={
        "inputs": templated["templated_text"], "parameters": {"max_new_tokens": 16}}).json()
    assert choice.message.content == native["generated_text"]


def test_openai_stream_equals_the_whole_answer(client):
    whole = client.chat.completions.create(model="tgi", messages=MESSAGES, max_tokens=12, temperature=0)
    stream = client.chat.completions.create(model="tgi", messages=MESSAGES, max_tokens=12, temperature=0,
                                            stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [whole.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_openai_logprobs_and_seeded_sampling(client):
    answer = client.chat.completions.create(model="tgi", messages=MESSAGES, max_tokens=6, logprobs=True,
                                            top_logprobs=2, seed=42, temperature=0.8)
    content = answer.choices[0].logprobs.content
    assert len(content) == answer.usage.completion_tokens
    assert all(len(entry.top_logprobs) == 2 for entry in content)
    again = client.chat.completions.create(model="tgi", messages=MESSAGES, max_tokens=6, logprobs=True,
                                           top_logprobs=2, seed=42, temperature=0.8)
    assert again.choices[0].message.content == answer.choices[0].message.content


def test_openai_async_concurrent_chats(demo_server):
    async def scenario():
        client = openai.AsyncOpenAI(base_url=f"{demo_server.url}/v1", api_key="-", max_retries=0)
        answers = await asyncio.gather(*[
            client.chat.completions.create(model="tgi", messages=MESSAGES, max_tokens=8, temperature=0)
            for _ in range(4)
        ])
        assert len({a.choices[0].message.content for a in answers}) == 1  # greedy: batching changes nothing
        stream = await client.chat.completions.create(model="tgi", messages=MESSAGES, max_tokens=8,
                                                      temperature=0, stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream])
        assert text == answers[0].choices[0].message.content

    asyncio.run(scenario())


def test_openai_completions_and_models(client, demo_server):
    models = client.models.list()
    assert [m.id for m in models.data] == ["pytgi/demo"]
    completion = client.completions.create(model="tgi", prompt="The list type", max_tokens=8, temperature=0)
    native = httpx.post(f"{demo_server.url}/generate", json={
        "inputs": "The list type", "parameters": {"max_new_tokens": 8}}).json()
    assert completion.choices[0].text == native["generated_text"]
    several = client.completions.create(model="tgi", prompt=["a", "b"], max_tokens=4, temperature=0)
    assert sorted(c.index for c in several.choices) == [0, 1]
    streamed = client.completions.create(model="tgi", prompt="The list type", max_tokens=8, temperature=0,
                                         stream=True)
    assert "".join(c.choices[0].text for c in streamed) == native["generated_text"]


def test_openai_errors_raise_the_proper_types(client):
    with pytest.raises(openai.UnprocessableEntityError) as error:
        client.chat.completions.create(model="tgi", messages=MESSAGES, temperature=-1)
    assert "temperature" in str(error.value.body)  # the client unwraps TGI's {"error": ...}
    with pytest.raises(openai.APIError):
        list(client.chat.completions.create(model="tgi", messages=MESSAGES, temperature=-1, stream=True))
    with pytest.raises(openai.UnprocessableEntityError):
        client.completions.create(model="tgi", prompt="x", suffix="y")


def test_huggingface_hub_chat(demo_server):
    hub = InferenceClient(base_url=demo_server.url)
    whole = hub.chat_completion(MESSAGES, max_tokens=10, temperature=0)
    assert whole.choices[0].message.content
    pieces = [c.choices[0].delta.content or "" for c in
              hub.chat.completions.create(messages=MESSAGES, max_tokens=10, temperature=0, stream=True)]
    assert "".join(pieces) == whole.choices[0].message.content


def test_text_generation_client_chat(demo_server):
    # TGI's own client sends every optional field as null (and messages with name/tool_calls null).
    from text_generation import Client
    from text_generation.types import Message

    client = Client(demo_server.url)
    answer = client.chat(messages=[Message(role="user", content="What does the list type do?")],
                         max_tokens=8, temperature=0)
    assert answer.choices[0].message.content
    assert answer.usage["completion_tokens"] <= 8  # this client keeps usage as a dict


def test_raw_sse_chat_stream_shape(demo_server):
    body = {"messages": MESSAGES, "max_tokens": 4, "temperature": 0, "stream": True}
    with httpx.stream("POST", f"{demo_server.url}/v1/chat/completions", json=body, timeout=60) as response:
        assert response.headers["content-type"] == "text/event-stream"
        lines = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    assert [sorted(c) for c in chunks] == [
        ["choices", "created", "id", "model", "object", "system_fingerprint", "usage"]] * len(chunks)
    assert all(c["choices"][0]["delta"]["role"] == "assistant" for c in chunks)
    assert [c["choices"][0]["finish_reason"] for c in chunks][-1] in ("stop", "length")
