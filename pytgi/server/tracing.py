"""OpenTelemetry tracing for `--otlp-endpoint`, shaped like TGI's router traces.

With the flag unset nothing here runs: no middleware is installed, the SDK and
the gRPC exporter are never imported, and `record_generation` returns after one
context-variable lookup. With it set, every HTTP request gets a server span named
after TGI's handler (`generate`, `generate_stream`, ...) that continues the
caller's trace when a W3C `traceparent` header comes in, and generation routes
add `validation`, `queue` and `infer` child spans once the request's timings are known.

The tracer provider belongs to a `Tracing` object instead of being installed
globally, so several apps (tests) can live in one process with their own exporters.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

# The API alone is cheap (FastAPI imports it anyway); the SDK and exporter are imported lazily.
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pytgi.errors import ConfigError
from pytgi.metrics.stats import RequestDurations
from pytgi.protocol import GenerationRequest, RequestOutput

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

INSTRUMENTATION_NAME = "pytgi.server"
GENERIC_SPAN_NAME = "http_request"
FAILED_GENERATION_STATUS = 424

# TGI's handler names, which are its span names, by method and path.
SPAN_NAMES: Mapping[tuple[str, str], str] = {
    ("POST", "/generate"): "generate",
    ("POST", "/generate_stream"): "generate_stream",
    ("POST", "/"): "compat_generate",
    ("POST", "/v1/chat/completions"): "chat_completions",
    ("POST", "/v1/completions"): "completions",
    ("POST", "/tokenize"): "tokenize",
    ("POST", "/chat_tokenize"): "chat_tokenize",
    ("POST", "/vertex"): "vertex_compatibility",
    ("POST", "/invocations"): "sagemaker_compatibility",
    ("GET", "/"): "health",
    ("GET", "/health"): "health",
    ("GET", "/ping"): "health",
    ("GET", "/info"): "get_model_info",
    ("GET", "/metrics"): "metrics",
    ("GET", "/v1/models"): "openai_get_model_info",
}
TRACE_CONTEXT_HEADERS = frozenset({b"traceparent", b"tracestate"})


def span_name(method: str, path: str) -> str:
    return SPAN_NAMES.get((method, path), GENERIC_SPAN_NAME)


class Tracing:
    """One app's tracer provider and its export pipeline.

    Made by `start_tracing` (the OTLP exporter of `--otlp-endpoint`) or by
    `make_tracing` (any span processor: tests use an in-memory exporter).
    `shutdown` exports what is pending and stops the export thread; `launch.serve`
    calls it once the server has stopped.
    """

    def __init__(self, provider: TracerProvider) -> None:
        self._provider = provider
        self.tracer: Tracer = provider.get_tracer(INSTRUMENTATION_NAME)

    def force_flush(self) -> bool:
        """Export every finished span now (blocks up to the exporter's timeout)."""
        return self._provider.force_flush()

    def shutdown(self) -> None:
        """Export what is pending, then stop. A collector that is down delays this by
        the exporter's timeout (OTel's default 10 s, env OTEL_EXPORTER_OTLP_TIMEOUT)."""
        self._provider.shutdown()


def make_tracing(processor: SpanProcessor, service_name: str) -> Tracing:
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider

    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}))
    provider.add_span_processor(processor)
    return Tracing(provider)


def start_tracing(otlp_endpoint: str | None, service_name: str) -> Tracing | None:
    """The `--otlp-endpoint` set-up: spans batched to an OTLP/gRPC collector; None when unset.

    The gRPC channel connects lazily, so a collector that is not up yet does not
    stop the server; its exports fail with a logged warning and are retried.
    """
    if not otlp_endpoint:  # an empty OTLP_ENDPOINT variable means unset too
        return None
    scheme = urlsplit(otlp_endpoint).scheme if "://" in otlp_endpoint else ""
    if scheme not in ("", "http", "https"):
        raise ConfigError(f"`otlp_endpoint` must be http://host:port or https://host:port. Given: {otlp_endpoint}")
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # Collectors listen in plain text unless told otherwise: only https:// asks for TLS.
    exporter = OTLPSpanExporter(endpoint=otlp_endpoint, insecure=scheme != "https")
    return make_tracing(BatchSpanProcessor(exporter), service_name)


@dataclass(frozen=True, slots=True)
class RequestTrace:
    """The span of the HTTP request being handled, and the tracer to add children with."""

    tracer: Tracer
    span: Span


# A context variable rather than `scope["state"]`: a stream's timings become known
# inside its event generator, which has no request object but runs in a task that
# inherits the handler's context.
_REQUEST_TRACE: ContextVar[RequestTrace | None] = ContextVar("pytgi_request_trace", default=None)


