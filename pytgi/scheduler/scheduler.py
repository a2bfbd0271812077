"""One token-budget scheduler for prefill chunks, prefix hits and decodes.

Each step has a budget of `max_batch_prefill_tokens` tokens (resolved for the
device by `config.resolve_step_budget`; a CPU's default one may stretch by
`config.resolve_budget_tail` to finish a prompt while nothing decodes). Running requests
come first (a decode costs one token, an unfinished prefill takes its next
chunk), then waiting requests in strict FIFO order while budget, batch size and
KV blocks last. While any request decodes, the prompt tokens of one step are
also capped, so that an arrival's prefill stretches the decoders' next token by
a bounded amount: by `max_prefill_tokens_while_decoding` when it is set, else
by a `ProportionalCap` where the engine gives one (on CPUs, where every prompt
token is compute the decoders wait for). When a running request needs a block
and none is free, the newest running request is preempted (blocks freed,
recomputed later), which always lets the oldest make progress: a lone request
always fits, because validation caps prompt + new tokens at the KV capacity.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from pytgi.config import PROMPT_TAIL_SHARE, SchedulerConfig
from pytgi.kv_cache.manager import NO_HIT, KVCacheManager
from pytgi.protocol import FinishReason
from pytgi.scheduler.request import Request, RequestStatus
from pytgi.step import NewRequestData, ScheduledChunk, SchedulerOutput, StepResult


@dataclass(frozen=True, slots=True)
class RequestUpdate:
    """What one step did to a request: the token it generated (if any) and,
    when it ended, why."""

    request: Request
    new_token_id: int | None
    finish_reason: FinishReason | None


@dataclass(frozen=True, slots=True)
class ProportionalCap:
    """Prompt tokens a step may take while requests decode: `per_decoding_request`
    for each of them, and never fewer than `floor`; and `tail_share` of that
    more, once a step, to finish a prompt whose rest only just exceeds it.

    On a CPU a step's cost grows with its rows: at 32 decoding requests of
    SmolLM2-135M in bf16 a decode step takes ~50 ms and a step with 64 prompt
    tokens beside them ~100 ms (docs/profile.md, eighth pass). The floor keeps a
    lone decoder from starving a newcomer's prompt. The tail allowance spares a
    prompt of, say, 130 tokens a third step for its last 2 (its first token would
    wait a whole step for them) at the price of a step an eighth longer.
    """

    per_decoding_request: int = 2
    floor: int = 64
    tail_share: float = PROMPT_TAIL_SHARE

    def tokens(self, num_decoding: int) -> int:
        return max(self.floor, self.per_decoding_request * num_decoding)

    def allowance(self, num_decoding: int) -> PromptAllowance:
        tokens = self.tokens(num_decoding)
        return PromptAllowance(tokens, int(tokens * self.tail_share))


@dataclass(slots=True)
class PromptAllowance:
    """The prompt tokens one step may still take: `tokens`, and up to `slack`
    more to finish a prompt rather than leave a few of its tokens for later."""

    tokens: int
    slack: int = 0

    def take(self, remaining: int, budget: int) -> int:
        """How many of a prompt's `remaining` tokens to take now, within the
        step's `budget` (which the slack never exceeds)."""
        size = min(remaining, budget, self.tokens)
        if size < remaining <= min(budget, self.tokens + self.slack):
            self.slack -= remaining - self.tokens
            self.tokens = 0
            return remaining
        self.tokens -= size
        return size


