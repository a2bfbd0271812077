"""The real engine on the demo model, in this process, behind a real HTTP
server, with a model step that a test can make fail or hold."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from fastapi import FastAPI
from reliability_support import reference_tokens
from server_harness import live_server

from pytgi.config import CacheConfig, EngineConfig, LimitsConfig, ModelConfig, SchedulerConfig
from pytgi.engine.async_engine import AsyncEngine
from pytgi.engine.builder import build_engine
from pytgi.server.app import build_app
from pytgi.step import Executor, KVCacheSpec, SchedulerOutput, StepResult

# Small on purpose: 16 blocks of 16 tokens, so a few requests exhaust the KV cache.
KV_CACHE_TOKENS = 256
MAX_TOTAL_TOKENS = 128
MAX_BATCH_SIZE = 4
SEND_TIMEOUT_S = 1.0


class FaultyExecutor:
    """Wraps the real executor. `fail_steps`: the next N steps raise.
    `pause_when(predicate)`: from the first step matching it, every step parks
    (inside the engine thread, before the forward) until `step_once()` lets one
    through or `resume()` lets all through. Steps and request ids are recorded."""

    def __init__(self, inner: Executor) -> None:
        self.inner = inner
        self.fail_steps = 0
        self.num_steps = 0
        self.num_parked = 0
        self.scheduled_ids: list[str] = []  # each request id, the first time it is scheduled
        self._gate = threading.Semaphore(0)
        self._pause_when: Callable[[SchedulerOutput], bool] | None = None
        self._paused = False

    @property
    def kv_cache_spec(self) -> KVCacheSpec:
        return self.inner.kv_cache_spec

    def pause_when(self, predicate: Callable[[SchedulerOutput], bool] = lambda step: True) -> None:
        self._gate = threading.Semaphore(0)
        self._paused = False
        self._pause_when = predicate

    def step_once(self) -> None:
        self._gate.release()

    def resume(self) -> None:
        self._pause_when = None
        self._paused = False
        self._gate.release(1000)

    def execute(self, step: SchedulerOutput) -> StepResult:
        self.num_steps += 1
        self.scheduled_ids.extend(new.request_id for new in step.new_requests)
        predicate = self._pause_when
        if predicate is not None and (self._paused or predicate(step)):
            self._paused = True
            self.num_parked += 1
            self._gate.acquire(timeout=60)
        if self.fail_steps > 0:
            self.fail_steps -= 1
            raise RuntimeError("injected device error")
        return self.inner.execute(step)


@dataclass(frozen=True)
class InProcessDemo:
    url: str
    app: FastAPI
    client: AsyncEngine
    executor: FaultyExecutor
    reference: tuple[int, ...]


@contextmanager
def in_process_demo() -> Iterator[InProcessDemo]:
    config = EngineConfig(
        # float32: a request's greedy tokens must not depend on what it was batched
        # with. In bfloat16 they can, tens of tokens in: a step of 1-2 rows takes
        # pytgi's linear kernel, more take torch's GEMM, and their roundings
        # differ by whole bf16 steps (in float32, by ulps).
        model=ModelConfig(device="cpu", dtype="float32"),
        cache=CacheConfig(max_batch_total_tokens=KV_CACHE_TOKENS),
        scheduler=SchedulerConfig(max_batch_size=MAX_BATCH_SIZE),
        limits=LimitsConfig(max_total_tokens=MAX_TOTAL_TOKENS, max_concurrent_requests=16),
    )
    built = build_engine(config)
    executor = FaultyExecutor(built.engine.executor)
    built.engine.executor = executor
    client = AsyncEngine(built.engine, built.input_processor, built.tokenizer, built.model_info, built.limits)
    client.start()
    try:
        app = build_app(client, sse_send_timeout_s=SEND_TIMEOUT_S)
        with live_server(app) as url:
            yield InProcessDemo(url, app, client, executor, reference_tokens(url))
    finally:
        executor.resume()
        client.shutdown()
