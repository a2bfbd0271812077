"""Drive the scheduler with fabricated step results (no model)."""

from __future__ import annotations

from pytgi.config import SchedulerConfig
from pytgi.kv_cache.manager import KVCacheManager
from pytgi.protocol import SamplingParams
from pytgi.scheduler.request import Request
from pytgi.scheduler.scheduler import ProportionalCap, RequestUpdate, Scheduler
from pytgi.step import SampledToken, SchedulerOutput, StepResult

EOS = 0


def make_scheduler(
    num_blocks: int = 64, block_size: int = 4, budget: int = 32, max_batch_size: int | None = None,
    prefix_caching: bool = True, prefill_while_decoding: int | None = None,
    default_cap: ProportionalCap | None = None, budget_tail: int = 0,
) -> Scheduler:
    kv = KVCacheManager(num_blocks, block_size, prefix_caching)
    config = SchedulerConfig(
        max_batch_prefill_tokens=budget,
        max_batch_size=max_batch_size,
        max_prefill_tokens_while_decoding=prefill_while_decoding,
    )
    return Scheduler(config, kv, default_cap, budget_tail)


def make_request(request_id: str, num_prompt: int, max_new_tokens: int = 4, first_token: int = 1) -> Request:
    prompt = tuple(range(first_token, first_token + num_prompt))
    return Request(
        request_id=request_id,
        prompt_token_ids=prompt,
        sampling=SamplingParams(),
        max_new_tokens=max_new_tokens,
        eos_token_ids=frozenset({EOS}),
    )


def fake_result(step: SchedulerOutput, token_id: int = 7) -> StepResult:
    return StepResult(
        sampled={c.request_id: SampledToken(token_id, -0.5) for c in step.chunks if c.sample},
        prompt_logprobs={},
    )


def run_step(scheduler: Scheduler, token_id: int = 7) -> tuple[SchedulerOutput, list[RequestUpdate]]:
    step = scheduler.schedule()
    return step, scheduler.update(step, fake_result(step, token_id))
