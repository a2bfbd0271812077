"""Qwen3: Llama's decoder with an RMSNorm over each query and key head.

The per-head norms (`q_norm`, `k_norm`, weights of size head_dim) run after the
Q/K projection and before RoPE. Everything else -- config dialect (Qwen2's
per-layer sliding windows), fused projections, MLP, checkpoint names -- is
Llama's/Qwen2's, except that q/k/v/o biases follow `attention_bias`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch

from pytgi.layers.attention import AttentionBackend
from pytgi.layers.norm import RMSNorm
from pytgi.models.llama import (
    LlamaArgs,
    LlamaAttention,
    LlamaDecoderLayer,
    LlamaForCausalLM,
    LlamaModel,
    qwen2_args,
)


def qwen3_args(config: Mapping[str, Any]) -> LlamaArgs:
    # Qwen2's window rules (`use_sliding_window`, `layer_types`, `max_window_layers`);
    # unlike Qwen2, no fixed q/k/v bias: `attention_bias` sets q/k/v and o alike.
    bias = bool(config.get("attention_bias", False))
    return dataclasses.replace(qwen2_args(config), qkv_bias=bias, o_bias=bias)


class Qwen3Attention(LlamaAttention):
    def __init__(
        self, args: LlamaArgs, layer_idx: int, dtype: torch.dtype, backend: AttentionBackend
    ) -> None:
        super().__init__(args, layer_idx, dtype, backend)
        self.q_norm = RMSNorm(args.head_dim, args.rms_norm_eps, dtype=dtype)
        self.k_norm = RMSNorm(args.head_dim, args.rms_norm_eps, dtype=dtype)

    def normalize_qk(self, qk: torch.Tensor) -> torch.Tensor:
        """RMSNorm over head_dim, with separate weights for query and key heads."""
        q, k = qk.split([self.num_heads, self.num_kv_heads], dim=1)
        return torch.cat([self.q_norm(q), self.k_norm(k)], dim=1)


class Qwen3DecoderLayer(LlamaDecoderLayer):
    attention_cls = Qwen3Attention


class Qwen3Model(LlamaModel):
    layer_cls = Qwen3DecoderLayer


class Qwen3ForCausalLM(LlamaForCausalLM):
    parse_config = staticmethod(qwen3_args)
    model_cls = Qwen3Model
