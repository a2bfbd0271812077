"""Hypothesis: random sequences of add, abort and step (with fabricated model
results, some EOS) never lose or double-count a KV block, never exceed the
token budget (and its tail, while nothing decodes), the batch size, the block
capacity or (with a default cap) the prompt allowance while requests decode, admit strictly FIFO, and finish every
request that was not aborted, each exactly once."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from kv_invariants import check_block_accounting
from scheduler_helpers import EOS, make_request, make_scheduler

from pytgi.protocol import FinishReason
from pytgi.scheduler.request import RequestStatus
from pytgi.scheduler.scheduler import ProportionalCap, Scheduler
from pytgi.step import SampledToken, SchedulerOutput, StepResult

NUM_BLOCKS = 16
BLOCK_SIZE = 4
BUDGET = 12
MAX_BATCH_SIZE = 3
MAX_DRAIN_STEPS = 5_000
CAP = ProportionalCap(per_decoding_request=1, floor=4, tail_share=0.5)

# ("add", prompt length, max_new_tokens, prefix family) | ("abort", index) | ("step", eos bits)
add = st.tuples(st.just("add"), st.integers(1, 40), st.integers(1, 20), st.integers(1, 2))
abort = st.tuples(st.just("abort"), st.integers(0, 30))
step = st.tuples(st.just("step"), st.integers(0, 2**MAX_BATCH_SIZE - 1))
operations = st.lists(st.one_of(add, abort, step, step), max_size=80)


class Run:
    """A scheduler plus what the test knows about every request it added."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self.added: list[str] = []
        self.aborted: set[str] = set()
        self.finished: dict[str, FinishReason] = {}
        self.first_scheduled: list[str] = []
        self.limits: dict[str, int] = {}

    def live_ids(self) -> list[str]:
        return [rid for rid in self.added if rid not in self.aborted and rid not in self.finished]

    def step(self, eos_bits: int) -> None:
        num_decoding = sum(1 for r in self.scheduler.running if r.num_tokens - r.num_computed_tokens == 1)
        output = self.scheduler.schedule()
        self.check_step(output)
        assert output.num_tokens <= BUDGET + (0 if num_decoding else self.scheduler.budget_tail)
        if self.scheduler.default_cap is not None and num_decoding > 0:
            allowance = self.scheduler.default_cap.allowance(num_decoding)
            prompt_tokens = sum(len(c.token_ids) for c in output.chunks if len(c.token_ids) > 1)
            assert prompt_tokens <= allowance.tokens + allowance.slack
        sampled = {}
        for i, chunk in enumerate(c for c in output.chunks if c.sample):
            token = EOS if eos_bits >> (i % MAX_BATCH_SIZE) & 1 else 7
            sampled[chunk.request_id] = SampledToken(token, -0.5)
        for update in self.scheduler.update(output, StepResult(sampled=sampled, prompt_logprobs={})):
            if update.finish_reason is not None:
                rid = update.request.request_id
                assert rid not in self.finished, f"{rid} finished twice"
                self.finished[rid] = update.finish_reason
                self.check_finished(update.request.output_token_ids, update.finish_reason, self.limits[rid])

    def check_step(self, output: SchedulerOutput) -> None:
        assert len(output.chunks) <= MAX_BATCH_SIZE
        assert len({c.request_id for c in output.chunks}) == len(output.chunks)
        for chunk in output.chunks:
            # The block table covers every position up to the end of the chunk.
            assert len(chunk.block_table) * BLOCK_SIZE >= chunk.start_position + len(chunk.token_ids)
            if chunk.request_id not in self.first_scheduled:
                self.first_scheduled.append(chunk.request_id)
        self.check_accounting()

    @staticmethod
    def check_finished(output_ids: list[int], reason: FinishReason, max_new_tokens: int) -> None:
        assert 1 <= len(output_ids) <= max_new_tokens
        if reason is FinishReason.LENGTH:
            assert len(output_ids) == max_new_tokens
        else:
            assert reason is FinishReason.EOS_TOKEN and output_ids[-1] == EOS

    def check_accounting(self) -> None:
        check_block_accounting(self.scheduler.kv_cache, self.live_ids())
        running = self.scheduler.running
        assert len(running) <= MAX_BATCH_SIZE
        assert all(r.status is RequestStatus.RUNNING for r in running)
        assert all(r.status is RequestStatus.WAITING for r in self.scheduler.waiting)
        assert {r.request_id for r in running} | {r.request_id for r in self.scheduler.waiting} == set(
            self.live_ids()
        )


@settings(max_examples=200, deadline=None)
@given(operations, st.booleans(), st.booleans())
def test_any_sequence_keeps_blocks_budget_and_fifo(ops, prefix_caching: bool, capped: bool) -> None:
    # Capped: the CPU's defaults in small (a proportional cap, a tail past the budget).
    cap, tail = (CAP, 3) if capped else (None, 0)
    run = Run(
        make_scheduler(NUM_BLOCKS, BLOCK_SIZE, BUDGET, MAX_BATCH_SIZE, prefix_caching, default_cap=cap, budget_tail=tail)
    )
    for op in ops:
        if op[0] == "add":
            _, num_prompt, max_new_tokens, family = op
            # Validation guarantees a lone request fits the cache (prompt + new <= capacity).
            rid = f"r{len(run.added)}"
            run.scheduler.add(make_request(rid, num_prompt, max_new_tokens, first_token=family))
            run.added.append(rid)
            run.limits[rid] = max_new_tokens
        elif op[0] == "abort" and run.added:
            rid = run.added[op[1] % len(run.added)]
            if run.scheduler.finish(rid, None) is not None:
                run.aborted.add(rid)
        elif op[0] == "step":
            run.step(op[1])
        run.check_accounting()
    for _ in range(MAX_DRAIN_STEPS):
        if not run.scheduler.has_work():
            break
        run.step(0)
    assert not run.scheduler.has_work(), "requests never finished"
    assert set(run.finished) == set(run.added) - run.aborted  # every request not aborted finished
    assert run.scheduler.kv_cache.num_blocks_in_use == 0
    check_block_accounting(run.scheduler.kv_cache, ())
    # Strict FIFO: requests are first scheduled in the order they were added.
    order = {rid: i for i, rid in enumerate(run.added)}
    assert [order[rid] for rid in run.first_scheduled] == sorted(order[rid] for rid in run.first_scheduled)
