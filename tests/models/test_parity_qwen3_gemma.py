"""Qwen3 and Gemma, tiny and random, through ModelRunner vs transformers'
greedy generate in float32: same 32 tokens, logits within 1e-4 (as in
test_model_parity, whose helpers know only the older families)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from executor_helpers import assert_matches_reference, hf_greedy, perturbed_tiny_model

from pytgi.models.gemma import gemma_activation
from pytgi.models.qwen3 import qwen3_args

NUM_NEW = 32
ATOL = 1e-4
PROMPT = [7, 100, 42, 9, 250, 31, 8, 2, 77, 15, 61, 3, 19, 200, 5, 6, 13]

# GQA (4 query heads, 2 KV heads) and head_dim != hidden_size / num_heads.
COMMON: dict[str, Any] = {
    "vocab_size": 256,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 32,
    "max_position_embeddings": 256,
    "initializer_range": 0.2,
}
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "qwen3": ("Qwen3Config", {}),
    "qwen3_bias_tied": ("Qwen3Config", {"attention_bias": True, "tie_word_embeddings": True}),
    # Window on layer 1 only (max_window_layers); 4 tokens, far shorter than the prompt.
    "qwen3_window": (
        "Qwen3Config",
        {"use_sliding_window": True, "sliding_window": 4, "max_window_layers": 1},
    ),
    "gemma": ("GemmaConfig", {}),
    "gemma_untied_bias": ("GemmaConfig", {"tie_word_embeddings": False, "attention_bias": True}),
}


def save_tiny(variant: str, folder: Path) -> Any:
    """Random float32 weights saved in `folder`; returns the transformers model.
    Norm weights are perturbed: their init (ones for Qwen3, zeros for Gemma's
    1 + w) would leave the q/k norms' and Gemma's offset weights untested."""
    import transformers

    config_name, overrides = VARIANTS[variant]
    model = perturbed_tiny_model(getattr(transformers, config_name)(**{**COMMON, **overrides}))
    model.save_pretrained(folder, safe_serialization=True)
    return model


@pytest.mark.parametrize("chunk_size", [None, 5])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_matches_transformers(
    variant: str,
    chunk_size: int | None,
    tmp_path: Path,
    references: dict[str, tuple[list[int], torch.Tensor]],
) -> None:
    hf_model = save_tiny(variant, tmp_path)
    if variant not in references:
        references[variant] = hf_greedy(hf_model, PROMPT, NUM_NEW)
    assert_matches_reference(tmp_path, references[variant], PROMPT, NUM_NEW, chunk_size, ATOL)


def test_qwen3_window_matters(tmp_path: Path) -> None:
    """The windowed parity test is only meaningful if the window changes the output."""
    import transformers

    windowed = save_tiny("qwen3_window", tmp_path)
    config = {**windowed.config.to_dict(), "use_sliding_window": False, "layer_types": None}
    unwindowed = transformers.Qwen3ForCausalLM(transformers.Qwen3Config(**config))
    unwindowed.load_state_dict(windowed.state_dict())
    unwindowed.eval()
    with torch.no_grad():
        ids = torch.tensor([PROMPT])
        assert not torch.allclose(windowed(ids).logits, unwindowed(ids).logits, atol=1e-3)


def test_qwen3_bias_follows_attention_bias() -> None:
    base = {**COMMON, "architectures": ["Qwen3ForCausalLM"]}
    assert not qwen3_args(base).qkv_bias
    args = qwen3_args({**base, "attention_bias": True})
    assert args.qkv_bias and args.o_bias
    assert args.sliding_windows == (None, None)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({}, "gelu_pytorch_tanh"),
        ({"hidden_act": "gelu"}, "gelu_pytorch_tanh"),  # released configs' legacy value
        ({"hidden_act": "gelu", "hidden_activation": "gelu_pytorch_tanh"}, "gelu_pytorch_tanh"),
        ({"hidden_act": "gelu_pytorch_tanh", "hidden_activation": "silu"}, "silu"),
    ],
)
def test_gemma_activation(config: dict[str, Any], expected: str) -> None:
    assert gemma_activation(config) == expected