class Scheduler:
    def __init__(
        self,
        config: SchedulerConfig,
        kv_cache: KVCacheManager,
        default_cap: ProportionalCap | None = None,
        budget_tail: int = 0,
    ) -> None:
        if config.max_batch_prefill_tokens is None:
            raise ValueError("the step budget is resolved for the device first (config.resolve_step_budget)")
        self.config = config
        self.step_budget: int = config.max_batch_prefill_tokens
        self.budget_tail = budget_tail  # config.resolve_budget_tail: past the budget, with no decoders
        self.kv_cache = kv_cache
        self.default_cap = default_cap
        self.waiting: deque[Request] = deque()
        self.running: list[Request] = []
        self._requests: dict[str, Request] = {}
        self._finished_ids: list[str] = []
        self.num_preemptions = 0

    # ---- queue management -------------------------------------------------
    def add(self, request: Request) -> None:
        if request.request_id in self._requests:
            raise ValueError(f"duplicate request id {request.request_id}")
        self._requests[request.request_id] = request
        self.waiting.append(request)

    def finish(self, request_id: str, reason: FinishReason | None) -> Request | None:
        """End a request now (stop sequence, abort, failure) and free its blocks.
        Returns the request, or None if it was already gone."""
        request = self._requests.pop(request_id, None)
        if request is None:
            return None
        if request.status is RequestStatus.RUNNING:
            self.running.remove(request)
        elif request.status is RequestStatus.WAITING:
            self.waiting.remove(request)
        self._release(request, reason)
        return request

    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    @property
    def num_waiting(self) -> int:
        return len(self.waiting)

    @property
    def num_running(self) -> int:
        return len(self.running)

    # ---- one step --------------------------------------------------------------
    def schedule(self) -> SchedulerOutput:
        num_decoding = sum(1 for r in self.running if r.num_tokens - r.num_computed_tokens == 1)
        prompts = self._prompt_allowance(num_decoding)
        budget = self.step_budget + (0 if num_decoding else self.budget_tail)
        chunks: list[ScheduledChunk] = []
        preempted = False
        index = 0
        while index < len(self.running) and budget > 0:
            request = self.running[index]
            remaining = request.num_tokens - request.num_computed_tokens
            num_new = 1 if remaining == 1 else prompts.take(remaining, budget)
            if num_new == 0:  # a prefill held back this step: the decoders go first
                index += 1
                continue
            if self._allocate_or_preempt(request, num_new):
                chunks.append(self._chunk(request, num_new))
                budget -= num_new
                index += 1
            else:
                preempted = True
                break
        if not preempted:
            self._admit_waiting(budget, prompts, chunks)
        if not chunks:
            # Keep the finished ids for the next step that reaches the executor.
            return SchedulerOutput((), (), ())
        new_requests = tuple(self._new_request_data(chunks))
        finished = tuple(self._finished_ids)
        self._finished_ids.clear()
        return SchedulerOutput(new_requests, tuple(chunks), finished)

    def update(self, step: SchedulerOutput, result: StepResult) -> list[RequestUpdate]:
        """Apply a finished step: advance computed tokens, append sampled tokens,
        end requests on length or EOS (freeing their blocks)."""
        updates: list[RequestUpdate] = []
        for chunk in step.chunks:
            request = self._requests.get(chunk.request_id)
            if request is None:  # aborted while the step ran
                continue
            request.num_computed_tokens += len(chunk.token_ids)
            if self.kv_cache.has_uncached_full_block(request.request_id, request.num_computed_tokens):
                self.kv_cache.cache_computed(
                    request.request_id, request.all_token_ids(), request.num_computed_tokens
                )
            if not chunk.sample:
                updates.append(RequestUpdate(request, None, None))
                continue
            token_id = result.sampled[chunk.request_id].token_id
            reason = request.append_output(token_id)
            if reason is not None:
                self.finish(request.request_id, reason)
            updates.append(RequestUpdate(request, token_id, reason))
        return updates

    # ---- helpers ----------------------------------------------------------------
    def _prompt_allowance(self, num_decoding: int) -> PromptAllowance:
        """Prompt tokens this step may take: capped while any running request decodes
        (a set cap exactly; the default one with its tail allowance), else the step
        budget with its tail."""
        cap = self.config.max_prefill_tokens_while_decoding
        if num_decoding > 0 and cap is not None:
            return PromptAllowance(cap)
        if num_decoding > 0 and self.default_cap is not None:
            return self.default_cap.allowance(num_decoding)
        return PromptAllowance(self.step_budget, self.budget_tail)

    def _admit_waiting(self, budget: int, prompts: PromptAllowance, chunks: list[ScheduledChunk]) -> int:
        max_batch_size = self.config.max_batch_size
        while self.waiting and budget > 0:
            if max_batch_size is not None and len(self.running) >= max_batch_size:
                break
            request = self.waiting[0]
            hit = NO_HIT
            if request.num_computed_tokens == 0 and not request.want_prompt_logprobs:
                hit = self.kv_cache.find_prefix(request.request_id, request.all_token_ids())
            num_new = prompts.take(request.num_tokens - hit.num_tokens, budget)
            if num_new == 0:
                break
            if not self.kv_cache.allocate(request.request_id, hit.num_tokens + num_new, hit):
                break  # strict FIFO: nothing overtakes the head of the queue
            self.waiting.popleft()
            request.num_computed_tokens = hit.num_tokens
            request.num_prefix_hit_tokens = max(request.num_prefix_hit_tokens, hit.num_tokens)
            request.status = RequestStatus.RUNNING
            self.running.append(request)
            chunks.append(self._chunk(request, num_new))
            budget -= num_new
        return budget

    def _allocate_or_preempt(self, request: Request, num_new: int) -> bool:
        """Get blocks for `request`, preempting the newest running requests if
        needed. False if `request` itself had to be preempted."""
        total = request.num_computed_tokens + num_new
        while not self.kv_cache.allocate(request.request_id, total):
            victim = self.running.pop()
            self._preempt(victim)
            if victim is request:
                return False
        return True

    def _preempt(self, request: Request) -> None:
        self.kv_cache.reset_request(request.request_id)
        request.num_computed_tokens = 0
        request.num_preemptions += 1
        request.status = RequestStatus.WAITING
        self.waiting.appendleft(request)
        self.num_preemptions += 1

    def _chunk(self, request: Request, num_new: int) -> ScheduledChunk:
        start = request.num_computed_tokens
        end = start + num_new
        return ScheduledChunk(
            request_id=request.request_id,
            token_ids=request.token_ids(start, end),
            start_position=start,
            block_table=self.kv_cache.block_table(request.request_id),
            sample=end == request.num_tokens,
        )

    def _new_request_data(self, chunks: list[ScheduledChunk]) -> list[NewRequestData]:
        new: list[NewRequestData] = []
        for chunk in chunks:
            request = self._requests[chunk.request_id]
            if not request.seen_by_executor:
                request.seen_by_executor = True
                new.append(
                    NewRequestData(
                        request.request_id,
                        request.prompt_token_ids,
                        request.sampling,
                        request.want_prompt_logprobs,
                    )
                )
        return new

    def _release(self, request: Request, reason: FinishReason | None) -> None:
        self.kv_cache.free(request.request_id)
        request.status = RequestStatus.FINISHED
        request.finish_reason = reason
        if request.seen_by_executor:
            self._finished_ids.append(request.request_id)
