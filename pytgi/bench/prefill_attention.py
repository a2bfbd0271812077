"""One layer's prefill attention: pytgi's bf16 kernel against torch's SDPA as the
layer stack called it before (context gathered from the paged cache, an additive
mask when something is cached), same inputs, alternating calls.

    python -m pytgi.bench.prefill_attention [--heads 9 --kv-heads 3 --head-dim 64]

For each chunk shape (queries after cached positions) prints the median ms of
both and the kernel's useful GFLOP/s (the causal pairs' two products only).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from pytgi.kernels import cpu_kernels

BLOCK_SIZE = 16
SHAPES = ((0, 64), (0, 512), (0, 640), (512, 128), (576, 64), (1016, 1024))  # (cached, new)


def paged_inputs(start: int, length: int, heads: int, kv_heads: int, dim: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    blocks = math.ceil((start + length) / BLOCK_SIZE)
    shape = (blocks, BLOCK_SIZE, kv_heads, dim)
    return {
        "query": torch.randn(length, heads, dim, generator=generator).bfloat16(),
        "key_cache": torch.randn(shape, generator=generator).bfloat16(),
        "value_cache": torch.randn(shape, generator=generator).bfloat16(),
        "table": torch.randperm(blocks, generator=generator),
    }


def sdpa_call(inputs: dict[str, torch.Tensor], start: int, scale: float) -> Callable[[], torch.Tensor]:
    query, table = inputs["query"], inputs["table"]
    size = start + query.shape[0]
    mask = None
    if start:
        hidden = torch.arange(size)[None] > torch.arange(start, size)[:, None]
        mask = torch.zeros(hidden.shape, dtype=query.dtype).masked_fill_(hidden, -math.inf)

    def call() -> torch.Tensor:
        keys, values = (
            inputs[c].index_select(0, table).flatten(0, 1)[:size].transpose(0, 1)[None]
            for c in ("key_cache", "value_cache")
        )
        return F.scaled_dot_product_attention(
            query.transpose(0, 1)[None], keys, values, mask, 0.0, mask is None, scale=scale, enable_gqa=True
        )

    return call


def alternating_median_ms(calls: tuple[Callable[[], object], ...], repeats: int) -> list[float]:
    """The median ms of each call, timed in turns so a slow stretch of the machine hits all alike."""
    for call in calls:
        call()
    times: list[list[float]] = [[] for _ in calls]
    for _ in range(repeats):
        for call, spent in zip(calls, times, strict=True):
            begin = time.perf_counter()
            call()
            spent.append(time.perf_counter() - begin)
    return [sorted(spent)[len(spent) // 2] * 1e3 for spent in times]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--heads", type=int, default=9)
    parser.add_argument("--kv-heads", type=int, default=3)
    parser.add_argument("--head-dim", type=int, default=64, choices=(64, 128))
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args(argv)
    kernels = cpu_kernels()
    if kernels is None or not kernels.prefill_attention_available():
        parser.error("no prefill kernel in this build (it needs AVX512-BF16)")
    scale = 1 / math.sqrt(args.head_dim)
    rows = []
    for start, length in SHAPES:
        inputs = paged_inputs(start, length, args.heads, args.kv_heads, args.head_dim)
        kernel = lambda: kernels.prefill_attention(*inputs.values(), start, scale)  # noqa: E731, B023
        ours, theirs = alternating_median_ms((kernel, sdpa_call(inputs, start, scale)), args.repeats)
        pairs = sum(start + i + 1 for i in range(length))
        gflop = 4 * args.heads * args.head_dim * pairs / 1e9
        rows.append(
            {
                "cached": start,
                "new": length,
                "kernel_ms": ours,
                "sdpa_ms": theirs,
                "kernel_gflops": gflop / ours * 1e3,
                "speedup": theirs / ours,
            }
        )
        print(
            f"{length:5d} new after {start:5d} cached: kernel {ours:7.2f} ms ({rows[-1]['kernel_gflops']:.0f} "
            f"GFLOP/s)  SDPA {theirs:7.2f} ms  {theirs / ours:.1f}x"
        )
    if args.json:
        with open(args.json, "w") as out:
            json.dump(rows, out, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
