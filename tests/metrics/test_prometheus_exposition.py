"""metrics/prometheus.py: TGI's exact metric names, types and bucket rules."""

from __future__ import annotations

import re

import pytest

from pytgi.config import ServingLimits
from pytgi.engine.client import EngineStats
from pytgi.metrics.prometheus import TgiMetrics, duration_buckets, linear_buckets
from pytgi.metrics.stats import RequestDurations

LIMITS = ServingLimits(
    max_input_tokens=1000,
    max_total_tokens=2000,
    max_batch_total_tokens=8192,
    max_concurrent_requests=128,
    max_best_of=2,
    max_stop_sequences=4,
    max_top_n_tokens=5,
    max_client_batch_size=4,
)

COUNTERS = ("tgi_request_count", "tgi_request_success", "tgi_request_failure")
GAUGES = (
    "tgi_queue_size",
    "tgi_batch_current_size",
    "tgi_batch_max_total_tokens",
    "pytgi_kv_cache_blocks_total",
    "pytgi_kv_cache_blocks_in_use",
)
HISTOGRAMS = (
    "tgi_request_duration",
    "tgi_request_validation_duration",
    "tgi_request_queue_duration",
    "tgi_request_inference_duration",
    "tgi_request_mean_time_per_token_duration",
    "tgi_request_input_length",
    "tgi_request_generated_tokens",
    "tgi_request_max_new_tokens",
)


class Stats:
    def __init__(self) -> None:
        self.snapshot = EngineStats(
            num_waiting=3,
            num_running=5,
            kv_blocks_total=512,
            kv_blocks_in_use=40,
            max_batch_total_tokens=8192,
        )

    def __call__(self) -> EngineStats:
        return self.snapshot


def exposition(metrics: TgiMetrics) -> str:
    return metrics.render().decode()


def test_every_name_and_type() -> None:
    text = exposition(TgiMetrics(LIMITS, Stats()))
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, flags=re.M))
    assert {name: types[name] for name in COUNTERS} == dict.fromkeys(COUNTERS, "counter")
    assert {name: types[name] for name in GAUGES} == dict.fromkeys(GAUGES, "gauge")
    assert {name: types[name] for name in HISTOGRAMS} == dict.fromkeys(HISTOGRAMS, "histogram")
    # prometheus_client's Counter would expose `tgi_request_count_total` and `*_created` series.
    assert not re.search(r"^tgi_request_\w+_total", text, flags=re.M)
    assert "_created" not in text


def test_counters_have_tgi_names() -> None:
    metrics = TgiMetrics(LIMITS, Stats())
    for _ in range(3):
        metrics.request_received()
    metrics.request_succeeded(RequestDurations(0.5, 0.01, 0.02, 0.47, 0.047), num_generated_tokens=10)
    metrics.request_failed("validation")
    metrics.request_failed("validation")
    metrics.request_failed("overloaded")
    lines = exposition(metrics).splitlines()
    assert "tgi_request_count 3" in lines
    assert "tgi_request_success 1" in lines
    assert 'tgi_request_failure{err="validation"} 2' in lines
    assert 'tgi_request_failure{err="overloaded"} 1' in lines


def test_gauges_are_read_at_scrape_time() -> None:
    stats = Stats()
    metrics = TgiMetrics(LIMITS, stats)
    lines = exposition(metrics).splitlines()
    for expected in (
        "tgi_queue_size 3",
        "tgi_batch_current_size 5",
        "tgi_batch_max_total_tokens 8192",
        "pytgi_kv_cache_blocks_total 512",
        "pytgi_kv_cache_blocks_in_use 40",
    ):
        assert expected in lines
    stats.snapshot = EngineStats(0, 1, 512, 7, 8192, kv_tokens_in_use=112)
    lines = exposition(metrics).splitlines()
    assert "pytgi_kv_cache_blocks_in_use 7" in lines
    assert "tgi_batch_current_max_tokens 112" in lines


