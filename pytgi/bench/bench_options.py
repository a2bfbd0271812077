"""Flags of `pytgi bench` (docs/benchmarks.md, "pytgi bench"), parsed into one frozen record."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pytgi.bench.endpoints import unreachable_commands
from pytgi.bench.traffic import API_NAMES

SCENARIOS = ("decode", "mixed", "prefix")
MIN_COMPARE_PAIRS = 3


@dataclass(frozen=True, slots=True)
class BenchCliOptions:
    url: str | None
    cmd: str | None
    api: str
    openai_route: str
    model: str | None
    tokenizer: Path | None
    scenarios: tuple[str, ...]
    concurrency: tuple[int, ...]
    request_rate: float | None
    num_requests: int | None
    input_len: int
    output_len: int | None
    range_ratio: float
    prefix_len: int
    prefix_groups: int
    dataset: Path | None
    seed: int
    compare_urls: tuple[str, ...]
    compare_cmds: tuple[str, ...]
    num_pairs: int
    repeat_noisy: bool
    idle_window_s: float
    max_idle_wait_s: float
    total_idle_wait_s: float
    num_threads: int
    output: Path | None
    out_dir: Path
    plot: bool
    progress: bool
    num_warmup: int

    @property
    def comparing(self) -> bool:
        return bool(self.compare_urls or self.compare_cmds)


def int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pytgi bench",
        description="Benchmark a TGI- or OpenAI-compatible endpoint, alone or side by side with baselines. "
                    "`pytgi bench core [...]` runs the `make bench` scenario set instead.")
    target = parser.add_argument_group("Endpoint")
    target.add_argument("--url", help="endpoint to drive (default: start `pytgi serve` on the demo model)")
    target.add_argument("--cmd", help="server command to start and drive instead of --url; `{port}` is "
                        "replaced by a free port (a command starting with `pytgi serve` needs no port)")
    target.add_argument("--api", choices=API_NAMES, default="tgi", help="wire dialect (default tgi)")
    target.add_argument("--openai-route", choices=("completions", "chat"), default="completions",
                        help="with --api openai: /v1/completions or /v1/chat/completions")
    target.add_argument("--model", help="model name sent to OpenAI routes (default: first of /v1/models)")
    target.add_argument("--tokenizer", type=Path, help="tokenizer.json (or its folder) to size prompts with, "
                        "when the endpoint has no TGI /tokenize")
    work = parser.add_argument_group("Workload")
    work.add_argument("--scenario", default="decode", help=f"comma-separated: {', '.join(SCENARIOS)}")
    work.add_argument("--concurrency", type=int_list, default=(1, 4, 16),
                      help="in-flight requests, a sweep (default 1,4,16)")
    work.add_argument("--request-rate", type=float, help="Poisson arrivals per second (capped by --concurrency)")
    work.add_argument("--num-requests", type=int, help="requests per run (default: decode c, mixed 4c, "
                      "prefix c per pass)")
    work.add_argument("--input-len", type=int, default=128, help="prompt tokens (default 128)")
    work.add_argument("--output-len", type=int, help="new tokens (default 128; with --dataset: the answer's)")
    work.add_argument("--range-ratio", type=float, default=0.0,
                      help="lengths uniform in len*(1-r)..len*(1+r) (default 0: fixed)")
    work.add_argument("--prefix-len", type=int, default=512, help="shared prefix tokens, prefix scenario")
    work.add_argument("--prefix-groups", type=int, default=1,
                      help="distinct shared prefixes, prefix scenario: request i of each pass uses prefix "
                           "i mod N (default 1: one prefix for all; N = concurrency: no two requests of a "
                           "pass share one, so every cold request computes its own)")
    work.add_argument("--dataset", type=Path, help="ShareGPT-style JSON file of prompts")
    work.add_argument("--seed", type=int, default=0)
    compare = parser.add_argument_group("Comparison (interleaved A B A B, per-pair ratios)")
    compare.add_argument("--compare", action="store_true", help="compare with the baselines below "
                         "(implied by them)")
    compare.add_argument("--compare-url", action="append", default=[], help="a baseline endpoint (repeatable)")
    compare.add_argument("--compare-cmd", action="append", default=[], help="a baseline server command "
                         "(repeatable; same rules as --cmd)")
    compare.add_argument("--pairs", type=int, default=MIN_COMPARE_PAIRS, help="pairs per run (min 3)")
    noise = parser.add_argument_group("Noise control")
    noise.add_argument("--repeat-noisy", action="store_true", help="repeat once a run (pair) above 5%% foreign CPU")
    noise.add_argument("--idle-window-s", type=float, default=3.0, help="idle window before a run (default 3)")
    noise.add_argument("--max-idle-wait-s", type=float, default=60.0, help="longest wait for it (default 60)")
    noise.add_argument("--total-idle-wait-s", type=float, default=300.0, help="all waits together (default 300)")
    noise.add_argument("--threads", type=int, default=2, help="OMP_NUM_THREADS of servers started here")
    out = parser.add_argument_group("Output")
    out.add_argument("--output", type=Path, help="JSON path (default bench-results/bench-<time>.json; "
                     "the plot goes beside it as .png)")
    out.add_argument("--no-plot", action="store_true", help="skip the PNG")
    out.add_argument("--no-progress", action="store_true", help="no progress bar")
    out.add_argument("--warmup", type=int, default=2, help="short requests per endpoint before measuring")
    return parser


def parse_bench_options(argv: Sequence[str]) -> BenchCliOptions:
    parser = build_parser()
    args = parser.parse_args(argv)
    scenarios = tuple(s.strip() for s in args.scenario.split(",") if s.strip())
    if unknown := sorted(set(scenarios) - set(SCENARIOS)):
        parser.error(f"unknown scenario(s) {unknown}; supported: {', '.join(SCENARIOS)}")
    if args.url and args.cmd:
        parser.error("give --url or --cmd, not both")
    if args.compare and not (args.compare_url or args.compare_cmd):
        parser.error("--compare needs a baseline: --compare-url URL or --compare-cmd COMMAND")
    for command in unreachable_commands(args.cmd, args.compare_cmd or ()):
        parser.error(f"server command {command!r} has no `{{port}}`: the bench picks a free port and waits "
                     "for the server there (only a command starting with `pytgi serve` gets its port added)")
    if args.pairs < MIN_COMPARE_PAIRS:
        parser.error(f"--pairs must be at least {MIN_COMPARE_PAIRS}, got {args.pairs}")
    for name in ("input_len", "prefix_len", "prefix_groups", "warmup"):
        if getattr(args, name) < (0 if name == "warmup" else 1):
            parser.error(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if args.output_len is not None and args.output_len < 1:
        parser.error(f"--output-len must be positive, got {args.output_len}")
    if not 0.0 <= args.range_ratio < 1.0:
        parser.error(f"--range-ratio must be in [0, 1), got {args.range_ratio}")
    if args.request_rate is not None and args.request_rate <= 0:
        parser.error(f"--request-rate must be positive, got {args.request_rate}")
    return BenchCliOptions(
        url=args.url, cmd=args.cmd, api=args.api, openai_route=args.openai_route, model=args.model,
        tokenizer=args.tokenizer, scenarios=scenarios, concurrency=args.concurrency,
        request_rate=args.request_rate, num_requests=args.num_requests, input_len=args.input_len,
        output_len=args.output_len, range_ratio=args.range_ratio, prefix_len=args.prefix_len,
        prefix_groups=args.prefix_groups,
        dataset=args.dataset, seed=args.seed, compare_urls=tuple(args.compare_url),
        compare_cmds=tuple(args.compare_cmd), num_pairs=args.pairs, repeat_noisy=args.repeat_noisy,
        idle_window_s=args.idle_window_s, max_idle_wait_s=args.max_idle_wait_s,
        total_idle_wait_s=args.total_idle_wait_s, num_threads=args.threads, output=args.output,
        out_dir=args.output.parent if args.output else Path("bench-results"), plot=not args.no_plot,
        progress=not args.no_progress, num_warmup=args.warmup,
    )
