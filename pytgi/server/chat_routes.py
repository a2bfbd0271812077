"""The Messages API: `/v1/chat/completions`, `/chat_tokenize`, `/v1/models`.

A chat request is rendered with the model's chat template (off the event
loop), turned into TGI's generate parameters and validated like `/generate`.
Template and tool errors answer with a real 422 before any stream starts;
everything after (overload, validation, generation) is reported inside the
stream in TGI's OpenAI-style error event, followed by `[DONE]`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass, replace

from starlette.requests import Request
from starlette.responses import Response

from pytgi.errors import PytgiError, ToolError
from pytgi.protocol import RequestOutput
from pytgi.server.chat_prompt import ChatPrompt, build_chat_prompt, next_tool_call_id
from pytgi.server.errors import error_kind, error_payload, error_response
from pytgi.server.generation import GenerationRunner
from pytgi.server.openai_responses import (
    DONE_EVENT,
    ChatContext,
    ToolCallStreamer,
    chat_chunk,
    chat_completion_body,
    chat_finish_reason,
    logprobs_json,
    openai_stream_error,
    parse_tool_call,
    text_message,
    token_logprob_json,
    tool_call_delta,
    tool_call_message,
    usage_chunk,
)
from pytgi.server.openai_schemas import ChatRequest
from pytgi.server.openai_validation import chat_parameters
from pytgi.server.responses import Generation, generate_headers, json_bytes, stream_headers
from pytgi.server.sse import (
    KEEPALIVE_EVENT,
    ClientDisconnected,
    SseResponse,
    run_unless_disconnected,
    sse_data,
)
from pytgi.server.state import ServerState
from pytgi.server.tgi_schemas import GenerateParameters, GenerateRequest
from pytgi.server.validation import ValidatedGenerate, validate_generate


@dataclass(frozen=True, slots=True)
class PreparedChat:
    """A chat request after templating: the prompt text and its generate parameters."""

    wire: ChatRequest
    prompt: ChatPrompt
    text: str
    parameters: GenerateParameters


def openai_error_event(exc: PytgiError) -> bytes:
    """TGI's in-band error of the OpenAI streams (the stream still ends with `[DONE]`)."""
    return sse_data(openai_stream_error(error_payload(exc)["error"]))


def openai_context(state: ServerState, requested_model: str | None) -> ChatContext:
    """What every chunk of one OpenAI-style answer repeats."""
    return ChatContext(
        model=served_model_name(state, requested_model),
        system_fingerprint=f"{state.version}-native",
        created=int(time.time()),
    )


def served_model_name(state: ServerState, requested: str | None) -> str:
    """TGI echoes the requested model unless it is absent or "tgi"."""
    return state.client.model_info.model_id if requested in (None, "tgi") else str(requested)


def validated_prompt(state: ServerState, text: str, parameters: GenerateParameters,
                     add_special_tokens: bool) -> ValidatedGenerate:
    """The same validation as /generate, on the rendered prompt. Raises ValidationError."""
    validated = validate_generate(GenerateRequest(inputs=text, parameters=parameters), state.limits)
    request = replace(validated.request, add_special_tokens=add_special_tokens)
    return replace(validated, request=request)


