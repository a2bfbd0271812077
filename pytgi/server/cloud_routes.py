"""The cloud-platform routes TGI always registers: SageMaker's `/invocations`
(one route for every request shape) and Google Vertex's `/vertex`.

Both reuse the native routes' pipeline. Chat and completion bodies need the
Messages API, which pytgi does not serve yet: they get a clear 422 instead of
being misread as something else.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from pytgi.errors import PytgiError
from pytgi.server.extract import BodyRejection, parse_wire, read_json_value
from pytgi.server.openapi import generation_operation
from pytgi.server.responses import json_bytes
from pytgi.server.state import ServerState
from pytgi.server.tgi_response_schemas import CompatGenerateResponse, VertexResponse
from pytgi.server.tgi_routes import TgiRoutes, gather_or_cancel
from pytgi.server.tgi_schemas import CompatGenerateRequest, GenerateParameters, GenerateRequest, WireModel

MESSAGES_API_MISSING = "chat and completion requests need the Messages API, which pytgi does not serve yet"


class VertexRequest(WireModel):
    instances: list[dict[str, Any]]


def json_error(status: int, message: str, error_type: str) -> Response:
    return Response(
        json_bytes({"error": message, "error_type": error_type}), status_code=status, media_type="application/json"
    )


def is_messages_api_body(value: Any) -> bool:
    return isinstance(value, dict) and ("messages" in value or "prompt" in value)


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


class CloudRoutes:
    def __init__(self, state: ServerState, tgi: TgiRoutes) -> None:
        self.state = state
        self.tgi = tgi

    def router(self) -> APIRouter:
        router = APIRouter()
        invocations = generation_operation(CompatGenerateRequest, CompatGenerateResponse, stream=True)
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
        if is_messages_api_body(value):
            return json_error(422, MESSAGES_API_MISSING, "validation")
        raise BodyRejection(
            422,
            "Failed to deserialize the JSON body into the target type: "
            "data did not match any variant of untagged enum SagemakerRequest",
        )

    async def vertex(self, request: Request) -> Response:
        wire = parse_wire(await read_json_value(request, self.state.payload_limit), VertexRequest)
        if not wire.instances:
            return json_error(422, "Input validation error", "Input validation error")
        if any("inputs" not in instance for instance in wire.instances):
            return json_error(422, MESSAGES_API_MISSING, "validation")
        try:
            requests = [vertex_generate_request(instance) for instance in wire.instances]
        except Exception:  # an instance of the wrong shape
            return json_error(422, "Input validation error", "Input validation error")
        try:
            # One failure ends the others too (their engine requests are aborted).
            texts = await gather_or_cancel([self.tgi.generated_text(r) for r in requests])
        except PytgiError:
            return json_error(500, "Incomplete generation", "Incomplete generation")
        body = {"predictions": list(texts)}
        return Response(json_bytes(body), media_type="application/json")
