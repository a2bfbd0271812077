"""Gemma (1): Llama's decoder with three numeric differences.

- RMSNorm scales by (1 + weight), in float32 (`OffsetRMSNorm`);
- the embeddings are multiplied by sqrt(hidden_size), rounded to the model
  dtype first, as transformers does (it matters in bf16);
- the MLP is GeGLU with the tanh approximation of GELU.
lm_head is tied to the embeddings by default; head_dim comes from the config
(256 on the released models, not hidden_size / num_heads).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch

from pytgi.layers.embedding import Embedding
from pytgi.layers.norm import OffsetRMSNorm
from pytgi.models.llama import (
    LlamaArgs,
    LlamaDecoderLayer,
    LlamaForCausalLM,
    LlamaModel,
    llama_args,
)


def gemma_activation(config: Mapping[str, Any]) -> str:
    """`hidden_activation` wins over the legacy `hidden_act`; the released
    configs say `hidden_act: "gelu"` but mean the tanh approximation
    (transformers 5 rewrites it the same way)."""
    name = str(config.get("hidden_activation") or config.get("hidden_act") or "gelu_pytorch_tanh")
    return "gelu_pytorch_tanh" if name == "gelu" else name


def gemma_args(config: Mapping[str, Any]) -> LlamaArgs:
    args = llama_args(config)
    return dataclasses.replace(
        args,
        hidden_act=gemma_activation(config),
        tie_word_embeddings=bool(config.get("tie_word_embeddings", True)),
    )


class ScaledEmbedding(Embedding):
    """Rows times sqrt(dim), the factor rounded to the table's dtype first."""

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        rows = super().forward(ids)  # [num_tokens, dim]
        return rows * torch.tensor(self.dim**0.5, dtype=rows.dtype)


class GemmaDecoderLayer(LlamaDecoderLayer):
    norm_cls = OffsetRMSNorm


class GemmaModel(LlamaModel):
    embedding_cls = ScaledEmbedding
    layer_cls = GemmaDecoderLayer
    norm_cls = OffsetRMSNorm


class GemmaForCausalLM(LlamaForCausalLM):
    parse_config = staticmethod(gemma_args)
    model_cls = GemmaModel
