"""The OpenAPI document at /api-doc/openapi.json.

Routes read their bodies themselves (to give TGI's rejection messages) and
write their answers as JSON bytes, so FastAPI sees neither model. Each route
declares them with `operation(...)` (`$ref`s to the body and answer models),
and `OpenApiDocument` adds the models' JSON schemas under
`components/schemas`, named as TGI names them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pydantic
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from pytgi.server.tgi_response_schemas import ErrorResponse, StreamEvent

REF_TEMPLATE = "#/components/schemas/{model}"


JSON = "application/json"
SSE = "text/event-stream"

# Answers to a body the route cannot read, before any validation.
BODY_ERRORS: dict[int, str] = {
    400: "Malformed JSON body",
    413: "Payload too large",
    415: "Unsupported media type",
}

# TGI's error statuses of a generation route, with its descriptions.
GENERATION_ERRORS: dict[int, str] = {
    422: "Input validation error",
    424: "Generation Error",
    429: "Model is overloaded",
    500: "Incomplete generation",
}


def ref(model: type[pydantic.BaseModel]) -> dict[str, str]:
    return {"$ref": REF_TEMPLATE.format(model=model.__name__)}


def sse_event_schema(model: type[pydantic.BaseModel], done_sentinel: bool = False) -> dict[str, Any]:
    """One server-sent event whose `data:` is `model` as JSON (OpenAPI 3.2 reads a
    stream's schema per event; `contentSchema` says what the data string holds).
    The OpenAI streams end with the literal `[DONE]` (`done_sentinel`)."""
    data: dict[str, Any] = {"type": "string", "contentMediaType": JSON, "contentSchema": ref(model)}
    if done_sentinel:
        data = {"anyOf": [{"const": "[DONE]"}, data]}
    return {"type": "object", "required": ["data"], "properties": {"data": data}}


def body_schema(model: type[pydantic.BaseModel]) -> dict[str, Any]:
    """`openapi_extra` for a route whose JSON body is `model`."""
    return {"requestBody": {"required": True, "content": {JSON: {"schema": ref(model)}}}}


def operation(
    *,
    body: type[pydantic.BaseModel] | None = None,
    ok: type[pydantic.BaseModel] | None = None,
    stream: bool | type[pydantic.BaseModel] = False,
    ok_description: str = "Generated Text",
    errors: dict[int, str] | None = None,
) -> dict[str, Any]:
    """`openapi_extra` for one route: its body, its 200 answer as JSON (`ok`)
    and/or as an SSE stream (`stream`: True for TGI's `StreamEvent`s, or the event model
    of an OpenAI stream), and its error answers (all
    `ErrorResponse`). Register the route with `response_class=Response`, so
    FastAPI adds no schema-less JSON answer of its own."""
    extra: dict[str, Any] = body_schema(body) if body is not None else {}
    if body is not None:
        errors = {**BODY_ERRORS, **(errors or {})}
    ok_content: dict[str, Any] = {}
    if ok is not None:
        ok_content[JSON] = {"schema": ref(ok)}
    if stream is True:
        ok_content[SSE] = {"schema": sse_event_schema(StreamEvent)}
    elif stream:  # an OpenAI stream's event model
        ok_content[SSE] = {"schema": sse_event_schema(stream, done_sentinel=True)}
    responses: dict[str, Any] = {"200": {"description": ok_description}}
    if ok_content:
        responses["200"]["content"] = ok_content
    for status, description in (errors or {}).items():
        responses[str(status)] = {"description": description, "content": {JSON: {"schema": ref(ErrorResponse)}}}
    extra["responses"] = responses
    return extra


def generation_operation(
    body: type[pydantic.BaseModel],
    ok: type[pydantic.BaseModel] | None,
    stream: bool | type[pydantic.BaseModel] = False,
) -> dict[str, Any]:
    """A route that generates: it may fail with any of TGI's generation errors."""
    return operation(body=body, ok=ok, stream=stream, errors=GENERATION_ERRORS)


class OpenApiDocument:
    """Builds the document on first use and caches it (routes do not change)."""

    def __init__(self, app: FastAPI, models: Sequence[type[pydantic.BaseModel]]) -> None:
        self.app = app
        self.models = tuple(models)
        self._document: dict[str, Any] | None = None

    def build(self) -> dict[str, Any]:
        if self._document is None:
            self._document = self._generate()
        return self._document

    def _generate(self) -> dict[str, Any]:
        document = get_openapi(
            title=self.app.title,
            version=self.app.version,
            description="Text Generation Inference's HTTP API, served by pytgi.",
            routes=self.app.routes,
        )
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        for model in self.models:
            schema = model.model_json_schema(ref_template=REF_TEMPLATE)
            for name, definition in schema.pop("$defs", {}).items():
                schemas.setdefault(name, definition)
            schemas[model.__name__] = schema
        return document
