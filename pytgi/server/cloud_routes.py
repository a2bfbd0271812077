"""The cloud-platform routes TGI always registers: SageMaker's `/invocations`
(one route for every request shape) and Google Vertex's `/vertex`.

Both reuse the native and OpenAI routes' pipelines.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import Any

from fastapi import APIRouter
from pydantic import RootModel
from starlette.requests import Request
from starlette.responses import Response

from pytgi.errors import ChatTemplateError, PytgiError
from pytgi.server.errors import error_response
from pytgi.server.extract import BodyRejection, parse_wire, read_json_value
from pytgi.server.generation import gather_or_cancel
from pytgi.server.openai_routes import OpenAIRoutes
from pytgi.server.openai_schemas import (
    ChatCompletion,
    ChatRequest,
    ChatStreamEvent,
    CompletionFinal,
    CompletionRequest,
    CompletionStreamEvent,
)
from pytgi.server.openapi import generation_operation
from pytgi.server.responses import json_bytes
from pytgi.server.state import ServerState
from pytgi.server.tgi_response_schemas import CompatGenerateResponse, StreamEvent, VertexResponse
from pytgi.server.tgi_routes import TgiRoutes
from pytgi.server.tgi_schemas import CompatGenerateRequest, GenerateParameters, GenerateRequest, WireModel


class SagemakerRequest(RootModel[CompatGenerateRequest | ChatRequest | CompletionRequest]):
    """`/invocations`: a native body (`inputs`), a chat (`messages`) or a completion (`prompt`)."""


class SagemakerResponse(RootModel[CompatGenerateResponse | ChatCompletion | CompletionFinal]):
    """What `/invocations` answers for each kind of body (without `stream`)."""


class SagemakerStreamEvent(RootModel[StreamEvent | ChatStreamEvent | CompletionStreamEvent]):
    """A `data:` event of a streamed `/invocations`: TGI's or an OpenAI stream's, by body kind."""


class VertexRequest(WireModel):
    instances: list[dict[str, Any]]


def json_error(status: int, message: str, error_type: str) -> Response:
    return Response(
        json_bytes({"error": message, "error_type": error_type}), status_code=status, media_type="application/json"
    )


def vertex_generate_request(instance: dict[str, Any]) -> GenerateRequest:
    """TGI honours only max_new_tokens and seed of a Vertex instance, and samples."""
    given = instance.get("parameters") or {}
    parameters = GenerateParameters(
        do_sample=True,
        details=True,
        decoder_input_details=True,
        max_new_tokens=given.get("max_new_tokens") if isinstance(given, dict) else None,
        seed=given.get("seed") if isinstance(given, dict) else None,
    )
    return GenerateRequest(inputs=instance["inputs"], parameters=parameters)


def parse_chat_instance(instance: dict[str, Any]) -> ChatRequest:
    return ChatRequest.model_validate({**instance, "stream": False})


class CloudRoutes:
    def __init__(self, state: ServerState, tgi: TgiRoutes, openai: OpenAIRoutes) -> None:
        self.state = state
        self.tgi = tgi
        self.openai = openai

    def router(self) -> APIRouter:
        router = APIRouter(tags=["Text Generation Inference"])
        invocations = generation_operation(SagemakerRequest, SagemakerResponse, stream=SagemakerStreamEvent)
        router.add_api_route(
            "/invocations",
            self.invocations,
            methods=["POST"],
            operation_id="sagemaker_compatibility",
            openapi_extra=invocations,
            response_class=Response,
        )
        vertex = generation_operation(VertexRequest, VertexResponse)
        router.add_api_route(
            "/vertex",
            self.vertex,
            methods=["POST"],
            operation_id="vertex_compatibility",
            openapi_extra=vertex,
            response_class=Response,
        )
        return router

    async def invocations(self, request: Request) -> Response:
        """SageMaker: TGI tries compat-generate (`inputs`), then chat, then completion."""
        start_s = time.monotonic()
        value = await read_json_value(request, self.state.payload_limit)
        if isinstance(value, dict) and "inputs" in value:
            return await self.tgi.answer_compat(request, parse_wire(value, CompatGenerateRequest), start_s)
        if isinstance(value, dict) and "messages" in value:
            wire = parse_wire(value, ChatRequest)
            return await self.openai.chat.chat_completions(request, wire, start_s)
        if isinstance(value, dict) and "prompt" in value:
            completion = parse_wire(value, CompletionRequest)
            return await self.openai.completion.completions(request, completion, start_s)
        raise BodyRejection(
            422,
            "Failed to deserialize the JSON body into the target type: "
            "data did not match any variant of untagged enum SagemakerRequest",
        )

    async def vertex(self, request: Request) -> Response:
        wire = parse_wire(await read_json_value(request, self.state.payload_limit), VertexRequest)
        if not wire.instances:
            return json_error(422, "Input validation error", "Input validation error")
        try:
            works = [self._vertex_prediction(instance) for instance in wire.instances]
        except Exception:  # an instance of the wrong shape
            return json_error(422, "Input validation error", "Input validation error")
        try:
            # One failure ends the others too (their engine requests are aborted).
            texts = await gather_or_cancel(works)
        except ChatTemplateError as exc:
            return error_response(exc)
        except PytgiError:
            return json_error(500, "Incomplete generation", "Incomplete generation")
        body = {"predictions": list(texts)}
        return Response(json_bytes(body), media_type="application/json")

    def _vertex_prediction(self, instance: dict[str, Any]) -> Awaitable[str]:
        """A generate-style instance (`inputs`) or a chat request. Raises on a wrong shape."""
        if "inputs" in instance:
            return self.tgi.generated_text(vertex_generate_request(instance))
        return self.openai.chat.answer_text(parse_chat_instance(instance))
