"""Paged attention: the per-step metadata, the per-layer KV cache, and the
attention layer that writes new K/V into the cache and asks a backend to
attend over it.

A step is a flat list of tokens from several chunks (prefill chunks and decode
rows). Each token's K/V goes to one cache slot (`slot_mapping`); each chunk
attends causally over its request's cached positions `0 .. context_len - 1`
through its block table. Backends (attention_backends/) only differ in how they
batch that work; `reference` is the readable oracle the others are tested
against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn


@dataclass(frozen=True, slots=True)
class LayerKVCache:
    """One layer's paged cache. Slot `s` is block `s // block_size`, row `s % block_size`."""

    key: torch.Tensor  # [num_blocks, block_size, num_kv_heads, head_dim]
    value: torch.Tensor  # [num_blocks, block_size, num_kv_heads, head_dim]


@dataclass(frozen=True, slots=True)
class ChunkLayout:
    """Host-side facts of one chunk, as Python ints so backends can slice
    without reading anything back from the device."""

    query_start: int  # index of the chunk's first token in the flat batch
    query_len: int
    start_position: int  # position of the first token; earlier ones are cached

    @property
    def context_len(self) -> int:
        """Keys the last token of the chunk attends to (cached + new)."""
        return self.start_position + self.query_len


@dataclass(frozen=True, slots=True)
class AttentionMetadata:
    """Everything attention needs for one step; built once, shared by all layers.

    Chunks with one query token ("decode rows", including 1-token prefill tails)
    are listed in `decode_chunk_ids` so backends can batch them; the others in
    `prefill_chunk_ids`.
    """

    block_size: int
    chunks: tuple[ChunkLayout, ...]
    slot_mapping: torch.Tensor  # [num_tokens] int64
    block_tables: torch.Tensor  # [num_chunks, max_num_blocks] int64, padded with block 0
    prefill_chunk_ids: tuple[int, ...]
    decode_chunk_ids: tuple[int, ...]
    decode_token_index: torch.Tensor  # [num_decode] int64: rows of the flat batch
    decode_block_tables: torch.Tensor  # [num_decode, max_decode_blocks] int64
    decode_context_lens: torch.Tensor  # [num_decode] int64
    max_decode_context_len: int  # host copy of decode_context_lens.max() (0 when none)
    # Which padded key positions each decode row may see, built once per step
    # for every layer; None when there is at most one decode row (no padding).
    decode_length_mask: torch.Tensor | None = None  # [num_decode, padded_len] bool

    @property
    def num_tokens(self) -> int:
        return int(self.slot_mapping.shape[0])


class AttentionBackend(Protocol):
    """Attends each chunk's queries over its cached keys/values.

    Called after the layer's new K/V were written into `cache`. `key`/`value`
    are those same new K/V (a backend may use them directly for chunks with no
    cached prefix). Returns [num_tokens, num_heads, head_dim] in q's dtype.
    """

    def forward(
        self,
        query: torch.Tensor,  # [num_tokens, num_heads, head_dim]
        key: torch.Tensor,  # [num_tokens, num_kv_heads, head_dim]
        value: torch.Tensor,  # [num_tokens, num_kv_heads, head_dim]
        cache: LayerKVCache,
        meta: AttentionMetadata,
        *,
        scale: float,
        sliding_window: int | None,
        logit_softcap: float | None = None,
    ) -> torch.Tensor: ...


def write_kv_cache(cache: LayerKVCache, key: torch.Tensor, value: torch.Tensor, slots: torch.Tensor) -> None:
    """Store the step's new K/V ([num_tokens, num_kv_heads, head_dim]) at their slots."""
    num_kv_heads, head_dim = key.shape[1], key.shape[2]
    cache.key.view(-1, num_kv_heads, head_dim).index_copy_(0, slots, key)
    cache.value.view(-1, num_kv_heads, head_dim).index_copy_(0, slots, value)


class Attention(nn.Module):
    """Multi-head / grouped-query attention over the paged cache.

    `sliding_window` (None: full causal) lets a query at position p see keys at
    positions > p - sliding_window, as transformers' Mistral/Qwen2 do.
    `logit_softcap` (None: off) bounds the scaled scores to cap * tanh(s / cap)
    before masking, as Gemma 2 does; SDPA cannot, so backends then take the
    explicit path (`softcapped_attention`).
    """

    def __init__(
        self,
        num_heads: int,
        num_kv_heads: int,
        head_dim: int,
        *,
        scale: float,
        sliding_window: int | None,
        backend: AttentionBackend,
        logit_softcap: float | None = None,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.num_kv_heads = num_kv_heads
        self.head_dim = head_dim
        self.scale = scale
        self.sliding_window = sliding_window
        self.logit_softcap = logit_softcap
        self.backend = backend

    def forward(
        self,
        query: torch.Tensor,  # [num_tokens, num_heads * head_dim]
        key: torch.Tensor,  # [num_tokens, num_kv_heads * head_dim]
        value: torch.Tensor,  # [num_tokens, num_kv_heads * head_dim]
        cache: LayerKVCache,
        meta: AttentionMetadata,
    ) -> torch.Tensor:
        num_tokens = query.shape[0]
        query = query.reshape(num_tokens, self.num_heads, self.head_dim)
        key = key.reshape(num_tokens, self.num_kv_heads, self.head_dim)
        value = value.reshape(num_tokens, self.num_kv_heads, self.head_dim)
        write_kv_cache(cache, key, value, meta.slot_mapping)
        out = self.backend.forward(
            query,
            key,
            value,
            cache,
            meta,
            scale=self.scale,
            sliding_window=self.sliding_window,
            logit_softcap=self.logit_softcap,
        )
        # [num_tokens, num_heads * head_dim]
        return out.reshape(num_tokens, self.num_heads * self.head_dim)

    def extra_repr(self) -> str:
        return (
            f"heads={self.num_heads}, kv_heads={self.num_kv_heads}, head_dim={self.head_dim}, "
            f"window={self.sliding_window}, softcap={self.logit_softcap}, "
            f"backend={type(self.backend).__name__}"
        )


def causal_mask(
    query_positions: torch.Tensor,  # [num_queries]
    key_positions: torch.Tensor,  # [num_keys]
    sliding_window: int | None,
) -> torch.Tensor:
    """[num_queries, num_keys] bool, True where the query may attend the key."""
    q = query_positions[:, None]
    k = key_positions[None, :]
    allowed = k <= q
    if sliding_window is not None:
        allowed &= k > q - sliding_window
    return allowed


def softcapped_attention(
    query: torch.Tensor,  # [..., num_heads, num_queries, head_dim]
    key: torch.Tensor,  # [..., num_kv_heads, num_keys, head_dim]
    value: torch.Tensor,  # [..., num_kv_heads, num_keys, head_dim]
    mask: torch.Tensor | None,  # bool, broadcastable to [..., num_queries, num_keys]; None: all visible
    *,
    scale: float,
    logit_softcap: float,
) -> torch.Tensor:
    """SDPA's contract with scores capped at cap * tanh(s / cap) before the mask,
    spelled out (SDPA has no softcap) -> [..., num_heads, num_queries, head_dim].
    Scores and softmax run in float32."""
    groups = query.shape[-3] // key.shape[-3]
    key = key.repeat_interleave(groups, dim=-3)
    value = value.repeat_interleave(groups, dim=-3)
    scores = torch.matmul(query, key.transpose(-1, -2)).float() * scale  # [..., heads, queries, keys]
    scores = torch.tanh(scores / logit_softcap) * logit_softcap
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1).to(value.dtype)
    return torch.matmul(weights, value)