class ChatRoutes:
    def __init__(self, state: ServerState, runner: GenerationRunner) -> None:
        self.state = state
        self.runner = runner

    def context(self, wire: ChatRequest) -> ChatContext:
        return openai_context(self.state, wire.model)

    async def prepare(self, wire: ChatRequest, with_tools: bool = True) -> PreparedChat:
        """Template and parameters. Raises ToolError, ChatTemplateError, ValidationError."""
        if not with_tools:
            wire = wire.model_copy(update={"tools": None, "tool_choice": None, "response_format": None})
        uses_tools = bool(self.state.client.chat_template_uses_tools)
        prompt = build_chat_prompt(wire, uses_tools)
        parameters = chat_parameters(wire, prompt.tool_selection)
        tools = list(prompt.template_tools) if prompt.template_tools is not None else None
        text = await self.state.client.apply_chat_template(list(prompt.messages), tools)
        return PreparedChat(wire, prompt, text, parameters)

    # --- routes ----------------------------------------------------------------------------

    async def chat_completions(self, request: Request, wire: ChatRequest, start_s: float) -> Response:
        metrics = self.state.metrics
        metrics.request_received()
        try:
            prepared = await self.prepare(wire)
        except PytgiError as exc:
            metrics.request_failed(error_kind(exc).failure_metric)
            return error_response(exc)
        if wire.stream:
            events = self._stream(prepared, start_s)
            return SseResponse(events, headers=stream_headers(self.state.compute_type, prepared.text))
        return await self._answer_json(request, prepared, start_s)

    async def chat_tokenize(self, wire: ChatRequest) -> Response:
        self.state.metrics.request_received()
        try:
            prepared = await self.prepare(wire)
            spans = await self.state.client.tokenize(prepared.text)
        except PytgiError as exc:
            return error_response(exc)
        body = {
            "tokenize_response": [{"id": s.id, "text": s.text, "start": s.start, "stop": s.stop} for s in spans],
            "templated_text": prepared.text,
        }
        return Response(json_bytes(body), media_type="application/json")

    async def models(self) -> Response:
        model_id = self.state.client.model_info.model_id
        card = {"id": model_id, "object": "model", "created": int(time.time()), "owned_by": model_id}
        return Response(json_bytes({"object": "list", "data": [card]}), media_type="application/json")

    # --- non-streamed ----------------------------------------------------------------------

    async def _answer_json(self, request: Request, prepared: PreparedChat, start_s: float) -> Response:
        metrics = self.state.metrics
        try:
            prepared, generation = await run_unless_disconnected(request.receive, self.generate(prepared))
            message = self._message(prepared, generation)
        except ClientDisconnected:
            metrics.request_failed("dropped")
            return Response(status_code=499)
        except PytgiError as exc:
            metrics.request_failed(error_kind(exc).failure_metric)
            return error_response(exc)
        final = generation.final
        durations = self.runner.record_success(generation.request, final, start_s)
        logprobs = logprobs_json(generation.tokens, generation.top_tokens) if prepared.wire.logprobs else None
        body = chat_completion_body(self.context(prepared.wire), message, logprobs, final)
        headers = generate_headers(self.state.compute_type, prepared.text, durations, final)
        return Response(json_bytes(body), media_type="application/json", headers=headers)

    async def answer_text(self, wire: ChatRequest) -> str:
        """A non-streamed chat's message as text (for `/vertex`): the content, or the tool
        call as JSON. Raises PytgiError."""
        prepared, generation = await self.generate(await self.prepare(wire))
        message = self._message(prepared, generation)
        content = message.get("content")
        return content if isinstance(content, str) else json_bytes(message.get("tool_calls")).decode()

    async def generate(self, prepared: PreparedChat) -> tuple[PreparedChat, Generation]:
        """Run a chat to its end; a `no_tool` answer runs it again without tools, as TGI does."""
        generation = await self._collect(prepared)
        if prepared.prompt.tool_selection is not None:
            name, _ = parse_tool_call(generation.final.generated_text or "")
            if name == "no_tool":
                prepared = await self.prepare(prepared.wire, with_tools=False)
                generation = await self._collect(prepared)
        return prepared, generation

    async def _collect(self, prepared: PreparedChat) -> Generation:
        permit = self.state.limiter.try_acquire()
        try:
            validated = validated_prompt(self.state, prepared.text, prepared.parameters, add_special_tokens=False)
            return await self.runner.collect(validated.request)
        finally:
            permit.release()

    def _message(self, prepared: PreparedChat, generation: Generation) -> dict[str, object]:
        text = generation.final.generated_text or ""
        if prepared.prompt.tool_selection is None:
            return text_message(text)
        name, arguments = parse_tool_call(text)
        offered = {tool.function.name for tool in prepared.prompt.tool_selection.tools}
        if name not in offered:
            raise ToolError(f"the model called an undeclared tool: {name}")
        return tool_call_message(name, arguments)

    # --- streamed --------------------------------------------------------------------------

    async def _stream(self, prepared: PreparedChat, start_s: float) -> AsyncGenerator[bytes, None]:
        async for event in self.runner.guarded_stream(self._stream_chunks(prepared, start_s), openai_error_event):
            yield event
        yield DONE_EVENT

    async def _stream_chunks(self, prepared: PreparedChat, start_s: float) -> AsyncGenerator[bytes, None]:
        context = self.context(prepared.wire)
        permit = self.state.limiter.try_acquire()
        try:
            validated = validated_prompt(self.state, prepared.text, prepared.parameters, add_special_tokens=False)
            if prepared.prompt.tool_selection is None:
                chunks = self._text_chunks(prepared, validated, context, start_s)
            else:
                chunks = self._tool_chunks(prepared, validated, context, start_s)
            async with aclosing(chunks) as events:
                async for event in events:
                    yield event
        finally:
            permit.release()

    async def _text_chunks(self, prepared: PreparedChat, validated: ValidatedGenerate, context: ChatContext,
                           start_s: float) -> AsyncGenerator[bytes, None]:
        with_logprobs = bool(prepared.wire.logprobs)
        async with aclosing(self.runner.tokens(validated.request)) as items:
            async for item in items:
                if item is None:
                    yield KEEPALIVE_EVENT
                    continue
                delta = text_message("" if item.token.special else item.token.text)
                logprobs = {"content": [token_logprob_json(item.token, item.top_tokens)]} if with_logprobs else None
                reason = chat_finish_reason(item.final.finish_reason) if item.final is not None else None
                yield sse_data(chat_chunk(context, delta, logprobs, reason))
                if item.final is not None:
                    async for event in self._finish(prepared, validated, context, item.final, start_s):
                        yield event

    async def _tool_chunks(self, prepared: PreparedChat, validated: ValidatedGenerate, context: ChatContext,
                           start_s: float) -> AsyncGenerator[bytes, None]:
        """Tool-call deltas (no finish_reason chunk, as TGI); `no_tool` restarts as plain text."""
        streamer = ToolCallStreamer()
        call_id = next_tool_call_id(prepared.wire.messages) or str(uuid.uuid4())
        async with aclosing(self.runner.tokens(validated.request)) as items:
            async for item in items:
                if item is None:
                    yield KEEPALIVE_EVENT
                    continue
                known = streamer.name is not None
                fragment = streamer.feed("" if item.token.special else item.token.text)
                if streamer.is_no_tool:
                    break
                if streamer.name is not None and (fragment or not known):
                    yield sse_data(chat_chunk(context, tool_call_delta(call_id, None if known else streamer.name,
                                                                       fragment), None, None))
                if item.final is not None:
                    if streamer.name is None:
                        raise ToolError(f"Failed to parse generated text: {streamer.buffer!r}")
                    tail = streamer.finish()
                    if tail:
                        yield sse_data(chat_chunk(context, tool_call_delta(call_id, None, tail), None, None))
                    async for event in self._finish(prepared, validated, context, item.final, start_s):
                        yield event
                    return
        if streamer.is_no_tool:
            plain = await self.prepare(prepared.wire, with_tools=False)
            validated = validated_prompt(self.state, plain.text, plain.parameters, add_special_tokens=False)
            async with aclosing(self._text_chunks(plain, validated, context, start_s)) as events:
                async for event in events:
                    yield event

    async def _finish(self, prepared: PreparedChat, validated: ValidatedGenerate, context: ChatContext,
                      final: RequestOutput, start_s: float) -> AsyncGenerator[bytes, None]:
        """Account a finished stream; the usage chunk when asked for."""
        self.runner.record_success(validated.request, final, start_s)
        options = prepared.wire.stream_options
        if options is not None and options.include_usage:
            yield sse_data(usage_chunk(context, final))
