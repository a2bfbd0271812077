"""Turning benchmark results into a readable table and a JSON file.

Results arrive as plain dicts (the same ones written to JSON), so the table is a
view of exactly what was recorded. A `*` marks a run during which other processes
used more than 5 % of the machine's CPU.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pytgi.bench.stats import FOREIGN_CPU_LIMIT


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A markdown table whose columns line up in a terminal too."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def mark(run: Mapping[str, Any]) -> str:
    """Foreign CPU of a run as a percentage, starred when above the limit."""
    star = "*" if run["foreign"] > FOREIGN_CPU_LIMIT else ""
    return f"{100 * run['foreign']:.1f}%{star}"


def ratio_list(values: Sequence[float]) -> str:
    return ", ".join(f"{v:.2f}x" for v in values)


def verdict(value: float, target: float) -> str:
    return "met" if value >= target else "NOT met"


def format_batching(result: Mapping[str, Any]) -> str:
    rows = [
        [str(run["pair"]), run["mode"], str(run["tokens"]), f"{run['wall_s']:.2f}", f"{run['tokens_per_s']:.1f}", mark(run)]
        for run in result["runs"]
    ]
    table = format_table(["pair", "mode", "tokens", "wall s", "out tok/s", "foreign CPU"], rows)
    ratio = result["median_ratio"]
    return "\n".join([
        f"\n## (a) Batching gain: demo model over HTTP, {result['num_requests']} requests x "
        f"{result['max_new_tokens']} new tokens (dtype {result['dtype']})",
        table,
        f"median sequential {result['median_sequential_tokens_per_s']:.1f} tok/s, "
        f"concurrent {result['median_concurrent_tokens_per_s']:.1f} tok/s; "
        f"median ratio {ratio:.2f}x (target >= {result['target_ratio']:.0f}x: {verdict(ratio, result['target_ratio'])})",
        f"per-pair ratios: {ratio_list(result['pair_ratios'])} ({result['basis']})",
        f"bound from early stops (total / longest request's tokens): {result['ratio_bound']:.2f}x",
    ])


def format_decode(results: Sequence[Mapping[str, Any]]) -> str:
    rows = [
        [result["dtype"], str(run["pair"]), run["engine"], str(run["num_new_tokens"]),
         f"{1000 * run['first_token_s']:.0f}", f"{run['total_s']:.2f}", f"{run['decode_tokens_per_s']:.1f}", mark(run)]
        for result in results
        for run in result["runs"]
    ]
    lines = [
        "\n## (b) Single-stream decode, SmolLM2-135M shape (random weights), 128-token prompt",
        format_table(["dtype", "pair", "engine", "new tokens", "1-token ms", "total s", "decode tok/s",
                      "foreign CPU"], rows),
    ]
    for result in results:
        ratio = result["median_ratio"]
        lines.append(
            f"{result['dtype']}: pytgi {result['median_pytgi_decode_tokens_per_s']:.1f} vs transformers "
            f"{result['median_transformers_decode_tokens_per_s']:.1f} decode tok/s; median ratio {ratio:.2f}x "
            f"(target >= {result['target_ratio']:.1f}: {verdict(ratio, result['target_ratio'])}); "
            f"per-pair {ratio_list(result['pair_ratios'])} ({result['basis']}); "
            f"first {result['num_leading_tokens_equal']} tokens identical"
        )
    return "\n".join(lines)


def format_streams(result: Mapping[str, Any]) -> str:
    rows = []
    for index, run in enumerate(result["runs"]):
        ttft, itl = run["ttft_s"] or {}, run["itl_s"] or {}
        rows.append([
            str(index), f"{run['num_tokens']}/{result['expected_tokens']}", f"{run['wall_s']:.1f}",
            f"{run['tokens_per_s']:.1f}", ms(ttft.get("p50")), ms(ttft.get("p99")), ms(itl.get("p50")),
            ms(itl.get("p99")), str(len(run["errors"])), mark(run),
        ])
    table = format_table(["run", "tokens", "wall s", "out tok/s", "TTFT p50 ms", "TTFT p99 ms", "ITL p50 ms",
                          "ITL p99 ms", "errors", "foreign CPU"], rows)
    exact = all(run["num_tokens"] == result["expected_tokens"] and not run["errors"] for run in result["runs"])
    return "\n".join([
        f"\n## (c) {result['num_streams']} concurrent streams over HTTP, SmolLM2-135M shape, "
        f"{result['prompt_tokens']}-token prompts, {result['max_new_tokens']} new tokens (server dtype {result['dtype']})",
        table,
        f"median output {result['median_tokens_per_s']:.1f} tok/s ({result['basis']}); "
        f"exact token counts: {'yes' if exact else 'NO'}",
    ])


def format_probe(result: Mapping[str, Any]) -> str:
    return (f"machine probe: fp32 GEMM {result['gemm_gflop_per_s']:.0f} GFLOP/s, "
            f"read {result['read_gb_per_s']:.1f} GB/s (foreign CPU {mark(result)})")


def ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{1000 * seconds:.0f}"


def environment(num_threads: int) -> dict[str, Any]:
    """What the figures depend on, recorded with them."""
    import torch
    import transformers

    import pytgi

    return {
        "cpu": cpu_model(),
        "num_cpus": os.cpu_count(),
        "num_threads": num_threads,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "pytgi": pytgi.__version__,
        "git": git_revision(),
    }


def cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def git_revision() -> str | None:
    """HEAD plus '-dirty' when the tree has changes; None outside a checkout."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def jsonable(value: Any) -> Any:
    """Paths, sets and NaN made JSON-safe (NaN becomes null)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value) if isinstance(value, (set, frozenset)) else value
        return [jsonable(v) for v in items]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(results: Mapping[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(jsonable(results), indent=2) + "\n")
    return path
