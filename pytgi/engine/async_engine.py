"""The engine loop on its own thread, with one asyncio queue per request.

The event loop never waits on a model step: it hands requests and aborts to
the engine thread through a thread-safe inbox, and the engine thread posts
each step's outputs back with one `call_soon_threadsafe` per step. Torch
releases the GIL inside its kernels, so HTTP stays responsive during a step.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import queue
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from pytgi.config import ServingLimits
from pytgi.engine.client import EngineStats, ModelInfo, TokenSpan
from pytgi.engine.engine import Engine
from pytgi.engine.input_processor import InputProcessor, ProcessedRequest
from pytgi.errors import ChatTemplateError, GenerationError, ValidationError
from pytgi.metrics.stats import StepStats
from pytgi.protocol import GenerationRequest, RequestOutput, SamplingParams, StoppingParams
from pytgi.tokenizer.tokenizer import Tokenizer

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Add:
    processed: ProcessedRequest
    arrived_s: float
    sink: asyncio.Queue[RequestOutput | Exception]
    loop: asyncio.AbstractEventLoop


@dataclass(frozen=True, slots=True)
class _Abort:
    request_id: str


_Command = _Add | _Abort | None  # None wakes the thread to stop

# An idle engine that receives a request while others that already arrived are
# still being validated (tokenized, checked) waits up to this long for them, so a
# burst's first step takes the burst: a step started without them made them wait
# that whole step, 0.15-0.6 s on a CPU, for the ~10 ms their validation took
# (docs/profile.md, sixth and ninth passes). Never while requests decode.
BURST_GATHER_S = 0.02
_GATHER_POLL_S = 0.002  # how often the wait re-checks; a failed validation adds nothing to the inbox


class AsyncEngine:
    """`EngineClient` backed by a real `Engine` running on a worker thread."""

    def __init__(
        self,
        engine: Engine,
        input_processor: InputProcessor,
        tokenizer: Tokenizer,
        model_info: ModelInfo,
        limits: ServingLimits,
        num_validation_workers: int = 2,
    ) -> None:
        self._engine = engine
        self._input = input_processor
        self._tokenizer = tokenizer
        self._model_info = model_info
        self._limits = limits
        self._inbox: queue.SimpleQueue[_Command] = queue.SimpleQueue()
        self._sinks: dict[str, _Add] = {}
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._thread_error: BaseException | None = None
        self._validating = 0  # requests between arrival and their add to the inbox
        self._validating_lock = threading.Lock()
        # TGI's validation workers: tokenization and length checks, off the event loop.
        self._validation_pool = ThreadPoolExecutor(num_validation_workers, thread_name_prefix="pytgi-validation")

    # ---- lifecycle -------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="pytgi-engine", daemon=True)
            self._thread.start()

    def shutdown(self) -> None:
        self._stopping = True
        self._inbox.put(None)
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._validation_pool.shutdown(wait=False, cancel_futures=True)

    # ---- EngineClient ----------------------------------------------------------
    @property
    def model_info(self) -> ModelInfo:
        return self._model_info

    @property
    def limits(self) -> ServingLimits:
        return self._limits

    async def generate(self, request: GenerationRequest) -> AsyncIterator[RequestOutput]:
        arrived_s = time.monotonic()
        loop = asyncio.get_running_loop()
        sink: asyncio.Queue[RequestOutput | Exception] = asyncio.Queue()
        request_id = request.request_id
        self._count_validating(1)
        try:
            processed = await loop.run_in_executor(self._validation_pool, self._input.process, request)
        except BaseException:
            self._count_validating(-1)
            raise
        with self._validating_lock:  # together: an engine that reads zero finds every validated request's add
            self._inbox.put(_Add(processed, arrived_s, sink, loop))
            self._validating -= 1
        finished = False
        try:
            while True:
                item = await sink.get()
                if isinstance(item, Exception):
                    finished = True
                    raise item
                finished = item.finished
                yield item
                if finished:
                    return
        finally:
            if not finished:
                self._inbox.put(_Abort(request_id))

    async def tokenize(self, text: str) -> list[TokenSpan]:
        loop = asyncio.get_running_loop()
        try:
            encoded = await loop.run_in_executor(
                self._validation_pool, self._tokenizer.encode_with_offsets, text
            )
        except Exception as error:  # the Rust tokenizer raises plain exceptions (e.g. lone surrogates)
            raise ValidationError(f"tokenizer error {error}") from error
        raw = text.encode("utf-8", "surrogatepass")
        return [
            TokenSpan(t.id, raw[t.start : t.stop].decode("utf-8", "replace"), t.start, t.stop)
            for t in encoded
        ]

    @property
    def chat_template_uses_tools(self) -> bool | None:
        template = self._tokenizer.chat_template
        return None if template is None else template.uses_tools

    async def apply_chat_template(
        self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None
    ) -> str:
        template = self._tokenizer.chat_template
        if template is None:
            raise ChatTemplateError("template not found")
        loop = asyncio.get_running_loop()
        render = functools.partial(template.render, messages, add_generation_prompt=True, tools=tools)
        return await loop.run_in_executor(self._validation_pool, render)

    async def check_health(self) -> bool:
        if self._thread is None or not self._thread.is_alive() or self._stopping:
            return False
        if not self._engine.last_step_failed:
            return True
        return await self._probe()

    def stats(self) -> EngineStats:
        scheduler = self._engine.scheduler
        kv = scheduler.kv_cache
        return EngineStats(
            num_waiting=scheduler.num_waiting,
            num_running=scheduler.num_running,
            kv_blocks_total=kv.num_blocks,
            kv_blocks_in_use=kv.num_blocks_in_use,
            max_batch_total_tokens=self._limits.max_batch_total_tokens,
            kv_tokens_in_use=kv.num_blocks_in_use * kv.block_size,
        )

    def add_step_observer(self, observer: Callable[[StepStats], None]) -> None:
        self._engine.step_observers.append(observer)

    # ---- internals -------------------------------------------------------------
    async def _probe(self) -> bool:
        """After a failed step, health means a real one-token forward works."""
        probe = GenerationRequest(
            request_id=f"health-{uuid.uuid4().hex}",
            prompt_token_ids=(0,),
            sampling=SamplingParams(),
            stopping=StoppingParams(max_new_tokens=1),
        )
        try:
            async for _ in self.generate(probe):
                pass
        except Exception:
            return False
        return True

    def _run(self) -> None:
        try:
            while not self._stopping:
                self._drain_inbox(block=not self._engine.has_work())
                if self._stopping:
                    break
                if self._engine.has_work():
                    self._step()
        except BaseException as error:  # the loop must never die silently
            logger.exception("engine loop crashed")
            self._thread_error = error
            self._fail_all(error)

    def _count_validating(self, change: int) -> None:
        with self._validating_lock:
            self._validating += change

    def _still_validating(self) -> bool:
        with self._validating_lock:
            return self._validating > 0

    def _gather_burst(self) -> list[_Command]:
        """Commands that come in while requests are still being validated, for up
        to BURST_GATHER_S (see there)."""
        commands: list[_Command] = []
        deadline = time.monotonic() + BURST_GATHER_S
        while self._still_validating() and (left := deadline - time.monotonic()) > 0:
            with contextlib.suppress(queue.Empty):
                commands.append(self._inbox.get(timeout=min(left, _GATHER_POLL_S)))
        return commands

    def _drain_inbox(self, block: bool) -> None:
        """Apply every pending add and abort; when idle, wait for one first, then
        for the requests still being validated (a burst)."""
        commands: list[_Command] = [self._inbox.get(), *self._gather_burst()] if block else []
        while True:
            try:
                commands.append(self._inbox.get_nowait())
            except queue.Empty:
                break
        for command in commands:
            if isinstance(command, _Add):
                self._sinks[command.processed.request.request_id] = command
                self._engine.add(command.processed, command.arrived_s)
            elif isinstance(command, _Abort):
                self._engine.abort(command.request_id)
                self._sinks.pop(command.request_id, None)

    def _step(self) -> None:
        result = self._engine.step()
        deliveries: list[tuple[_Add, RequestOutput | Exception]] = []
        for output in result.outputs:
            add = self._sinks.get(output.request_id)
            if add is not None:
                deliveries.append((add, output))
                if output.finished:
                    del self._sinks[output.request_id]
        for request_id, message in result.failed.items():
            add = self._sinks.pop(request_id, None)
            if add is not None:
                deliveries.append((add, GenerationError(message)))
        self._deliver(deliveries)

    def _fail_all(self, error: BaseException) -> None:
        deliveries: list[tuple[_Add, RequestOutput | Exception]] = [
            (add, GenerationError(str(error) or type(error).__name__)) for add in self._sinks.values()
        ]
        self._sinks.clear()
        self._deliver(deliveries)

    @staticmethod
    def _deliver(deliveries: list[tuple[_Add, RequestOutput | Exception]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Add, RequestOutput | Exception]]] = {}
        for add, item in deliveries:
            by_loop.setdefault(add.loop, []).append((add, item))
        for loop, items in by_loop.items():
            # A closed loop means nobody is listening any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_put_all, items)


def _put_all(items: list[tuple[_Add, RequestOutput | Exception]]) -> None:
    for add, item in items:
        add.sink.put_nowait(item)
