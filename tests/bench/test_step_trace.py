"""The offline step trace on the demo model: every token, gap and step accounted."""

from __future__ import annotations

import uuid

from pytgi.bench.step_trace import closed_loop, format_report, report, warm_pass_first_tokens
from pytgi.config import CacheConfig, EngineConfig, ModelConfig
from pytgi.engine.builder import build_engine
from pytgi.protocol import GenerationRequest, StoppingParams

PROMPT_LENS = (5, 9, 14, 7, 11)
NEW_TOKENS = (6, 3, 8, 4, 5)


def make_request(index: int) -> GenerationRequest:
    # Distinct first tokens: no prompt shares a cached prefix with another.
    prompt = tuple(20 + index * 31 + i for i in range(PROMPT_LENS[index]))
    return GenerationRequest(
        request_id=uuid.uuid4().hex,
        prompt_token_ids=prompt,
        stopping=StoppingParams(max_new_tokens=NEW_TOKENS[index], ignore_eos=True),
    )


def test_a_closed_loop_accounts_for_every_token_and_step() -> None:
    built = build_engine(
        EngineConfig(model=ModelConfig(device="cpu", dtype="float32"), cache=CacheConfig(max_batch_total_tokens=512))
    )
    executor = built.engine.executor
    trace = closed_loop(built, make_request, streams=2, num_requests=len(PROMPT_LENS))
    assert built.engine.executor is executor  # the timing wrapper is taken off again
    assert trace.num_tokens == sum(NEW_TOKENS)
    assert len(trace.gaps_s) == sum(NEW_TOKENS) - len(NEW_TOKENS)
    assert len(trace.refill_ttft_s) == len(PROMPT_LENS) - 2  # all but the first wave
    assert sum(step.num_prompt_tokens for step in trace.steps) == sum(PROMPT_LENS)
    # Every row is a prompt token or a decode row feeding back a sampled token
    # (each request's last token is never fed back).
    decode_rows = sum(step.num_rows - step.num_prompt_tokens for step in trace.steps)
    assert decode_rows == sum(NEW_TOKENS) - len(NEW_TOKENS)
    assert all(step.num_rows <= 2 * max(PROMPT_LENS) for step in trace.steps)  # at most two requests a step
    result = report(trace)
    assert result.itl_s.num_values == len(trace.gaps_s)
    assert result.refill_ttft_s is not None and result.refill_ttft_s.num_values == 3
    text = format_report(result)
    assert "p99/p50" in text and "TTFT, later arrivals" in text


def test_a_warm_pass_times_each_requests_first_token() -> None:
    built = build_engine(EngineConfig(model=ModelConfig(device="cpu", dtype="float32")))
    prefixes = [[30 + g * 40 + i for i in range(32)] for g in range(3)]
    warm_pass_first_tokens(built, prefixes, [[5, 6, 7]] * 3, max_new_tokens=2)  # caches the prefixes
    times = warm_pass_first_tokens(built, prefixes, [[8, 9], [10, 11, 12], [13]], max_new_tokens=2)
    assert len(times) == 3 and times == sorted(times) and times[0] > 0
    assert not built.engine.has_work()
