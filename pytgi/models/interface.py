"""What the executor needs from a model class.

A model is built from its HF `config.json` (a dict: no transformers at run
time), filled from checkpoint tensors, then called once per step on the flat
batch of every scheduled chunk.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from pytgi.layers.attention import AttentionBackend, AttentionMetadata, LayerKVCache


@dataclass(frozen=True, slots=True)
class KVLayout:
    """Shape of the KV cache a model needs: per layer, K and V of
    [num_blocks, block_size, num_kv_heads, head_dim]."""

    num_layers: int
    num_kv_heads: int
    head_dim: int


@dataclass(frozen=True, slots=True)
class ModelShape:
    """Sizes the executor uses for memory planning and dtype probing."""

    hidden_size: int
    intermediate_size: int
    vocab_size: int
    max_position_embeddings: int


class CausalLM(Protocol):
    """A decoder-only language model over a paged KV cache."""

    kv_layout: KVLayout
    shape: ModelShape

    @classmethod
    def from_hf_config(
        cls, config: Mapping[str, Any], *, dtype: torch.dtype, attention_backend: AttentionBackend
    ) -> CausalLM:
        """Build with empty parameters (on the current default device)."""
        ...

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Fill every parameter from (checkpoint name, tensor) pairs; raises on
        missing or unexpected weights."""
        ...

    def forward(
        self,
        token_ids: torch.Tensor,  # [num_tokens]
        positions: torch.Tensor,  # [num_tokens]
        meta: AttentionMetadata,
        kv_caches: Sequence[LayerKVCache],
    ) -> torch.Tensor:
        """-> final hidden states [num_tokens, hidden]."""
        ...

    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """[n, hidden] -> float32 logits [n, vocab_size]."""
        ...
