"""The engine: one scheduler, one executor, one output processor, and the
step that ties them together (schedule -> execute -> update -> outputs).

Synchronous and single-threaded by design: `AsyncEngine` runs it on its own
thread for the server, `LLM` calls it directly for offline use.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pytgi.engine.input_processor import ProcessedRequest
from pytgi.engine.output_processor import OutputProcessor
from pytgi.grammar.backend import GrammarBackend
from pytgi.grammar.matchers import RequestMatchers
from pytgi.metrics.stats import StepStats
from pytgi.protocol import FinishReason, RequestOutput
from pytgi.scheduler.request import Request
from pytgi.scheduler.scheduler import Scheduler
from pytgi.step import Executor, SchedulerOutput, StepResult

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StepOutputs:
    """What a step produced: outputs for live requests, and the requests that
    failed because the model step raised (request_id -> error text)."""

    outputs: list[RequestOutput] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


class Engine:
    def __init__(
        self,
        scheduler: Scheduler,
        executor: Executor,
        output_processor: OutputProcessor,
        eos_token_ids: frozenset[int],
        grammar_backend: GrammarBackend | None = None,
    ) -> None:
        self.scheduler = scheduler
        self.executor = executor
        self.output_processor = output_processor
        self.eos_token_ids = eos_token_ids
        # Grammar state of constrained requests; the executor only sees masks.
        self.matchers = RequestMatchers(grammar_backend)
        self.last_step_failed = False
        self.step_observers: list[Callable[[StepStats], None]] = []

    def add(self, processed: ProcessedRequest, arrived_s: float | None = None) -> None:
        request = processed.request
        self.scheduler.add(
            Request(
                request_id=request.request_id,
                prompt_token_ids=processed.prompt_token_ids,
                sampling=processed.sampling,
                max_new_tokens=processed.max_new_tokens,
                eos_token_ids=self.eos_token_ids,
                ignore_eos=request.stopping.ignore_eos,
                want_prompt_logprobs=request.decoder_input_details,
            )
        )
        if processed.grammar is not None:
            self.matchers.add(request.request_id, processed.grammar)
        self.output_processor.add(processed, arrived_s if arrived_s is not None else time.monotonic())

    def abort(self, request_id: str) -> None:
        """Drop a request wherever it is; its blocks are free on return."""
        self.scheduler.finish(request_id, None)
        self.output_processor.remove(request_id)
        self.matchers.remove(request_id)

    def has_work(self) -> bool:
        return self.scheduler.has_work()

    def step(self) -> StepOutputs:
        started = time.monotonic()
        step = self.scheduler.schedule()
        if step.is_empty:
            return StepOutputs()
        token_bitmask = self.matchers.bitmask(step.chunks)
        if token_bitmask is not None:
            step = dataclasses.replace(step, token_bitmask=token_bitmask)
        for chunk in step.chunks:
            self.output_processor.mark_scheduled(chunk.request_id, started)
        forward_started = time.monotonic()
        try:
            result = self.executor.execute(step)
        except Exception as error:  # a failed forward fails its requests, not the engine
            logger.exception("model step failed")
            failed = self._fail_step(step, error)
            self._observe(step, started, forward_started, time.monotonic(), ok=False)
            return failed
        forward_done = time.monotonic()
        self.last_step_failed = False
        outputs = StepOutputs(outputs=self._outputs(step, result))
        self._observe(step, started, forward_started, forward_done, ok=True)
        return outputs

    def _observe(
        self, step: SchedulerOutput, started: float, forward_started: float, forward_done: float, ok: bool
    ) -> None:
        if not self.step_observers:
            return
        now = time.monotonic()
        stats = StepStats(
            method="prefill" if any(len(c.token_ids) > 1 for c in step.chunks) else "decode",
            num_requests=len(step.chunks),
            num_new_requests=len(step.new_requests),
            num_tokens=step.num_tokens,
            forward_s=forward_done - forward_started,
            outputs_s=now - forward_done,
            total_s=now - started,
            ok=ok,
        )
        for observer in self.step_observers:
            observer(stats)

    def _outputs(self, step: SchedulerOutput, result: StepResult) -> list[RequestOutput]:
        if result.prompt_logprobs:
            starts = {chunk.request_id: chunk.start_position for chunk in step.chunks}
            for request_id, logprobs in result.prompt_logprobs.items():
                self.output_processor.add_prompt_logprobs(request_id, starts[request_id], logprobs)
        outputs: list[RequestOutput] = []
        for update in self.scheduler.update(step, result):
            if update.new_token_id is None:
                continue
            request_id = update.request.request_id
            output, reason = self.output_processor.process(update, result.sampled.get(request_id))
            if reason is FinishReason.STOP_SEQUENCE and update.finish_reason is None:
                self.scheduler.finish(request_id, reason)
            if output.finished:
                self.matchers.remove(request_id)
            elif step.token_bitmask is not None:
                self.matchers.accept(request_id, update.new_token_id)
            outputs.append(output)
        return outputs

    def _fail_step(self, step: SchedulerOutput, error: Exception) -> StepOutputs:
        self.last_step_failed = True
        failed: dict[str, str] = {}
        for chunk in step.chunks:
            self.abort(chunk.request_id)
            failed[chunk.request_id] = str(error) or type(error).__name__
        return StepOutputs(failed=failed)