class TracingMiddleware:
    """One server span per HTTP request, as a pure ASGI middleware.

    Pure ASGI (see security.py) so streams pass through untouched; the span ends
    when the app returns, which for a stream is after its last event was sent.
    """

    def __init__(self, app: ASGIApp, tracing: Tracing) -> None:
        self.app = app
        self._tracer = tracing.tracer
        self._propagator = TraceContextTextMapPropagator()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        span = self._start_span(scope)
        responded = False

        async def send_traced(message: Message) -> None:
            nonlocal responded
            if message["type"] == "http.response.start":
                responded = True
                record_status(span, message["status"])
            await send(message)

        token = _REQUEST_TRACE.set(RequestTrace(self._tracer, span))
        try:
            # use_span also makes it OpenTelemetry's current span and records an escaping exception.
            with trace.use_span(span, end_on_exit=False):
                await self.app(scope, receive, send_traced)
        except Exception:
            if not responded:
                record_status(span, 500)  # the outermost error middleware answers it
            raise
        finally:
            _REQUEST_TRACE.reset(token)
            route = scope.get("route")  # set by the router once a route matched
            if route is not None and isinstance(getattr(route, "path", None), str):
                span.set_attribute("http.route", route.path)
            span.end()

    def _start_span(self, scope: Scope) -> Span:
        carrier = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope["headers"]
            if name in TRACE_CONTEXT_HEADERS
        }
        parent = self._propagator.extract(carrier)
        method = scope["method"]
        return self._tracer.start_span(
            span_name(method, scope["path"]),
            context=parent,
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": method,
                "url.path": scope["path"],
                "url.scheme": scope.get("scheme", "http"),
            },
        )


def record_status(span: Span, status_code: int) -> None:
    span.set_attribute("http.response.status_code", status_code)
    # OTel's HTTP conventions: a 4xx is the client's error, not the server's. But TGI
    # answers a generation that failed in the model with 424.
    if status_code >= 500 or status_code == FAILED_GENERATION_STATUS:
        span.set_status(Status(StatusCode.ERROR))


@dataclass(frozen=True, slots=True)
class Phase:
    name: str
    start_ns: int
    end_ns: int


def request_phases(durations: RequestDurations, end_ns: int) -> tuple[Phase, Phase, Phase]:
    """TGI's phases as wall-clock intervals, laid back to back so that they end at `end_ns`.

    `RequestDurations` holds lengths only; the request ends "now", so the phases
    are recovered by walking back from the end.
    """
    infer_start_ns = end_ns - _ns(durations.inference_s)
    queue_start_ns = infer_start_ns - _ns(durations.queue_s)
    validation_start_ns = queue_start_ns - _ns(durations.validation_s)
    return (
        Phase("validation", validation_start_ns, queue_start_ns),
        Phase("queue", queue_start_ns, infer_start_ns),
        Phase("infer", infer_start_ns, end_ns),
    )


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


def record_generation(
    durations: RequestDurations, final: RequestOutput, request: GenerationRequest | None = None
) -> None:
    """Add a finished generation's phases and numbers to the current request's span.

    Call once, right after computing `durations` (their end is taken as now).
    Without tracing, or outside a traced request, this does nothing.
    """
    current = _REQUEST_TRACE.get()
    if current is None:
        return
    # TGI's handler-span fields; times in seconds.
    current.span.set_attributes(
        {
            "total_time": durations.total_s,
            "validation_time": durations.validation_s,
            "queue_time": durations.queue_s,
            "inference_time": durations.inference_s,
            "time_per_token": durations.time_per_token_s,
            "input_tokens": final.num_prompt_tokens,
            "generated_tokens": final.num_generated_tokens,
        }
    )
    if final.seed is not None:
        current.span.set_attribute("seed", final.seed)
    if final.finish_reason is not None:
        current.span.set_attribute("finish_reason", final.finish_reason.value)
    if request is not None:
        current.span.set_attribute("parameters", f"{request.sampling!r}, {request.stopping!r}")
    _add_phase_spans(current, request_phases(durations, time.time_ns()), final)


def _add_phase_spans(current: RequestTrace, phases: tuple[Phase, ...], final: RequestOutput) -> None:
    attributes: dict[str, dict[str, str | int]] = {
        "validation": {"input_tokens": final.num_prompt_tokens},
        "queue": {},
        "infer": {"generated_tokens": final.num_generated_tokens},
    }
    if final.finish_reason is not None:
        attributes["infer"]["finish_reason"] = final.finish_reason.value
    parent = trace.set_span_in_context(current.span)
    for phase in phases:
        child = current.tracer.start_span(
            phase.name, context=parent, start_time=phase.start_ns, attributes=attributes[phase.name]
        )
        child.end(end_time=phase.end_ns)
