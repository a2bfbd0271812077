import asyncio
import time

import pytest
from engine_helpers import build, limits, request

from pytgi.engine import async_engine
from pytgi.engine.async_engine import AsyncEngine
from pytgi.engine.client import ModelInfo
from pytgi.errors import GenerationError, ValidationError
from pytgi.protocol import FinishReason

SCRIPT = "Python lists are mutable sequences; tuples are immutable."


def run_to_end(engine, processed):
    engine.add(processed)
    outputs = []
    while engine.has_work():
        outputs.extend(engine.step().outputs)
    return outputs


def test_generates_until_eos_with_text_and_details(tmp_path):
    engine, inputs, tokenizer, _ = build(tmp_path, SCRIPT)
    outputs = run_to_end(engine, inputs.process(request()))
    final = outputs[-1]
    assert final.finished and final.finish_reason is FinishReason.EOS_TOKEN
    assert final.generated_text == SCRIPT  # EOS text is skipped
    tokens = [t for o in outputs for t in o.tokens]
    assert "".join(t.text for t in tokens[:-1]) == SCRIPT
    assert tokens[-1].special and tokens[-1].text == "<|endoftext|>"
    assert final.num_generated_tokens == len(tokens)
    assert engine.scheduler.kv_cache.num_blocks_in_use == 0


def test_stop_sequence_is_kept_in_text(tmp_path):
    engine, inputs, _, _ = build(tmp_path, SCRIPT)
    outputs = run_to_end(engine, inputs.process(request(stop=("mutable",))))
    final = outputs[-1]
    assert final.finish_reason is FinishReason.STOP_SEQUENCE
    assert final.generated_text.endswith("mutable")
    assert "sequences" not in final.generated_text
    assert engine.scheduler.kv_cache.num_blocks_in_use == 0


def test_max_new_tokens_gives_length(tmp_path):
    engine, inputs, _, _ = build(tmp_path, SCRIPT)
    outputs = run_to_end(engine, inputs.process(request(max_new_tokens=3)))
    assert outputs[-1].finish_reason is FinishReason.LENGTH
    assert outputs[-1].num_generated_tokens == 3


def test_token_count_validation_messages(tmp_path):
    _, inputs, _, _ = build(tmp_path, SCRIPT)
    long_prompt = "word " * 150
    with pytest.raises(ValidationError, match=r"`inputs` tokens \+ `max_new_tokens` must be <= 128"):
        inputs.process(request(long_prompt, max_new_tokens=10))
    between = inputs.tokenizer.encode("word ")[:1] * 110  # 100 < length < 128
    with pytest.raises(ValidationError, match="`inputs` must have less than 100 tokens. Given: 110"):
        inputs.process(request(inputs.tokenizer.decode(between), max_new_tokens=None))
    assert inputs.process(request("hi", max_new_tokens=None)).max_new_tokens == 128 - len(
        inputs.process(request("hi")).prompt_token_ids
    )


def test_failed_step_fails_its_requests_and_engine_recovers(tmp_path):
    engine, inputs, _, executor = build(tmp_path, SCRIPT)
    processed = inputs.process(request())
    engine.add(processed)
    executor.fail_next = True
    result = engine.step()
    assert processed.request.request_id in result.failed
    assert engine.last_step_failed
    assert engine.scheduler.kv_cache.num_blocks_in_use == 0
    outputs = run_to_end(engine, inputs.process(request()))
    assert outputs[-1].generated_text == SCRIPT
    assert not engine.last_step_failed


def make_async(tmp_path):
    engine, inputs, tokenizer, executor = build(tmp_path, SCRIPT)
    info = ModelInfo("test", None, None, "float32", "cpu", 512)
    client = AsyncEngine(engine, inputs, tokenizer, info, limits())
    client.start()
    return client, engine


def test_async_engine_streams_and_aborts(tmp_path):
    client, engine = make_async(tmp_path)

    async def scenario():
        outputs = [o async for o in client.generate(request())]
        assert outputs[-1].generated_text == SCRIPT
        stream = client.generate(request(max_new_tokens=100))
        first = await stream.__anext__()
        assert first.tokens
        await stream.aclose()  # client gone
        for _ in range(100):
            if client.stats().num_running == 0 and client.stats().kv_blocks_in_use == 0:
                break
            await asyncio.sleep(0.01)
        assert client.stats().kv_blocks_in_use == 0
        with pytest.raises(ValidationError):
            async for _ in client.generate(request("word " * 150, max_new_tokens=10)):
                pass
        spans = await client.tokenize("café 🐍")
        assert "".join(s.text for s in spans) == "café 🐍"
        assert await client.check_health()

    try:
        asyncio.run(scenario())
    finally:
        client.shutdown()


def test_async_engine_reports_generation_error(tmp_path):
    client, engine = make_async(tmp_path)
    engine.executor.fail_next = True

    async def scenario():
        with pytest.raises(GenerationError, match="simulated device error"):
            async for _ in client.generate(request()):
                pass
        assert engine.last_step_failed
        assert await client.check_health()  # a real probe step now works
        assert not engine.last_step_failed

    try:
        asyncio.run(scenario())
    finally:
        client.shutdown()


def test_tokenize_error_is_a_validation_error(tmp_path):
    client, _ = make_async(tmp_path)

    async def scenario():
        with pytest.raises(ValidationError, match="tokenizer error"):
            await client.tokenize("\ud800 lone surrogate")

    try:
        asyncio.run(scenario())
    finally:
        client.shutdown()


@pytest.mark.parametrize("gather_s", [1.0, 0.0])
def test_an_idle_engine_waits_for_a_burst_still_in_validation(tmp_path, monkeypatch, gather_s):
    # Two requests arrive together; the second's validation takes 0.2 s longer.
    # With a gather window the first step takes both; without one it starts
    # with the first alone (the arrival race of the prefix benchmark).
    monkeypatch.setattr(async_engine, "BURST_GATHER_S", gather_s)
    engine, inputs, tokenizer, _ = build(tmp_path, SCRIPT)

    class SlowSecond:
        def process(self, generation_request):
            if generation_request.prompt == "second":
                time.sleep(0.2)
            return inputs.process(generation_request)

    added, in_first_step = [], []
    original_add, original_step = engine.add, engine.step

    def add(processed, *rest):
        added.append(processed.request.prompt)
        original_add(processed, *rest)

    def step():
        if not in_first_step:
            in_first_step.extend(added)
        return original_step()

    engine.add, engine.step = add, step
    client = AsyncEngine(engine, SlowSecond(), tokenizer, ModelInfo("test", None, None, "float32", "cpu", 512), limits())
    client.start()

    async def consume(prompt):
        return [o async for o in client.generate(request(prompt, max_new_tokens=3))][-1]

    async def scenario():
        return await asyncio.gather(consume("first"), consume("second"))

    try:
        outputs = asyncio.run(scenario())
    finally:
        client.shutdown()
    assert [o.num_generated_tokens for o in outputs] == [3, 3]
    assert in_first_step == (["first", "second"] if gather_s else ["first"])
