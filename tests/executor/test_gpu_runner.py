"""The same parity checks on a CUDA device (skipped without one)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from executor_helpers import TinyDriver, hf_greedy, make_runner, save_tiny_model

from pytgi.executor.model_runner import create_model_runner
from pytgi.protocol import SamplingParams

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
PROMPTS = [list(range(3, 20)), [7, 100, 42, 9, 250, 31, 8, 2, 77, 15, 61]]


@pytest.mark.parametrize("kind", ["llama", "mistral", "qwen2", "gpt2"])
def test_cuda_float32_matches_transformers(kind: str, tmp_path: Path) -> None:
    overrides = {"sliding_window": 8} if kind == "mistral" else {}
    hf_model = save_tiny_model(kind, tmp_path, **overrides)
    driver = TinyDriver(make_runner(tmp_path, device="cuda"))
    for i, prompt in enumerate(PROMPTS):
        driver.add(f"r{i}", prompt)
    tokens = driver.generate(16, chunk_size=6)
    for i, prompt in enumerate(PROMPTS):
        assert tokens[f"r{i}"] == hf_greedy(hf_model, prompt, 16)[0]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_cuda_half_precision_sampling_runs(dtype: str, tmp_path: Path) -> None:
    save_tiny_model("llama", tmp_path)
    runner = create_model_runner(
        tmp_path,
        dtype=dtype,
        device="cuda",
        block_size=4,
        max_batch_total_tokens=512,
        kv_cache_memory_fraction=0.1,
        max_num_batched_tokens=256,
    )
    assert runner.device_name.startswith("cuda")
    params = SamplingParams(do_sample=True, seed=3, top_k=10, repetition_penalty=1.3, top_n_tokens=2)
    runs = []
    for _ in range(2):
        driver = TinyDriver(runner)
        driver.add("a", PROMPTS[0], params, want_prompt_logprobs=True)
        driver.add("b", PROMPTS[1])
        runs.append(driver.generate(8)["a"])
        driver.finish("a")
        driver.finish("b")
        driver.step()  # delivers the finished ids
    assert runs[0] == runs[1]


def test_cuda_graph_decode_matches_eager(tmp_path: Path) -> None:
    save_tiny_model("llama", tmp_path)
    tokens = {}
    for graphs in (None, "0"):  # TGI's default sizes, then none
        runner = create_model_runner(
            tmp_path,
            dtype="float32",
            device="cuda",
            block_size=4,
            max_batch_total_tokens=1024,
            kv_cache_memory_fraction=0.1,
            max_num_batched_tokens=256,
            cuda_graphs=graphs,
        )
        driver = TinyDriver(runner)
        for i, prompt in enumerate([*PROMPTS, [5, 6, 7]]):
            driver.add(f"r{i}", prompt)
        tokens[graphs] = driver.generate(24, chunk_size=6)
        if graphs is None:
            assert runner.decode_graphs is not None and runner.decode_graphs.captured
        else:
            assert runner.decode_graphs is None
    assert tokens[None] == tokens["0"]
