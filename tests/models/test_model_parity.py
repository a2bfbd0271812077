"""Each architecture, tiny and random, through ModelRunner vs transformers'
greedy generate in float32: same 32 tokens, logits within 1e-4."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from executor_helpers import LogitsRecorder, TinyDriver, hf_greedy, make_runner, save_tiny_model

NUM_NEW = 32
ATOL = 1e-4
PROMPTS = [
    list(range(3, 20)),
    [7, 100, 42, 9, 250, 31, 8, 2, 77, 15, 61],
    [5, 6, 200, 13, 13, 13, 90, 1, 44, 2, 3, 9, 120, 54, 33, 21, 17, 88, 240, 11, 19, 63, 14],
]

# Every test mode runs on the four families; the config variants on one prompt.
FAMILIES: dict[str, tuple[str, dict[str, Any]]] = {
    "llama": ("llama", {}),
    "mistral_window": ("mistral", {"sliding_window": 8}),
    "qwen2": ("qwen2", {}),
    "gpt2": ("gpt2", {}),
}
CONFIG_VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "llama3_rope": (
        "llama",
        {
            "rope_scaling": {
                "rope_type": "llama3",
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 16,
            },
            "rope_theta": 500000.0,
        },
    ),
    "llama_head_dim_bias": ("llama", {"head_dim": 32, "attention_bias": True, "mlp_bias": True}),
    "qwen2_tied": ("qwen2", {"tie_word_embeddings": True}),
    # Window on layer 1 only (Qwen2's max_window_layers rule).
    "qwen2_window": ("qwen2", {"use_sliding_window": True, "sliding_window": 4, "max_window_layers": 1}),
}


class TinyModel:
    """A saved tiny checkpoint and its transformers twin, with reference
    generations cached (transformers' generate is the slow part of these tests)."""

    def __init__(self, folder: Path, hf_model: Any) -> None:
        self.folder = folder
        self.hf_model = hf_model
        self._references: dict[tuple[int, ...], tuple[list[int], torch.Tensor]] = {}

    def reference(self, prompt: list[int]) -> tuple[list[int], torch.Tensor]:
        key = tuple(prompt)
        if key not in self._references:
            self._references[key] = hf_greedy(self.hf_model, prompt, NUM_NEW)
        return self._references[key]

    def check(self, prompt: list[int], tokens: list[int], logits: torch.Tensor) -> None:
        ref_tokens, ref_logits = self.reference(prompt)
        assert tokens == ref_tokens
        torch.testing.assert_close(logits, ref_logits, atol=ATOL, rtol=0)


def save(
    variants: dict[str, tuple[str, dict[str, Any]]], name: str, factory: pytest.TempPathFactory
) -> TinyModel:
    kind, overrides = variants[name]
    folder = factory.mktemp(name)
    return TinyModel(folder, save_tiny_model(kind, folder, **overrides))


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    return save(FAMILIES, request.param, tmp_path_factory)


def sampled_logits(driver: TinyDriver, recorder: LogitsRecorder) -> dict[str, torch.Tensor]:
    """request_id -> [num_steps, vocab]: the logits its tokens were sampled from.
    Steps with only intermediate prefill chunks compute no logits."""
    per_request: dict[str, list[torch.Tensor]] = {}
    sampling_steps = [r for r in driver.results if r.sampled]
    for result, call in zip(sampling_steps, recorder.calls, strict=True):
        for row, request_id in enumerate(result.sampled):
            per_request.setdefault(request_id, []).append(call[row])
    return {request_id: torch.stack(rows) for request_id, rows in per_request.items()}


def run_single(model: TinyModel, prompt: list[int], chunk_size: int | None) -> None:
    runner = make_runner(model.folder)
    recorder = LogitsRecorder(runner)
    driver = TinyDriver(runner)
    driver.add("a", prompt)
    tokens = driver.generate(NUM_NEW, chunk_size=chunk_size)["a"]
    model.check(prompt, tokens, sampled_logits(driver, recorder)["a"])


@pytest.mark.parametrize("chunk_size", [None, 5])
def test_single_prompt_matches_transformers(family: TinyModel, chunk_size: int | None) -> None:
    run_single(family, PROMPTS[0], chunk_size)


def test_batch_of_three_prompts_matches_transformers(family: TinyModel) -> None:
    runner = make_runner(family.folder)
    recorder = LogitsRecorder(runner)
    driver = TinyDriver(runner)
    for i, prompt in enumerate(PROMPTS):
        driver.add(f"r{i}", prompt)
    # Chunks of 8: prompts of 17, 11, 23 tokens finish prefill on different steps,
    # so early steps mix prefill chunks and decode rows.
    tokens = driver.generate(NUM_NEW, chunk_size=8)
    logits = sampled_logits(driver, recorder)
    for i, prompt in enumerate(PROMPTS):
        family.check(prompt, tokens[f"r{i}"], logits[f"r{i}"])


@pytest.mark.parametrize("variant", sorted(CONFIG_VARIANTS))
def test_config_variant_matches_transformers(variant: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    run_single(save(CONFIG_VARIANTS, variant, tmp_path_factory), PROMPTS[1], chunk_size=6)


def test_sharded_checkpoint_loads(tmp_path: Path) -> None:
    """Same weights saved whole and in shards give the same generation."""
    whole, sharded = tmp_path / "whole", tmp_path / "sharded"
    save_tiny_model("llama", whole, seed=3)
    save_tiny_model("llama", sharded, seed=3, max_shard_size="100KB")
    assert (sharded / "model.safetensors.index.json").is_file()
    assert len(list(sharded.glob("*.safetensors"))) > 1
    outputs = []
    for folder in (whole, sharded):
        driver = TinyDriver(make_runner(folder))
        driver.add("a", PROMPTS[1])
        outputs.append(driver.generate(8)["a"])
    assert outputs[0] == outputs[1]


def test_sliding_window_changes_the_result(tmp_path: Path) -> None:
    """The Mistral parity test is only meaningful if the window matters there."""
    import transformers

    hf_model = save_tiny_model("mistral", tmp_path, sliding_window=8)
    unwindowed = transformers.MistralForCausalLM(
        transformers.MistralConfig(**{**hf_model.config.to_dict(), "sliding_window": None})
    )
    unwindowed.load_state_dict(hf_model.state_dict())
    unwindowed.eval()
    with torch.no_grad():
        ids = torch.tensor([PROMPTS[2]])
        assert not torch.allclose(hf_model(ids).logits, unwindowed(ids).logits, atol=1e-3)
