"""Phi-3, tiny and random, through ModelRunner vs transformers' greedy generate
in float32: same 32 tokens, logits within 1e-4, whole and chunked prefill."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from executor_helpers import assert_matches_reference, hf_greedy, perturbed_tiny_model

from pytgi.errors import UnsupportedArchitectureError
from pytgi.layers.attention_backends import get_attention_backend
from pytgi.models.phi3 import Phi3ForCausalLM, phi3_args

NUM_NEW = 32
ATOL = 1e-4
PROMPT = [7, 100, 42, 9, 250, 31, 8, 2, 77, 15, 61, 3, 19, 200, 5, 6, 13]

# GQA (4 query heads, 2 KV heads); Phi3Config's default pad id (32000) would not fit the vocab.
COMMON: dict[str, Any] = {
    "vocab_size": 256,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 256,
    "initializer_range": 0.2,
    "pad_token_id": 0,
    "bos_token_id": 1,
    "eos_token_id": 2,
}
VARIANTS: dict[str, dict[str, Any]] = {
    "phi3": {},
    # 4 tokens, far shorter than the prompt.
    "phi3_window": {"sliding_window": 4},
    # RoPE on 8 of each head's 16 channels (Phi-4-mini uses 0.75).
    "phi3_partial_rotary": {"partial_rotary_factor": 0.5},
}


def save_tiny(variant: str, folder: Path) -> Any:
    """Random float32 weights saved in `folder`; returns the transformers model.
    Norm weights (initialised to ones) are perturbed so that they are tested."""
    import transformers

    model = perturbed_tiny_model(transformers.Phi3Config(**{**COMMON, **VARIANTS[variant]}))
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


@pytest.mark.parametrize("variant", ["phi3_window", "phi3_partial_rotary"])
def test_variant_matters(variant: str, tmp_path: Path) -> None:
    """The variants' parity tests are only meaningful if the option changes the output."""
    import transformers

    hf_model = save_tiny(variant, tmp_path)
    plain = transformers.Phi3ForCausalLM(transformers.Phi3Config(**COMMON))
    plain.load_state_dict(hf_model.state_dict())
    plain.eval()
    with torch.no_grad():
        ids = torch.tensor([PROMPT])
        assert not torch.allclose(hf_model(ids).logits, plain(ids).logits, atol=1e-3)


def test_partial_rotary_factor_in_either_layout() -> None:
    base = {**COMMON, "architectures": ["Phi3ForCausalLM"]}
    assert phi3_args(base).rope.rotary_dim == 16
    assert phi3_args({**base, "partial_rotary_factor": 0.75}).rope.rotary_dim == 12
    nested = {"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5}
    assert phi3_args({**base, "rope_parameters": nested}).rope.rotary_dim == 8


@pytest.mark.parametrize("rope_type", ["longrope", "su"])
def test_longrope_is_refused(rope_type: str) -> None:
    factors = [1.0] * 8
    config = {
        **COMMON,
        "rope_scaling": {"type": rope_type, "short_factor": factors, "long_factor": factors},
    }
    with pytest.raises(
        UnsupportedArchitectureError, match=f"{rope_type}.*supported: default, linear, llama3"
    ):
        Phi3ForCausalLM.from_hf_config(config, dtype=torch.float32, attention_backend=get_attention_backend())