def test_duration_buckets_rule() -> None:
    buckets = duration_buckets()
    assert len(buckets) == 35
    assert buckets[0] == pytest.approx(0.00015)
    assert all(b / a == pytest.approx(1.5) for a, b in zip(buckets, buckets[1:], strict=False))


def test_histogram_exposition() -> None:
    metrics = TgiMetrics(LIMITS, Stats())
    metrics.request_admitted(num_input_tokens=15, max_new_tokens=100)
    metrics.request_succeeded(RequestDurations(0.5, 0.01, 0.02, 0.47, 0.047), num_generated_tokens=10)
    text = exposition(metrics)
    input_buckets = re.findall(r'^tgi_request_input_length_bucket\{le="([^"]+)"\} (\S+)$', text, flags=re.M)
    assert len(input_buckets) == 101  # 100 linear + +Inf
    assert [le for le, _ in input_buckets[:3]] == ["10.0", "20.0", "30.0"]  # step = max_input_tokens / 100
    assert input_buckets[0][1] == "0" and input_buckets[1][1] == "1" and input_buckets[-1] == ("+Inf", "1")
    assert "tgi_request_input_length_sum 15" in text and "tgi_request_input_length_count 1" in text
    generated = re.findall(r'^tgi_request_generated_tokens_bucket\{le="([^"]+)"\}', text, flags=re.M)
    assert generated[:2] == ["20.0", "40.0"]  # step = max_total_tokens / 100
    assert "tgi_request_max_new_tokens_count 1" in text
    duration = re.findall(r'^tgi_request_duration_bucket\{le="([^"]+)"\} (\S+)$', text, flags=re.M)
    assert len(duration) == 36 and duration[-1] == ("+Inf", "1")
    assert "tgi_request_mean_time_per_token_duration_count 1" in text


def test_bucket_bounds_are_inclusive() -> None:
    metrics = TgiMetrics(LIMITS, Stats())
    metrics.request_admitted(num_input_tokens=10, max_new_tokens=20)
    text = exposition(metrics)
    assert 'tgi_request_input_length_bucket{le="10.0"} 1' in text


def test_each_instance_has_its_own_registry() -> None:
    first, second = TgiMetrics(LIMITS, Stats()), TgiMetrics(LIMITS, Stats())
    first.request_received()
    assert "tgi_request_count 1" in exposition(first).splitlines()
    assert "tgi_request_count 0" in exposition(second).splitlines()
    assert first.registry is not second.registry


def test_linear_buckets_small_limits() -> None:
    assert linear_buckets(50)[:2] == (0.5, 1.0)
    assert len(linear_buckets(50)) == 100


def test_batch_metrics_from_engine_steps() -> None:
    from fake_engine import FakeEngine
    from server_harness import make_client

    from pytgi.metrics.stats import StepStats

    engine = FakeEngine()
    client, _ = make_client(engine)
    assert len(engine.step_observers) == 1
    observe = engine.step_observers[0]
    observe(StepStats("prefill", 2, 2, 40, 0.02, 0.001, 0.03, ok=True))
    observe(StepStats("decode", 2, 0, 2, 0.005, 0.001, 0.007, ok=True))
    observe(StepStats("decode", 2, 0, 2, 0.005, 0.0, 0.006, ok=False))
    observe(StepStats("prefill", 3, 1, 9, 0.01, 0.001, 0.02, ok=True))  # one joins two running
    text = client.get("/metrics").text
    assert 'tgi_batch_concat{reason="chunking"} 1' in text
    assert 'tgi_batch_inference_count{method="decode"} 2' in text
    assert 'tgi_batch_inference_count{method="prefill"} 2' in text
    assert 'tgi_batch_inference_success{method="decode"} 1' in text
    assert 'tgi_batch_inference_failure{method="decode"} 1' in text
    assert 'tgi_batch_forward_duration_count{method="decode"} 2' in text
    assert 'tgi_batch_inference_duration_bucket{method="prefill",le="+Inf"} 2' in text
    assert 'tgi_batch_next_size_count 2' in text
