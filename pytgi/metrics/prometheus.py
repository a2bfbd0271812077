"""TGI's Prometheus metrics, with TGI's exact names and bucket rules.

The only importer of prometheus_client. Each app owns one `TgiMetrics` (its own
`CollectorRegistry`, never the global one), so several apps in one process, as
in tests, do not share counts.

TGI's exporter (metrics-rs) names counters without the `_total` suffix that
prometheus_client's `Counter` appends, and has no `_created` series. So the
state here is plain numbers, turned into metric families at scrape time, and
the text format is written by `render` rather than `generate_latest` (which
renames counters).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterator, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from pytgi.config import ServingLimits
from pytgi.engine.client import EngineStats
from pytgi.metrics.stats import RequestDurations, StepStats

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

FailureKind = str  # "validation" | "overloaded" | "generation" | "incomplete" | "dropped"


def duration_buckets() -> tuple[float, ...]:
    """Every `*duration` histogram: 35 geometric buckets from 0.00015 s, ratio 1.5."""
    buckets = []
    value = 0.0001
    for _ in range(35):
        value *= 1.5
        buckets.append(value)
    return tuple(buckets)


def linear_buckets(max_value: int) -> tuple[float, ...]:
    """100 buckets of width max_value/100 (token-count histograms)."""
    return tuple((max_value / 100.0) * (x + 1) for x in range(100))


class Histogram:
    """Cumulative-at-render histogram: one count per upper bound, plus +Inf."""

    def __init__(self, name: str, documentation: str, bounds: Sequence[float]) -> None:
        self.name = name
        self.documentation = documentation
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        # bisect_left: a value equal to a bound belongs to that bucket (le = "less or equal").
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def family(self) -> HistogramMetricFamily:
        cumulative, buckets = 0, []
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            cumulative += count
            buckets.append((floatToGoString(bound), cumulative))
        return HistogramMetricFamily(self.name, self.documentation, buckets=buckets, sum_value=self.total)


class LabeledHistograms:
    """One histogram per value of a single label (TGI's `{method}` histograms)."""

    def __init__(self, name: str, documentation: str, label: str, bounds: Sequence[float]) -> None:
        self.name = name
        self.documentation = documentation
        self.label = label
        self.bounds = tuple(bounds)
        self._by_value: dict[str, Histogram] = {}

    def observe(self, label_value: str, value: float) -> None:
        histogram = self._by_value.get(label_value)
        if histogram is None:
            histogram = self._by_value[label_value] = Histogram(self.name, self.documentation, self.bounds)
        histogram.observe(value)

    def family(self) -> HistogramMetricFamily:
        family = HistogramMetricFamily(self.name, self.documentation, labels=[self.label])
        for label_value, histogram in sorted(self._by_value.items()):
            single = histogram.family().samples
            buckets = [(s.labels["le"], s.value) for s in single if s.name.endswith("_bucket")]
            family.add_metric([label_value], buckets, sum_value=histogram.total)
        return family


class BatchMetrics:
    """TGI's batch-level metrics, fed by the engine after every step.

    `record_step` runs on the engine thread while scrapes run on the event
    loop; each update is a few integer/float increments under the GIL, so a
    scrape sees every step either before or after (at worst mid-step)."""

    def __init__(self) -> None:
        durations = duration_buckets()
        self.counts: dict[tuple[str, str], int] = {}
        self.num_concats = 0
        self._histograms = [
            LabeledHistograms(name, doc, "method", durations)
            for name, doc in (
                ("tgi_batch_forward_duration", "Model forward and sampling per step (s)"),
                ("tgi_batch_decode_duration", "Detokenization and outputs per step (s)"),
                ("tgi_batch_inference_duration", "Whole engine step (s)"),
            )
        ]
        self.next_size = Histogram("tgi_batch_next_size", "Requests joining the batch per step",
                                   tuple(float(n) for n in range(1, 1025)))

    def record_step(self, stats: StepStats) -> None:
        outcome = "success" if stats.ok else "failure"
        for key in (("count", stats.method), (outcome, stats.method)):
            self.counts[key] = self.counts.get(key, 0) + 1
        forward, decode, inference = self._histograms
        forward.observe(stats.method, stats.forward_s)
        if stats.ok:
            decode.observe(stats.method, stats.outputs_s)
        inference.observe(stats.method, stats.total_s)
        if stats.num_new_requests:
            self.next_size.observe(float(stats.num_new_requests))
            if stats.num_requests > stats.num_new_requests:
                # New requests joined a running batch. With chunked prefill that is
                # TGI v3's "chunking" concatenation, pytgi's only kind.
                self.num_concats += 1

    def collect(self) -> Iterator[Metric]:
        for kind, name, doc in (
            ("count", "tgi_batch_inference_count", "Engine steps, by method"),
            ("success", "tgi_batch_inference_success", "Engine steps that worked, by method"),
            ("failure", "tgi_batch_inference_failure", "Engine steps that failed, by method"),
        ):
            values: dict[tuple[tuple[str, str], ...], int] = {
                (("method", m),): n for (k, m), n in sorted(self.counts.items()) if k == kind
            }
            yield _counter(name, doc, values)
        yield _counter("tgi_batch_concat", "New requests joined to a running batch, by reason",
                       {(("reason", "chunking"),): self.num_concats})
        for histogram in self._histograms:
            yield histogram.family()
        yield self.next_size.family()


class TgiMetrics:
    """Request-level counters and histograms, and engine gauges read at scrape time.

    All record methods are called from the event loop; a scrape runs there too,
    so no locking is needed.
    """

    def __init__(self, limits: ServingLimits, engine_stats: Callable[[], EngineStats]) -> None:
        self._engine_stats = engine_stats
        self.num_requests = 0
        self.num_successes = 0
        self.num_failures: dict[FailureKind, int] = {}
        durations = duration_buckets()
        self._histograms = {
            name: Histogram(name, doc, bounds)
            for name, doc, bounds in (
                ("tgi_request_duration", "End-to-end request duration (s)", durations),
                ("tgi_request_validation_duration", "Arrival to enqueued (s)", durations),
                ("tgi_request_queue_duration", "Enqueued to first scheduled (s)", durations),
                ("tgi_request_inference_duration", "First scheduled to done (s)", durations),
                (
                    "tgi_request_mean_time_per_token_duration",
                    "Inference time per generated token (s)",
                    durations,
                ),
                (
                    "tgi_request_input_length",
                    "Prompt tokens per request",
                    linear_buckets(limits.max_input_tokens),
                ),
                (
                    "tgi_request_generated_tokens",
                    "Generated tokens per request",
                    linear_buckets(limits.max_total_tokens),
                ),
                (
                    "tgi_request_max_new_tokens",
                    "max_new_tokens per request",
                    linear_buckets(limits.max_total_tokens),
                ),
            )
        }
        self.batch = BatchMetrics()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)  # type: ignore[arg-type]  # duck-typed Collector

    # --- recording -------------------------------------------------------------------------

    def request_received(self) -> None:
        self.num_requests += 1

    def request_admitted(self, num_input_tokens: int, max_new_tokens: int) -> None:
        """The engine accepted the request (TGI records these at validation)."""
        self._histograms["tgi_request_input_length"].observe(num_input_tokens)
        self._histograms["tgi_request_max_new_tokens"].observe(max_new_tokens)

    def request_succeeded(self, durations: RequestDurations, num_generated_tokens: int) -> None:
        self.num_successes += 1
        observe = {
            "tgi_request_duration": durations.total_s,
            "tgi_request_validation_duration": durations.validation_s,
            "tgi_request_queue_duration": durations.queue_s,
            "tgi_request_inference_duration": durations.inference_s,
            "tgi_request_mean_time_per_token_duration": durations.time_per_token_s,
            "tgi_request_generated_tokens": float(num_generated_tokens),
        }
        for name, value in observe.items():
            self._histograms[name].observe(value)

    def request_failed(self, kind: FailureKind) -> None:
        self.num_failures[kind] = self.num_failures.get(kind, 0) + 1

    # --- exposition ------------------------------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        """prometheus_client Collector protocol: called on every scrape."""
        yield _counter("tgi_request_count", "Requests received", {(): self.num_requests})
        yield _counter("tgi_request_success", "Requests that succeeded", {(): self.num_successes})
        yield _counter(
            "tgi_request_failure",
            "Requests that failed, by error kind",
            {(("err", kind),): n for kind, n in sorted(self.num_failures.items())},
        )
        stats = self._engine_stats()
        for name, doc, value in (
            ("tgi_queue_size", "Requests waiting to be scheduled", stats.num_waiting),
            ("tgi_batch_current_size", "Requests in the running batch", stats.num_running),
            ("tgi_batch_current_max_tokens", "KV-cache tokens held by the running batch", stats.kv_tokens_in_use),
            ("tgi_batch_max_total_tokens", "KV-cache capacity in tokens", stats.max_batch_total_tokens),
            ("pytgi_kv_cache_blocks_total", "KV-cache blocks", stats.kv_blocks_total),
            ("pytgi_kv_cache_blocks_in_use", "KV-cache blocks in use", stats.kv_blocks_in_use),
        ):
            yield GaugeMetricFamily(name, doc, value=value)
        for histogram in self._histograms.values():
            yield histogram.family()
        yield from self.batch.collect()

    def render(self) -> bytes:
        return render(self.registry)


