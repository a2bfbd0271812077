"""The default backend: all decode rows in one call, prefill chunks one SDPA
call each.

Decode rows (one query token each) on a CPU go to a compiled kernel
(pytgi/kernels) that reads each request's blocks in place. Elsewhere, or where
the kernel cannot be built, they gather their requests' blocks into a padded
[num_decode, max_context, kv_heads, head_dim] tensor and mask the padding; the
cost per step never grows with a Python loop over requests. A prefill
chunk with no cached prefix attends over its own fresh K/V with the built-in
causal mask; one that continues a cached prefix gathers its blocks first.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pytgi.kernels import cpu_kernels
from pytgi.layers.attention import (
    AttentionMetadata,
    ChunkLayout,
    LayerKVCache,
    causal_mask,
    softcapped_attention,
)


class BatchedBackend:
    def forward(
        self,
        query: torch.Tensor,  # [num_tokens, num_heads, head_dim]
        key: torch.Tensor,  # [num_tokens, num_kv_heads, head_dim]
        value: torch.Tensor,
        cache: LayerKVCache,
        meta: AttentionMetadata,
        *,
        scale: float,
        sliding_window: int | None,
        logit_softcap: float | None = None,
    ) -> torch.Tensor:
        if not meta.prefill_chunk_ids:
            # Pure decode step: the flat batch is exactly the decode rows, in order.
            return decode_attention(query, cache, meta, scale, sliding_window, logit_softcap)
        out = torch.empty_like(query)
        for chunk_id in meta.prefill_chunk_ids:
            chunk = meta.chunks[chunk_id]
            rows = slice(chunk.query_start, chunk.query_start + chunk.query_len)
            out[rows] = prefill_attention(
                query[rows],
                key[rows],
                value[rows],
                cache,
                meta,
                chunk_id,
                chunk,
                scale,
                sliding_window,
                logit_softcap,
            )
        if meta.decode_chunk_ids:
            decode_query = query[meta.decode_token_index]
            out[meta.decode_token_index] = decode_attention(
                decode_query, cache, meta, scale, sliding_window, logit_softcap
            )
        return out


def prefill_attention(
    query: torch.Tensor,  # [query_len, num_heads, head_dim]
    key: torch.Tensor,  # [query_len, num_kv_heads, head_dim]
    value: torch.Tensor,
    cache: LayerKVCache,
    meta: AttentionMetadata,
    chunk_id: int,
    chunk: ChunkLayout,
    scale: float,
    sliding_window: int | None,
    logit_softcap: float | None,
) -> torch.Tensor:
    """One chunk's attention -> [query_len, num_heads, head_dim]."""
    if chunk.start_position > 0:
        # Continue a cached prefix: this chunk's keys are positions 0 .. context_len - 1.
        num_blocks = -(-chunk.context_len // meta.block_size)
        blocks = meta.block_tables[chunk_id, :num_blocks]
        key = cache.key[blocks].flatten(0, 1)[: chunk.context_len]  # [context_len, kv_heads, dim]
        value = cache.value[blocks].flatten(0, 1)[: chunk.context_len]
    mask = None
    if chunk.start_position > 0 or sliding_window is not None or logit_softcap is not None:
        key_positions = torch.arange(chunk.context_len, device=query.device)
        mask = causal_mask(key_positions[chunk.start_position :], key_positions, sliding_window)
    if logit_softcap is not None:
        capped = softcapped_attention(
            query.transpose(0, 1),
            key.transpose(0, 1),
            value.transpose(0, 1),
            mask,
            scale=scale,
            logit_softcap=logit_softcap,
        )
        return capped.transpose(0, 1)
    # A batch dimension of 1 matters: torch's CPU flash kernel only takes 4-D
    # inputs, and 3-D ones fall to the math path, 6-10x slower at 640 tokens
    # (docs/profile.md).
    out = F.scaled_dot_product_attention(
        query.transpose(0, 1)[None],  # [1, heads, query_len, dim]
        key.transpose(0, 1)[None],  # [1, kv_heads, context_len, dim]
        value.transpose(0, 1)[None],
        attn_mask=mask,
        is_causal=mask is None,
        scale=scale,
        enable_gqa=True,
    )
    return out[0].transpose(0, 1)


def decode_attention(
    query: torch.Tensor,  # [num_decode, num_heads, head_dim]
    cache: LayerKVCache,
    meta: AttentionMetadata,
    scale: float,
    sliding_window: int | None,
    logit_softcap: float | None,
) -> torch.Tensor:
    """All one-token rows at once -> [num_decode, num_heads, head_dim]."""
    kernel = cpu_kernels() if query.device.type == "cpu" else None
    if kernel is not None:
        return kernel.paged_decode_attention(
            query.contiguous(),
            cache.key,
            cache.value,
            meta.decode_block_tables,
            meta.decode_context_lens,
            scale,
            sliding_window or 0,
            logit_softcap or 0.0,
        )
    return padded_decode_attention(query, cache, meta, scale, sliding_window, logit_softcap)


def padded_decode_attention(
    query: torch.Tensor,  # [num_decode, num_heads, head_dim]
    cache: LayerKVCache,
    meta: AttentionMetadata,
    scale: float,
    sliding_window: int | None,
    logit_softcap: float | None,
) -> torch.Tensor:
    """The torch path: gather into a padded copy, mask, one SDPA call."""
    num_decode = query.shape[0]
    num_kv_heads, head_dim = cache.key.shape[2], cache.key.shape[3]
    num_blocks = -(-meta.max_decode_context_len // meta.block_size)
    tables = meta.decode_block_tables[:, :num_blocks]  # [num_decode, num_blocks]
    # [num_decode, kv_heads, padded_len, dim]
    keys = cache.key[tables].view(num_decode, -1, num_kv_heads, head_dim).transpose(1, 2)
    values = cache.value[tables].view(num_decode, -1, num_kv_heads, head_dim).transpose(1, 2)
    mask = decode_mask(meta, keys.shape[2], sliding_window, query.device)
    if mask is None:
        # One row: cut the padding off instead of masking it (the cheaper path).
        keys = keys[:, :, : meta.max_decode_context_len]
        values = values[:, :, : meta.max_decode_context_len]
    if logit_softcap is not None:
        capped = softcapped_attention(
            query[:, :, None, :],
            keys,
            values,
            None if mask is None else mask[:, None, None, :],
            scale=scale,
            logit_softcap=logit_softcap,
        )
        return capped[:, :, 0, :]
    out = F.scaled_dot_product_attention(
        query[:, :, None, :],  # [num_decode, heads, 1, dim]
        keys,
        values,
        attn_mask=None if mask is None else mask[:, None, None, :],
        scale=scale,
        enable_gqa=True,
    )
    return out[:, :, 0, :]


def decode_mask(
    meta: AttentionMetadata, padded_len: int, sliding_window: int | None, device: torch.device
) -> torch.Tensor | None:
    """[num_decode, padded_len] bool of visible keys, or None when every padded
    key up to `max_decode_context_len` is visible (one row, no window)."""
    if sliding_window is None:
        return meta.decode_length_mask
    key_positions = torch.arange(padded_len, device=device)[None, :]  # [1, padded_len]
    lengths = meta.decode_context_lens[:, None]  # [num_decode, 1]
    # The query sits at position length - 1.
    return (key_positions < lengths) & (key_positions > lengths - 1 - sliding_window)
