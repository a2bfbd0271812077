"""Llama, Mistral and Qwen2: one decoder, three config dialects.

pre-norm blocks: h += attn(rms_norm(h)); h += mlp(rms_norm(h)), with RoPE on
q/k, grouped-query attention, SwiGLU MLP. The families differ only in config:
Mistral's sliding window, Qwen2's q/k/v bias and per-layer windows, Llama 3's
rope_scaling. Q/K/V and gate/up are fused into one matrix each at load.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeGuard

import torch
from torch import nn

from pytgi.layers.activation import get_activation, silu_and_mul
from pytgi.layers.attention import Attention, AttentionBackend, AttentionMetadata, LayerKVCache
from pytgi.layers.attention_backends.batched import BatchedBackend
from pytgi.layers.embedding import Embedding, LMHead
from pytgi.layers.linear import Linear
from pytgi.layers.norm import RMSNorm
from pytgi.layers.rotary import RopeConfig, RotaryEmbedding, apply_rotary, rope_config_from_hf
from pytgi.models.fused_layers import FusedLayers
from pytgi.models.interface import KVLayout, ModelShape
from pytgi.models.loading import WeightTarget, load_checkpoint

# checkpoint projection -> (fused projection, shard)
FUSED_PROJECTIONS: dict[str, tuple[str, int]] = {
    "q_proj": ("qkv_proj", 0),
    "k_proj": ("qkv_proj", 1),
    "v_proj": ("qkv_proj", 2),
    "gate_proj": ("gate_up_proj", 0),
    "up_proj": ("gate_up_proj", 1),
}


@dataclass(frozen=True, slots=True)
class LlamaArgs:
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rms_norm_eps: float
    rope: RopeConfig
    qkv_bias: bool
    o_bias: bool
    mlp_bias: bool
    hidden_act: str
    tie_word_embeddings: bool
    sliding_windows: tuple[int | None, ...]  # per layer; None = full causal attention


def parse_args(
    config: Mapping[str, Any], *, qkv_bias: bool, o_bias: bool, sliding_windows: Sequence[int | None]
) -> LlamaArgs:
    hidden = int(config["hidden_size"])
    num_heads = int(config["num_attention_heads"])
    head_dim = int(config.get("head_dim") or hidden // num_heads)
    max_positions = int(config.get("max_position_embeddings", 2048))
    return LlamaArgs(
        vocab_size=int(config["vocab_size"]),
        hidden_size=hidden,
        intermediate_size=int(config["intermediate_size"]),
        num_layers=int(config["num_hidden_layers"]),
        num_heads=num_heads,
        num_kv_heads=int(config.get("num_key_value_heads") or num_heads),
        head_dim=head_dim,
        rms_norm_eps=float(config.get("rms_norm_eps", 1e-6)),
        rope=rope_config_from_hf(config, rotary_dim=head_dim, max_position_embeddings=max_positions),
        qkv_bias=qkv_bias,
        o_bias=o_bias,
        mlp_bias=bool(config.get("mlp_bias", False)),
        hidden_act=str(config.get("hidden_act", "silu")),
        tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
        sliding_windows=tuple(sliding_windows),
    )


def llama_args(config: Mapping[str, Any]) -> LlamaArgs:
    bias = bool(config.get("attention_bias", False))
    return parse_args(
        config, qkv_bias=bias, o_bias=bias, sliding_windows=[None] * config["num_hidden_layers"]
    )


def mistral_args(config: Mapping[str, Any]) -> LlamaArgs:
    window = config.get("sliding_window")
    return parse_args(
        config, qkv_bias=False, o_bias=False, sliding_windows=[window] * config["num_hidden_layers"]
    )


def qwen2_args(config: Mapping[str, Any]) -> LlamaArgs:
    num_layers = int(config["num_hidden_layers"])
    window = config.get("sliding_window") if config.get("use_sliding_window", False) else None
    layer_types = config.get("layer_types")
    if layer_types is None:
        # Qwen2's rule: the layers from `max_window_layers` on use the window.
        first_windowed = int(config.get("max_window_layers", num_layers))
        layer_types = [
            "sliding_attention" if i >= first_windowed else "full_attention" for i in range(num_layers)
        ]
    windows = [window if kind == "sliding_attention" else None for kind in layer_types]
    return parse_args(config, qkv_bias=True, o_bias=False, sliding_windows=windows)


class LlamaAttention(nn.Module):
    def __init__(
        self, args: LlamaArgs, layer_idx: int, dtype: torch.dtype, backend: AttentionBackend
    ) -> None:
        super().__init__()
        self.num_heads = args.num_heads
        self.num_kv_heads = args.num_kv_heads
        self.head_dim = args.head_dim
        self.rotary_dim = args.rope.rotary_dim  # < head_dim: RoPE on the first rotary_dim only
        self.q_size = args.num_heads * args.head_dim
        self.kv_size = args.num_kv_heads * args.head_dim
        sizes = (self.q_size, self.kv_size, self.kv_size)
        self.qkv_proj = Linear(args.hidden_size, sizes, bias=args.qkv_bias, dtype=dtype)
        self.o_proj = Linear(self.q_size, args.hidden_size, bias=args.o_bias, dtype=dtype)
        self.attn = Attention(
            args.num_heads,
            args.num_kv_heads,
            args.head_dim,
            scale=args.head_dim**-0.5,
            sliding_window=args.sliding_windows[layer_idx],
            backend=backend,
        )

    def forward(
        self,
        hidden: torch.Tensor,  # [num_tokens, hidden]
        cos: torch.Tensor,
        sin: torch.Tensor,
        meta: AttentionMetadata,
        cache: LayerKVCache,
    ) -> torch.Tensor:
        num_tokens = hidden.shape[0]
        qkv = self.qkv_proj(hidden)  # [num_tokens, q_size + 2 * kv_size]
        # Rotate the query and key heads together: one op sequence instead of two.
        qk = qkv[:, : self.q_size + self.kv_size].view(
            num_tokens, self.num_heads + self.num_kv_heads, self.head_dim
        )
        qk = self.normalize_qk(qk)
        q, k = rotate(qk, cos, sin, self.rotary_dim).split([self.num_heads, self.num_kv_heads], dim=1)
        v = qkv[:, self.q_size + self.kv_size :]
        # [num_tokens, hidden]
        return self.o_proj(self.attn(q, k, v, cache, meta))

    def normalize_qk(self, qk: torch.Tensor) -> torch.Tensor:
        """Hook before RoPE on [num_tokens, num_heads + num_kv_heads, head_dim];
        Llama has none (Qwen3 normalises each head here)."""
        return qk


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, rotary_dim: int) -> torch.Tensor:
    """x [num_tokens, num_heads, head_dim] with RoPE on the first `rotary_dim`
    channels of each head; the rest pass through (partial_rotary_factor < 1)."""
    if rotary_dim == x.shape[-1]:
        return apply_rotary(x, cos, sin)
    rotated = apply_rotary(x[..., :rotary_dim], cos, sin)
    return torch.cat([rotated, x[..., rotary_dim:]], dim=-1)


class LlamaMLP(nn.Module):
    def __init__(self, args: LlamaArgs, dtype: torch.dtype) -> None:
        super().__init__()
        inter = args.intermediate_size
        self.gate_up_proj = Linear(args.hidden_size, (inter, inter), bias=args.mlp_bias, dtype=dtype)
        self.down_proj = Linear(inter, args.hidden_size, bias=args.mlp_bias, dtype=dtype)
        self.act_and_mul = gated(args.hidden_act)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act_and_mul(self.gate_up_proj(hidden)))


def gated(hidden_act: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """act(gate) * up on the fused [..., 2 * intermediate] output."""
    if hidden_act == "silu":
        return silu_and_mul
    act = get_activation(hidden_act)

    def act_and_mul(gate_up: torch.Tensor) -> torch.Tensor:
        gate, up = gate_up.chunk(2, dim=-1)
        return act(gate).mul_(up)

    return act_and_mul


# The classes below name their submodules' classes as class attributes, so that a
# family that differs in one piece (Qwen3's attention, Gemma's norms and
# embeddings) overrides that attribute instead of the constructor.


class LlamaDecoderLayer(nn.Module):
    norm_cls: ClassVar[type[RMSNorm]] = RMSNorm
    attention_cls: ClassVar[type[LlamaAttention]] = LlamaAttention
    mlp_cls: ClassVar[type[LlamaMLP]] = LlamaMLP

    def __init__(
        self, args: LlamaArgs, layer_idx: int, dtype: torch.dtype, backend: AttentionBackend
    ) -> None:
        super().__init__()
        self.input_layernorm = self.norm_cls(args.hidden_size, args.rms_norm_eps, dtype=dtype)
        self.self_attn = self.attention_cls(args, layer_idx, dtype, backend)
        self.post_attention_layernorm = self.norm_cls(args.hidden_size, args.rms_norm_eps, dtype=dtype)
        self.mlp = self.mlp_cls(args, dtype)

    def forward(
        self,
        hidden: torch.Tensor,  # [num_tokens, hidden]
        cos: torch.Tensor,
        sin: torch.Tensor,
        meta: AttentionMetadata,
        cache: LayerKVCache,
    ) -> torch.Tensor:
        hidden = hidden + self.self_attn(self.input_layernorm(hidden), cos, sin, meta, cache)
        return hidden + self.mlp(self.post_attention_layernorm(hidden))


class LlamaModel(nn.Module):
    embedding_cls: ClassVar[type[Embedding]] = Embedding
    layer_cls: ClassVar[type[LlamaDecoderLayer]] = LlamaDecoderLayer
    norm_cls: ClassVar[type[RMSNorm]] = RMSNorm

    def __init__(self, args: LlamaArgs, dtype: torch.dtype, backend: AttentionBackend) -> None:
        super().__init__()
        self.embed_tokens = self.embedding_cls(args.vocab_size, args.hidden_size, dtype=dtype)
        self.rotary = RotaryEmbedding(args.rope)
        self.layers = nn.ModuleList([self.layer_cls(args, i, dtype, backend) for i in range(args.num_layers)])
        self.norm = self.norm_cls(args.hidden_size, args.rms_norm_eps, dtype=dtype)
        fusable_layers = [layer for layer in self.layers if fusable(layer)]
        self.fused_layers = FusedLayers(fusable_layers) if len(fusable_layers) == args.num_layers else None

    def forward(
        self,
        token_ids: torch.Tensor,  # [num_tokens]
        positions: torch.Tensor,  # [num_tokens]
        meta: AttentionMetadata,
        kv_caches: Sequence[LayerKVCache],
    ) -> torch.Tensor:
        hidden = self.embed_tokens(token_ids)  # [num_tokens, hidden]
        cos, sin = self.rotary.cos_sin(positions, hidden.dtype)  # [num_tokens, head_dim // 2]
        if self.fused_layers is not None and self.fused_layers.applies(hidden):
            return self.norm(self.fused_layers.forward(hidden, cos, sin, meta, kv_caches))
        for layer, cache in zip(self.layers, kv_caches, strict=True):
            hidden = layer(hidden, cos, sin, meta, cache)
        return self.norm(hidden)


def fusable(layer: nn.Module) -> TypeGuard[LlamaDecoderLayer]:
    """Whether `layer` is exactly the layer above (no family's override), on the
    default attention backend: the one models/fused_layers.py runs compiled."""
    return (
        type(layer) is LlamaDecoderLayer
        and type(layer.self_attn) is LlamaAttention
        and type(layer.mlp) is LlamaMLP
        and type(layer.input_layernorm) is RMSNorm
        and type(layer.post_attention_layernorm) is RMSNorm
        and layer.mlp.act_and_mul is silu_and_mul
        and layer.self_attn.attn.logit_softcap is None
        and type(layer.self_attn.attn.backend) is BatchedBackend
    )


class LlamaForCausalLM(nn.Module):
    parse_config: Callable[[Mapping[str, Any]], LlamaArgs] = staticmethod(llama_args)
    model_cls: ClassVar[type[LlamaModel]] = LlamaModel

    def __init__(self, args: LlamaArgs, dtype: torch.dtype, backend: AttentionBackend) -> None:
        super().__init__()
        self.args = args
        self.model = self.model_cls(args, dtype, backend)
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

    @classmethod
    def from_hf_config(
        cls, config: Mapping[str, Any], *, dtype: torch.dtype, attention_backend: AttentionBackend
    ) -> LlamaForCausalLM:
        return cls(cls.parse_config(config), dtype, attention_backend)

    def forward(
        self,
        token_ids: torch.Tensor,
        positions: torch.Tensor,
        meta: AttentionMetadata,
        kv_caches: Sequence[LayerKVCache],
    ) -> torch.Tensor:
        return self.model(token_ids, positions, meta, kv_caches)

    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.lm_head(hidden)

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        load_checkpoint(self, weights, self.checkpoint_target)

    def checkpoint_target(self, name: str) -> WeightTarget | None:
        if name.endswith("rotary_emb.inv_freq"):
            return None
        if name == "lm_head.weight" and self.args.tie_word_embeddings:
            return None
        module_path, _, leaf = name.rpartition(".")
        parent, _, projection = module_path.rpartition(".")
        if projection in FUSED_PROJECTIONS:
            fused, shard = FUSED_PROJECTIONS[projection]
            return WeightTarget(f"{parent}.{fused}.{leaf}", shard=shard)
        return WeightTarget(name)


class MistralForCausalLM(LlamaForCausalLM):
    parse_config = staticmethod(mistral_args)


class Qwen2ForCausalLM(LlamaForCausalLM):
    parse_config = staticmethod(qwen2_args)
