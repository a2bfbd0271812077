"""TGI's native generation routes: `/generate`, `/generate_stream`, `POST /` and `/tokenize`.

Every generation follows TGI's order: parse the body, count the request, take a
concurrency permit (429 at once when none is free), validate, generate, and
release the permit however the request ends. Streams answer 200 and report
every in-handler error as one `data: {"error", "error_type"}` event.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import replace

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from pytgi.engine.client import ModelInfo
from pytgi.errors import PytgiError
from pytgi.server import tgi_response_schemas as schemas
from pytgi.server.errors import error_kind, error_payload, error_response
from pytgi.server.extract import read_json
from pytgi.server.generation import GenerationRunner, gather_or_cancel
from pytgi.server.openapi import generation_operation, operation
from pytgi.server.responses import (
    Generation,
    generate_body,
    generate_headers,
    json_bytes,
    stream_event,
    stream_headers,
)
from pytgi.server.sse import (
    KEEPALIVE_EVENT,
    ClientDisconnected,
    SseResponse,
    run_unless_disconnected,
    sse_data,
)
from pytgi.server.state import ServerState
from pytgi.server.tgi_schemas import CompatGenerateRequest, GenerateRequest
from pytgi.server.validation import (
    ValidatedGenerate,
    check_best_of_bound,
    check_streamable,
    new_request_id,
    validate_generate,
)

# What a non-streamed answer needs: the request as validated, the winner, the other best_of runs.
BestOf = tuple[ValidatedGenerate, Generation, list[Generation]]


def compat_return_full_text(model_info: ModelInfo) -> bool:
    """`POST /` prepends the prompt unless the Hub says the model is not a text-generation one."""
    tag = model_info.model_pipeline_tag
    return tag is None or tag == "text-generation"


class TgiRoutes:
    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.runner = GenerationRunner(state)

    def router(self) -> APIRouter:
        router = APIRouter(tags=["Text Generation Inference"])
        routes = (
            ("/generate", self.generate, generation_operation(GenerateRequest, schemas.GenerateResponse)),
            (
                "/generate_stream",
                self.generate_stream,
                generation_operation(GenerateRequest, None, stream=True),
            ),
            (
                "/",
                self.compat_generate,
                generation_operation(CompatGenerateRequest, schemas.CompatGenerateResponse, stream=True),
            ),
            (
                "/tokenize",
                self.tokenize,
                operation(
                    body=GenerateRequest,
                    ok=schemas.TokenizeResponse,
                    ok_description="Tokenized ids",
                    errors={422: "Input validation error"},
                ),
            ),
        )
        for path, endpoint, extra in routes:
            # TGI's operation ids are its handler names (`compat_generate` for `/`).
            name = "compat_generate" if path == "/" else path.strip("/")
            router.add_api_route(
                path, endpoint, methods=["POST"], operation_id=name, openapi_extra=extra, response_class=Response
            )
        return router

    # --- routes ----------------------------------------------------------------------------

    async def generate(self, request: Request) -> Response:
        start_s = time.monotonic()
        wire = await read_json(request, GenerateRequest, self.state.payload_limit)
        return await self._answer_json(request, wire, start_s, default_return_full_text=False, as_list=False)

    async def generate_stream(self, request: Request) -> Response:
        start_s = time.monotonic()
        wire = await read_json(request, GenerateRequest, self.state.payload_limit)
        return self._answer_stream(wire, start_s, default_return_full_text=False)

    async def compat_generate(self, request: Request) -> Response:
        """TGI's `/`: a one-element JSON list, or the `/generate_stream` SSE when `stream` is true."""
        start_s = time.monotonic()
        wire = await read_json(request, CompatGenerateRequest, self.state.payload_limit)
        return await self.answer_compat(request, wire, start_s)

    async def answer_compat(self, request: Request, wire: CompatGenerateRequest, start_s: float) -> Response:
        """The `/` answer for an already parsed body (also used by `/invocations`)."""
        default_return_full_text = compat_return_full_text(self.state.client.model_info)
        if wire.stream:
            return self._answer_stream(wire, start_s, default_return_full_text)
        return await self._answer_json(request, wire, start_s, default_return_full_text, as_list=True)

    async def tokenize(self, request: Request) -> Response:
        wire = await read_json(request, GenerateRequest, self.state.payload_limit)
        try:
            spans = await self.state.client.tokenize(wire.inputs)
        except PytgiError as exc:
            return error_response(exc)
        body = [{"id": s.id, "text": s.text, "start": s.start, "stop": s.stop} for s in spans]
        return Response(json_bytes(body), media_type="application/json")

    # --- non-streamed ----------------------------------------------------------------------

    async def _answer_json(
        self,
        request: Request,
        wire: GenerateRequest,
        start_s: float,
        default_return_full_text: bool,
        as_list: bool,
    ) -> Response:
        metrics = self.state.metrics
        metrics.request_received()
        try:
            work = self._run_best_of(wire, default_return_full_text)
            validated, best, others = await run_unless_disconnected(request.receive, work)
        except ClientDisconnected:
            metrics.request_failed("dropped")
            return Response(status_code=499)  # nobody reads it; the generation was aborted
        except PytgiError as exc:
            metrics.request_failed(error_kind(exc).failure_metric)
            return error_response(exc)
        final = best.final
        durations = self.runner.record_success(validated.request, final, start_s)
        body = generate_body(validated, best, others)
        return Response(
            json_bytes([body] if as_list else body),
            media_type="application/json",
            headers=generate_headers(self.state.compute_type, validated.inputs, durations, final),
        )

    async def generated_text(self, wire: GenerateRequest) -> str:
        """One non-streamed generation's text (for `/vertex`). Raises PytgiError."""
        _, best, _ = await self._run_best_of(wire, default_return_full_text=False)
        return best.final.generated_text or ""

    async def _run_best_of(self, wire: GenerateRequest, default_return_full_text: bool) -> BestOf:
        """Run `best_of` independent generations (usually 1); the best mean logprob wins."""
        num_sequences = check_best_of_bound(wire.effective_parameters, self.state.limits)
        permit = self.state.limiter.try_acquire(num_sequences)
        try:
            validated = validate_generate(
                wire, self.state.limits, default_return_full_text=default_return_full_text
            )
            # Each sequence is its own engine request; seeds stay unset so each gets a random one.
            requests = [validated.request] + [
                replace(validated.request, request_id=new_request_id()) for _ in range(num_sequences - 1)
            ]
            generations = await gather_or_cancel([self.runner.collect(r) for r in requests])
        finally:
            permit.release()
        # max() keeps the first of equals, as TGI's strict `>` scan does.
        winner = max(range(len(generations)), key=lambda i: generations[i].mean_logprob)
        others = [g for i, g in enumerate(generations) if i != winner]
        return validated, generations[winner], others

    # --- streamed --------------------------------------------------------------------------

    def _answer_stream(
        self, wire: GenerateRequest, start_s: float, default_return_full_text: bool
    ) -> Response:
        self.state.metrics.request_received()
        events = self.runner.guarded_stream(
            self._stream_events(wire, start_s, default_return_full_text), tgi_error_event
        )
        return SseResponse(events, headers=stream_headers(self.state.compute_type, wire.inputs))

    async def _stream_events(
        self, wire: GenerateRequest, start_s: float, default_return_full_text: bool
    ) -> AsyncGenerator[bytes, None]:
        """All of a stream's work runs inside the generator, so nothing is held (permit,
        engine request) unless the response actually starts, and its `finally` frees all.
        Errors become the stream's error event in `guarded_stream`."""
        permit = None
        try:
            check_streamable(wire.effective_parameters)
            permit = self.state.limiter.try_acquire()
            validated = validate_generate(
                wire, self.state.limits, default_return_full_text=default_return_full_text
            )
            async with aclosing(self._token_events(validated, start_s)) as events:
                async for event in events:
                    yield event
        finally:
            if permit is not None:
                permit.release()

    async def _token_events(
        self, validated: ValidatedGenerate, start_s: float
    ) -> AsyncGenerator[bytes, None]:
        """One event per generated token; the last carries generated_text and details."""
        async with aclosing(self.runner.tokens(validated.request)) as items:
            async for item in items:
                if item is None:
                    yield KEEPALIVE_EVENT
                    continue
                yield sse_data(stream_event(validated, item.index, item.token, item.top_tokens, item.final))
                if item.final is not None:
                    self.runner.record_success(validated.request, item.final, start_s)


def tgi_error_event(exc: PytgiError) -> bytes:
    """TGI's in-band stream error: `{"error", "error_type"}`; the stream then closes."""
    return sse_data(error_payload(exc))