def _counter(name: str, documentation: str, values: dict[tuple[tuple[str, str], ...], int]) -> Metric:
    # A bare Metric keeps the sample name as given (CounterMetricFamily would add `_total`).
    family = Metric(name, documentation, "counter")
    for labels, value in values.items():
        family.add_sample(name, dict(labels), float(value))
    return family


def render(registry: CollectorRegistry) -> bytes:
    """Prometheus text format 0.0.4, with family and sample names exactly as collected."""
    lines: list[str] = []
    for family in registry.collect():
        documentation = family.documentation.replace("\\", r"\\").replace("\n", r"\n")
        lines.append(f"# HELP {family.name} {documentation}")
        lines.append(f"# TYPE {family.name} {family.type}")
        for sample in family.samples:
            labels = ",".join(f'{key}="{_escape_label(value)}"' for key, value in sample.labels.items())
            label_text = f"{{{labels}}}" if labels else ""
            lines.append(f"{sample.name}{label_text} {_format_value(sample.value)}")
    return ("\n".join(lines) + "\n").encode()


def _format_value(value: float) -> str:
    # Whole numbers print as integers ("3", not "3.0"), as TGI's exporter does.
    if math.isfinite(value) and value == int(value) and abs(value) < 2**53:
        return str(int(value))
    return floatToGoString(value)


def _escape_label(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
