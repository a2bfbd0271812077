"""The readable oracle: one chunk at a time, every key gathered slot by slot
from the paged cache, an explicit mask, plain SDPA. Slow on purpose; every
other backend is tested against it."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pytgi.layers.attention import AttentionMetadata, LayerKVCache, causal_mask, softcapped_attention


class ReferenceBackend:
    def forward(
        self,
        query: torch.Tensor,  # [num_tokens, num_heads, head_dim]
        key: torch.Tensor,  # [num_tokens, num_kv_heads, head_dim] (unused: read back from the cache)
        value: torch.Tensor,
        cache: LayerKVCache,
        meta: AttentionMetadata,
        *,
        scale: float,
        sliding_window: int | None,
        logit_softcap: float | None = None,
    ) -> torch.Tensor:
        num_heads, head_dim = query.shape[1], query.shape[2]
        num_kv_heads = cache.key.shape[2]
        flat_keys = cache.key.view(-1, num_kv_heads, head_dim)
        flat_values = cache.value.view(-1, num_kv_heads, head_dim)
        block_size = meta.block_size
        out = torch.empty_like(query)  # [num_tokens, num_heads, head_dim]
        for chunk_id, chunk in enumerate(meta.chunks):
            # Every position this chunk can see, and the cache slot that holds it.
            key_positions = torch.arange(chunk.context_len, device=query.device)  # [context_len]
            blocks = meta.block_tables[chunk_id][key_positions // block_size]
            slots = blocks * block_size + key_positions % block_size
            keys = flat_keys[slots].repeat_interleave(num_heads // num_kv_heads, dim=1)  # [ctx, heads, dim]
            values = flat_values[slots].repeat_interleave(num_heads // num_kv_heads, dim=1)

            rows = slice(chunk.query_start, chunk.query_start + chunk.query_len)
            query_positions = key_positions[chunk.start_position :]  # [query_len]
            mask = causal_mask(query_positions, key_positions, sliding_window)  # [query_len, ctx]
            if logit_softcap is None:
                attended = F.scaled_dot_product_attention(
                    query[rows].transpose(0, 1),  # [heads, query_len, dim]
                    keys.transpose(0, 1),
                    values.transpose(0, 1),
                    attn_mask=mask,
                    scale=scale,
                )
            else:
                attended = softcapped_attention(
                    query[rows].transpose(0, 1),
                    keys.transpose(0, 1),
                    values.transpose(0, 1),
                    mask,
                    scale=scale,
                    logit_softcap=logit_softcap,
                )
            out[rows] = attended.transpose(0, 1)
        return out
