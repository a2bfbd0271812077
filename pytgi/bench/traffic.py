"""Sending a workload to an endpoint and timestamping what comes back.

Two wire dialects, one trace: TGI's `/generate_stream` (one SSE event per token,
`details` at the end; `ignore_eos` is the pytgi/vLLM extension that makes lengths
exact) and OpenAI's `/v1/completions` or `/v1/chat/completions` with
`stream: true` (token counts from the final `usage` chunk). Arrivals are closed-loop
(at most `concurrency` requests in flight) or Poisson at `request_rate` per second
(still capped at `concurrency`). Every time is `time.perf_counter()` in this process.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from pytgi.bench.server_process import new_client
from pytgi.bench.workload import BenchRequest


@dataclass(slots=True)
class RequestTrace:
    """One streamed request: what was asked, when it was sent, when each token
    (or OpenAI chunk) arrived, and what the server said it generated."""

    request: BenchRequest
    sent_s: float = 0.0
    token_times_s: list[float] = field(default_factory=list)
    done_s: float | None = None
    reported_tokens: int | None = None
    reported_prompt_tokens: int | None = None
    error: str | None = None

    @property
    def num_output_tokens(self) -> int:
        """The server's count when it gave one, else the token events received."""
        return self.reported_tokens if self.reported_tokens is not None else len(self.token_times_s)


class Api(Protocol):
    """A wire dialect: where to POST, the streaming body, and what one `data:` event means."""

    name: str
    path: str

    def body(self, request: BenchRequest, model: str | None) -> dict[str, Any]: ...

    def on_event(self, event: dict[str, Any], trace: RequestTrace, now_s: float) -> None: ...


class TgiApi:
    name = "tgi"
    path = "/generate_stream"

    def body(self, request: BenchRequest, model: str | None) -> dict[str, Any]:
        return {"inputs": request.prompt,
                "parameters": {"max_new_tokens": request.max_new_tokens, "details": True, "ignore_eos": True}}

    def on_event(self, event: dict[str, Any], trace: RequestTrace, now_s: float) -> None:
        if event.get("token") is not None:
            trace.token_times_s.append(now_s)
        details = event.get("details")
        if details:
            trace.reported_tokens = int(details["generated_tokens"])
            if details.get("input_length") is not None:
                trace.reported_prompt_tokens = int(details["input_length"])


class OpenAIApi:
    """`/v1/completions` or, with `chat`, `/v1/chat/completions` (the prompt as one user turn).
    A chunk may carry more than one token on some servers; gaps are then per chunk."""

    def __init__(self, chat: bool) -> None:
        self.chat = chat
        self.name = "openai-chat" if chat else "openai"
        self.path = "/v1/chat/completions" if chat else "/v1/completions"

    def body(self, request: BenchRequest, model: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": model or "tgi", "max_tokens": request.max_new_tokens, "stream": True,
            "stream_options": {"include_usage": True},
            "ignore_eos": True,  # vLLM and llama.cpp honour it; others ignore unknown keys
        }
        if self.chat:
            body["messages"] = [{"role": "user", "content": request.prompt}]
        else:
            body["prompt"] = request.prompt
        return body

    def on_event(self, event: dict[str, Any], trace: RequestTrace, now_s: float) -> None:
        for choice in event.get("choices") or []:
            text = (choice.get("delta") or {}).get("content") if self.chat else choice.get("text")
            if text:
                trace.token_times_s.append(now_s)
        usage = event.get("usage")
        if usage:
            trace.reported_tokens = int(usage["completion_tokens"])
            trace.reported_prompt_tokens = int(usage["prompt_tokens"])


API_NAMES = ("tgi", "openai")


def make_api(name: str, openai_route: str) -> Api:
    if name == "tgi":
        return TgiApi()
    if name == "openai":
        return OpenAIApi(chat=openai_route == "chat")
    raise ValueError(f"unknown --api {name!r}; supported: {', '.join(API_NAMES)}")


def served_model(url: str) -> str | None:
    """The first model of `/v1/models` (OpenAI servers such as vLLM require its name)."""
    try:
        data = httpx.get(f"{url}/v1/models", timeout=10.0).json().get("data") or []
        return str(data[0]["id"]) if data else None
    except (httpx.HTTPError, ValueError, KeyError, AttributeError):
        return None


async def stream_one(client: httpx.AsyncClient, url: str, api: Api, model: str | None,
                     trace: RequestTrace) -> None:
    trace.sent_s = time.perf_counter()
    try:
        async with client.stream("POST", url + api.path, json=api.body(trace.request, model)) as response:
            if response.status_code != 200:
                trace.error = f"HTTP {response.status_code}: {(await response.aread())[:300]!r}"
                return
            async for line in response.aiter_lines():
                if not line.startswith("data:") or line[5:].strip() == "[DONE]":
                    continue  # blank separators, keep-alive comments, OpenAI's terminator
                event = json.loads(line[5:])
                if isinstance(event, dict) and "error" in event:
                    trace.error = str(event["error"])[:300]
                    return
                api.on_event(event, trace, time.perf_counter())
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as error:
        trace.error = f"{type(error).__name__}: {error}"[:300]
    finally:
        trace.done_s = time.perf_counter()


@dataclass(frozen=True, slots=True)
class PhaseRun:
    """One batch of requests sent to one endpoint: the clock origin and every trace."""

    began_s: float
    ended_s: float
    traces: tuple[RequestTrace, ...]


def arrival_offsets_s(num_requests: int, request_rate: float | None, seed: int) -> list[float]:
    """Send times from the start: all 0 (closed loop) or a seeded Poisson process."""
    if request_rate is None:
        return [0.0] * num_requests
    rng = random.Random(seed)
    offsets, now = [], 0.0
    for _ in range(num_requests):
        offsets.append(now)
        now += rng.expovariate(request_rate)
    return offsets


async def send_all(url: str, api: Api, model: str | None, requests: Sequence[BenchRequest],
                   concurrency: int, request_rate: float | None, seed: int,
                   on_done: Callable[[], None]) -> PhaseRun:
    traces = [RequestTrace(request) for request in requests]
    slots = asyncio.Semaphore(concurrency)  # waiters are served FIFO: a refill takes the next request

    async def one(client: httpx.AsyncClient, trace: RequestTrace) -> None:
        async with slots:
            await stream_one(client, url, api, model, trace)
        on_done()

    async with new_client(concurrency + 2) as client:
        began = time.perf_counter()
        tasks = []
        for trace, offset in zip(traces, arrival_offsets_s(len(traces), request_rate, seed), strict=True):
            delay = began + offset - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(client, trace)))
        await asyncio.gather(*tasks)
    return PhaseRun(began_s=began, ended_s=time.perf_counter(), traces=tuple(traces))
