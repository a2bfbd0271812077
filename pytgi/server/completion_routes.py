"""`/v1/completions`: one or more prompts (up to --max-client-batch-size), run
concurrently. Non-streamed choices come in completion order, as in TGI;
streamed ones are interleaved as their tokens arrive, each prompt's last chunk
carrying its finish reason and usage. The first failure ends the whole request.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from pytgi.errors import PytgiError
from pytgi.server.chat_routes import openai_context, openai_error_event, validated_prompt
from pytgi.server.errors import error_kind, error_response
from pytgi.server.generation import GenerationRunner, TokenItem, gather_or_cancel
from pytgi.server.openai_responses import (
    DONE_EVENT,
    ChatContext,
    chat_finish_reason,
    completion_body,
    completion_choice,
    completion_chunk,
    usage_json,
)
from pytgi.server.openai_schemas import CompletionRequest
from pytgi.server.openai_validation import (
    CompletionError,
    completion_parameters,
    refuse_unsupported_completion_options,
)
from pytgi.server.responses import Generation, json_bytes
from pytgi.server.sse import (
    KEEPALIVE_EVENT,
    ClientDisconnected,
    SseResponse,
    run_unless_disconnected,
    sse_data,
)
from pytgi.server.state import ServerState
from pytgi.server.validation import ValidatedGenerate


@dataclass(frozen=True, slots=True)
class _Done:
    """The end of one prompt's token stream in the interleaved merge."""

    index: int


def completion_error_response(exc: CompletionError) -> Response:
    body = {"error": str(exc), "error_type": exc.error_type}
    return Response(json_bytes(body), status_code=422, media_type="application/json")


