"""Numbers for benchmarks: summaries of samples, CPU accounting from /proc, and
the measurement protocol built on it.

On a small shared machine a neighbour's process can halve a result, so every
measurement is bracketed by a `CpuMonitor`: machine-wide busy time minus the time
used by this process tree (the benchmark, its threads and the server it started)
is the *foreign* CPU share, recorded next to the figure it may have spoiled.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

PROC = Path("/proc")
# A run is marked contaminated above this foreign share of the whole machine.
FOREIGN_CPU_LIMIT = 0.05
# Machine and per-process times are sampled separately, at clock-tick (10 ms)
# granularity: a sub-second run can show a couple of "foreign" ticks that are only
# rounding, so that many are forgiven before a share is computed.
TICK_SLACK = 2


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), interpolated linearly as numpy's default does."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile q must be in [0, 100], got {q}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50.0)


@dataclass(frozen=True, slots=True)
class Summary:
    num_values: int
    mean: float
    p50: float
    p90: float
    p99: float
    min: float
    max: float


def summarize(values: Sequence[float]) -> Summary:
    return Summary(
        num_values=len(values),
        mean=sum(values) / len(values),
        p50=percentile(values, 50.0),
        p90=percentile(values, 90.0),
        p99=percentile(values, 99.0),
        min=min(values),
        max=max(values),
    )


def ratios(numerators: Sequence[float], denominators: Sequence[float]) -> list[float]:
    """Element-wise ratios of paired measurements (candidate / baseline per pair)."""
    if len(numerators) != len(denominators):
        raise ValueError(f"unpaired ratios: {len(numerators)} vs {len(denominators)} values")
    return [n / d for n, d in zip(numerators, denominators, strict=True)]


def decode_tokens_per_s(num_new_tokens: int, total_s: float, first_token_s: float) -> float:
    """Decode speed with the prefill taken out: the tokens after the first,
    over the time the full generation took beyond a 1-token generation."""
    decode_s = total_s - first_token_s
    if num_new_tokens < 2 or decode_s <= 0.0:
        return math.nan
    return (num_new_tokens - 1) / decode_s


def common_prefix_length(first: Sequence[int], second: Sequence[int]) -> int:
    """How many leading items two sequences share (e.g. two engines' greedy outputs)."""
    for index, (a, b) in enumerate(zip(first, second, strict=False)):
        if a != b:
            return index
    return min(len(first), len(second))


# ---------------------------------------------------------------------------
# CPU accounting. /proc/stat and /proc/<pid>/stat count in the same clock ticks.


@dataclass(frozen=True, slots=True)
class MachineTicks:
    busy: int
    total: int


def parse_proc_stat(text: str) -> MachineTicks:
    """The aggregate "cpu" line: user nice system idle iowait irq softirq steal ...
    (guest time is already inside user, so later columns are not added)."""
    for line in text.splitlines():
        if line.startswith("cpu "):
            user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in line.split()[1:9])
            busy = user + nice + system + irq + softirq + steal
            return MachineTicks(busy=busy, total=busy + idle + iowait)
    raise ValueError("no aggregate cpu line in /proc/stat")


@dataclass(frozen=True, slots=True)
class ProcessTicks:
    pid: int
    ppid: int
    ticks: int


def parse_pid_stat(text: str) -> ProcessTicks:
    """One /proc/<pid>/stat line. The command name may hold spaces and ')', so
    fields are counted from its last ')'. Ticks include reaped children
    (cutime, cstime), so a helper that exits mid-run still counts as ours."""
    head, _, rest = text.rpartition(")")
    fields = rest.split()
    # fields[0] is field 3 (state): ppid is field 4, utime..cstime are fields 14..17.
    ticks = sum(int(v) for v in fields[11:15])
    return ProcessTicks(pid=int(head.split("(", 1)[0]), ppid=int(fields[1]), ticks=ticks)


def read_machine_ticks() -> MachineTicks:
    return parse_proc_stat((PROC / "stat").read_text())


