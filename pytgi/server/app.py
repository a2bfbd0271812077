"""The FastAPI application: `build_app(client)` wires TGI's routes to an `EngineClient`.

The app holds no module-level state: everything a route needs is in the
`ServerState` made here, so several apps (tests) can live in one process.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Sequence

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response

from pytgi.engine.client import EngineClient
from pytgi.metrics.prometheus import CONTENT_TYPE, TgiMetrics
from pytgi.server import openai_schemas
from pytgi.server.cloud_routes import (
    CloudRoutes,
    SagemakerRequest,
    SagemakerResponse,
    SagemakerStreamEvent,
    VertexRequest,
)
from pytgi.server.errors import unhealthy_response
from pytgi.server.extract import BodyRejection
from pytgi.server.openai_routes import OpenAIRoutes
from pytgi.server.openapi import OpenApiDocument, operation
from pytgi.server.responses import json_bytes
from pytgi.server.security import ApiKeyMiddleware
from pytgi.server.sse import SEND_TIMEOUT_S
from pytgi.server.state import ConcurrencyLimiter, ServerState
from pytgi.server.tgi_response_schemas import (
    CompatGenerateResponse,
    ErrorResponse,
    GenerateResponse,
    Info,
    StreamEvent,
    TokenizeResponse,
    VertexResponse,
)
from pytgi.server.tgi_routes import TgiRoutes
from pytgi.server.tgi_schemas import CompatGenerateRequest, GenerateRequest
from pytgi.server.tracing import Tracing, TracingMiddleware
from pytgi.server.web_routes import WebRoutes

ROUTER_NAME = "text-generation-router"
DEFAULT_PAYLOAD_LIMIT = 2_000_000  # bytes, TGI's --payload-limit default
KEEPALIVE_INTERVAL_S = 15.0

# Models whose JSON schemas /api-doc/openapi.json carries (with what they reference).
DOCUMENTED_MODELS = (
    GenerateRequest,
    CompatGenerateRequest,
    VertexRequest,
    SagemakerRequest,
    SagemakerResponse,
    SagemakerStreamEvent,
    GenerateResponse,
    CompatGenerateResponse,
    StreamEvent,
    TokenizeResponse,
    Info,
    VertexResponse,
    ErrorResponse,
    openai_schemas.ChatRequest,
    openai_schemas.CompletionRequest,
    openai_schemas.ChatCompletion,
    openai_schemas.ChatStreamEvent,
    openai_schemas.CompletionFinal,
    openai_schemas.CompletionStreamEvent,
    openai_schemas.ChatTokenizeResponse,
    openai_schemas.ModelList,
)


def package_version() -> str:
    try:
        return importlib.metadata.version("pytgi")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"  # running from a source tree that was never installed


def default_compute_type(device: str) -> str:
    """TGI's default is `gpu+optimized`; on CPU say so."""
    return "cpu" if device == "cpu" else "gpu+optimized"


def build_app(
    client: EngineClient,
    *,
    version: str | None = None,
    compute_type: str | None = None,
    payload_limit: int = DEFAULT_PAYLOAD_LIMIT,
    keepalive_interval_s: float = KEEPALIVE_INTERVAL_S,
    api_key: str | None = None,
    cors_allow_origins: tuple[str, ...] = (),
    validation_workers: int = 2,
    tracing: Tracing | None = None,
    sse_send_timeout_s: float = SEND_TIMEOUT_S,
) -> FastAPI:
    """Build the HTTP app over `client`.

    `version` is reported by /info (default: pytgi's package version; no TGI
    client parses it). `compute_type` is the `x-compute-type` header (the CLI
    passes env COMPUTE_TYPE when set; default from the model's device).
    """
    limits = client.limits
    state = ServerState(
        client=client,
        limits=limits,
        limiter=ConcurrencyLimiter(limits.max_concurrent_requests),
        metrics=TgiMetrics(limits, client.stats),
        version=version or package_version(),
        compute_type=compute_type or default_compute_type(client.model_info.device),
        payload_limit=payload_limit,
        keepalive_interval_s=keepalive_interval_s,
        validation_workers=validation_workers,
    )
    client.add_step_observer(state.metrics.batch.record_step)
    # Swagger UI from files shipped in a package (fastapi-offline), not a CDN:
    # the machine serving a model is often offline. TGI's paths for both.
    app = FastAPIOffline(
        title="Text Generation Inference (pytgi)",
        version=state.version,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/api-doc/openapi.json",
        static_url="/docs/static",
    )
    app.openapi = OpenApiDocument(app, DOCUMENTED_MODELS).build  # type: ignore[method-assign]
    app.state.pytgi = state  # for route modules added later (OpenAI routes)
    app.state.sse_send_timeout_s = sse_send_timeout_s  # read by SseResponse: stalled readers are dropped
    app.add_exception_handler(BodyRejection, _body_rejection_handler)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected_error_handler)
    tgi_routes = TgiRoutes(state)
    openai_routes = OpenAIRoutes(state, tgi_routes.runner)
    routers = (
        ServiceRoutes(state).router(),
        tgi_routes.router(),
        openai_routes.router(),
        CloudRoutes(state, tgi_routes, openai_routes).router(),
        WebRoutes().router(),
    )
    for router in routers:
        app.include_router(router)
    app.state.methods_by_path = methods_by_path(routers)  # for the `Allow` header of a 405
    if api_key is not None:
        app.add_middleware(ApiKeyMiddleware, api_key=api_key)
    if tracing is not None:
        # Outside the API-key check, so rejected requests are traced too.
        app.add_middleware(TracingMiddleware, tracing=tracing)
        app.state.tracing = tracing  # launch.serve flushes it when the server stops
    if cors_allow_origins:
        # Added last, so it runs first: preflight requests carry no credentials.
        # Unlike TGI (any origin when unset), no CORS headers unless origins are configured.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(cors_allow_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["content-type", "authorization"],
        )
    return app


