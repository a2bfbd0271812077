"""The paged KV cache tensors: sizing and allocation.

Per layer, K and V are [num_blocks, block_size, num_kv_heads, head_dim] in the
model dtype. The core only ever sees block ids; this module decides how many
blocks exist.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pytgi.errors import ConfigError
from pytgi.layers.attention import LayerKVCache
from pytgi.models.interface import KVLayout, ModelShape
from pytgi.step import KVCacheSpec


@dataclass(frozen=True, slots=True)
class KVCache:
    spec: KVCacheSpec
    layers: tuple[LayerKVCache, ...]


def bytes_per_block(layout: KVLayout, block_size: int, dtype: torch.dtype) -> int:
    """K and V, every layer, one block."""
    element_size = torch.empty((), dtype=dtype).element_size()
    return 2 * layout.num_layers * block_size * layout.num_kv_heads * layout.head_dim * element_size


def activation_reserve_bytes(shape: ModelShape, max_num_batched_tokens: int, dtype: torch.dtype) -> int:
    """A generous estimate of the peak activations of a full step: a few hidden-
    and MLP-sized buffers per token, plus float32 logits (and their log-softmax)
    for every token when prompt logprobs are asked."""
    element_size = torch.empty((), dtype=dtype).element_size()
    per_token = (6 * shape.hidden_size + 4 * shape.intermediate_size) * element_size
    per_token += 2 * shape.vocab_size * 4
    return max_num_batched_tokens * per_token


def plan_num_blocks(
    *,
    block_bytes: int,
    block_size: int,
    max_batch_total_tokens: int | None,
    kv_cache_memory_fraction: float,
    available_bytes: int,
    reserve_bytes: int,
    max_bytes: int | None = None,
) -> int:
    """An explicit token capacity wins; else a share of the free memory left
    after the activation reserve, capped at `max_bytes` when given."""
    if max_batch_total_tokens is not None:
        return -(-max_batch_total_tokens // block_size)
    budget = int(kv_cache_memory_fraction * max(available_bytes - reserve_bytes, 0))
    if max_bytes is not None:
        budget = min(budget, max_bytes)
    num_blocks = budget // block_bytes
    if num_blocks < 1:
        raise ConfigError(
            f"not enough memory for one KV block ({block_bytes} bytes): {available_bytes} bytes free, "
            f"{reserve_bytes} reserved for activations, `kv_cache_memory_fraction`={kv_cache_memory_fraction}"
        )
    return num_blocks


def allocate_kv_cache(
    layout: KVLayout,
    num_blocks: int,
    block_size: int,
    dtype: torch.dtype,
    device: torch.device,
    *,
    scratch_blocks: int = 0,
) -> KVCache:
    """Zero-filled: padded gathers read unused slots, which must hold finite values.
    `scratch_blocks` more blocks follow the `num_blocks` the spec announces, for
    writes no request owns (the padding rows of a CUDA graph)."""
    shape = (num_blocks + scratch_blocks, block_size, layout.num_kv_heads, layout.head_dim)
    layers = tuple(
        LayerKVCache(
            key=torch.zeros(shape, dtype=dtype, device=device),
            value=torch.zeros(shape, dtype=dtype, device=device),
        )
        for _ in range(layout.num_layers)
    )
    spec = KVCacheSpec(
        num_blocks=num_blocks,
        block_size=block_size,
        bytes_per_block=bytes_per_block(layout, block_size, dtype),
    )
    return KVCache(spec=spec, layers=layers)