class CompletionRoutes:
    def __init__(self, state: ServerState, runner: GenerationRunner) -> None:
        self.state = state
        self.runner = runner

    def context(self, wire: CompletionRequest) -> ChatContext:
        return openai_context(self.state, wire.model)

    async def completions(self, request: Request, wire: CompletionRequest, start_s: float) -> Response:
        metrics = self.state.metrics
        metrics.request_received()
        try:
            prompts = refuse_unsupported_completion_options(wire, self.state.limits.max_client_batch_size)
        except CompletionError as exc:
            metrics.request_failed("validation")
            return completion_error_response(exc)
        except PytgiError as exc:
            metrics.request_failed(error_kind(exc).failure_metric)
            return error_response(exc)
        headers = {"x-compute-type": self.state.compute_type,
                   "x-compute-characters": str(sum(len(p) for p in prompts))}
        if wire.stream:
            return SseResponse(self._stream(wire, prompts, start_s), headers=headers)
        return await self._answer_json(request, wire, prompts, start_s, headers)

    def _validated(self, wire: CompletionRequest, prompts: list[str]) -> list[ValidatedGenerate]:
        parameters = completion_parameters(wire)
        return [validated_prompt(self.state, p, parameters, add_special_tokens=True) for p in prompts]

    # --- non-streamed ----------------------------------------------------------------------

    async def _answer_json(self, request: Request, wire: CompletionRequest, prompts: list[str], start_s: float,
                           headers: dict[str, str]) -> Response:
        metrics = self.state.metrics
        try:
            finished = await run_unless_disconnected(request.receive, self._run_all(wire, prompts))
        except ClientDisconnected:
            metrics.request_failed("dropped")
            return Response(status_code=499)
        except PytgiError as exc:
            metrics.request_failed(error_kind(exc).failure_metric)
            return error_response(exc)
        choices = []
        totals = {"total": 0.0, "validation": 0.0, "queue": 0.0, "inference": 0.0, "per_token": 0.0}
        num_prompt = num_generated = 0
        for index, generation in finished:
            final = generation.final
            durations = self.runner.record_success(generation.request, final, start_s)
            reason = chat_finish_reason(final.finish_reason) or ""
            choices.append(completion_choice(index, final.generated_text or "", reason))
            num_prompt += final.num_prompt_tokens
            num_generated += final.num_generated_tokens
            for key, value in zip(totals, (durations.total_s, durations.validation_s, durations.queue_s,
                                           durations.inference_s, durations.time_per_token_s), strict=True):
                totals[key] += value
        headers = {**headers, **summed_headers(totals, num_prompt, num_generated)}
        body = completion_body(self.context(wire), choices, usage_json(num_prompt, num_generated))
        return Response(json_bytes(body), media_type="application/json", headers=headers)

    async def _run_all(self, wire: CompletionRequest, prompts: list[str]) -> list[tuple[int, Generation]]:
        """All prompts at once; results in the order they finish."""
        permit = self.state.limiter.try_acquire(len(prompts))
        try:
            validated = self._validated(wire, prompts)
            finished: list[tuple[int, Generation]] = []

            async def run(index: int, item: ValidatedGenerate) -> None:
                finished.append((index, await self.runner.collect(item.request)))

            await gather_or_cancel([run(i, v) for i, v in enumerate(validated)])
            return finished
        finally:
            permit.release()

    # --- streamed --------------------------------------------------------------------------

    async def _stream(self, wire: CompletionRequest, prompts: list[str], start_s: float
                      ) -> AsyncGenerator[bytes, None]:
        chunks = self._stream_chunks(wire, prompts, start_s)
        async for event in self.runner.guarded_stream(chunks, openai_error_event):
            yield event
        yield DONE_EVENT

    async def _stream_chunks(self, wire: CompletionRequest, prompts: list[str], start_s: float
                             ) -> AsyncGenerator[bytes, None]:
        permit = self.state.limiter.try_acquire(len(prompts))
        try:
            validated = self._validated(wire, prompts)
            context = self.context(wire)
            async with aclosing(self._merged(validated)) as items:
                async for index, item in items:
                    if item is None:
                        yield KEEPALIVE_EVENT
                        continue
                    yield sse_data(self._chunk(context, index, item, validated[index], start_s))
        finally:
            permit.release()

    def _chunk(self, context: ChatContext, index: int, item: TokenItem, validated: ValidatedGenerate,
               start_s: float) -> dict[str, object]:
        text = "" if item.token.special else item.token.text
        final = item.final
        if final is None:
            return completion_chunk(context, completion_choice(index, text, ""), None)
        self.runner.record_success(validated.request, final, start_s)
        # TGI's quirk: the last chunk of a prompt keeps the engine's reason ("eos_token").
        reason = final.finish_reason.value if final.finish_reason is not None else ""
        usage = usage_json(final.num_prompt_tokens, final.num_generated_tokens)
        return completion_chunk(context, completion_choice(index, text, reason), usage)

    async def _merged(self, validated: list[ValidatedGenerate]
                      ) -> AsyncGenerator[tuple[int, TokenItem | None], None]:
        """Every prompt's tokens as they come, tagged with the prompt's index."""
        queue: asyncio.Queue[tuple[int, TokenItem | None] | _Done | BaseException] = asyncio.Queue()

        async def pump(index: int, item: ValidatedGenerate) -> None:
            try:
                async with aclosing(self.runner.tokens(item.request)) as tokens:
                    async for token in tokens:
                        await queue.put((index, token))
                await queue.put(_Done(index))
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises
                await queue.put(exc)

        tasks = [asyncio.ensure_future(pump(i, v)) for i, v in enumerate(validated)]
        remaining = len(tasks)
        try:
            while remaining:
                got = await queue.get()
                if isinstance(got, BaseException):
                    raise got
                if isinstance(got, _Done):
                    remaining -= 1
                    continue
                yield got
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def summed_headers(totals: dict[str, float], num_prompt: int, num_generated: int) -> dict[str, str]:
    """TGI sums each prompt's timings (integer ms) and counts; there is no x-compute-time."""
    def ms(seconds: float) -> str:
        return str(int(seconds * 1000))

    return {
        "x-total-time": ms(totals["total"]),
        "x-validation-time": ms(totals["validation"]),
        "x-queue-time": ms(totals["queue"]),
        "x-inference-time": ms(totals["inference"]),
        "x-time-per-token": ms(totals["per_token"]),
        "x-prompt-tokens": str(num_prompt),
        "x-generated-tokens": str(num_generated),
    }
