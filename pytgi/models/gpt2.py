"""GPT-2: learned absolute positions, pre-LayerNorm blocks, GELU (tanh) MLP,
lm_head tied to the token embedding.

Checkpoints store Conv1D weights as [in, out] (transposed at load) under a
`transformer.` prefix (absent in the original OpenAI-converted files), plus
causal-mask buffers we skip.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from pytgi.layers.activation import get_activation
from pytgi.layers.attention import Attention, AttentionBackend, AttentionMetadata, LayerKVCache
from pytgi.layers.embedding import Embedding, LMHead
from pytgi.layers.linear import Linear
from pytgi.layers.norm import LayerNorm
from pytgi.models.interface import KVLayout, ModelShape
from pytgi.models.loading import WeightTarget, load_checkpoint

CONV1D_SUFFIXES = (".c_attn.weight", ".c_proj.weight", ".c_fc.weight")
SKIPPED_SUFFIXES = (".attn.bias", ".attn.masked_bias")


@dataclass(frozen=True, slots=True)
class GPT2Args:
    vocab_size: int
    max_positions: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    layer_norm_eps: float
    activation: str
    scale_attn_weights: bool
    scale_attn_by_inverse_layer_idx: bool
    tie_word_embeddings: bool

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads


def gpt2_args(config: Mapping[str, Any]) -> GPT2Args:
    hidden = int(config["n_embd"])
    return GPT2Args(
        vocab_size=int(config["vocab_size"]),
        max_positions=int(config.get("n_positions", 1024)),
        hidden_size=hidden,
        intermediate_size=int(config.get("n_inner") or 4 * hidden),
        num_layers=int(config["n_layer"]),
        num_heads=int(config["n_head"]),
        layer_norm_eps=float(config.get("layer_norm_epsilon", 1e-5)),
        activation=str(config.get("activation_function", "gelu_new")),
        scale_attn_weights=bool(config.get("scale_attn_weights", True)),
        scale_attn_by_inverse_layer_idx=bool(config.get("scale_attn_by_inverse_layer_idx", False)),
        tie_word_embeddings=bool(config.get("tie_word_embeddings", True)),
    )


class GPT2Attention(nn.Module):
    def __init__(self, args: GPT2Args, layer_idx: int, dtype: torch.dtype, backend: AttentionBackend) -> None:
        super().__init__()
        hidden = args.hidden_size
        scale = args.head_dim**-0.5 if args.scale_attn_weights else 1.0
        if args.scale_attn_by_inverse_layer_idx:
            scale /= layer_idx + 1
        self.c_attn = Linear(hidden, 3 * hidden, bias=True, dtype=dtype)  # q, k, v side by side
        self.c_proj = Linear(hidden, hidden, bias=True, dtype=dtype)
        self.attn = Attention(
            args.num_heads, args.num_heads, args.head_dim, scale=scale, sliding_window=None, backend=backend
        )

    def forward(self, hidden: torch.Tensor, meta: AttentionMetadata, cache: LayerKVCache) -> torch.Tensor:
        q, k, v = self.c_attn(hidden).chunk(3, dim=-1)  # 3 x [num_tokens, hidden]
        return self.c_proj(self.attn(q, k, v, cache, meta))


class GPT2MLP(nn.Module):
    def __init__(self, args: GPT2Args, dtype: torch.dtype) -> None:
        super().__init__()
        self.c_fc = Linear(args.hidden_size, args.intermediate_size, bias=True, dtype=dtype)
        self.c_proj = Linear(args.intermediate_size, args.hidden_size, bias=True, dtype=dtype)
        self.act = get_activation(args.activation)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.c_proj(self.act(self.c_fc(hidden)))


class GPT2Block(nn.Module):
    def __init__(self, args: GPT2Args, layer_idx: int, dtype: torch.dtype, backend: AttentionBackend) -> None:
        super().__init__()
        self.ln_1 = LayerNorm(args.hidden_size, args.layer_norm_eps, dtype=dtype)
        self.attn = GPT2Attention(args, layer_idx, dtype, backend)
        self.ln_2 = LayerNorm(args.hidden_size, args.layer_norm_eps, dtype=dtype)
        self.mlp = GPT2MLP(args, dtype)

    def forward(self, hidden: torch.Tensor, meta: AttentionMetadata, cache: LayerKVCache) -> torch.Tensor:
        hidden = hidden + self.attn(self.ln_1(hidden), meta, cache)
        return hidden + self.mlp(self.ln_2(hidden))


class GPT2LMHeadModel(nn.Module):
    def __init__(self, args: GPT2Args, dtype: torch.dtype, backend: AttentionBackend) -> None:
        super().__init__()
        self.args = args
        self.wte = Embedding(args.vocab_size, args.hidden_size, dtype=dtype)
        self.wpe = Embedding(args.max_positions, args.hidden_size, dtype=dtype)
        self.h = nn.ModuleList([GPT2Block(args, i, dtype, backend) for i in range(args.num_layers)])
        self.ln_f = LayerNorm(args.hidden_size, args.layer_norm_eps, dtype=dtype)
        self.lm_head = LMHead(args.hidden_size, args.vocab_size, dtype=dtype)
        if args.tie_word_embeddings:
            self.lm_head.weight = self.wte.weight
        self.kv_layout = KVLayout(args.num_layers, args.num_heads, args.head_dim)
        self.shape = ModelShape(
            hidden_size=args.hidden_size,
            intermediate_size=args.intermediate_size,
            vocab_size=args.vocab_size,
            max_position_embeddings=args.max_positions,
        )

    @classmethod
    def from_hf_config(
        cls, config: Mapping[str, Any], *, dtype: torch.dtype, attention_backend: AttentionBackend
    ) -> GPT2LMHeadModel:
        return cls(gpt2_args(config), dtype, attention_backend)

    def forward(
        self,
        token_ids: torch.Tensor,  # [num_tokens]
        positions: torch.Tensor,  # [num_tokens]
        meta: AttentionMetadata,
        kv_caches: Sequence[LayerKVCache],
    ) -> torch.Tensor:
        hidden = self.wte(token_ids) + self.wpe(positions)  # [num_tokens, hidden]
        for block, cache in zip(self.h, kv_caches, strict=True):
            hidden = block(hidden, meta, cache)
        return self.ln_f(hidden)

    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.lm_head(hidden)

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        load_checkpoint(self, weights, self.checkpoint_target)

    def checkpoint_target(self, name: str) -> WeightTarget | None:
        name = name.removeprefix("transformer.")
        if name.endswith(SKIPPED_SUFFIXES):
            return None
        if name == "lm_head.weight" and self.args.tie_word_embeddings:
            return None
        return WeightTarget(name, transpose=name.endswith(CONV1D_SUFFIXES))
