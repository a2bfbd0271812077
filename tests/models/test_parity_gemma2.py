"""Gemma 2, tiny and random, through ModelRunner vs transformers' greedy
generate in float32 (eager attention: SDPA has no soft-cap): same 32 tokens,
logits within 1e-4, whole and chunked prefill. Four layers alternate sliding
(window 4, far shorter than the prompt) and full attention; the soft-caps are
small enough to bend the tiny model's scores and logits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from executor_helpers import assert_matches_reference, hf_greedy, perturbed_tiny_model

from pytgi.models.gemma2 import gemma2_args

NUM_NEW = 32
ATOL = 1e-4
PROMPT = [7, 100, 42, 9, 250, 31, 8, 2, 77, 15, 61, 3, 19, 200, 5, 6, 13]

COMMON: dict[str, Any] = {
    "vocab_size": 256,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 32,
    "max_position_embeddings": 256,
    "initializer_range": 0.2,
    "sliding_window": 4,
    "query_pre_attn_scalar": 24,  # != head_dim: the scale must come from it
    "attn_logit_softcapping": 2.0,
    "final_logit_softcapping": 3.0,
}
VARIANTS: dict[str, dict[str, Any]] = {
    "gemma2": {},
    "gemma2_untied_bias_uncapped": {
        "tie_word_embeddings": False,
        "attention_bias": True,
        "attn_logit_softcapping": None,
        "final_logit_softcapping": None,
    },
}


def tiny_config(**overrides: Any) -> Any:
    import transformers

    return transformers.Gemma2Config(**{**COMMON, **overrides})


def tiny_model(config: Any) -> Any:
    """Random float32 weights; norm weights perturbed (their zero init would
    leave Gemma's 1 + w and the extra norms untested)."""
    return perturbed_tiny_model(config)


@pytest.mark.parametrize("chunk_size", [None, 5])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_matches_transformers(
    variant: str,
    chunk_size: int | None,
    tmp_path: Path,
    references: dict[str, tuple[list[int], torch.Tensor]],
) -> None:
    hf_model = tiny_model(tiny_config(**VARIANTS[variant]))
    hf_model.save_pretrained(tmp_path, safe_serialization=True)
    if variant not in references:
        references[variant] = hf_greedy(hf_model, PROMPT, NUM_NEW)
    assert_matches_reference(tmp_path, references[variant], PROMPT, NUM_NEW, chunk_size, ATOL)


@pytest.mark.parametrize(
    "change",
    [
        {"sliding_window": 64},
        {"attn_logit_softcapping": None},
        {"final_logit_softcapping": None},
        {"query_pre_attn_scalar": 32},
    ],
)
def test_each_difference_matters(change: dict[str, Any]) -> None:
    """The parity test is only meaningful if the window, both caps and the
    scale each change transformers' output at this size."""
    base = tiny_model(tiny_config())
    changed = tiny_model(tiny_config(**change))
    changed.load_state_dict(base.state_dict())
    with torch.no_grad():
        ids = torch.tensor([PROMPT])
        assert not torch.allclose(base(ids).logits, changed(ids).logits, atol=1e-3)


def test_windows_alternate() -> None:
    config = {**COMMON, "architectures": ["Gemma2ForCausalLM"]}
    # Released configs have no `layer_types`: the even layers slide.
    assert gemma2_args(config).sliding_windows == (4, None, 4, None)
    explicit = gemma2_args({**config, "layer_types": ["full_attention"] * 3 + ["sliding_attention"]})
    assert explicit.sliding_windows == (None, None, None, 4)
    # transformers' own config agrees on the default.
    assert gemma2_args(tiny_config().to_dict()).sliding_windows == (4, None, 4, None)


def test_args_read_gemma2_fields() -> None:
    args = gemma2_args({**COMMON, "attn_logit_softcapping": None})
    assert args.query_pre_attn_scalar == 24.0
    assert args.attn_logit_softcap is None
    assert args.final_logit_softcap == 3.0
    assert args.tie_word_embeddings
    assert args.hidden_act == "gelu_pytorch_tanh"
