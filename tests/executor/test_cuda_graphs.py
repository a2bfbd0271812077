"""Decode-graph bookkeeping, checked on the CPU: padding to a captured batch
size, context buckets, the scratch block, and which steps stay eager. The
capture itself is replaced by an eager replay of the same forward; the real
CUDA capture is compared in test_gpu_runner.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from executor_helpers import TinyDriver, hf_greedy, make_runner, save_tiny_model

from pytgi.config import cuda_graph_sizes
from pytgi.errors import ConfigError
from pytgi.executor.cuda_graphs import CapturedStep, DecodeGraphs
from pytgi.executor.kv_tensors import allocate_kv_cache
from pytgi.executor.model_runner import ModelRunner

PROMPTS = [list(range(3, 20)), [7, 100, 42, 9, 250, 31, 8, 2, 77, 15, 61], [5, 6, 7]]


class EagerReplay:
    """Stands in for torch.cuda.CUDAGraph: replay runs the captured forward again."""

    def __init__(self, graphs: DecodeGraphs, batch_size: int, context_blocks: int) -> None:
        self.graphs, self.key = graphs, (batch_size, context_blocks)
        self.logits = graphs._forward(batch_size, context_blocks)

    def replay(self) -> None:
        self.logits.copy_(self.graphs._forward(*self.key))


class EagerGraphs(DecodeGraphs):
    def _capture(self, batch_size: int, context_blocks: int) -> CapturedStep:
        replay = EagerReplay(self, batch_size, context_blocks)
        return CapturedStep(graph=replay, logits=replay.logits)  # type: ignore[arg-type]


def with_eager_graphs(runner: ModelRunner, sizes: tuple[int, ...]) -> EagerGraphs:
    """Give `runner` a KV cache with a scratch block and decode graphs of `sizes`."""
    spec = runner.kv_cache.spec
    layer = runner.kv_cache.layers[0].key
    layout = runner.model.kv_layout
    runner.kv_cache = allocate_kv_cache(
        layout, spec.num_blocks, spec.block_size, layer.dtype, layer.device, scratch_blocks=1
    )
    graphs = EagerGraphs(runner.model, runner.kv_cache, sizes, scratch_block=spec.num_blocks, device=layer.device)
    runner.decode_graphs = graphs
    return graphs


@pytest.mark.parametrize("kind", ["llama", "mistral"])
def test_graph_steps_match_transformers(kind: str, tmp_path: Path) -> None:
    overrides: dict[str, Any] = {"sliding_window": 8} if kind == "mistral" else {}
    hf_model = save_tiny_model(kind, tmp_path, **overrides)
    runner = make_runner(tmp_path)
    graphs = with_eager_graphs(runner, (1, 2, 4))
    driver = TinyDriver(runner)
    for i, prompt in enumerate(PROMPTS):
        driver.add(f"r{i}", prompt)
    tokens = driver.generate(20, chunk_size=6)
    for i, prompt in enumerate(PROMPTS):
        assert tokens[f"r{i}"] == hf_greedy(hf_model, prompt, 20)[0]
    # Three rows run padded to 4; the longest context grows from 18 to 37 tokens
    # (5 to 10 blocks of 4): buckets of 8, then 16 blocks.
    assert 4 in {size for size, _ in graphs.captured}
    assert {blocks for size, blocks in graphs.captured if size == 4} == {8, 16}


def test_padding_rows_write_only_the_scratch_block(tmp_path: Path) -> None:
    save_tiny_model("llama", tmp_path)
    runner = make_runner(tmp_path)
    graphs = with_eager_graphs(runner, (8,))
    driver = TinyDriver(runner)
    driver.add("a", PROMPTS[0])
    driver.generate(5)
    owned = set(driver.sequences["a"].block_table) | {graphs.scratch_block}
    for layer in runner.kv_cache.layers:
        untouched = [b for b in range(layer.key.shape[0]) if b not in owned]
        assert layer.key[untouched].abs().sum() == 0 and layer.value[untouched].abs().sum() == 0
    assert runner.kv_cache.layers[0].key[graphs.scratch_block].abs().sum() > 0  # 7 padding rows wrote there


def test_steps_beyond_the_largest_size_or_with_prompt_logprobs_stay_eager(tmp_path: Path) -> None:
    save_tiny_model("llama", tmp_path)
    runner = make_runner(tmp_path)
    graphs = with_eager_graphs(runner, (1, 2))
    driver = TinyDriver(runner)
    for i, prompt in enumerate(PROMPTS):
        driver.add(f"r{i}", prompt, want_prompt_logprobs=(i == 0))
    driver.generate(4)
    assert graphs.captured == {}  # three decode rows: above the largest size
    driver.finish("r2")
    driver.generate(6)
    assert {size for size, _ in graphs.captured} == {2}


def test_cuda_graph_sizes_follow_tgi() -> None:
    assert cuda_graph_sizes(None) == (1, 2, 4, 8, 16, 32)
    assert cuda_graph_sizes("8,1, 4") == (1, 4, 8)
    assert cuda_graph_sizes("0") == ()
    for bad in ("", "a,b", "0,4", "-1"):
        with pytest.raises(ConfigError, match="cuda_graphs"):
            cuda_graph_sizes(bad)


def test_cpu_runner_has_no_graphs(tmp_path: Path) -> None:
    save_tiny_model("llama", tmp_path)
    runner = make_runner(tmp_path)
    assert runner.decode_graphs is None
    assert torch.equal(
        torch.tensor(runner.kv_cache.layers[0].key.shape[:1]), torch.tensor([runner.kv_cache_spec.num_blocks])
    )
