"""Gemma 2: Gemma's decoder with three changes.

- four norms per layer: the attention and MLP outputs are normed again
  (`post_attention_layernorm`, `post_feedforward_layernorm`) before the
  residual add, and the MLP input has its own `pre_feedforward_layernorm`;
- attention scale query_pre_attn_scalar**-0.5 and scores soft-capped at
  cap * tanh(s / cap) (`attn_logit_softcapping`), the logits likewise
  (`final_logit_softcapping`);
- sliding-window attention on alternate layers: `layer_types` where the config
  has it (transformers 4.57 and 5 write it), else the even layers, as
  transformers' default.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from pytgi.layers.attention import Attention, AttentionBackend, AttentionMetadata, LayerKVCache
from pytgi.models.gemma import GemmaDecoderLayer, GemmaModel, gemma_activation
from pytgi.models.llama import LlamaArgs, LlamaAttention, LlamaForCausalLM, parse_args


@dataclass(frozen=True, slots=True)
class Gemma2Args(LlamaArgs):
    query_pre_attn_scalar: float
    attn_logit_softcap: float | None
    final_logit_softcap: float | None


def gemma2_args(config: Mapping[str, Any]) -> Gemma2Args:
    num_layers = int(config["num_hidden_layers"])
    layer_types = config.get("layer_types") or [
        "sliding_attention" if i % 2 == 0 else "full_attention" for i in range(num_layers)
    ]
    window = config.get("sliding_window")
    windows = [window if kind == "sliding_attention" else None for kind in layer_types]
    bias = bool(config.get("attention_bias", False))
    base = parse_args(config, qkv_bias=bias, o_bias=bias, sliding_windows=windows)
    fields = {field.name: getattr(base, field.name) for field in dataclasses.fields(base)}
    fields.update(
        hidden_act=gemma_activation(config),
        tie_word_embeddings=bool(config.get("tie_word_embeddings", True)),
    )
    return Gemma2Args(
        **fields,
        query_pre_attn_scalar=float(config.get("query_pre_attn_scalar", 256)),
        attn_logit_softcap=optional_float(config.get("attn_logit_softcapping")),
        final_logit_softcap=optional_float(config.get("final_logit_softcapping")),
    )


def optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def softcap(x: torch.Tensor, cap: float) -> torch.Tensor:
    return torch.tanh(x / cap) * cap


class Gemma2Attention(LlamaAttention):
    """Llama's attention with Gemma 2's scale and score soft-cap."""

    def __init__(
        self, args: LlamaArgs, layer_idx: int, dtype: torch.dtype, backend: AttentionBackend
    ) -> None:
        super().__init__(args, layer_idx, dtype, backend)
        assert isinstance(args, Gemma2Args)
        self.attn = Attention(
            args.num_heads,
            args.num_kv_heads,
            args.head_dim,
            scale=args.query_pre_attn_scalar**-0.5,
            sliding_window=args.sliding_windows[layer_idx],
            backend=backend,
            logit_softcap=args.attn_logit_softcap,
        )


class Gemma2DecoderLayer(GemmaDecoderLayer):
    attention_cls = Gemma2Attention

    def __init__(
        self, args: LlamaArgs, layer_idx: int, dtype: torch.dtype, backend: AttentionBackend
    ) -> None:
        super().__init__(args, layer_idx, dtype, backend)
        self.pre_feedforward_layernorm = self.norm_cls(args.hidden_size, args.rms_norm_eps, dtype=dtype)
        self.post_feedforward_layernorm = self.norm_cls(args.hidden_size, args.rms_norm_eps, dtype=dtype)

    def forward(
        self,
        hidden: torch.Tensor,  # [num_tokens, hidden]
        cos: torch.Tensor,
        sin: torch.Tensor,
        meta: AttentionMetadata,
        cache: LayerKVCache,
    ) -> torch.Tensor:
        attended = self.self_attn(self.input_layernorm(hidden), cos, sin, meta, cache)
        hidden = hidden + self.post_attention_layernorm(attended)
        mixed = self.mlp(self.pre_feedforward_layernorm(hidden))
        return hidden + self.post_feedforward_layernorm(mixed)


class Gemma2Model(GemmaModel):
    layer_cls = Gemma2DecoderLayer


class Gemma2ForCausalLM(LlamaForCausalLM):
    parse_config = staticmethod(gemma2_args)
    model_cls = Gemma2Model

    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = self.lm_head(hidden)  # [num_tokens, vocab]
        assert isinstance(self.args, Gemma2Args)
        cap = self.args.final_logit_softcap
        return logits if cap is None else softcap(logits, cap)
