"""What `pytgi bench` prints and records: a line per measurement, a table per
scenario, and for a comparison the per-pair ratios (candidate A / baseline) with
their median and spread. A `*` marks a run above 5 % foreign CPU."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pytgi.bench.metrics import COMPARED, RunMetrics, compared_value
from pytgi.bench.report import format_table, ms
from pytgi.bench.runner import Measurement
from pytgi.bench.stats import FOREIGN_CPU_LIMIT, Summary, median


def star(measurement: Measurement) -> str:
    return f"{100 * measurement.noise.foreign:.1f}%" + ("*" if measurement.noise.contaminated else "")


def pct(summary: Summary | None) -> str:
    """p50/p90/p99 in ms."""
    if summary is None:
        return "-"
    return "/".join(ms(v) for v in (summary.p50, summary.p90, summary.p99))


def counts(metrics: RunMetrics) -> str:
    flag = "" if metrics.exact_token_counts else " (!)"
    return f"{metrics.total_output_tokens}/{metrics.expected_output_tokens}{flag}"


def measurement_line(measurement: Measurement) -> str:
    parts = []
    for name, m in measurement.phases.items():
        phase = "" if name == "all" else f"{name}: "
        ttft = ms(m.ttft_s.p50) if m.ttft_s else "-"
        itl = ms(m.itl_s.p50) if m.itl_s else "-"
        parts.append(f"{phase}{m.output_tokens_per_s:.1f} out tok/s, TTFT p50 {ttft} ms, ITL p50 {itl} ms, "
                     f"tokens {counts(m)}, errors {m.num_errors}")
    if measurement.warm_over_cold_ttft is not None:
        parts.append(f"warm/cold TTFT p50 {measurement.warm_over_cold_ttft:.2f}x")
    return (f"{measurement.level.label} [{measurement.endpoint}] round {measurement.round_index}: "
            f"{'; '.join(parts)}; foreign CPU {star(measurement)}")


def prefix_summary(measurements: Sequence[Measurement]) -> str:
    """Per level and endpoint, the warm / cold TTFT p50 of each round and their
    median: the prefix cache's figure, from the two passes of one run each."""
    ratios: dict[tuple[str, str], list[float]] = {}
    for m in measurements:
        if m.warm_over_cold_ttft is not None:
            ratios.setdefault((m.level.label, m.endpoint), []).append(m.warm_over_cold_ttft)
    return "\n".join(f"{level} [{endpoint}] warm/cold TTFT p50: median {median(values):.2f}x "
                     f"(rounds {', '.join(f'{v:.2f}' for v in values)})"
                     for (level, endpoint), values in ratios.items())


def scenario_table(measurements: Sequence[Measurement]) -> str:
    headers = ["level", "phase", "ep", "round", "req/s", "out tok/s", "TTFT ms p50/90/99", "ITL ms p50/90/99",
               "TPOT ms p50", "E2E ms p50/90/99", "tokens got/asked", "err", "foreign CPU"]
    rows = []
    for m in measurements:
        for name, r in m.phases.items():
            rows.append([m.level.label, name, m.endpoint, str(m.round_index), f"{r.request_throughput:.2f}",
                         f"{r.output_tokens_per_s:.1f}", pct(r.ttft_s), pct(r.itl_s),
                         ms(r.tpot_s.p50) if r.tpot_s else "-", pct(r.e2e_s), counts(r), str(r.num_errors),
                         star(m)])
    return format_table(headers, rows)


@dataclass(frozen=True, slots=True)
class Comparison:
    level: str
    phase: str
    baseline: str
    metric: str
    pair_ratios: tuple[float, ...]
    basis: str

    @property
    def median(self) -> float | None:
        return median(self.pair_ratios) if self.pair_ratios else None

    def as_dict(self) -> dict[str, Any]:
        ratios = self.pair_ratios
        return {"level": self.level, "phase": self.phase, "candidate": "A", "baseline": self.baseline,
                "metric": self.metric, "pair_ratios": list(ratios), "median_ratio": self.median,
                "min_ratio": min(ratios, default=None), "max_ratio": max(ratios, default=None),
                "basis": self.basis, "higher_is_better": COMPARED[self.metric][1]}


def comparisons(measurements: Sequence[Measurement]) -> list[Comparison]:
    """Per level, phase, baseline and metric: A / baseline in each round where both
    ran; over the clean rounds when there are any (a round is clean when none of its
    runs is above the foreign-CPU limit), else over all, and `basis` says which."""
    found = []
    by_level: dict[str, list[Measurement]] = {}
    for m in measurements:
        by_level.setdefault(m.level.label, []).append(m)
    for label, items in by_level.items():
        rounds: dict[int, dict[str, Measurement]] = {}
        for m in items:
            rounds.setdefault(m.round_index, {})[m.endpoint] = m
        clean = [r for r in rounds.values() if all(m.noise.foreign <= FOREIGN_CPU_LIMIT for m in r.values())]
        chosen = clean or list(rounds.values())
        basis = f"{len(clean)} clean of {len(rounds)} pairs" if clean else \
            f"all {len(rounds)} pairs above 5% foreign CPU (contaminated)"
        baselines = sorted({m.endpoint for m in items} - {"A"})
        phases = list(items[0].phases)
        for baseline in baselines:
            for phase in phases:
                for metric in COMPARED:
                    values = [pair_ratio(r, baseline, phase, metric) for r in chosen]
                    found.append(Comparison(label, phase, baseline, metric,
                                            tuple(v for v in values if v is not None), basis))
    return found


def pair_ratio(round_: dict[str, Measurement], baseline: str, phase: str, metric: str) -> float | None:
    if "A" not in round_ or baseline not in round_:
        return None
    a = compared_value(round_["A"].phases[phase], metric)
    b = compared_value(round_[baseline].phases[phase], metric)
    return a / b if a is not None and b else None


def comparison_table(found: Sequence[Comparison]) -> str:
    rows = []
    for c in found:
        name, higher_better = COMPARED[c.metric]
        ratios = c.pair_ratios
        spread = f"{min(ratios):.2f}-{max(ratios):.2f}" if ratios else "-"
        rows.append([c.level, c.phase, f"A/{c.baseline}", f"{name} ({'higher' if higher_better else 'lower'} "
                     "is better)", f"{c.median:.2f}x" if c.median is not None else "-", spread,
                     ", ".join(f"{r:.2f}" for r in ratios), c.basis])
    return format_table(["level", "phase", "ratio", "metric", "median", "spread", "per pair", "basis"], rows)
