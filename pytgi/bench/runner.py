"""Running `pytgi bench`'s levels on every endpoint, interleaved, under noise control.

For each level, one round runs it on every endpoint in turn (A B ..., same requests);
alone that is one round, in a comparison `--pairs` rounds (A B A B A B ...) with up to
one extra round when `--repeat-noisy` and a round was contaminated. Every measurement
waits for an idle machine first and records the foreign CPU during it (stats.QuietGate).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from pytgi.bench.bench_options import BenchCliOptions
from pytgi.bench.endpoints import ServerLauncher
from pytgi.bench.metrics import RunMetrics, run_metrics
from pytgi.bench.scenarios import Level, Phase, WorkloadBuilder
from pytgi.bench.stats import Noise, QuietGate, interleaved_pairs
from pytgi.bench.traffic import Api, send_all
from pytgi.bench.workload import BenchRequest


@dataclass(frozen=True, slots=True)
class Measurement:
    """One level on one endpoint in one round: metrics per phase, and the noise."""

    level: Level
    endpoint: str
    round_index: int
    phases: dict[str, RunMetrics]
    noise: Noise

    @property
    def warm_over_cold_ttft(self) -> float | None:
        """The prefix scenario's figure: warm-pass TTFT p50 / cold-pass TTFT p50."""
        cold, warm = self.phases.get("cold"), self.phases.get("warm")
        if cold is None or warm is None or cold.ttft_s is None or warm.ttft_s is None or not cold.ttft_s.p50:
            return None
        return warm.ttft_s.p50 / cold.ttft_s.p50

    def as_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.level.scenario, "level": self.level.label, "concurrency": self.level.concurrency,
            "request_rate": self.level.request_rate, "endpoint": self.endpoint, "round": self.round_index,
            "phases": {name: metrics.as_dict() for name, metrics in self.phases.items()},
            "warm_over_cold_ttft_p50": self.warm_over_cold_ttft,
            "foreign_cpu": self.noise.foreign, "own_cpu": self.noise.own, "idle_wait_s": self.noise.idle_wait_s,
            "idle_before": self.noise.idle_before, "contaminated": self.noise.contaminated,
        }


class Progress:
    """tqdm when it is installed, else one line rewritten in place."""

    def __init__(self, total: int, label: str, enabled: bool) -> None:
        self._bar: Any = None
        self._done, self._total, self._label, self._enabled = 0, total, label, enabled
        if enabled:
            try:
                from tqdm import tqdm

                self._bar = tqdm(total=total, desc=label, unit="req", leave=False, file=sys.stderr)
            except ImportError:
                self._bar = None

    def advance(self) -> None:
        self._done += 1
        if self._bar is not None:
            self._bar.update(1)
        elif self._enabled:
            print(f"\r{self._label}: {self._done}/{self._total} requests", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self._enabled:
            print(file=sys.stderr)


class Runner:
    def __init__(self, options: BenchCliOptions, api: Api, endpoints: Sequence[ServerLauncher],
                 models: dict[str, str | None], builder: WorkloadBuilder, gate: QuietGate,
                 report_line: Callable[[Measurement], None]) -> None:
        self._options = options
        self._api = api
        self._endpoints = endpoints
        self._models = models
        self._builder = builder
        self._gate = gate
        self._report_line = report_line

    def warm_up(self) -> None:
        """A few short requests per endpoint, so first-call costs stay out of the figures."""
        request = BenchRequest("The import statement", 0, 4)
        for endpoint in self._endpoints:
            if self._options.num_warmup:
                asyncio.run(send_all(endpoint.url, self._api, self._models[endpoint.name],
                                     [request] * self._options.num_warmup, 2, None, 0, lambda: None))

    def run_level(self, level: Level) -> list[Measurement]:
        def one_round(index: int) -> list[tuple[Measurement, Noise]]:
            phases = self._builder.phases(level, index)  # the same requests for every endpoint
            results = []
            for endpoint in self._endpoints:
                measured, noise = self._gate.measure(partial(self._send, level, endpoint, phases, index),
                                                     extra_pids=endpoint.pids)
                measurement = Measurement(level, endpoint.name, index, measured, noise)
                self._report_line(measurement)
                results.append((measurement, noise))
            return results

        extra = 1 if self._options.repeat_noisy else 0
        num_rounds = self._options.num_pairs if self._options.comparing else 1
        rounds = interleaved_pairs(one_round, num_rounds, extra)
        return [measurement for round_ in rounds for measurement, _ in round_]

    def _send(self, level: Level, endpoint: ServerLauncher, phases: Sequence[Phase],
              index: int) -> dict[str, RunMetrics]:
        total = sum(len(phase.requests) for phase in phases)
        progress = Progress(total, f"{level.label} [{endpoint.name}] round {index}", self._options.progress)
        results = {}
        try:
            for phase in phases:
                run = asyncio.run(send_all(endpoint.url, self._api, self._models[endpoint.name], phase.requests,
                                           level.concurrency, level.request_rate,
                                           self._options.seed + index, progress.advance))
                results[phase.name] = run_metrics(run)
        finally:
            progress.close()
        return results