def all_process_ticks() -> list[ProcessTicks]:
    found = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            found.append(parse_pid_stat((entry / "stat").read_text()))
        except (OSError, ValueError, IndexError):
            continue  # the process ended while we looked
    return found


def tree_ticks(processes: Sequence[ProcessTicks], root_pid: int) -> int:
    """CPU ticks of `root_pid` and all its descendants."""
    children: dict[int, list[ProcessTicks]] = {}
    by_pid = {p.pid: p for p in processes}
    for process in processes:
        children.setdefault(process.ppid, []).append(process)
    total, stack = 0, [by_pid[root_pid]] if root_pid in by_pid else []
    while stack:
        process = stack.pop()
        total += process.ticks
        stack.extend(children.get(process.pid, ()))
    return total


@dataclass(frozen=True, slots=True)
class CpuSample:
    """CPU use over a window, as shares of the whole machine (1.0 = every core busy)."""

    wall_s: float
    machine_busy: float
    own: float
    foreign: float

    @property
    def contaminated(self) -> bool:
        return self.foreign > FOREIGN_CPU_LIMIT


class CpuMonitor:
    """Brackets a measurement: `start()` before it, `stop()` after it. "Own" CPU is
    the tree of `root_pid` (default: this process) plus the trees of `extra_pids`
    (a server under test that this process did not start, e.g. found by its port)."""

    def __init__(self, root_pid: int | None = None, extra_pids: Sequence[int] = ()) -> None:
        self._root_pids = (root_pid if root_pid is not None else os.getpid(), *extra_pids)
        self._start: tuple[float, MachineTicks, int] | None = None

    def start(self) -> None:
        self._start = self._snapshot()

    def stop(self) -> CpuSample:
        if self._start is None:
            raise RuntimeError("CpuMonitor.stop() before start()")
        wall0, machine0, own0 = self._start
        wall1, machine1, own1 = self._snapshot()
        total = max(machine1.total - machine0.total, 1)
        busy = machine1.busy - machine0.busy
        own = own1 - own0
        return CpuSample(
            wall_s=wall1 - wall0,
            machine_busy=busy / total,
            own=own / total,
            foreign=max(busy - own - TICK_SLACK, 0) / total,
        )

    def _snapshot(self) -> tuple[float, MachineTicks, int]:
        processes = all_process_ticks()
        own = sum(tree_ticks(processes, pid) for pid in set(self._root_pids))
        return time.perf_counter(), read_machine_ticks(), own


@dataclass(frozen=True, slots=True)
class IdleWait:
    waited_s: float
    last_foreign: float
    idle: bool


def wait_for_idle(
    window_s: float, max_wait_s: float, limit: float = FOREIGN_CPU_LIMIT, extra_pids: Sequence[int] = ()
) -> IdleWait:
    """Block until one `window_s` window shows foreign CPU at or below `limit`,
    or `max_wait_s` has passed (then `idle` is False and the caller marks the run)."""
    began = time.perf_counter()
    monitor = CpuMonitor(extra_pids=extra_pids)
    while True:
        monitor.start()
        time.sleep(window_s)
        sample = monitor.stop()
        waited = time.perf_counter() - began
        if sample.foreign <= limit or waited >= max_wait_s:
            return IdleWait(waited_s=waited, last_foreign=sample.foreign, idle=sample.foreign <= limit)


# ---------------------------------------------------------------------------
# The measurement protocol: idle wait, monitored run, interleaved pairs.

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Noise:
    """CPU conditions of one measured run (shares of the whole machine)."""

    foreign: float
    own: float
    idle_wait_s: float
    idle_before: bool

    @property
    def contaminated(self) -> bool:
        return self.foreign > FOREIGN_CPU_LIMIT


