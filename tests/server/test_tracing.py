"""OpenTelemetry tracing: span names and phases in memory, one real OTLP/gRPC export,
and nothing at all when `--otlp-endpoint` is unset."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from fake_engine import FakeEngine, FakeScript
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from server_harness import make_app, make_client, sse_events, wait_until
from starlette.testclient import TestClient

from pytgi.errors import ConfigError
from pytgi.metrics.stats import RequestDurations
from pytgi.server import launch
from pytgi.server.tracing import Tracing, TracingMiddleware, make_tracing, request_phases, start_tracing

SERVICE_NAME = "pytgi-test"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN_ID = "00f067aa0ba902b7"


@pytest.fixture
def exported() -> Iterator[tuple[Tracing, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    tracing = make_tracing(SimpleSpanProcessor(exporter), SERVICE_NAME)
    yield tracing, exporter
    tracing.shutdown()


def spans_by_name(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    spans = exporter.get_finished_spans()
    by_name = {span.name: span for span in spans}
    assert len(by_name) == len(spans), [span.name for span in spans]
    return by_name


def assert_phases_under(root: ReadableSpan, spans: dict[str, ReadableSpan]) -> None:
    """validation, queue and infer are children of `root`, back to back, inside it."""
    phases = [spans["validation"], spans["queue"], spans["infer"]]
    for phase in phases:
        assert phase.parent is not None and phase.parent.span_id == root.context.span_id
        assert phase.context.trace_id == root.context.trace_id
        assert phase.start_time is not None and phase.end_time is not None
        assert phase.start_time <= phase.end_time
    assert root.start_time is not None and root.end_time is not None
    # The phases come from monotonic durations, the root from the wall clock: allow 1 ms of skew.
    assert phases[0].start_time >= root.start_time - 1_000_000  # type: ignore[operator]
    assert phases[0].end_time == phases[1].start_time and phases[1].end_time == phases[2].start_time
    assert phases[2].end_time <= root.end_time  # type: ignore[operator]


def test_generate_span(exported: tuple[Tracing, InMemorySpanExporter]) -> None:
    tracing, exporter = exported
    client, _ = make_client(tracing=tracing)
    response = client.post("/generate", json={"inputs": "Hi there", "parameters": {"max_new_tokens": 3}})
    assert response.status_code == 200
    spans = spans_by_name(exporter)
    assert set(spans) == {"generate", "validation", "queue", "infer"}
    root = spans["generate"]
    assert root.kind == SpanKind.SERVER and root.parent is None
    assert root.resource.attributes["service.name"] == SERVICE_NAME
    attributes = root.attributes or {}
    assert attributes["http.request.method"] == "POST"
    assert attributes["http.route"] == "/generate"
    assert attributes["http.response.status_code"] == 200
    assert attributes["input_tokens"] == 2
    assert attributes["generated_tokens"] == 3
    assert attributes["finish_reason"] == "length"
    assert "max_new_tokens=3" in str(attributes["parameters"])
    assert 0 <= attributes["inference_time"] <= attributes["total_time"]  # type: ignore[operator]
    assert_phases_under(root, spans)
    assert (spans["infer"].attributes or {})["generated_tokens"] == 3
    assert (spans["validation"].attributes or {})["input_tokens"] == 2


def test_generate_stream_span_covers_the_stream(exported: tuple[Tracing, InMemorySpanExporter]) -> None:
    tracing, exporter = exported
    client, _ = make_client(tracing=tracing)
    response = client.post("/generate_stream", json={"inputs": "a b c", "parameters": {"max_new_tokens": 2}})
    assert len(sse_events(response.text)) == 2
    spans = spans_by_name(exporter)
    root = spans["generate_stream"]
    attributes = root.attributes or {}
    assert attributes["http.response.status_code"] == 200
    assert attributes["input_tokens"] == 3 and attributes["generated_tokens"] == 2
    assert_phases_under(root, spans)


def test_traceparent_continues_the_callers_trace(exported: tuple[Tracing, InMemorySpanExporter]) -> None:
    tracing, exporter = exported
    client, _ = make_client(tracing=tracing)
    headers = {"traceparent": f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01"}
    assert client.post("/", json={"inputs": "Hi"}, headers=headers).status_code == 200
    root = spans_by_name(exporter)["compat_generate"]
    assert root.context.trace_id == int(TRACE_ID, 16)
    assert root.parent is not None and root.parent.span_id == int(PARENT_SPAN_ID, 16)
    assert root.parent.is_remote


@pytest.mark.parametrize(
    ("method", "path", "body", "name", "status"),
    [
        ("POST", "/tokenize", {"inputs": "a b"}, "tokenize", 200),
        ("POST", "/invocations", {"inputs": "Hi"}, "sagemaker_compatibility", 200),
        ("POST", "/vertex", {"instances": [{"inputs": "Hi"}]}, "vertex_compatibility", 200),
        ("GET", "/health", None, "health", 200),
        ("GET", "/nowhere", None, "http_request", 404),
    ],
)
def test_span_names_follow_tgi_handlers(
    exported: tuple[Tracing, InMemorySpanExporter], method: str, path: str, body: Any, name: str, status: int
) -> None:
    tracing, exporter = exported
    client, _ = make_client(tracing=tracing)
    assert client.request(method, path, json=body).status_code == status
    root = next(span for span in exporter.get_finished_spans() if span.parent is None)
    assert root.name == name
    assert (root.attributes or {})["http.response.status_code"] == status


def test_failed_generation_marks_the_span(exported: tuple[Tracing, InMemorySpanExporter]) -> None:
    tracing, exporter = exported
    client, _ = make_client(FakeEngine(script=FakeScript(fail_after=1)), tracing=tracing)
    response = client.post("/generate", json={"inputs": "Hi"})
    assert response.status_code == 424  # TGI's status for a generation that failed
    spans = spans_by_name(exporter)
    assert set(spans) == {"generate"}  # no phases: the request never finished
    assert spans["generate"].status.status_code == StatusCode.ERROR


def test_unexpected_error_is_a_500_span(exported: tuple[Tracing, InMemorySpanExporter]) -> None:
    tracing, exporter = exported
    app, engine = make_app(tracing=tracing)

    async def broken_tokenize(text: str) -> list[Any]:
        raise RuntimeError("a bug")

    engine.tokenize = broken_tokenize  # type: ignore[method-assign]
    assert TestClient(app, raise_server_exceptions=False).post("/tokenize", json={"inputs": "a"}).status_code == 500
    root = spans_by_name(exporter)["tokenize"]
    assert (root.attributes or {})["http.response.status_code"] == 500
    assert root.status.status_code == StatusCode.ERROR
    assert [event.name for event in root.events] == ["exception"]


def test_phases_are_laid_back_to_back_ending_now() -> None:
    durations = RequestDurations(
        total_s=0.6, validation_s=0.1, queue_s=0.2, inference_s=0.3, time_per_token_s=0.1
    )
    validation, queue, infer = request_phases(durations, end_ns=10_000_000_000)
    assert (validation.start_ns, validation.end_ns) == (9_400_000_000, 9_500_000_000)
    assert (queue.start_ns, queue.end_ns) == (9_500_000_000, 9_700_000_000)
    assert (infer.start_ns, infer.end_ns) == (9_700_000_000, 10_000_000_000)


# --- a real OTLP/gRPC export -----------------------------------------------------------------


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """The trace half of an OpenTelemetry collector: keeps what it is sent."""

    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self._lock = threading.Lock()

    def Export(  # noqa: N802 (the gRPC method's name)
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        with self._lock:
            self.requests.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()

    def spans(self) -> list[tuple[str, str]]:
        """(service.name, span name) of every span received."""
        found = []
        with self._lock:
            for request in self.requests:
                for resource_spans in request.resource_spans:
                    attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                    for scope_spans in resource_spans.scope_spans:
                        for span in scope_spans.spans:
                            found.append((attributes.get("service.name", ""), span.name))
        return found


@pytest.fixture
def collector() -> Iterator[tuple[Collector, int]]:
    servicer = Collector()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, port
    server.stop(grace=None)


def test_spans_reach_an_otlp_collector(collector: tuple[Collector, int]) -> None:
    servicer, port = collector
    tracing = start_tracing(f"http://127.0.0.1:{port}", "my-router")
    assert tracing is not None
    try:
        client, _ = make_client(tracing=tracing)
        assert client.post("/generate", json={"inputs": "Hi", "parameters": {"max_new_tokens": 2}}).status_code == 200
        assert tracing.force_flush()
        wait_until(lambda: ("my-router", "generate") in servicer.spans())
        assert {name for _, name in servicer.spans()} >= {"generate", "validation", "queue", "infer"}
    finally:
        tracing.shutdown()


def test_endpoint_must_be_http_or_https() -> None:
    with pytest.raises(ConfigError, match="otlp_endpoint"):
        start_tracing("ftp://collector:4317", "svc")


# --- unset: nothing --------------------------------------------------------------------------

UNSET_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path[:0] = [{server_tests!r}]
    from server_harness import make_client
    from pytgi.server.tracing import start_tracing
    assert start_tracing(None, "svc") is None
    client, _ = make_client()
    assert client.post("/generate", json={{"inputs": "Hi"}}).status_code == 200
    heavy = [m for m in ("opentelemetry.sdk", "grpc") if m in sys.modules]
    assert not heavy, heavy
    """
)


def test_unset_endpoint_sets_up_nothing() -> None:
    app, _ = make_app()
    assert not any(m.cls is TracingMiddleware for m in app.user_middleware)
    assert getattr(app.state, "tracing", None) is None
    # In a fresh interpreter: serving a request never imports the SDK or gRPC.
    script = UNSET_SCRIPT.format(server_tests=str(Path(__file__).parent))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_serve_shuts_tracing_down_on_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    class SpyTracing:
        def shutdown(self) -> None:
            calls.append("shutdown")

    monkeypatch.setattr(launch._Server, "run", lambda self, sockets=None: calls.append("run"))
    app, _ = make_app()
    app.state.tracing = SpyTracing()
    launch.serve(app, "127.0.0.1", 0)
    assert calls == ["run", "shutdown"]
