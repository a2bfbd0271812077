"""How much this machine's timing moves under identical work: the floor under
any latency-spread figure (ITL p99 / p50) measured on it.

    python -m pytgi.bench.jitter --seconds 20

Times one fixed block of work again and again (by default bf16 matrix products
of about a 32-stream decode step's size, on torch's threads, as a step runs)
and prints the p50, p90 and p99 of its duration and p99 / p50. On a quiet
machine the ratio stays near 1; on a shared VM, other tenants' use of the cores
and of memory bandwidth shows up here exactly as it does in a serving run, so
run it in the same hour as the benchmark it qualifies.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import torch

from pytgi.bench.stats import percentile


def matmul_block(rows: int, width: int, repeats: int, dtype: torch.dtype) -> Callable[[], None]:
    """`repeats` products of [rows, width] by [width, 3 * width]: weights read
    from memory and rows multiplied, as a decode step's linear layers do."""
    generator = torch.Generator().manual_seed(0)
    activations = torch.randn(rows, width, generator=generator).to(dtype)
    weights = torch.randn(width, 3 * width, generator=generator).to(dtype)

    def block() -> None:
        for _ in range(repeats):
            torch.mm(activations, weights)

    return block


def time_blocks(block: Callable[[], None], seconds: float, warmup: int = 3) -> list[float]:
    """Durations (s) of `block()` run back to back for about `seconds`."""
    for _ in range(warmup):
        block()
    durations: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(durations) < 2:
        start = time.perf_counter()
        block()
        durations.append(time.perf_counter() - start)
    return durations


def summary(durations: list[float]) -> dict[str, float]:
    p50, p90, p99 = (percentile(durations, q) for q in (50.0, 90.0, 99.0))
    return {"runs": len(durations), "p50_ms": p50 * 1e3, "p90_ms": p90 * 1e3, "p99_ms": p99 * 1e3,
            "p99_over_p50": p99 / p50}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to keep timing")
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--width", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=6, help="products per timed block")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="bfloat16")
    args = parser.parse_args(argv)
    block = matmul_block(args.rows, args.width, args.repeats, getattr(torch, args.dtype))
    print(json.dumps(summary(time_blocks(block, args.seconds)), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
