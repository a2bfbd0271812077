"""Every attention backend against the reference oracle on random mixed
batches: prefill chunks from position 0, chunks continuing a cached prefix,
1-token tails and decode rows, with and without a sliding window and a
logit soft-cap."""

from __future__ import annotations

import random

import pytest
import torch

from pytgi.executor.forward_batch import build_forward_batch
from pytgi.layers.attention import LayerKVCache, causal_mask, softcapped_attention, write_kv_cache
from pytgi.layers.attention_backends import ATTENTION_BACKENDS, get_attention_backend
from pytgi.step import ScheduledChunk

BLOCK_SIZE = 4
NUM_BLOCKS = 128
NUM_HEADS, NUM_KV_HEADS, HEAD_DIM = 4, 2, 16


def random_chunks(rng: random.Random) -> list[ScheduledChunk]:
    free = list(range(NUM_BLOCKS))
    rng.shuffle(free)
    chunks = []
    # (start_position, num_tokens): fresh prefill, continued prefill, 1-token tail, decodes.
    shapes = [(0, rng.randint(2, 20)), (rng.randint(1, 30), rng.randint(2, 12)), (rng.randint(1, 9), 1)]
    shapes += [(rng.randint(0, 40), 1) for _ in range(rng.randint(1, 5))]
    rng.shuffle(shapes)
    for i, (start, length) in enumerate(shapes):
        num_blocks = -(-(start + length) // BLOCK_SIZE) + rng.randint(0, 2)  # tables may run ahead
        table = tuple(free.pop() for _ in range(num_blocks))
        chunks.append(ScheduledChunk(f"r{i}", tuple(range(length)), start, table, sample=True))
    return chunks


@pytest.mark.parametrize("backend_name", sorted(set(ATTENTION_BACKENDS) - {"reference"}))
@pytest.mark.parametrize("logit_softcap", [None, 1.5])
@pytest.mark.parametrize("sliding_window", [None, 5])
@pytest.mark.parametrize("seed", range(4))
def test_backend_matches_reference(
    backend_name: str, sliding_window: int | None, logit_softcap: float | None, seed: int
) -> None:
    rng = random.Random(seed)
    torch.manual_seed(seed)
    chunks = random_chunks(rng)
    batch = build_forward_batch(chunks, [False] * len(chunks), BLOCK_SIZE, torch.device("cpu"))
    num_tokens = batch.token_ids.shape[0]
    shape = (NUM_BLOCKS, BLOCK_SIZE, NUM_KV_HEADS, HEAD_DIM)
    # Random cache contents stand for the cached prefixes written by earlier steps.
    cache = LayerKVCache(torch.randn(shape), torch.randn(shape))
    query = torch.randn(num_tokens, NUM_HEADS, HEAD_DIM)
    key = torch.randn(num_tokens, NUM_KV_HEADS, HEAD_DIM)
    value = torch.randn(num_tokens, NUM_KV_HEADS, HEAD_DIM)
    write_kv_cache(cache, key, value, batch.attention.slot_mapping)

    outputs = [
        get_attention_backend(name).forward(
            query,
            key,
            value,
            cache,
            batch.attention,
            scale=HEAD_DIM**-0.5,
            sliding_window=sliding_window,
            logit_softcap=logit_softcap,
        )
        for name in ("reference", backend_name)
    ]
    torch.testing.assert_close(outputs[1], outputs[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("logit_softcap", [None, 1.5])
def test_decode_only_batch_matches_reference(logit_softcap: float | None) -> None:
    rng = random.Random(7)
    chunks = [
        ScheduledChunk(f"r{i}", (1,), rng.randint(0, 50), tuple(range(i * 14, i * 14 + 14)), True)
        for i in range(6)
    ]
    batch = build_forward_batch(chunks, [False] * 6, BLOCK_SIZE, torch.device("cpu"))
    shape = (NUM_BLOCKS, BLOCK_SIZE, NUM_KV_HEADS, HEAD_DIM)
    cache = LayerKVCache(torch.randn(shape), torch.randn(shape))
    query, key, value = (
        torch.randn(6, NUM_HEADS, HEAD_DIM),
        torch.randn(6, NUM_KV_HEADS, HEAD_DIM),
        torch.randn(6, NUM_KV_HEADS, HEAD_DIM),
    )
    write_kv_cache(cache, key, value, batch.attention.slot_mapping)
    ref, fast = (
        get_attention_backend(name).forward(
            query,
            key,
            value,
            cache,
            batch.attention,
            scale=0.25,
            sliding_window=None,
            logit_softcap=logit_softcap,
        )
        for name in ("reference", "batched")
    )
    torch.testing.assert_close(fast, ref, atol=1e-5, rtol=1e-5)


def test_softcapped_attention_matches_formula() -> None:
    """The explicit path against the formula, written out for one head group:
    softmax(mask(cap * tanh(q k^T * scale / cap))) v; a huge cap is plain SDPA."""
    torch.manual_seed(0)
    query = torch.randn(NUM_HEADS, 6, HEAD_DIM)  # [heads, queries, dim]
    key, value = torch.randn(2, NUM_KV_HEADS, 9, HEAD_DIM)  # [kv_heads, keys, dim] each
    mask = causal_mask(torch.arange(3, 9), torch.arange(9), 4)  # [queries, keys]
    capped = softcapped_attention(query, key, value, mask, scale=0.3, logit_softcap=2.0)

    groups = NUM_HEADS // NUM_KV_HEADS
    expand_key, expand_value = key.repeat_interleave(groups, 0), value.repeat_interleave(groups, 0)
    scores = 2.0 * torch.tanh(query @ expand_key.transpose(1, 2) * 0.3 / 2.0)
    expected = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1) @ expand_value
    torch.testing.assert_close(capped, expected)

    uncapped = softcapped_attention(query, key, value, mask, scale=0.3, logit_softcap=1e9)
    sdpa = torch.nn.functional.scaled_dot_product_attention(
        query, key, value, attn_mask=mask, scale=0.3, enable_gqa=True
    )
    torch.testing.assert_close(uncapped, sdpa, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(capped, sdpa, atol=1e-3)


def test_slot_mapping_follows_block_tables() -> None:
    chunks = [ScheduledChunk("a", (1, 2, 3), 5, (9, 3, 7), True), ScheduledChunk("b", (4,), 0, (2,), True)]
    batch = build_forward_batch(chunks, [False, False], BLOCK_SIZE, torch.device("cpu"))
    # positions 5, 6, 7 live in block table[1] = 3 at rows 1, 2, 3; position 0 of b in block 2.
    assert batch.attention.slot_mapping.tolist() == [13, 14, 15, 8]
    assert batch.positions.tolist() == [5, 6, 7, 0]
    assert batch.logits_indices.tolist() == [2, 3]
