"""Batch-1 figures in one run, per dtype, on the random SmolLM2-135M-shaped model:

- **ceiling**: torch's linear layers alone, `F.linear` over this model's own weights
  (every layer's fused QKV, O, gate-up and down, then the LM head) for one token,
  what a torch engine's step cannot beat without a better kernel;
- **in-process decode**: pytgi's offline `LLM`, a 128-token prompt to 128 new
  tokens, decode time per token (a 1-token run's time taken out);
- **HTTP**: `pytgi serve` on the same files and dtype, one `/generate_stream`
  request of the same shape: time to first token and time per output token.

Rounds run the three in turn (`--rounds`, default 3); medians are reported with
every round's value. HTTP overhead = TPOT over HTTP − in-process ms per token.

    python -m pytgi.bench.batch_one --out bench-results/batch-one.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import torch
import torch.nn.functional as F

from pytgi.bench.decode_bench import pytgi_decoder, time_decode
from pytgi.bench.random_model import (
    SMOLLM2_135M,
    default_cache_dir,
    ensure_model,
    random_prompt_ids,
    words_for_ids,
)
from pytgi.bench.server_process import ServerProcess
from pytgi.bench.stats import decode_tokens_per_s


def linear_weights(model_dir: Path, dtype: str) -> list[torch.Tensor]:
    """The weights of every linear layer as pytgi loads them (fused), then the LM head."""
    from pytgi.executor.model_runner import create_model_runner

    runner = create_model_runner(model_dir, dtype=dtype, device="cpu", block_size=16, max_batch_total_tokens=64,
                                 kv_cache_memory_fraction=0.1, max_num_batched_tokens=64)
    model: Any = runner.model  # an nn.Module: its submodules are what is measured
    weights = [m.weight for m in model.modules() if type(m).__name__ == "Linear"]
    return [*weights, model.lm_head.weight]


def ceiling_ms(weights: Sequence[torch.Tensor], repeats: int = 10, rows: int = 1) -> float:
    """ms per step of `F.linear` alone at `rows` rows, weights streamed from memory."""
    inputs = {w.shape[1]: torch.randn(rows, w.shape[1], dtype=w.dtype) for w in weights}
    with torch.inference_mode():
        for w in weights:  # warm-up
            F.linear(inputs[w.shape[1]], w)
        began = time.perf_counter()
        for _ in range(repeats):
            for w in weights:
                F.linear(inputs[w.shape[1]], w)
    return (time.perf_counter() - began) / repeats * 1000


def http_stream(client: httpx.Client, url: str, prompt: str, new_tokens: int) -> tuple[float, float, int]:
    """(TTFT s, TPOT s, tokens) of one streamed request. The client is made once,
    outside the timing: building an httpx client (its TLS context) takes 50-80 ms."""
    body = {"inputs": prompt, "parameters": {"max_new_tokens": new_tokens, "ignore_eos": True}}
    began = time.perf_counter()
    stamps = []
    with client.stream("POST", f"{url}/generate_stream", json=body, timeout=120) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if line.startswith("data:") and '"token"' in line:
                stamps.append(time.perf_counter())
    ttft = stamps[0] - began
    return ttft, (stamps[-1] - stamps[0]) / max(len(stamps) - 1, 1), len(stamps)


def run_dtype(model_dir: Path, dtype: str, rounds: int, prompt_len: int, new_tokens: int,
              log_dir: Path) -> dict[str, Any]:
    weights = linear_weights(model_dir, dtype)
    decode = pytgi_decoder(model_dir, dtype)  # type: ignore[arg-type]
    vocab = SMOLLM2_135M.vocab_size
    decode(random_prompt_ids(prompt_len, vocab, seed=99), 4)  # warm-up
    results: dict[str, list[float]] = {k: [] for k in ("ceiling_ms", "decode_ms", "prefill_ms", "http_ttft_ms",
                                                        "http_tpot_ms", "http_tokens")}
    flags = ["--model-id", str(model_dir), "--dtype", dtype, "--max-batch-total-tokens", "4096"]
    with (
        ServerProcess(flags, log_dir / f"batch-one-server-{dtype}.log", torch.get_num_threads()) as server,
        httpx.Client() as client,
    ):
        http_stream(client, server.base_url, words_for_ids(random_prompt_ids(prompt_len, vocab, seed=98)), 4)
        for index in range(rounds):
            results["ceiling_ms"].append(ceiling_ms(weights))
            timing = time_decode(decode, random_prompt_ids(prompt_len, vocab, seed=index), new_tokens)
            speed = decode_tokens_per_s(len(timing.token_ids), timing.total_s, timing.first_token_s)
            results["decode_ms"].append(1000 / speed)
            results["prefill_ms"].append(timing.first_token_s * 1000)
            # A prompt never seen (seed 1000+), so the server's prefix cache cannot shorten it.
            prompt = words_for_ids(random_prompt_ids(prompt_len, vocab, seed=1000 + index))
            ttft, tpot, count = http_stream(client, server.base_url, prompt, new_tokens)
            results["http_ttft_ms"].append(ttft * 1000)
            results["http_tpot_ms"].append(tpot * 1000)
            results["http_tokens"].append(count)
    med = {key: statistics.median(values) for key, values in results.items()}
    # The large-batch side of the same ceiling, for the scaling table: output tok/s at M rows.
    batch_ceilings = {rows: rows * 1000 / ceiling_ms(weights, 3, rows) for rows in (8, 32, 64)}
    return {
        "dtype": dtype,
        "ceiling_tok_s_at_rows": batch_ceilings,
        "rounds": results,
        "median": med,
        "ceiling_tok_s": 1000 / med["ceiling_ms"],
        "decode_tok_s": 1000 / med["decode_ms"],
        "decode_vs_ceiling": med["ceiling_ms"] / med["decode_ms"],
        "http_overhead_ms": med["http_tpot_ms"] - med["decode_ms"],
        "round_ratios": [c / d for c, d in zip(results["ceiling_ms"], results["decode_ms"], strict=True)],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--prompt-len", type=int, default=128)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache-dir", type=Path, default=default_cache_dir())
    parser.add_argument("--out", type=Path, default=Path("bench-results/batch-one.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model_dir = ensure_model(SMOLLM2_135M, args.cache_dir)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = [run_dtype(model_dir, dtype, args.rounds, args.prompt_len, args.new_tokens, args.out.parent)
              for dtype in args.dtypes.split(",")]
    args.out.write_text(json.dumps(report, indent=2))
    for item in report:
        m = item["median"]
        print(f"{item['dtype']}: decode {item['decode_tok_s']:.1f} tok/s vs linear-only ceiling "
              f"{item['ceiling_tok_s']:.1f} tok/s = {item['decode_vs_ceiling']:.2f}x "
              f"(rounds {', '.join(f'{r:.2f}' for r in item['round_ratios'])}); "
              f"TTFT over HTTP {m['http_ttft_ms']:.0f} ms (in-process prefill {m['prefill_ms']:.0f} ms); "
              f"TPOT over HTTP {m['http_tpot_ms']:.1f} ms vs in-process {m['decode_ms']:.1f} ms: "
              f"HTTP overhead {item['http_overhead_ms']:.1f} ms; linear-only ceiling at 8/32/64 rows: "
              + ", ".join(f"{v:.0f}" for v in item["ceiling_tok_s_at_rows"].values()) + " tok/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
