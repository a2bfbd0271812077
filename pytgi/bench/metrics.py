"""The figures of one run of `pytgi bench`, computed from its request traces.

Definitions (the usual serving-benchmark ones):
- duration: first request sent -> last request finished;
- request throughput: completed requests / duration; output tokens/s: output tokens
  of completed requests / duration;
- TTFT: send -> first token event of a request;
- ITL: every gap between consecutive token events of a request, all requests pooled;
- TPOT: per request, (last token - first token) / (output tokens - 1);
- end-to-end latency: send -> stream closed.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass
from typing import Any

from pytgi.bench.stats import Summary, summarize
from pytgi.bench.traffic import PhaseRun, RequestTrace

MAX_ERRORS_LISTED = 5


@dataclass(frozen=True, slots=True)
class RunMetrics:
    num_requests: int
    num_completed: int
    num_errors: int
    duration_s: float
    request_throughput: float
    output_tokens_per_s: float
    total_output_tokens: int
    expected_output_tokens: int
    exact_token_counts: bool
    total_prompt_tokens: int
    prompt_tokens_reported: bool
    ttft_s: Summary | None
    itl_s: Summary | None
    tpot_s: Summary | None
    e2e_s: Summary | None
    errors: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def tpot_s(trace: RequestTrace) -> float | None:
    times = trace.token_times_s
    if len(times) < 2 or trace.num_output_tokens < 2:
        return None
    return (times[-1] - times[0]) / (trace.num_output_tokens - 1)


def summary_or_none(values: list[float]) -> Summary | None:
    return summarize(values) if values else None


def run_metrics(run: PhaseRun) -> RunMetrics:
    completed = [t for t in run.traces if t.error is None]
    failed = [t for t in run.traces if t.error is not None]
    duration = max(run.ended_s - run.began_s, 1e-9)
    output_tokens = sum(t.num_output_tokens for t in completed)
    reported_prompts = all(t.reported_prompt_tokens is not None for t in completed) and bool(completed)
    prompt_tokens = sum((t.reported_prompt_tokens or 0) if reported_prompts else t.request.num_prompt_tokens
                        for t in completed)
    errors = Counter(t.error for t in failed)
    return RunMetrics(
        num_requests=len(run.traces),
        num_completed=len(completed),
        num_errors=len(failed),
        duration_s=duration,
        request_throughput=len(completed) / duration,
        output_tokens_per_s=output_tokens / duration,
        total_output_tokens=output_tokens,
        expected_output_tokens=sum(t.request.max_new_tokens for t in run.traces),
        # With ignore_eos every request must produce exactly what it asked for, and
        # the tokens streamed must match the server's own count.
        exact_token_counts=not failed and all(
            t.num_output_tokens == t.request.max_new_tokens for t in completed),
        total_prompt_tokens=prompt_tokens,
        prompt_tokens_reported=reported_prompts,
        ttft_s=summary_or_none([t.token_times_s[0] - t.sent_s for t in completed if t.token_times_s]),
        itl_s=summary_or_none([b - a for t in completed for a, b in zip(t.token_times_s, t.token_times_s[1:],
                                                                       strict=False)]),
        tpot_s=summary_or_none([v for t in completed if (v := tpot_s(t)) is not None]),
        e2e_s=summary_or_none([t.done_s - t.sent_s for t in completed if t.done_s is not None]),
        errors=tuple(f"{count}x {text}" for text, count in errors.most_common(MAX_ERRORS_LISTED)),
    )


# The figures a comparison divides (candidate / baseline), and which way is better.
COMPARED: dict[str, tuple[str, bool]] = {
    "output_tokens_per_s": ("out tok/s", True),
    "request_throughput": ("req/s", True),
    "ttft_p50_s": ("TTFT p50", False),
    "itl_p50_s": ("ITL p50", False),
    "e2e_p50_s": ("E2E p50", False),
}


def compared_value(metrics: RunMetrics, key: str) -> float | None:
    if key in ("output_tokens_per_s", "request_throughput"):
        return float(getattr(metrics, key))
    summary: Summary | None = getattr(metrics, key.removesuffix("_p50_s") + "_s")
    return summary.p50 if summary is not None else None
