"""Decode on a CUDA device: pytgi's runner with CUDA graphs, without them, and
transformers' `generate`, on the random SmolLM2-135M-shaped model, in one run.

    python -m pytgi.bench.gpu_decode --out gpu-decode.json

Per batch size it prefills that many 128-token prompts in one step, then times
`--steps` decode steps (every step reads its sampled tokens back to the host,
so each is synchronous). Before timing it checks that graph replay, the eager
batched backend and the eager reference backend produce the same greedy tokens.
Needs a GPU; prints one JSON document and writes it to `--out`.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from pytgi.bench.random_model import SMOLLM2_135M, default_cache_dir, ensure_model
from pytgi.executor.model_runner import ModelRunner, create_model_runner
from pytgi.protocol import SamplingParams
from pytgi.step import NewRequestData, ScheduledChunk, SchedulerOutput

BLOCK_SIZE = 16


class Batch:
    """A fixed set of sequences stepped together: one prefill step, then decodes."""

    def __init__(self, runner: ModelRunner, prompts: Sequence[Sequence[int]]) -> None:
        self.runner = runner
        free = list(range(runner.kv_cache_spec.num_blocks))
        self.tokens = [list(p) for p in prompts]
        self.tables = [[free.pop() for _ in range(64)] for _ in prompts]  # room for 1024 tokens each
        self.ids = [f"s{i}" for i in range(len(prompts))]
        new = tuple(NewRequestData(i, tuple(p), SamplingParams(), False) for i, p in zip(self.ids, prompts, strict=True))
        self._step(new, [(i, tuple(t), 0) for i, t in enumerate(self.tokens)])

    def decode(self) -> None:
        self._step((), [(i, (t[-1],), len(t) - 1) for i, t in enumerate(self.tokens)])

    def finish(self) -> None:
        self.runner.execute(SchedulerOutput((), (), tuple(self.ids)))

    def _step(self, new: tuple[NewRequestData, ...], work: list[tuple[int, tuple[int, ...], int]]) -> None:
        chunks = tuple(
            ScheduledChunk(self.ids[i], tokens, start, tuple(self.tables[i]), True) for i, tokens, start in work
        )
        result = self.runner.execute(SchedulerOutput(new, chunks, ()))
        for i, _, _ in work:
            self.tokens[i].append(result.sampled[self.ids[i]].token_id)


def prompts(count: int, length: int, seed: int) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randrange(SMOLLM2_135M.vocab_size) for _ in range(length)] for _ in range(count)]


def greedy(runner: ModelRunner, batch_prompts: list[list[int]], steps: int) -> list[list[int]]:
    batch = Batch(runner, batch_prompts)
    for _ in range(steps - 1):
        batch.decode()
    batch.finish()
    return [t[len(p) :] for t, p in zip(batch.tokens, batch_prompts, strict=True)]


def time_decode(runner: ModelRunner, batch_size: int, prompt_len: int, steps: int) -> float:
    """Milliseconds per decode step at `batch_size`."""
    batch = Batch(runner, prompts(batch_size, prompt_len, seed=batch_size))
    for _ in range(3):  # warm-up (and graph capture for the first context bucket)
        batch.decode()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        batch.decode()
    torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    batch.finish()
    return elapsed / steps * 1000


def time_transformers(model_dir: Path, dtype: torch.dtype, batch_size: int, prompt_len: int, steps: int) -> float:
    """transformers `generate` decode milliseconds per step (a 1-token run's time subtracted)."""
    from transformers import AutoModelForCausalLM

    model: Any = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)
    model = model.to("cuda").eval()
    ids = torch.tensor(prompts(batch_size, prompt_len, seed=batch_size), device="cuda")

    def run(new_tokens: int) -> float:
        torch.cuda.synchronize()
        start = time.perf_counter()
        model.generate(ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
        torch.cuda.synchronize()
        return time.perf_counter() - start

    run(4)
    full, first = run(steps + 1), run(1)
    return (full - first) / steps * 1000


def make(model_dir: Path, dtype: str, graphs: str, backend: str = "batched") -> ModelRunner:
    return create_model_runner(
        model_dir,
        dtype=dtype,
        device="cuda",
        block_size=BLOCK_SIZE,
        max_batch_total_tokens=80_000,
        kv_cache_memory_fraction=0.5,
        max_num_batched_tokens=8192,
        attention_backend=backend,
        cuda_graphs=graphs,
    )


def run_dtype(model_dir: Path, dtype: str, sizes: list[int], prompt_len: int, steps: int) -> dict[str, Any]:
    graph_sizes = ",".join(str(s) for s in sorted({1, 2, 4, 8, 16, 32, *sizes}))
    graphed, eager = make(model_dir, dtype, graph_sizes), make(model_dir, dtype, "0")
    reference = make(model_dir, dtype, "0", backend="reference")
    check = prompts(3, 37, seed=7)
    tokens = {name: greedy(r, check, 24) for name, r in (("graphs", graphed), ("eager", eager), ("reference", reference))}
    del reference
    rows = []
    for size in sizes:
        row = {
            "batch_size": size,
            "graphs_ms": time_decode(graphed, size, prompt_len, steps),
            "eager_ms": time_decode(eager, size, prompt_len, steps),
            "transformers_ms": time_transformers(model_dir, getattr(torch, dtype), size, prompt_len, steps),
        }
        for name in ("graphs", "eager", "transformers"):
            row[f"{name}_tok_s"] = size * 1000 / row[f"{name}_ms"]
        row["graphs_vs_eager"] = row["eager_ms"] / row["graphs_ms"]
        row["graphs_vs_transformers"] = row["transformers_ms"] / row["graphs_ms"]
        rows.append(row)
        print(json.dumps({"dtype": dtype, **{k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}}), flush=True)
    assert graphed.decode_graphs is not None
    return {
        "greedy_graphs_equal_eager": tokens["graphs"] == tokens["eager"],
        "greedy_graphs_equal_reference": tokens["graphs"] == tokens["reference"],
        "greedy_tokens": tokens,
        "graphs_captured": sorted(graphed.decode_graphs.captured),
        "rows": rows,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dtypes", default="bfloat16,float32")
    parser.add_argument("--batch-sizes", default="1,8,32,64")
    parser.add_argument("--prompt-len", type=int, default=128)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--cache-dir", type=Path, default=default_cache_dir())
    parser.add_argument("--out", type=Path, default=Path("gpu-decode.json"))
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        parser.error("needs a CUDA device")
    model_dir = ensure_model(SMOLLM2_135M, args.cache_dir)
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    report: dict[str, Any] = {"device": torch.cuda.get_device_name(), "torch": torch.__version__}
    for dtype in args.dtypes.split(","):
        report[dtype] = run_dtype(model_dir, dtype, sizes, args.prompt_len, args.steps)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if not isinstance(v, dict)}))
    for dtype in args.dtypes.split(","):
        summary = {k: v for k, v in report[dtype].items() if k not in ("rows", "greedy_tokens")}
        print(dtype, json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
