"""Load and soak runs against the live server on the demo model.

    python tests/load/load_runner.py --mix load --duration 60     # `make load` (also in make test)
    python tests/load/load_runner.py --mix soak --duration 600    # `make soak`

N closed-loop clients pick requests from a seeded mix (tests/load/scenarios.py)
for the given time. The run fails on any unexpected answer (a 5xx, a stream that
did not end properly, a schema-breaking grammar answer), when the server is not
idle afterwards (no queued or running request, no KV block in use), or, for a
soak, when the server's RSS grows by 1 MB/min or more after warm-up or its file
descriptors or threads do not come back to their baseline. The report (JSON)
is printed and written to --report.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from live_server import LiveServer  # noqa: E402
from scenarios import LOAD_MIX, SOAK_MIX, Unexpected, describe, pick  # noqa: E402
from stats_probe import ProcessProbe, Sample, slope_mb_per_min  # noqa: E402

SERVER_ARGS = ("--max-concurrent-requests", "64", "--max-batch-total-tokens", "32768")
MAX_RSS_SLOPE_MB_PER_MIN = 1.0
RESOURCE_TOLERANCE = 2  # fds / threads a server may legitimately keep (e.g. a pooled worker)


@dataclass
class Report:
    mix: str
    clients: int
    duration_s: float
    requests: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)
    idle_after: dict[str, float] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)
    rss_slope_mb_per_min: float | None = None
    baseline: Sample | None = None
    final: Sample | None = None
    failures: list[str] = field(default_factory=list)


async def client_loop(url: str, mix: dict, seed: int, until_s: float, counts: Counter, unexpected: list[str]) -> None:
    rng = random.Random(seed)
    timeout = httpx.Timeout(120.0)
    async with httpx.AsyncClient(base_url=url, timeout=timeout) as client:
        while time.monotonic() < until_s:
            name, scenario = pick(mix, rng)
            try:
                counts[f"{name}:{await scenario(client, rng)}"] += 1
            except Unexpected as error:
                unexpected.append(f"{name}: {error}")
            except Exception as error:  # a transport failure is unexpected too
                unexpected.append(f"{name}: {describe(error)}")


async def sample_loop(probe: ProcessProbe, samples: list[Sample], until_s: float, every_s: float) -> None:
    start = time.monotonic()
    while time.monotonic() < until_s:
        samples.append(probe.sample(time.monotonic() - start))
        await asyncio.sleep(every_s)


async def run(url: str, probe: ProcessProbe, report: Report, mix: dict) -> None:
    until_s = time.monotonic() + report.duration_s
    counts: Counter = Counter()
    sampler = asyncio.ensure_future(sample_loop(probe, report.samples, until_s, every_s=5.0))
    await asyncio.gather(*[
        client_loop(url, mix, seed, until_s, counts, report.unexpected) for seed in range(report.clients)
    ])
    await sampler
    report.outcomes = dict(sorted(counts.items()))
    report.requests = sum(counts.values()) + len(report.unexpected)


def wait_idle(server: LiveServer, timeout_s: float = 60.0) -> dict[str, float]:
    names = ("tgi_queue_size", "tgi_batch_current_size", "pytgi_kv_cache_blocks_in_use")
    deadline = time.monotonic() + timeout_s
    while True:
        values = {name: server.metric(name) for name in names}
        if not any(values.values()) or time.monotonic() > deadline:
            return values
        time.sleep(0.2)


def warm_up(url: str, mix: dict) -> None:
    """One of each request kind, so that lazily started threads exist before the baseline."""
    async def once() -> None:
        rng = random.Random(0)
        async with httpx.AsyncClient(base_url=url, timeout=120.0) as client:
            for name, (scenario, _) in mix.items():
                try:
                    await scenario(client, rng)
                except Unexpected as error:
                    raise RuntimeError(f"warm-up {name} failed: {error}") from error

    asyncio.run(once())


def judge(report: Report, soak: bool) -> None:
    if report.unexpected:
        report.failures.append(f"{len(report.unexpected)} unexpected answers")
    if any(report.idle_after.values()):
        report.failures.append(f"not idle after the run: {report.idle_after}")
    warm = [s for s in report.samples if s.t_s >= min(120.0, report.duration_s / 3)]
    report.rss_slope_mb_per_min = slope_mb_per_min(warm)
    if soak and report.rss_slope_mb_per_min is not None and report.rss_slope_mb_per_min >= MAX_RSS_SLOPE_MB_PER_MIN:
        report.failures.append(f"RSS grows {report.rss_slope_mb_per_min:.2f} MB/min after warm-up")
    if soak and report.baseline and report.final:
        if report.final.num_fds > report.baseline.num_fds + RESOURCE_TOLERANCE:
            report.failures.append(f"fds {report.baseline.num_fds} -> {report.final.num_fds}")
        if report.final.num_threads > report.baseline.num_threads + RESOURCE_TOLERANCE:
            report.failures.append(f"threads {report.baseline.num_threads} -> {report.final.num_threads}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mix", choices=("load", "soak"), default="load")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--report", type=Path, default=None, help="write the JSON report here")
    args = parser.parse_args(argv)
    mix = SOAK_MIX if args.mix == "soak" else LOAD_MIX
    report = Report(mix=args.mix, clients=args.clients, duration_s=args.duration)
    log = Path(args.report or "load-server.log").with_suffix(".server.log")
    server = LiveServer(SERVER_ARGS, log)
    try:
        server.wait_healthy()
        probe = ProcessProbe(server.process.pid)
        warm_up(server.url, mix)
        wait_idle(server)
        report.baseline = probe.sample(0.0)
        asyncio.run(run(server.url, probe, report, mix))
        report.idle_after = wait_idle(server)
        time.sleep(1.0)  # let closed connections' sockets go
        report.final = probe.sample(report.duration_s)
    finally:
        exit_code = server.stop()
    if exit_code != 0:
        report.failures.append(f"server exited with {exit_code}")
    judge(report, soak=args.mix == "soak")
    text = json.dumps(asdict(report), indent=2)
    print(text)
    if args.report:
        args.report.write_text(text + "\n")
    for failure in report.failures:
        print("FAILED:", failure, file=sys.stderr)
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
