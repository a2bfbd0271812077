"""Structured output and tools through the chat route, on the live demo server.

Acceptance figures of the Messages API: over 50 sampled generations
(temperature 1.0) per case, every JSON answer that ends with EOS parses and
validates against its schema, every regex answer fully matches, and every
tool call parses and names a declared tool.
"""

from __future__ import annotations

import asyncio
import json
import re

import jsonschema
import openai
import pytest

NUM_SAMPLES = 50
MESSAGES = [{"role": "user", "content": "Describe a Python list as JSON."}]
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 20}, "age": {"type": "integer"},
                   "kind": {"type": "string", "enum": ["list", "dict", "set"]}},
    "required": ["name", "age", "kind"],
    "additionalProperties": False,
}
DATE = r"20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9])"
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 16},
                                                    "unit": {"type": "string", "enum": ["c", "f"]}},
                   "required": ["city", "unit"]}}}
CLOCK = {"type": "function", "function": {
    "name": "get_time", "description": "Time in a zone",
    "parameters": {"type": "object", "properties": {"zone": {"type": "string", "maxLength": 12}},
                   "required": ["zone"]}}}


def sample(demo_server, **options):
    """NUM_SAMPLES concurrent chats at temperature 1.0 (different seeds)."""
    async def scenario():
        client = openai.AsyncOpenAI(base_url=f"{demo_server.url}/v1", api_key="-", max_retries=0)
        return await asyncio.gather(*[
            client.chat.completions.create(model="tgi", messages=MESSAGES, temperature=1.0, seed=seed,
                                           max_tokens=96, **options)
            for seed in range(NUM_SAMPLES)
        ])

    return asyncio.run(scenario())


@pytest.mark.parametrize("response_format", [
    {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}},  # OpenAI's form
    {"type": "json", "value": PERSON},  # TGI's form
], ids=["openai", "tgi"])
def test_json_schema_answers_validate(demo_server, response_format):
    answers = sample(demo_server, response_format=response_format)
    finished = [a.choices[0].message.content for a in answers if a.choices[0].finish_reason == "stop"]
    assert len(finished) >= NUM_SAMPLES // 2
    for text in finished:
        jsonschema.validate(json.loads(text), PERSON)


def test_json_object_answers_are_objects(demo_server):
    answers = sample(demo_server, response_format={"type": "json_object"})
    finished = [a.choices[0].message.content for a in answers if a.choices[0].finish_reason == "stop"]
    assert finished
    assert all(isinstance(json.loads(text), dict) for text in finished)


def test_regex_answers_match(demo_server):
    answers = sample(demo_server, response_format={"type": "regex", "value": DATE})
    texts = [a.choices[0].message.content for a in answers if a.choices[0].finish_reason == "stop"]
    assert len(texts) == NUM_SAMPLES
    assert all(re.fullmatch(DATE, text) for text in texts)


@pytest.mark.parametrize("tool_choice", ["required", {"type": "function", "function": {"name": "get_time"}}])
def test_tool_calls_parse_and_name_a_declared_tool(demo_server, tool_choice):
    answers = sample(demo_server, tools=[WEATHER, CLOCK], tool_choice=tool_choice)
    declared = {"get_weather": WEATHER, "get_time": CLOCK}
    for answer in answers:
        calls = answer.choices[0].message.tool_calls
        assert calls and len(calls) == 1
        call = calls[0]
        assert call.function.name in declared
        if tool_choice != "required":
            assert call.function.name == "get_time"
        jsonschema.validate(json.loads(call.function.arguments), declared[call.function.name]["function"]["parameters"])


def test_auto_tools_call_a_tool_or_answer_in_text(demo_server):
    answers = sample(demo_server, tools=[WEATHER, CLOCK])
    for answer in answers:
        message = answer.choices[0].message
        if message.tool_calls:
            assert message.tool_calls[0].function.name in ("get_weather", "get_time")
            json.loads(message.tool_calls[0].function.arguments)
        else:  # the model chose `no_tool`: TGI's plain answer, generated again without tools
            assert isinstance(message.content, str)


def test_streamed_tool_call_deltas_join_to_the_arguments(demo_server):
    client = openai.OpenAI(base_url=f"{demo_server.url}/v1", api_key="-", max_retries=0)
    for seed in range(5):
        chunks = list(client.chat.completions.create(
            model="tgi", messages=MESSAGES, tools=[WEATHER], tool_choice="required", stream=True,
            temperature=1.0, seed=seed, max_tokens=96))
        deltas = [c.choices[0].delta.tool_calls[0] for c in chunks if c.choices and c.choices[0].delta.tool_calls]
        assert deltas[0].function.name == "get_weather"
        assert all(d.function.name is None for d in deltas[1:])
        arguments = json.loads("".join(d.function.arguments for d in deltas))
        jsonschema.validate(arguments, WEATHER["function"]["parameters"])


def test_tools_and_response_format_together_is_a_tool_error(demo_server):
    client = openai.OpenAI(base_url=f"{demo_server.url}/v1", api_key="-", max_retries=0)
    with pytest.raises(openai.UnprocessableEntityError):
        client.chat.completions.create(model="tgi", messages=MESSAGES, tools=[WEATHER],
                                       response_format={"type": "json_object"})
