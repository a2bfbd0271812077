"""The one table from typed errors to TGI's HTTP status and `{"error","error_type"}` body.

Routes raise or catch `pytgi.errors` types and call `error_response` (JSON
routes) or `error_payload` (in-band SSE events); nothing else in the server
picks status codes for engine or validation errors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from starlette.responses import Response

from pytgi.errors import (
    ChatTemplateError,
    GenerationError,
    IncompleteGenerationError,
    OverloadedError,
    PytgiError,
    ShuttingDownError,
    ToolError,
    ValidationError,
)


class IncompleteGenerationStreamError(IncompleteGenerationError):
    """A stream ended without a final token (TGI reports it differently from non-stream)."""


@dataclass(frozen=True, slots=True)
class ErrorKind:
    status: int
    error_type: str
    message_template: str  # `{0}` is the exception's own message
    failure_metric: str  # the `err` label of tgi_request_failure


# Most specific class first: lookup walks the exception's MRO.
ERROR_KINDS: dict[type[PytgiError], ErrorKind] = {
    ValidationError: ErrorKind(422, "validation", "Input validation error: {0}", "validation"),
    ChatTemplateError: ErrorKind(422, "template_error", "Template error: {0}", "validation"),
    ToolError: ErrorKind(422, "tool_error", "Tool error: {0}", "validation"),
    OverloadedError: ErrorKind(429, "overloaded", "Model is overloaded", "overloaded"),
    # Not in TGI (its listener closes at once); pytgi answers keep-alive clients while it drains.
    ShuttingDownError: ErrorKind(503, "unavailable", "Server is shutting down", "overloaded"),
    GenerationError: ErrorKind(424, "generation", "Request failed during generation: {0}", "generation"),
    IncompleteGenerationStreamError: ErrorKind(
        500, "incomplete_generation_stream", "Incomplete generation stream", "incomplete"
    ),
    IncompleteGenerationError: ErrorKind(500, "incomplete_generation", "Incomplete generation", "incomplete"),
}


def error_kind(exc: PytgiError) -> ErrorKind:
    for cls in type(exc).__mro__:
        kind = ERROR_KINDS.get(cls)
        if kind is not None:
            return kind
    # A PytgiError the table does not know is a bug upstream; say so as a generation failure.
    return ERROR_KINDS[GenerationError]


def error_payload(exc: PytgiError) -> dict[str, str]:
    kind = error_kind(exc)
    return {"error": kind.message_template.format(str(exc)), "error_type": kind.error_type}


def error_response(exc: PytgiError) -> Response:
    return Response(
        content=json.dumps(error_payload(exc), ensure_ascii=False).encode(),
        status_code=error_kind(exc).status,
        media_type="application/json",
    )


def unhealthy_response() -> Response:
    return Response(
        content=b'{"error":"unhealthy","error_type":"healthcheck"}',
        status_code=503,
        media_type="application/json",
    )
