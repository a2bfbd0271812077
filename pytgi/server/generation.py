"""Running engine requests for the routes: collect a whole generation, or iterate
its tokens with keep-alive ticks. Shared by the TGI and the OpenAI routes, so
both count admissions the same way and always close (abort) what they start.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import TypeVar

from pytgi.errors import GenerationError, IncompleteGenerationError, PytgiError
from pytgi.metrics.stats import RequestDurations
from pytgi.protocol import GenerationRequest, RequestOutput, Token
from pytgi.server.errors import IncompleteGenerationStreamError, error_kind
from pytgi.server.responses import Generation, request_durations
from pytgi.server.sse import close_iterator, with_keepalive
from pytgi.server.state import ServerState
from pytgi.server.tracing import record_generation

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class TokenItem:
    """One generated token of a stream; `final` is set on the last one only."""

    index: int  # 1-based, as TGI numbers stream events
    token: Token
    top_tokens: tuple[Token, ...]
    final: RequestOutput | None


class GenerationRunner:
    def __init__(self, state: ServerState) -> None:
        self.state = state

    async def collect(self, request: GenerationRequest) -> Generation:
        """Run `request` to its end. Raises PytgiError (GenerationError for engine bugs)."""
        outputs: AsyncIterator[RequestOutput] | None = None
        ticks: AsyncGenerator[RequestOutput | None, None] | None = None
        tokens: list[Token] = []
        top_tokens: list[tuple[Token, ...]] = []
        prefill_tokens: tuple[Token, ...] = ()
        admitted = False
        try:
            outputs = self.state.client.generate(request)
            ticks = with_keepalive(outputs, self.state.keepalive_interval_s, self.state.limiter.termination_deadline)
            async for output in ticks:
                if output is None:
                    continue
                if not admitted:
                    self.record_admitted(request, output)
                    admitted = True
                tokens.extend(output.tokens)
                top_tokens.extend(output.top_tokens)
                prefill_tokens = output.prefill_tokens or prefill_tokens
                if output.finished:
                    return Generation(request, tuple(tokens), tuple(top_tokens), prefill_tokens, output)
        except PytgiError:
            raise
        except Exception as exc:
            logger.exception("engine failed on request %s", request.request_id)
            raise GenerationError(str(exc)) from exc
        finally:
            if ticks is not None:
                await ticks.aclose()
            if outputs is not None:
                await close_iterator(outputs)
        raise IncompleteGenerationError()

    async def tokens(self, request: GenerationRequest) -> AsyncGenerator[TokenItem | None, None]:
        """Each generated token in order (None: a keep-alive tick, nothing happened for a while).
        Raises IncompleteGenerationStreamError when the engine ends without a final token."""
        outputs = self.state.client.generate(request)
        ticks = with_keepalive(outputs, self.state.keepalive_interval_s, self.state.limiter.termination_deadline)
        index = 0
        admitted = False
        try:
            async for output in ticks:
                if output is None:
                    yield None
                    continue
                if not admitted:
                    self.record_admitted(request, output)
                    admitted = True
                if output.finished and not output.tokens:
                    break  # a final event must carry a token
                for i, token in enumerate(output.tokens):
                    index += 1
                    top = output.top_tokens[i] if i < len(output.top_tokens) else ()
                    is_last = output.finished and i == len(output.tokens) - 1
                    yield TokenItem(index, token, top, output if is_last else None)
                if output.finished:
                    return
        finally:
            await ticks.aclose()
            await close_iterator(outputs)
        raise IncompleteGenerationStreamError()

    def record_success(self, request: GenerationRequest, final: RequestOutput, start_s: float) -> RequestDurations:
        """Account a finished generation (metrics, trace); its durations are the headers' too."""
        durations = request_durations(start_s, final.timings, final.num_generated_tokens, time.monotonic())
        self.state.metrics.request_succeeded(durations, final.num_generated_tokens)
        record_generation(durations, final, request)
        return durations

    async def guarded_stream(
        self, events: AsyncGenerator[bytes, None], error_event: Callable[[PytgiError], bytes]
    ) -> AsyncGenerator[bytes, None]:
        """`events`, with any error turned into the route's in-band error event and counted
        (a stream has answered 200 already). A client that goes away counts as dropped."""
        metrics = self.state.metrics
        try:
            async with aclosing(events) as inner:
                async for event in inner:
                    yield event
        except PytgiError as exc:
            metrics.request_failed(error_kind(exc).failure_metric)
            yield error_event(exc)
        except (asyncio.CancelledError, GeneratorExit):
            metrics.request_failed("dropped")
            raise
        except Exception as exc:
            logger.exception("stream failed")
            metrics.request_failed("generation")
            yield error_event(GenerationError(str(exc)))

    def record_admitted(self, request: GenerationRequest, first_output: RequestOutput) -> None:
        num_prompt_tokens = first_output.num_prompt_tokens
        max_new_tokens = request.stopping.max_new_tokens
        if max_new_tokens is None:
            max_new_tokens = self.state.limits.max_total_tokens - num_prompt_tokens
        self.state.metrics.request_admitted(num_prompt_tokens, max_new_tokens)


async def gather_or_cancel(works: list[Awaitable[T]]) -> list[T]:
    """Run concurrently; the first failure (or our own cancellation) cancels the rest,
    and waits for them, so every engine request is closed (aborted) before returning."""
    tasks = [asyncio.ensure_future(w) for w in works]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
