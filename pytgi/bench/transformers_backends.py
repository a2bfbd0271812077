"""How the transformers baseline server (`transformers_server`) runs requests.

Two backends behind one `submit(job)`: `BatchingBackend` (one `model.generate` call
per batch: `generate` mode is batches of one, `static` mode pads the requests that
arrived together) and `ContinuousBackend` (transformers' own continuous batching,
`ContinuousBatchingManager`). Both hand every generated token id to its `Job` as soon
as it exists, so the HTTP side can stream it and TTFT/ITL are measurable.
"""

from __future__ import annotations

import asyncio
import copy
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import GenerationConfig, StoppingCriteria
from transformers.generation.streamers import BaseStreamer

END = None  # pushed after a job's last token


@dataclass(eq=False)
class Job:
    """One request. Tokens go from the generating thread to the request's asyncio
    queue; `emit` decides when the request is complete (its `max_new_tokens`, or its
    first EOS unless `ignore_eos`), so every backend cuts streams the same way."""

    prompt_ids: list[int]
    max_new_tokens: int
    ignore_eos: bool
    eos_ids: frozenset[int]
    temperature: float  # 0: greedy
    top_p: float
    seed: int | None
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[int | BaseException | None] = field(default_factory=asyncio.Queue)
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    num_generated: int = 0
    done: bool = False
    finish_reason: str = "length"

    def _put(self, item: int | BaseException | None) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, item)

    def emit(self, token_id: int) -> None:
        if self.done:
            return  # a batch runs on after its shorter members: those tokens are nobody's
        self.num_generated += 1
        self._put(token_id)
        if not self.ignore_eos and token_id in self.eos_ids:
            self.finish_reason = "stop"
            self.finish()
        elif self.num_generated >= self.max_new_tokens:
            self.finish()

    def finish(self) -> None:
        if not self.done:
            self.done = True
            self._put(END)

    def fail(self, error: BaseException) -> None:
        if not self.done:
            self.done = True
            self._put(error)

    @property
    def sampling_key(self) -> tuple[float, float]:
        return (self.temperature, self.top_p)


class JobStreamer(BaseStreamer):
    """Token ids of each `generate` step to the batch's jobs. transformers'
    `TextIteratorStreamer` only takes batches of one and holds text back to word
    boundaries (several tokens in one chunk would hide the inter-token gaps), so the
    ids are forwarded here and decoded per request by the server."""

    def __init__(self, jobs: list[Job]) -> None:
        self.jobs = jobs
        self.saw_prompt = False

    def put(self, value: torch.Tensor) -> None:
        if not self.saw_prompt:  # generate's first call hands over the prompt
            self.saw_prompt = True
            return
        for job, token_id in zip(self.jobs, value.reshape(-1).tolist(), strict=True):
            job.emit(int(token_id))

    def end(self) -> None:
        for job in self.jobs:
            job.finish()


class JobsDone(StoppingCriteria):
    """Per-row stop: a row is finished once its job is (EOS is left to the jobs, so
    generate never suppresses or stops at it on its own)."""

    def __init__(self, jobs: list[Job]) -> None:
        self.jobs = jobs

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        return torch.tensor([job.done for job in self.jobs], dtype=torch.bool, device=input_ids.device)


class BatchingBackend:
    """`generate` mode (`batch_size` 1) and `static` mode: take the first waiting
    request, gather more for up to `window_s` or `batch_size`, pad them on the left and
    run one `generate` call; requests arriving meanwhile wait for the next batch."""

    def __init__(self, model: Any, pad_id: int, batch_size: int, window_s: float) -> None:
        self.model = model
        self.pad_id = pad_id
        self.batch_size = batch_size
        self.window_s = window_s
        self.waiting: asyncio.Queue[Job] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        # Every generate call on one thread: a thread per call would each leave an
        # OpenMP pool behind, and more pools than cores slow torch (pytgi.engine.threads).
        self.generating = ThreadPoolExecutor(1, thread_name_prefix="generate")

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._serve())

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
        self.generating.shutdown(wait=False, cancel_futures=True)

    def submit(self, job: Job) -> None:
        self.waiting.put_nowait(job)

    async def _gather(self) -> list[Job]:
        batch = [await self.waiting.get()]
        deadline = asyncio.get_running_loop().time() + self.window_s
        while len(batch) < self.batch_size:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0 and self.waiting.empty():
                break
            try:
                batch.append(await asyncio.wait_for(self.waiting.get(), max(remaining, 0.0)))
            except asyncio.TimeoutError:
                break
        return batch

    async def _serve(self) -> None:
        while True:
            batch = await self._gather()
            # One generate call has one sampling setting: unlike requests run one group after another.
            groups: dict[tuple[float, float], list[Job]] = {}
            for job in batch:
                groups.setdefault(job.sampling_key, []).append(job)
            for group in groups.values():
                try:
                    await asyncio.get_running_loop().run_in_executor(self.generating, self._generate, group)
                except Exception as error:  # noqa: BLE001 - reported to the waiting clients
                    for job in group:
                        job.fail(error)

    def _generate(self, jobs: list[Job]) -> None:
        width = max(len(job.prompt_ids) for job in jobs)
        input_ids = torch.full((len(jobs), width), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(jobs), width), dtype=torch.long)
        for row, job in enumerate(jobs):  # left padding: every row's next token is in the last column
            input_ids[row, width - len(job.prompt_ids):] = torch.tensor(job.prompt_ids)
            attention_mask[row, width - len(job.prompt_ids):] = 1
        config = copy.deepcopy(self.model.generation_config)
        config.eos_token_id = None  # the jobs stop themselves (ignore_eos per request)
        config.pad_token_id = self.pad_id
        config.max_new_tokens = max(job.max_new_tokens for job in jobs)
        config.min_new_tokens = None
        first = jobs[0]
        config.do_sample = first.temperature > 0
        config.temperature = first.temperature if config.do_sample else None
        config.top_p = first.top_p if config.do_sample else None
        config.top_k = None
        if first.seed is not None and len(jobs) == 1:
            torch.manual_seed(first.seed)
        with torch.inference_mode():
            self.model.generate(input_ids, attention_mask=attention_mask, generation_config=config,
                                streamer=JobStreamer(jobs), stopping_criteria=[JobsDone(jobs)])
        for job in jobs:
            job.finish()


