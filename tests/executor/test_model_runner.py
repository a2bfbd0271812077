"""ModelRunner behaviour beyond model parity: prompt logprobs, cached
prefixes, seeded sampling in batches, request lifecycle, KV sizing."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from executor_helpers import BLOCK_SIZE, TinyDriver, make_runner, save_tiny_model

from pytgi.executor import model_runner as model_runner_module
from pytgi.executor.model_runner import create_model_runner
from pytgi.protocol import SamplingParams
from pytgi.step import NewRequestData, ScheduledChunk, SchedulerOutput

PROMPT = [5, 17, 99, 3, 42, 8, 8, 120, 64, 1, 77, 200, 13, 250, 6, 31, 90]


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    folder = tmp_path_factory.mktemp("llama")
    return folder, save_tiny_model("llama", folder, seed=1)


def test_prompt_logprobs_across_chunks_match_transformers(llama: tuple[Path, object]) -> None:
    folder, hf_model = llama
    driver = TinyDriver(make_runner(folder))
    driver.add("a", PROMPT, want_prompt_logprobs=True)
    values: list[float] = []
    while len(driver.sequences["a"].generated) < 2:
        values.extend(driver.step(chunk_size=6).prompt_logprobs.get("a", ()))
    with torch.no_grad():
        log_probs = hf_model(torch.tensor([PROMPT])).logits[0].log_softmax(-1)  # type: ignore[operator]
    expected = [log_probs[i - 1, PROMPT[i]].item() for i in range(1, len(PROMPT))]
    assert len(values) == len(PROMPT)  # decode steps add none
    assert math.isnan(values[0])
    torch.testing.assert_close(torch.tensor(values[1:]), torch.tensor(expected), atol=1e-4, rtol=0)


def test_chunk_after_cached_prefix_matches_full_prefill(llama: tuple[Path, object]) -> None:
    folder, _ = llama
    params = SamplingParams(top_n_tokens=4)
    fresh = make_runner(folder).execute(
        SchedulerOutput(
            (NewRequestData("b", tuple(PROMPT), params),),
            (ScheduledChunk("b", tuple(PROMPT), 0, tuple(range(10, 15)), True),),
            (),
        )
    )
    runner = make_runner(folder)
    # Request a computes the prompt; b shares its first 3 blocks (12 tokens) and
    # computes only the rest, as after a prefix-cache hit.
    runner.execute(
        SchedulerOutput(
            (NewRequestData("a", tuple(PROMPT[:12]), SamplingParams()),),
            (ScheduledChunk("a", tuple(PROMPT[:12]), 0, (7, 3, 9), True),),
            (),
        )
    )
    cached = runner.execute(
        SchedulerOutput(
            (NewRequestData("b", tuple(PROMPT), params),),
            (ScheduledChunk("b", tuple(PROMPT[12:]), 12, (7, 3, 9, 20, 21), True),),
            ("a",),
        )
    )
    ours, ref = cached.sampled["b"], fresh.sampled["b"]
    assert ours.token_id == ref.token_id
    assert [t for t, _ in ours.top_tokens] == [t for t, _ in ref.top_tokens]
    torch.testing.assert_close(
        torch.tensor([lp for _, lp in ours.top_tokens]),
        torch.tensor([lp for _, lp in ref.top_tokens]),
        atol=1e-5,
        rtol=0,
    )


def test_seeded_sampling_is_the_same_alone_and_batched(llama: tuple[Path, object]) -> None:
    folder, _ = llama
    params = SamplingParams(do_sample=True, temperature=1.5, top_p=0.95, seed=2024, repetition_penalty=1.2)
    alone = TinyDriver(make_runner(folder))
    alone.add("s", PROMPT, params)
    batched = TinyDriver(make_runner(folder), seed=5)
    batched.add("g", PROMPT[:7])
    batched.add("s", PROMPT, params)
    batched.add("t", PROMPT[3:], SamplingParams(do_sample=True, seed=1, top_k=5))
    assert alone.generate(12, chunk_size=7)["s"] == batched.generate(12, chunk_size=5)["s"]


def test_finished_requests_are_dropped(llama: tuple[Path, object]) -> None:
    folder, _ = llama
    runner = make_runner(folder)
    driver = TinyDriver(runner)
    driver.add("a", PROMPT[:5])
    driver.add("b", PROMPT[:9])
    driver.step()
    driver.finish("a")
    result = driver.step()
    assert set(result.sampled) == {"b"}
    with pytest.raises(KeyError, match="'a'"):
        runner.execute(SchedulerOutput((), (ScheduledChunk("a", (1,), 5, (0, 1), True),), ()))


def test_empty_step_and_intermediate_chunk_return_nothing(llama: tuple[Path, object]) -> None:
    folder, _ = llama
    runner = make_runner(folder)
    assert runner.execute(SchedulerOutput((), (), ())).sampled == {}
    new = NewRequestData("a", tuple(PROMPT), SamplingParams())
    result = runner.execute(
        SchedulerOutput((new,), (ScheduledChunk("a", tuple(PROMPT[:8]), 0, (0, 1), False),), ())
    )
    assert result.sampled == {} and result.prompt_logprobs == {}


def test_properties_and_explicit_kv_capacity(llama: tuple[Path, object]) -> None:
    folder, _ = llama
    runner = make_runner(folder, num_tokens=1001)
    spec = runner.kv_cache_spec
    assert spec.num_blocks == math.ceil(1001 / BLOCK_SIZE)
    assert spec.block_size == BLOCK_SIZE
    # 2 (K and V) x 2 layers x block_size x 2 kv heads x head_dim 16 x 4 bytes
    assert spec.bytes_per_block == 2 * 2 * BLOCK_SIZE * 2 * 16 * 4
    assert runner.kv_cache.layers[0].key.shape == (spec.num_blocks, BLOCK_SIZE, 2, 16)
    assert (runner.dtype_name, runner.device_name, runner.architecture) == (
        "float32",
        "cpu",
        "LlamaForCausalLM",
    )


def test_kv_capacity_from_memory_fraction(
    llama: tuple[Path, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, _ = llama
    monkeypatch.setattr(model_runner_module, "available_memory_bytes", lambda device: 64 * 2**20)
    runner = create_model_runner(
        folder,
        dtype="float32",
        device="cpu",
        block_size=16,
        max_batch_total_tokens=None,
        kv_cache_memory_fraction=0.5,
        max_num_batched_tokens=64,
    )
    spec = runner.kv_cache_spec
    reserve = 64 * ((6 * 64 + 4 * 128) * 4 + 2 * 256 * 4)
    assert spec.num_blocks == int(0.5 * (64 * 2**20 - reserve)) // spec.bytes_per_block


def test_bfloat16_runner_generates(llama: tuple[Path, object]) -> None:
    folder, _ = llama
    runner = create_model_runner(
        folder,
        dtype="bfloat16",
        device="cpu",
        block_size=BLOCK_SIZE,
        max_batch_total_tokens=256,
        kv_cache_memory_fraction=0.1,
        max_num_batched_tokens=64,
    )
    assert runner.dtype_name == "bfloat16"
    assert runner.kv_cache.layers[0].key.dtype == torch.bfloat16
    driver = TinyDriver(runner)
    driver.add("a", PROMPT)
    tokens = driver.generate(4)["a"]
    assert len(tokens) == 4 and all(0 <= t < 256 for t in tokens)
