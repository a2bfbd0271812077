"""Reading a JSON body the way TGI's (axum) `Json` extractor does.

Same status codes and message texts as TGI: 413 over the payload limit, 415
without a JSON content type, 400 for bytes that are not JSON, 422 for JSON of
the wrong shape. One deliberate difference: TGI answers these in plain text,
pytgi in its usual `{"error", "error_type"}` JSON, because clients parse every
error body as JSON (the `text-generation` client fails on plain text). Routes
call `read_json`; the app maps `BodyRejection` to a response in one handler.
"""

from __future__ import annotations

import json
import math
from typing import Any, TypeVar

import pydantic
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

M = TypeVar("M", bound=pydantic.BaseModel)


class BodyRejection(Exception):
    """The request body could not become the route's wire model."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def response(self) -> Response:
        body = {"error": self.message, "error_type": REJECTION_TYPES.get(self.status, "invalid_request")}
        return JSONResponse(body, status_code=self.status)


REJECTION_TYPES = {
    400: "invalid_json",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation",
}


async def read_json(request: Request, model: type[M], payload_limit: int) -> M:
    return parse_wire(await read_json_value(request, payload_limit), model)


async def read_json_value(request: Request, payload_limit: int) -> Any:
    """The body as plain JSON values, before any wire model (for union routes)."""
    if not is_json_content_type(request.headers.get("content-type")):
        raise BodyRejection(415, "Expected request with `Content-Type: application/json`")
    body = await read_body(request, payload_limit)
    try:
        value = json.loads(
            body, parse_constant=_reject_constant, parse_float=_finite_float, object_pairs_hook=_unique_keys
        )
    except DuplicateKey as exc:
        raise BodyRejection(
            422, f"Failed to deserialize the JSON body into the target type: duplicate field `{exc}`"
        ) from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise BodyRejection(
            400, f"Failed to parse the request body as JSON: {describe_json_error(exc)}"
        ) from exc
    except RecursionError as exc:  # deep nesting exhausts Python's stack, not a JSON error
        raise BodyRejection(400, "Failed to parse the request body as JSON: nesting too deep") from exc
    return value


def parse_wire(value: Any, model: type[M]) -> M:
    try:
        return model.model_validate(value)
    except RecursionError as exc:
        raise BodyRejection(
            422, "Failed to deserialize the JSON body into the target type: nesting too deep"
        ) from exc
    except pydantic.ValidationError as exc:
        raise BodyRejection(
            422, f"Failed to deserialize the JSON body into the target type: {describe_shape_error(exc)}"
        ) from exc


def is_json_content_type(header: str | None) -> bool:
    """`application/json` or any `application/*+json`, parameters ignored (as axum)."""
    if header is None:
        return False
    mime = header.split(";", 1)[0].strip().lower()
    return mime == "application/json" or (mime.startswith("application/") and mime.endswith("+json"))


async def read_body(request: Request, payload_limit: int) -> bytes:
    rejection = BodyRejection(413, "Failed to buffer the request body: length limit exceeded")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > payload_limit:
        raise rejection
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > payload_limit:
                raise rejection
            chunks.append(chunk)
    except ClientDisconnect as exc:
        # Nobody will read the answer; a rejection just ends the request quietly.
        raise BodyRejection(400, "Failed to buffer the request body: client disconnected") from exc
    return b"".join(chunks)


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN/Infinity; JSON (and serde) do not.
    raise ValueError(f"invalid value `{name}`")


def _finite_float(text: str) -> float:
    # `1e999` is valid JSON that Python rounds to inf; serde refuses it, and an
    # infinite temperature or penalty must not reach the sampler.
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number out of range `{text[:32]}`")
    return value


class DuplicateKey(ValueError):
    """An object names the same key twice (Python would keep the last silently)."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # serde refuses duplicate fields; a proxy and this server must not read
    # different values out of one body.
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKey(key[:64])
            seen.add(key)
    return value


def describe_json_error(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    return str(exc)


def describe_shape_error(exc: pydantic.ValidationError) -> str:
    """First error, serde style: `path: message` (`missing field `x`` for absent keys)."""
    error = exc.errors()[0]
    location = [str(part) for part in error["loc"]]
    missing = error["type"] == "missing" and location
    message = f"missing field `{location.pop()}`" if missing else error["msg"]
    return f"{'.'.join(location)}: {message}" if location else message
