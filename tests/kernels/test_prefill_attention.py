"""The bf16 prefill attention kernel against a float64 reference and against
torch's SDPA (what the stack called before): causal over a cached prefix, keys
read in place from a paged cache, grouped heads, head sizes 64 and 128."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from pytgi import kernels

MODULE = kernels.cpu_kernels()
pytestmark = pytest.mark.skipif(
    MODULE is None or not MODULE.prefill_attention_available(), reason="no CPU kernels with AVX512-BF16 here"
)
BLOCK_SIZE = 16


def paged_case(
    start: int, length: int, dim: int, heads: int = 9, kv_heads: int = 3, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Queries, caches and a shuffled block table (longer than needed) for a
    chunk of `length` queries after `start` cached positions."""
    generator = torch.Generator().manual_seed(seed)
    blocks = math.ceil((start + length) / BLOCK_SIZE)
    shape = (blocks + 5, BLOCK_SIZE, kv_heads, dim)
    key_cache = torch.randn(shape, generator=generator).bfloat16()
    value_cache = torch.randn(shape, generator=generator).bfloat16()
    table = torch.randperm(blocks + 5, generator=generator)[: blocks + 2]
    query = torch.randn(length, heads, dim, generator=generator).bfloat16()
    return query, key_cache, value_cache, table


def context(cache: torch.Tensor, table: torch.Tensor, size: int) -> torch.Tensor:
    return cache.index_select(0, table).flatten(0, 1)[:size]  # [size, kv_heads, dim]


def reference(
    query: torch.Tensor, key_cache: torch.Tensor, value_cache: torch.Tensor, table: torch.Tensor, start: int
) -> torch.Tensor:
    length, heads, dim = query.shape
    keys, values = (context(c, table, start + length).double() for c in (key_cache, value_cache))
    group = heads // keys.shape[1]
    keys, values = keys.repeat_interleave(group, 1), values.repeat_interleave(group, 1)
    scores = torch.einsum("qhd,khd->hqk", query.double(), keys) / math.sqrt(dim)
    positions = torch.arange(start, start + length)[:, None]
    scores = scores.masked_fill(torch.arange(start + length)[None] > positions, -math.inf)
    return torch.einsum("hqk,khd->qhd", scores.softmax(-1), values)


def sdpa(
    query: torch.Tensor, key_cache: torch.Tensor, value_cache: torch.Tensor, table: torch.Tensor, start: int
) -> torch.Tensor:
    size = start + query.shape[0]
    keys, values = (context(c, table, size).transpose(0, 1)[None] for c in (key_cache, value_cache))
    visible = torch.arange(size)[None] <= torch.arange(start, size)[:, None]
    out = F.scaled_dot_product_attention(query.transpose(0, 1)[None], keys, values, visible, enable_gqa=True)
    return out[0].transpose(0, 1)


@pytest.mark.parametrize(
    ("start", "length", "dim"),
    [
        (0, 1, 64),
        (0, 7, 64),
        (0, 33, 64),
        (5, 40, 64),
        (31, 97, 64),
        (512, 128, 64),
        (0, 300, 64),
        (100, 300, 128),
        (1000, 17, 128),
        (0, 129, 128),
    ],
)
def test_matches_the_reference_as_closely_as_sdpa(start: int, length: int, dim: int) -> None:
    query, key_cache, value_cache, table = paged_case(start, length, dim, seed=start + length)
    got = MODULE.prefill_attention(query, key_cache, value_cache, table, start, 1 / math.sqrt(dim))
    expected = reference(query, key_cache, value_cache, table, start)
    torch_error = (sdpa(query, key_cache, value_cache, table, start).double() - expected).abs()
    error = (got.double() - expected).abs()
    assert got.dtype == torch.bfloat16 and got.shape == query.shape
    # Both round the output to bf16 once, from float32 sums of bf16-rounded weights.
    assert error.max() <= 1.25 * torch_error.max() + 1e-3
    assert error.mean() <= 1.25 * torch_error.mean() + 1e-5


def test_a_growing_max_rescales_the_earlier_keys_sums() -> None:
    # Keys grow with position, so each 128-key step raises a query's running max
    # by far: the sums of the earlier steps must be rescaled, not dropped or kept.
    query, key_cache, value_cache, table = paged_case(200, 300, 64, seed=7)
    key_cache = key_cache.float() * 0.1
    for i, block in enumerate(table.tolist()):
        key_cache[block] += (torch.arange(i * BLOCK_SIZE, (i + 1) * BLOCK_SIZE) / 100.0)[:, None, None]
    key_cache = key_cache.bfloat16()
    query = query.abs()
    got = MODULE.prefill_attention(query, key_cache, value_cache, table, 200, 0.125)
    expected = reference(query, key_cache, value_cache, table, 200)
    torch_error = (sdpa(query, key_cache, value_cache, table, 200).double() - expected).abs()
    assert (got.double() - expected).abs().max() <= 1.25 * torch_error.max() + 1e-3


@pytest.mark.parametrize(("heads", "kv_heads"), [(4, 4), (8, 1), (32, 8)])
def test_any_grouping_of_query_heads(heads: int, kv_heads: int) -> None:
    query, key_cache, value_cache, table = paged_case(70, 90, 128, heads=heads, kv_heads=kv_heads, seed=heads)
    got = MODULE.prefill_attention(query, key_cache, value_cache, table, 70, 1 / math.sqrt(128))
    expected = reference(query, key_cache, value_cache, table, 70)
    torch_error = (sdpa(query, key_cache, value_cache, table, 70).double() - expected).abs()
    assert (got.double() - expected).abs().max() <= 1.25 * torch_error.max() + 1e-3


def test_refuses_what_it_does_not_take() -> None:
    query, key_cache, value_cache, table = paged_case(0, 8, 64)
    with pytest.raises(RuntimeError, match="bfloat16 only"):
        MODULE.prefill_attention(query.float(), key_cache.float(), value_cache.float(), table, 0, 0.125)
    with pytest.raises(RuntimeError, match="head size 64 or 128"):
        MODULE.prefill_attention(
            query[..., :32].contiguous(),
            key_cache[..., :32].contiguous(),
            value_cache[..., :32].contiguous(),
            table,
            0,
            0.125,
        )
    with pytest.raises(RuntimeError, match="must cover the context"):
        MODULE.prefill_attention(query, key_cache, value_cache, table[:0], 0, 0.125)
    empty = MODULE.prefill_attention(query[:0], key_cache, value_cache, table, 3, 0.125)
    assert empty.shape == (0, 9, 64)
