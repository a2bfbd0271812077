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
from torch import nn

from pytgi.layers.attention import AttentionBackend
from pytgi.layers.embedding import Embedding, LMHead
from pytgi.layers.norm import OffsetRMSNorm
from pytgi.layers.rotary import RotaryEmbedding
from pytgi.models.interface import KVLayout, ModelShape
from pytgi.models.llama import (
    LlamaArgs,
    LlamaAttention,
    LlamaDecoderLayer,
    LlamaForCausalLM,
    LlamaMLP,
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


# The classes below keep Llama's forwards and checkpoint mapping; their
# constructors skip Llama's (nn.Module.__init__ instead of super()) because
# those hard-wire Llama's submodules, which would be allocated only to be
# replaced -- on the GPU, for a real model.


class GemmaDecoderLayer(LlamaDecoderLayer):
    def __init__(
        self, args: LlamaArgs, layer_idx: int, dtype: torch.dtype, backend: AttentionBackend
    ) -> None:
        nn.Module.__init__(self)
        self.input_layernorm = OffsetRMSNorm(args.hidden_size, args.rms_norm_eps, dtype=dtype)
        self.self_attn = LlamaAttention(args, layer_idx, dtype, backend)
        self.post_attention_layernorm = OffsetRMSNorm(args.hidden_size, args.rms_norm_eps, dtype=dtype)
        self.mlp = LlamaMLP(args, dtype)


class GemmaModel(LlamaModel):
    def __init__(self, args: LlamaArgs, dtype: torch.dtype, backend: AttentionBackend) -> None:
        nn.Module.__init__(self)
        self.embed_tokens = ScaledEmbedding(args.vocab_size, args.hidden_size, dtype=dtype)
        self.rotary = RotaryEmbedding(args.rope)
        self.layers = nn.ModuleList(
            [GemmaDecoderLayer(args, i, dtype, backend) for i in range(args.num_layers)]
        )
        self.norm = OffsetRMSNorm(args.hidden_size, args.rms_norm_eps, dtype=dtype)


class ScaledEmbedding(Embedding):
    """Rows times sqrt(dim), the factor rounded to the table's dtype first."""

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        rows = super().forward(ids)  # [num_tokens, dim]
        return rows * torch.tensor(self.dim**0.5, dtype=rows.dtype)


class GemmaForCausalLM(LlamaForCausalLM):
    parse_config = staticmethod(gemma_args)

    def __init__(self, args: LlamaArgs, dtype: torch.dtype, backend: AttentionBackend) -> None:
        nn.Module.__init__(self)
        self.args = args
        self.model = GemmaModel(args, dtype, backend)
        self.lm_head = LMHead(args.hidden_size, args.vocab_size, dtype=dtype)
        if args.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        self.kv_layout = KVLayout(args.num_layers, args.num_kv_heads, args.head_dim)
        self.shape = ModelShape(
            hidden_size=args.hidden_size,
            intermediate_size=args.intermediate_size,
            vocab_size=args.vocab_size,
            max_position_embeddings=args.rope.max_position_embeddings,
        )
