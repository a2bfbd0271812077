"""Structured output on the bundled demo model, through the real engine and executor.

The acceptance figure: over 50 sampled generations per case (temperature 1.0,
do_sample, run as one concurrent batch), every JSON output that ends with EOS
parses and validates against its schema, and every regex output that ends with
EOS fully matches its regex.
"""

from __future__ import annotations

import dataclasses
import json
import re
import uuid

import jsonschema
import pytest

from pytgi.config import CacheConfig, EngineConfig, ServerConfig
from pytgi.engine.llm import LLM, Completion
from pytgi.errors import ValidationError
from pytgi.protocol import FinishReason, GenerationRequest, GrammarSpec, SamplingParams, StoppingParams

NUM_SAMPLES = 50
MAX_NEW_TOKENS = 96

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "role": {"type": "string", "enum": ["admin", "user", "guest"]},
    },
    "required": ["name", "age", "role"],
    "additionalProperties": False,
}
ORDER = {
    "type": "object",
    "properties": {
        "id": {"type": "integer", "minimum": 1, "maximum": 9999},
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "sku": {"type": "string", "pattern": "^[A-Z]{3}[0-9]{2}$"},
                    "qty": {"type": "integer", "minimum": 1, "maximum": 99},
                },
                "required": ["sku", "qty"],
                "additionalProperties": False,
            },
            "minItems": 1,
            "maxItems": 2,
        },
        "paid": {"type": "boolean"},
    },
    "required": ["id", "items", "paid"],
    "additionalProperties": False,
}


def tool(name: str, arguments: dict) -> dict:
    return {
        "properties": {"_name": {"type": "string", "const": name}, **arguments},
        "required": ["_name", *arguments],
        "additionalProperties": False,
    }


# TGI's tool grammar shape (tgi-contract §9.2): `$functions` referenced from an anyOf.
TOOLS = {
    "$functions": {
        "get_weather": tool("get_weather", {"city": {"type": "string", "maxLength": 10}}),
        "no_tool": tool("no_tool", {"content": {"type": "string", "maxLength": 10}}),
    },
    "properties": {
        "function": {"anyOf": [{"$ref": "#/$functions/get_weather"}, {"$ref": "#/$functions/no_tool"}]}
    },
    "required": ["function"],
    "additionalProperties": False,
}
DATE = r"(19|20)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
EMAIL = r"[a-z]{1,8}(\.[a-z]{1,8})?@[a-z]{2,8}\.(com|org|net)"


@pytest.fixture(scope="module")
def llm() -> LLM:
    return LLM()


def sampled_requests(spec: GrammarSpec, num: int = NUM_SAMPLES) -> list[GenerationRequest]:
    return [
        GenerationRequest(
            request_id=uuid.uuid4().hex,
            prompt=f"Example {i} of the answer:",
            sampling=SamplingParams(do_sample=True, temperature=1.0),
            stopping=StoppingParams(max_new_tokens=MAX_NEW_TOKENS),
            grammar=spec,
        )
        for i in range(num)
    ]


def ended_with_eos(completions: list[Completion]) -> list[str]:
    texts = [c.text for c in completions if c.finish_reason is FinishReason.EOS_TOKEN]
    # Not vacuous: most samples close their grammar well within the token budget.
    assert len(texts) >= len(completions) // 2, [c.text for c in completions[:5]]
    return texts


@pytest.mark.parametrize("schema", [PERSON, ORDER, TOOLS], ids=["object-enum", "nested-arrays", "tool-anyof"])
def test_every_json_output_that_ends_validates(llm: LLM, schema: dict) -> None:
    completions = llm.generate_requests(sampled_requests(GrammarSpec("json", json.dumps(schema))))
    for text in ended_with_eos(completions):
        value = json.loads(text)
        assert isinstance(value, dict), text  # TGI reads `properties` as an object, typed or not
        jsonschema.validate(value, schema)


@pytest.mark.parametrize("pattern", [DATE, EMAIL], ids=["date", "email"])
def test_every_regex_output_that_ends_matches(llm: LLM, pattern: str) -> None:
    completions = llm.generate_requests(sampled_requests(GrammarSpec("regex", pattern)))
    for text in ended_with_eos(completions):
        assert re.fullmatch(pattern, text), text


def test_greedy_and_unconstrained_requests_share_a_batch(llm: LLM) -> None:
    spec = GrammarSpec("regex", "[0-9]{4}")
    free = GenerationRequest(
        uuid.uuid4().hex, prompt="The list type", stopping=StoppingParams(max_new_tokens=8)
    )
    constrained = GenerationRequest(
        uuid.uuid4().hex, prompt="The list type", stopping=StoppingParams(max_new_tokens=8), grammar=spec
    )
    alone = llm.generate_requests([free])[0]
    together = llm.generate_requests(
        [free, constrained, dataclasses.replace(free, request_id=uuid.uuid4().hex)]
    )
    # Greedy rows next to a masked row keep their tokens: the mask does not leak.
    assert together[0].token_ids == alone.token_ids == together[2].token_ids
    assert re.fullmatch("[0-9]{4}", together[1].text) and together[1].finish_reason is FinishReason.EOS_TOKEN
    assert len(llm._built.engine.matchers) == 0  # released at finish


def test_invalid_grammar_is_refused_before_queueing(llm: LLM) -> None:
    processor = llm._built.input_processor
    request = sampled_requests(GrammarSpec("regex", "(unclosed"), num=1)[0]
    with pytest.raises(ValidationError, match="^grammar is not valid: "):
        processor.process(request)
    request = sampled_requests(
        GrammarSpec("json", json.dumps({"properties": {"a": {"type": "strin"}}})), num=1
    )[0]
    with pytest.raises(ValidationError, match="^cannot compile regex from schema: "):
        processor.process(request)
    assert not llm._built.engine.has_work()


def test_preempted_requests_keep_their_grammar_state() -> None:
    # 256 KV tokens for 16 requests of up to ~70 tokens: requests are preempted and resumed.
    small = LLM(config=EngineConfig(cache=CacheConfig(max_batch_total_tokens=256)))
    completions = small.generate_requests(sampled_requests(GrammarSpec("json", json.dumps(PERSON)), num=16))
    assert small._built.engine.scheduler.num_preemptions > 0
    for text in ended_with_eos(completions):
        jsonschema.validate(json.loads(text), PERSON)
    assert len(small._built.engine.matchers) == 0


def test_disabled_grammar_support_refuses_in_the_engine_too() -> None:
    config = EngineConfig(
        cache=CacheConfig(max_batch_total_tokens=1024), server=ServerConfig(disable_grammar_support=True)
    )
    off = LLM(config=config)
    with pytest.raises(ValidationError, match="^grammar is not supported$"):
        off.generate_requests(sampled_requests(GrammarSpec("regex", "a"), num=1))
