"""`make bench`: pytgi's core performance figures, in one run, with noise control.

(a) batching gain: the demo model behind the real HTTP server, 16 requests one
    after another vs all at once (output tokens/s, and the ratio);
(b) single-stream decode: pytgi's offline `LLM` vs transformers' `generate()` in this
    process, on a random model with SmolLM2-135M's shape, float32 and bfloat16;
(c) 32 concurrent SSE streams of 128 tokens on that model through the server:
    output tokens/s, time to first token and inter-token latency percentiles.

Paired figures are measured interleaved (A B A B ...) and summarised by medians and
per-pair ratios. Before each run the machine must be idle (bounded wait) and
during it the CPU used by other processes is measured; runs above 5 % are marked
with `*`, and contaminated pairs are retried a bounded number of times.
See docs/benchmarks.md for what each figure means.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from pytgi.bench import report
from pytgi.bench.decode_bench import bench_decode
from pytgi.bench.options import BenchOptions, parse_options
from pytgi.bench.random_model import (
    SMOLLM2_135M,
    ensure_model,
    random_prompt_ids,
    words_for_ids,
)
from pytgi.bench.server_process import (
    BatchRun,
    ServerProcess,
    StreamRun,
    generate_concurrent,
    generate_sequential,
    generate_streams,
)
from pytgi.bench.stats import (
    Noise,
    QuietGate,
    headline_pairs,
    interleaved_pairs,
    median,
    probe_machine,
    ratios,
    summarize,
)

# Sentence openings in the style of the demo model's training text (the Python docs).
# Requests also set `ignore_eos` so that every one runs to max_new_tokens: an early
# EOS would shrink the batch and measure something else than batching. The JSON
# records every request's token count, and the report prints the bound they impose.
PYTHON_PROMPTS = (
    "Generators are functions that",
    "Dictionaries map keys to values",
    "The import statement",
    "The for statement is used to iterate",
    "Classes provide a means of",
    "The global statement is a declaration",
    "Tuples are immutable sequences",
    "The yield expression is used",
    "The range type represents",
    "The while statement is used for",
    "The with statement is used to wrap",
    "A list comprehension consists of brackets containing",
    "The try statement specifies exception handlers and",
    "The asyncio event loop runs",
    "The def statement defines",
    "The assert statement is a convenient way to",
)


# ---------------------------------------------------------------------------
# (a) batching gain on the demo model, through HTTP


def bench_batching(options: BenchOptions, gate: QuietGate, log_path: Path) -> dict[str, Any]:
    parameters = {"max_new_tokens": options.batching_new_tokens, "details": True, "ignore_eos": True}
    bodies = [{"inputs": prompt, "parameters": parameters} for prompt in PYTHON_PROMPTS]
    with ServerProcess([], log_path, options.num_threads) as server:
        url = server.base_url
        asyncio.run(generate_concurrent(url, bodies[:2]))  # warm-up: first-call costs stay out

        def one_pair(index: int) -> list[tuple[BatchRun, Noise]]:
            sequential = gate.measure(lambda: asyncio.run(generate_sequential(url, bodies)))
            concurrent = gate.measure(lambda: asyncio.run(generate_concurrent(url, bodies)))
            return [sequential, concurrent]

        pairs = interleaved_pairs(one_pair, options.num_pairs, options.max_extra_pairs)
        dtype = server.served_dtype()
    chosen, basis = headline_pairs(pairs)
    seq = [pair[0][0].tokens_per_s for pair in chosen]
    conc = [pair[1][0].tokens_per_s for pair in chosen]
    return {
        "model": "demo (pytgi serve, no --model-id)",
        "dtype": dtype,
        "num_requests": len(bodies),
        "max_new_tokens": options.batching_new_tokens,
        "runs": [
            {"pair": i, "mode": mode, "wall_s": run.wall_s, "tokens": sum(run.generated_tokens),
             "tokens_per_s": run.tokens_per_s, "tokens_per_request": run.generated_tokens,
             **dataclasses.asdict(noise)}
            for i, pair in enumerate(pairs)
            for mode, (run, noise) in zip(("sequential", "concurrent"), pair, strict=True)
        ],
        # Requests that stop early (EOS) leave the batch: the concurrent phase takes at
        # least as many steps as the longest request, so with a batched step costing
        # as much as a single one the gain is at most total / longest tokens.
        "ratio_bound": median([sum(p[1][0].generated_tokens) / max(p[1][0].generated_tokens) for p in pairs]),
        "pair_ratios": ratios([p[1][0].tokens_per_s for p in pairs], [p[0][0].tokens_per_s for p in pairs]),
        "basis": basis,
        "median_sequential_tokens_per_s": median(seq),
        "median_concurrent_tokens_per_s": median(conc),
        "median_ratio": median(ratios(conc, seq)),
        "target_ratio": 4.0,
    }


# ---------------------------------------------------------------------------
# (c) concurrent SSE streams on the SmolLM2-shaped model


def stream_bodies(options: BenchOptions, num_streams: int, new_tokens: int, seed: int) -> list[dict[str, Any]]:
    """Distinct prompts per stream and per run, so the prefix cache never helps."""
    return [
        {
            "inputs": words_for_ids(random_prompt_ids(options.stream_prompt_tokens, SMOLLM2_135M.vocab_size, seed + i)),
            "parameters": {"max_new_tokens": new_tokens, "details": True, "ignore_eos": True},
        }
        for i in range(num_streams)
    ]


def bench_streams(options: BenchOptions, gate: QuietGate, log_path: Path) -> dict[str, Any]:
    model_dir = ensure_model(SMOLLM2_135M, options.cache_dir)
    tokens_per_stream = options.stream_prompt_tokens + options.stream_new_tokens
    capacity = options.num_streams * (tokens_per_stream + 16)  # + one block of slack per stream
    flags = ["--model-id", str(model_dir), "--max-batch-total-tokens", str(capacity)]
    runs = []
    with ServerProcess(flags, log_path, options.num_threads) as server:
        url = server.base_url
        asyncio.run(generate_streams(url, stream_bodies(options, 2, 4, seed=10_000)))  # warm-up
        for index in range(options.num_stream_runs):
            bodies = stream_bodies(options, options.num_streams, options.stream_new_tokens, seed=1000 * (index + 1))
            runs.append(gate.measure(partial(asyncio.run, generate_streams(url, bodies))))
        dtype = server.served_dtype()
        command = server.command
    summaries = [summarize_streams(run, noise) for run, noise in runs]
    clean = [s for s in summaries if not s["contaminated"]]
    basis = (f"{len(clean)} clean of {len(summaries)} runs" if clean
             else f"all {len(summaries)} runs above 5% foreign CPU (contaminated)")
    return {
        "dtype": dtype,
        "server_command": command[1:],
        "num_streams": options.num_streams,
        "prompt_tokens": options.stream_prompt_tokens,
        "max_new_tokens": options.stream_new_tokens,
        "expected_tokens": options.num_streams * options.stream_new_tokens,
        "runs": summaries,
        "basis": basis,
        "median_tokens_per_s": median([s["tokens_per_s"] for s in clean or summaries]),
    }


def summarize_streams(run: StreamRun, noise: Noise) -> dict[str, Any]:
    ttft = [t.ttft_s for t in run.traces if t.ttft_s is not None]
    itl = [gap for t in run.traces for gap in t.inter_token_s]
    return {
        "wall_s": run.wall_s,
        "num_tokens": run.num_tokens,
        "tokens_per_stream": sorted({len(t.token_times_s) for t in run.traces}),
        "reported_tokens_per_stream": sorted({t.reported_tokens for t in run.traces}, key=str),
        "errors": [t.error for t in run.traces if t.error],
        "tokens_per_s": run.num_tokens / run.wall_s if run.wall_s > 0 else 0.0,
        "ttft_s": dataclasses.asdict(summarize(ttft)) if ttft else None,
        "itl_s": dataclasses.asdict(summarize(itl)) if itl else None,
        "contaminated": noise.contaminated,
        **dataclasses.asdict(noise),
    }


# ---------------------------------------------------------------------------
# Entry point


def run_scenario(name: str, run: Callable[[], Any], show: Callable[[Any], str], results: dict[str, Any]) -> bool:
    """Run one scenario into `results`; a failure is recorded and reported, and
    the other scenarios still run (one broken server must not cost every figure)."""
    try:
        results[name] = run()
    except Exception as error:
        results[name] = {"error": f"{type(error).__name__}: {error}"}
        print(f"\n## ({name}) FAILED: {results[name]['error']}", file=sys.stderr, flush=True)
        return False
    print(show(results[name]), flush=True)
    return True


def run_probe(gate: QuietGate) -> dict[str, Any]:
    probe, noise = gate.measure(probe_machine)
    result = {**dataclasses.asdict(probe), **dataclasses.asdict(noise)}
    print(report.format_probe(result), flush=True)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    import torch

    options = parse_options(argv)
    torch.set_num_threads(options.num_threads)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    results: dict[str, Any] = {"started": stamp, "environment": report.environment(options.num_threads),
                               "options": report.jsonable(dataclasses.asdict(options))}
    gate = QuietGate(options.idle_window_s, options.max_idle_wait_s, options.total_idle_wait_s)
    logs = {name: options.out_dir / f"core_bench-{stamp}-server-{name}.log" for name in ("a", "c")}
    scenarios: dict[str, tuple[Callable[[], Any], Callable[[Any], str]]] = {
        "a": (lambda: bench_batching(options, gate, logs["a"]), report.format_batching),
        "b": (lambda: bench_decode(options, gate), report.format_decode),
        "c": (lambda: bench_streams(options, gate, logs["c"]), report.format_streams),
    }
    began = time.perf_counter()
    results["probe_start"] = run_probe(gate)
    failed = [
        name for name, (run, show) in scenarios.items()
        if name not in options.skip and not run_scenario(name, run, show, results)
    ]
    results["probe_end"] = run_probe(gate)
    results["duration_s"] = time.perf_counter() - began
    results["total_idle_wait_s"] = gate.total_waited_s
    path = report.write_json(results, options.out_dir / f"core_bench-{stamp}.json")
    print(f"\nresults: {path} ({results['duration_s']:.0f} s)" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
