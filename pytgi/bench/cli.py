"""`pytgi bench`: drive a TGI- or OpenAI-compatible endpoint with a seeded workload
and report throughput and latency, alone or side by side with baselines
(docs/benchmarks.md, "pytgi bench"). `pytgi bench core [...]` runs the `make bench`
scenario set (pytgi.bench.core_bench) instead.
"""

from __future__ import annotations

import platform
import sys
import time
from collections.abc import Sequence
from typing import Any

from pytgi.bench import bench_report, report
from pytgi.bench.bench_options import BenchCliOptions, parse_bench_options
from pytgi.bench.endpoints import ServerLauncher, endpoint_specs, make_launcher
from pytgi.bench.plot import write_plot
from pytgi.bench.runner import Measurement, Runner
from pytgi.bench.scenarios import Level, WorkloadBuilder, levels, tokens_needed
from pytgi.bench.stats import QuietGate
from pytgi.bench.traffic import make_api, served_model
from pytgi.bench.workload import SpanSource, load_sharegpt, tokenize_reference

PRESETS = ("core",)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "core":
        from pytgi.bench import core_bench

        return core_bench.main(argv[1:])
    options = parse_bench_options(argv)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    output = options.output or options.out_dir / f"bench-{stamp}.json"
    specs = endpoint_specs(options.url, options.cmd, options.compare_urls, options.compare_cmds)
    launchers = [make_launcher(spec, output.parent / output.stem, options.num_threads) for spec in specs]
    try:
        for launcher in launchers:
            print(f"starting {launcher.name}: {launcher.describe().get('command') or launcher.url}", flush=True)
            launcher.start()
        results, measurements = run_all(options, launchers, argv, stamp)
    finally:
        for launcher in launchers:
            launcher.stop()
    path = report.write_json(results, output)
    print(f"\nresults: {path}")
    if options.plot:
        print(write_plot(measurements, output.with_suffix(".png"),
                         {e["name"]: str(e.get("command") or e.get("url")) for e in results["endpoints"]}))
    return 1 if results["num_errors"] else 0


def run_all(options: BenchCliOptions, launchers: Sequence[ServerLauncher], argv: Sequence[str],
            stamp: str) -> tuple[dict[str, Any], list[Measurement]]:
    api = make_api(options.api, options.openai_route)
    models = {launcher.name: options.model or (served_model(launcher.url) if options.api == "openai" else None)
              for launcher in launchers}
    source = SpanSource(launchers[0].url, options.tokenizer)
    text = tokenize_reference(source, tokens_needed(options))
    dataset = load_sharegpt(options.dataset) if options.dataset else None
    print(f"prompts: {'dataset ' + str(options.dataset) if dataset else 'Python language reference'}, "
          f"lengths by {text.basis}", flush=True)
    gate = QuietGate(options.idle_window_s, options.max_idle_wait_s, options.total_idle_wait_s)
    runner = Runner(options, api, launchers, models, WorkloadBuilder(options, text, source, dataset), gate,
                    lambda m: print(bench_report.measurement_line(m), flush=True))
    began = time.perf_counter()
    runner.warm_up()
    measurements = run_levels(runner, levels(options))
    found = bench_report.comparisons(measurements) if options.comparing else []
    if found:
        print("\n## Ratios A / baseline per pair (median, spread min-max)")
        print(bench_report.comparison_table(found))
    results = {
        "tool": "pytgi bench",
        "started": stamp,
        "argv": list(argv),
        "environment": environment(),
        "options": report.jsonable({f: getattr(options, f) for f in options.__slots__}),
        "api": api.name,
        "prompt_lengths_basis": text.basis,
        "endpoints": [launcher.describe() | {"model": models[launcher.name]} for launcher in launchers],
        "duration_s": time.perf_counter() - began,
        "total_idle_wait_s": gate.total_waited_s,
        "runs": [m.as_dict() for m in measurements],
        "comparisons": [c.as_dict() for c in found],
        "num_errors": sum(r.num_errors for m in measurements for r in m.phases.values()),
        "exact_token_counts": all(r.exact_token_counts for m in measurements for r in m.phases.values()),
    }
    return results, measurements


def run_levels(runner: Runner, todo: Sequence[Level]) -> list[Measurement]:
    measurements: list[Measurement] = []
    for scenario in dict.fromkeys(level.scenario for level in todo):
        print(f"\n## {scenario}", flush=True)
        done = [m for level in todo if level.scenario == scenario for m in runner.run_level(level)]
        print(bench_report.scenario_table(done), flush=True)
        summary = bench_report.prefix_summary(done)
        if summary:
            print(summary, flush=True)
        measurements.extend(done)
    return measurements


def environment() -> dict[str, Any]:
    """What the figures depend on on the client side (the servers report their own)."""
    import pytgi

    return {"cpu": report.cpu_model(), "python": platform.python_version(), "pytgi": pytgi.__version__,
            "git": report.git_revision(), "host": platform.node()}


if __name__ == "__main__":
    sys.exit(main())