class QuietGate:
    """Runs each measurement on a machine as quiet as it gets: first waits for an
    idle window (bounded), then runs under a `CpuMonitor`. All waits of one
    benchmark share `total_wait_budget_s`, so a machine that never quiets down
    costs minutes, not hours; its runs are then measured and marked."""

    def __init__(self, idle_window_s: float, max_wait_s: float, total_wait_budget_s: float) -> None:
        self._idle_window_s = idle_window_s
        self._max_wait_s = max_wait_s
        self._total_wait_budget_s = total_wait_budget_s
        self.total_waited_s = 0.0

    def measure(self, action: Callable[[], T], extra_pids: Sequence[int] = ()) -> tuple[T, Noise]:
        """`extra_pids`: processes outside this tree whose CPU is the measurement's own."""
        budget_left = max(self._total_wait_budget_s - self.total_waited_s, 0.0)
        waited = wait_for_idle(self._idle_window_s, min(self._max_wait_s, budget_left), extra_pids=extra_pids)
        self.total_waited_s += waited.waited_s
        monitor = CpuMonitor(extra_pids=extra_pids)
        monitor.start()
        result = action()
        sample = monitor.stop()
        return result, Noise(sample.foreign, sample.own, waited.waited_s, waited.idle)


Pair = list[tuple[T, Noise]]


def interleaved_pairs(run_pair: Callable[[int], Pair[T]], num_pairs: int, max_extra_pairs: int) -> list[Pair[T]]:
    """`num_pairs` pairs (each runs A then B), plus up to `max_extra_pairs` more while
    fewer than `num_pairs` are clean (a pair is clean when none of its runs is marked)."""
    pairs: list[Pair[T]] = []
    while len(pairs) < num_pairs + max_extra_pairs:
        num_clean = sum(1 for pair in pairs if is_clean(pair))
        if len(pairs) >= num_pairs and num_clean >= num_pairs:
            break
        pairs.append(run_pair(len(pairs)))
    return pairs


def is_clean(runs: Sequence[tuple[object, Noise]]) -> bool:
    return not any(noise.contaminated for _, noise in runs)


def headline_pairs(pairs: list[Pair[T]]) -> tuple[list[Pair[T]], str]:
    """The pairs medians are taken over: the clean ones when there are any, else
    all of them, and a phrase saying which."""
    clean = [pair for pair in pairs if is_clean(pair)]
    if clean:
        return clean, f"{len(clean)} clean of {len(pairs)} pairs"
    return pairs, f"all {len(pairs)} pairs above 5% foreign CPU (contaminated)"


# ---------------------------------------------------------------------------
# A probe of the machine itself: on a shared host, a neighbour can take memory
# bandwidth without showing up in /proc/stat, so the raw speeds are recorded at
# the start and the end of a benchmark and a drop between them is visible.


@dataclass(frozen=True, slots=True)
class MachineProbe:
    gemm_gflop_per_s: float  # fp32 1024^3 matmul, median of repeats
    read_gb_per_s: float  # fp32 sum over 256 MiB, median of repeats


def probe_machine(duration_s: float = 2.0) -> MachineProbe:
    import torch

    size = 1024
    a, b = torch.randn(size, size), torch.randn(size, size)  # [size, size] each
    big = torch.ones(64 * 2**20)  # [64 Mi] fp32 = 256 MiB
    gemm = repeat_timed(lambda: torch.mm(a, b), duration_s / 2)
    read = repeat_timed(lambda: big.sum(), duration_s / 2)
    return MachineProbe(
        gemm_gflop_per_s=2 * size**3 / median(gemm) / 1e9,
        read_gb_per_s=big.numel() * big.element_size() / median(read) / 1e9,
    )


def repeat_timed(action: Callable[[], object], duration_s: float) -> list[float]:
    """Seconds per call, over as many calls as fit in `duration_s` (at least 3)."""
    times: list[float] = []
    end = time.perf_counter() + duration_s
    while len(times) < 3 or time.perf_counter() < end:
        began = time.perf_counter()
        action()
        times.append(time.perf_counter() - began)
    return times