async def _body_rejection_handler(request: Request, exc: BodyRejection) -> Response:
    return exc.response()


HTTP_ERROR_TYPES = {404: "not_found", 405: "method_not_allowed"}


async def _unexpected_error_handler(request: Request, exc: Exception) -> Response:
    """A bug must not leak a traceback or a path to the client: JSON 500, details in the log."""
    body = {"error": "Internal server error", "error_type": "internal"}
    return Response(json_bytes(body), status_code=500, media_type="application/json")


async def _http_error_handler(request: Request, exc: StarletteHTTPException) -> Response:
    """Routing errors (unknown path, wrong method) in the same JSON shape as every other error."""
    body = {"error": str(exc.detail), "error_type": HTTP_ERROR_TYPES.get(exc.status_code, "http")}
    headers = {k: v for k, v in (exc.headers or {}).items() if k.lower() != "allow"}
    if exc.status_code == 405:
        headers["allow"] = ", ".join(allowed_methods(request))
    return Response(json_bytes(body), status_code=exc.status_code, media_type="application/json",
                    headers=headers)


def methods_by_path(routers: Sequence[APIRouter]) -> dict[str, list[str]]:
    """Every method served at each path. Starlette's own `Allow` names only the first
    matching route's methods, and `/` has two routes (GET health, POST generate)."""
    methods: dict[str, set[str]] = {}
    for router in routers:
        for route in router.routes:
            if isinstance(route, APIRoute):
                methods.setdefault(route.path, set()).update(route.methods or ())
    return {path: sorted(names) for path, names in methods.items()}


def allowed_methods(request: Request) -> list[str]:
    return list(request.app.state.methods_by_path.get(request.url.path, ()))


class ServiceRoutes:
    """Unauthenticated routes: health, info, metrics."""

    def __init__(self, state: ServerState) -> None:
        self.state = state

    def router(self) -> APIRouter:
        router = APIRouter(tags=["Text Generation Inference"])
        health = operation(
            ok_description="Everything is working fine",
            errors={503: "Text generation inference is down"},
        )
        for path, name in (("/", "health_root"), ("/health", "health"), ("/ping", "ping")):
            router.add_api_route(
                path, self.health, methods=["GET"], operation_id=name, openapi_extra=health, response_class=Response
            )
        info = operation(ok=Info, ok_description="Served model info")
        router.add_api_route(
            "/info", self.info, methods=["GET"], operation_id="get_model_info", openapi_extra=info,
            response_class=Response,
        )
        metrics = {"responses": {"200": {"description": "Prometheus Metrics",
                                         "content": {"text/plain": {"schema": {"type": "string"}}}}}}
        router.add_api_route(
            "/metrics", self.metrics, methods=["GET"], operation_id="metrics", openapi_extra=metrics,
            response_class=Response,
        )
        return router

    async def health(self) -> Response:
        if not self.state.limiter.draining and await self.state.client.check_health():
            return Response(status_code=200)
        return unhealthy_response()

    async def info(self) -> Response:
        model = self.state.client.model_info
        limits = self.state.limits
        body = {
            "model_id": model.model_id,
            "model_sha": model.model_sha,
            "model_pipeline_tag": model.model_pipeline_tag,
            "max_concurrent_requests": limits.max_concurrent_requests,
            "max_best_of": limits.max_best_of,
            "max_stop_sequences": limits.max_stop_sequences,
            "max_input_tokens": limits.max_input_tokens,
            "max_total_tokens": limits.max_total_tokens,
            "validation_workers": self.state.validation_workers,
            "max_client_batch_size": limits.max_client_batch_size,
            "router": ROUTER_NAME,
            "version": self.state.version,
            "sha": None,
            "docker_label": None,
        }
        return Response(json_bytes(body), media_type="application/json")

    async def metrics(self) -> Response:
        return Response(self.state.metrics.render(), media_type=CONTENT_TYPE)