def allow_cpu_paged_cache() -> None:
    """transformers sizes its paged cache from the GPU's free memory and fails on a CPU
    (no total to read). On a CPU, answer with the host's available memory instead."""
    from transformers.generation.continuous_batching import cache

    handler = cache.PagedAttentionMemoryHandler
    if torch.cuda.is_available() or getattr(handler, "_pytgi_cpu", False):
        return

    def available(max_memory_percent: float = 1.0) -> int:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        return int(free * max_memory_percent)

    handler.get_available_memory = staticmethod(available)  # type: ignore[method-assign, assignment]
    handler._pytgi_cpu = True  # type: ignore[attr-defined]


IDLE_POLL_S = 0.01


def pause_when_idle(manager: Any) -> None:
    """transformers' generation thread spins when it has no request (a full core):
    on a shared 2-core machine that would slow whichever server is measured beside
    this idle baseline. Make its idle iterations sleep for 10 ms instead."""
    inner = getattr(manager, "_inner_generation_loop", None)
    if inner is None:
        return

    def step_or_pause(batch_processor: Any) -> None:
        if not batch_processor.has_pending_requests() and batch_processor.input_queue.empty():
            time.sleep(IDLE_POLL_S)
            return
        inner(batch_processor)

    manager._inner_generation_loop = step_or_pause


class ContinuousBackend:
    """`generate_batch` mode: transformers' `ContinuousBatchingManager` schedules the
    requests; one thread routes its streamed outputs to the jobs. The manager has one
    generation config, so sampling is the server's (`temperature`, `top_p`), not the
    request's; EOS is off in the manager and the jobs stop (and cancel) themselves."""

    def __init__(self, model: Any, pad_id: int, temperature: float, top_p: float,
                 num_blocks: int, max_batch_tokens: int) -> None:
        allow_cpu_paged_cache()
        config = GenerationConfig(
            do_sample=temperature > 0, temperature=temperature if temperature > 0 else None,
            top_p=top_p if temperature > 0 else None, eos_token_id=-1, pad_token_id=pad_id,
            max_new_tokens=16, num_blocks=num_blocks, max_batch_tokens=max_batch_tokens)
        self.manager = model.init_continuous_batching(generation_config=config, streaming=True)
        pause_when_idle(self.manager)
        self.jobs: dict[str, Job] = {}
        self.lock = threading.Lock()
        self.running = threading.Event()
        self.router = threading.Thread(target=self._route, name="cb-router", daemon=True)

    def start(self) -> None:
        self.manager.start()
        self.running.set()
        self.router.start()

    def stop(self) -> None:
        self.running.clear()
        self.manager.stop(block=True, timeout=10.0)

    def submit(self, job: Job) -> None:
        with self.lock:
            self.jobs[job.request_id] = job
        self.manager.add_request(job.prompt_ids, request_id=job.request_id, max_new_tokens=job.max_new_tokens)

    def _route(self) -> None:
        while self.running.is_set():
            output = self.manager.get_result(timeout=0.1)
            if output is None:
                continue
            with self.lock:
                job = self.jobs.get(output.request_id)
            if job is None:
                continue  # cancelled earlier: its last outputs are nobody's
            if output.error:
                job.fail(RuntimeError(str(output.error)))
            for token_id in output.generated_tokens[job.num_generated:]:
                job.emit(int(token_id))
            finished = output.status.name == "FINISHED"
            if job.done or finished:
                job.finish()
                with self.lock:
                    self.jobs.pop(output.request_id, None)
                if not finished and job.num_generated < job.max_new_tokens:  # EOS or client gone
                    self.manager.cancel_request(output.request_id)
