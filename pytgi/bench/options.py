"""Options of `python -m pytgi.bench.core_bench` (see docs/benchmarks.md)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pytgi.bench.random_model import default_cache_dir
from pytgi.config import DType

SCENARIOS = ("a", "b", "c")
DESCRIPTION = "pytgi's core performance figures, in one run, with noise control."


@dataclass(frozen=True, slots=True)
class BenchOptions:
    skip: frozenset[str]
    quick: bool
    num_pairs: int
    max_extra_pairs: int
    num_threads: int
    cache_dir: Path
    out_dir: Path
    idle_window_s: float
    max_idle_wait_s: float
    total_idle_wait_s: float
    batching_new_tokens: int
    decode_prompt_tokens: int
    decode_new_tokens: int
    decode_dtypes: tuple[DType, ...]
    num_streams: int
    stream_prompt_tokens: int
    stream_new_tokens: int
    num_stream_runs: int


def parse_options(argv: Sequence[str] | None) -> BenchOptions:
    parser = argparse.ArgumentParser(prog="python -m pytgi.bench.core_bench", description=DESCRIPTION)
    parser.add_argument("--quick", action="store_true", help="few tokens, one pair: a smoke check (< 2 min)")
    parser.add_argument("--skip", default="", help="comma-separated scenarios to skip: a,b,c")
    parser.add_argument("--pairs", type=int, default=None, help="interleaved pairs (default 5, quick 1)")
    parser.add_argument("--max-extra-pairs", type=int, default=None, help="retries of contaminated pairs")
    parser.add_argument("--threads", type=int, default=2, help="torch threads, here and in the server")
    parser.add_argument("--cache-dir", type=Path, default=default_cache_dir(), help="random-model cache folder")
    parser.add_argument("--out-dir", type=Path, default=Path("bench-results"), help="JSON and server logs")
    parser.add_argument("--max-idle-wait-s", type=float, default=None, help="longest wait for an idle machine before each run (default 60, quick 5); "
                        "all waits together stop at 300 s (quick 20)")
    args = parser.parse_args(argv)
    skip = frozenset(s.strip() for s in args.skip.split(",") if s.strip())
    if unknown := skip - set(SCENARIOS):
        parser.error(f"unknown scenario(s) {sorted(unknown)} in --skip; supported: {', '.join(SCENARIOS)}")
    quick = bool(args.quick)
    return BenchOptions(
        skip=skip,
        quick=quick,
        num_pairs=args.pairs or (1 if quick else 5),
        max_extra_pairs=args.max_extra_pairs if args.max_extra_pairs is not None else (0 if quick else 1),
        num_threads=args.threads,
        cache_dir=args.cache_dir,
        out_dir=args.out_dir,
        idle_window_s=1.0 if quick else 3.0,
        max_idle_wait_s=args.max_idle_wait_s if args.max_idle_wait_s is not None else (5.0 if quick else 60.0),
        total_idle_wait_s=20.0 if quick else 300.0,
        batching_new_tokens=16 if quick else 64,
        decode_prompt_tokens=128,
        decode_new_tokens=16 if quick else 128,
        decode_dtypes=("float32", "bfloat16"),
        num_streams=8 if quick else 32,
        stream_prompt_tokens=128,
        stream_new_tokens=16 if quick else 128,
        num_stream_runs=1 if quick else 2,
    )
