"""The OpenAPI document at /api-doc/openapi.json.

Routes read their bodies themselves (to give TGI's rejection messages), so
FastAPI cannot see the request models. Each body route declares its model
with `body_schema(Model)` (a `$ref`), and `OpenApiDocument` adds the models'
JSON schemas under `components/schemas`, named as TGI names them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pydantic
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

REF_TEMPLATE = "#/components/schemas/{model}"


def body_schema(model: type[pydantic.BaseModel]) -> dict[str, Any]:
    """`openapi_extra` for a route whose JSON body is `model`."""
    ref = {"$ref": REF_TEMPLATE.format(model=model.__name__)}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}


class OpenApiDocument:
    """Builds the document on first use and caches it (routes do not change)."""

    def __init__(self, app: FastAPI, body_models: Sequence[type[pydantic.BaseModel]]) -> None:
        self.app = app
        self.body_models = tuple(body_models)
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
        for model in self.body_models:
            schema = model.model_json_schema(ref_template=REF_TEMPLATE)
            for name, definition in schema.pop("$defs", {}).items():
                schemas.setdefault(name, definition)
            schemas[model.__name__] = schema
        return document
