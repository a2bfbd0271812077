"""Registration of the OpenAI-compatible routes, with their OpenAPI description."""

from __future__ import annotations

import time

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from pytgi.server import openai_schemas as schemas
from pytgi.server.chat_routes import ChatRoutes
from pytgi.server.completion_routes import CompletionRoutes
from pytgi.server.extract import read_json
from pytgi.server.generation import GenerationRunner
from pytgi.server.openapi import generation_operation, operation
from pytgi.server.state import ServerState

TEMPLATE_ERRORS = {422: "Template, tool or input validation error", 404: "No chat template"}


class OpenAIRoutes:
    def __init__(self, state: ServerState, runner: GenerationRunner) -> None:
        self.state = state
        self.chat = ChatRoutes(state, runner)
        self.completion = CompletionRoutes(state, runner)

    def router(self) -> APIRouter:
        router = APIRouter(tags=["Text Generation Inference"])
        routes = (
            ("/v1/chat/completions", self.chat_completions, "chat_completions",
             generation_operation(schemas.ChatRequest, schemas.ChatCompletion, stream=schemas.ChatStreamEvent)),
            ("/v1/completions", self.completions, "completions",
             generation_operation(schemas.CompletionRequest, schemas.CompletionFinal,
                                  stream=schemas.CompletionStreamEvent)),
            ("/chat_tokenize", self.chat_tokenize, "get_chat_tokenize",
             operation(body=schemas.ChatRequest, ok=schemas.ChatTokenizeResponse,
                       ok_description="Templated and tokenized ChatRequest", errors={422: "Template error"})),
        )
        for path, endpoint, name, extra in routes:
            router.add_api_route(path, endpoint, methods=["POST"], operation_id=name, openapi_extra=extra,
                                 response_class=Response)
        router.add_api_route(
            "/v1/models", self.chat.models, methods=["GET"], operation_id="openai_get_model_info",
            openapi_extra=operation(ok=schemas.ModelList, ok_description="Served model info"),
            response_class=Response,
        )
        return router

    async def chat_completions(self, request: Request) -> Response:
        start_s = time.monotonic()
        wire = await read_json(request, schemas.ChatRequest, self.state.payload_limit)
        return await self.chat.chat_completions(request, wire, start_s)

    async def completions(self, request: Request) -> Response:
        start_s = time.monotonic()
        wire = await read_json(request, schemas.CompletionRequest, self.state.payload_limit)
        return await self.completion.completions(request, wire, start_s)

    async def chat_tokenize(self, request: Request) -> Response:
        wire = await read_json(request, schemas.ChatRequest, self.state.payload_limit)
        return await self.chat.chat_tokenize(wire)
