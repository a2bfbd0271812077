"""Hypothesis: random allocate / prefix-hit / cache / preempt / free sequences on
the KV-cache manager never lose or double-count a block, never hand out more
blocks than exist, and a refused allocation changes nothing."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from kv_invariants import check_block_accounting

from pytgi.kv_cache.manager import KVCacheManager, blocks_for

NUM_BLOCKS = 12
BLOCK_SIZE = 4

# (operation, request index, number of tokens, prompt family): families share prefixes.
operations = st.lists(
    st.tuples(
        st.sampled_from(["allocate", "grow", "cache", "preempt", "free"]),
        st.integers(0, 5),
        st.integers(1, 30),
        st.integers(0, 1),
    ),
    max_size=60,
)


def tokens_of(family: int, num_tokens: int) -> list[int]:
    return [family * 1000 + i for i in range(num_tokens)]


@settings(max_examples=300, deadline=None)
@given(operations, st.booleans())
def test_block_accounting_survives_any_sequence(ops, prefix_caching: bool) -> None:
    kv = KVCacheManager(NUM_BLOCKS, BLOCK_SIZE, prefix_caching)
    live: dict[str, tuple[int, int]] = {}  # request id -> (family, tokens allocated)
    for op, index, num_tokens, family in ops:
        rid = f"r{index}"
        if op == "allocate" and rid not in live:
            prompt = tokens_of(family, num_tokens)
            hit = kv.find_prefix(rid, prompt)
            assert hit.num_tokens < num_tokens  # at least one token left to compute
            free_before = kv.pool.num_free
            if kv.allocate(rid, num_tokens, hit):
                live[rid] = (family, num_tokens)
                assert len(kv.block_table(rid)) == blocks_for(num_tokens, BLOCK_SIZE)
                assert kv.block_table(rid)[: len(hit.block_ids)] == hit.block_ids
            else:
                assert kv.pool.num_free == free_before and kv.block_table(rid) == ()
                kv.free(rid)  # drop the hashes of a request that never got in
        elif op == "grow" and rid in live:
            fam, allocated = live[rid]
            if kv.allocate(rid, allocated + num_tokens):
                live[rid] = (fam, allocated + num_tokens)
        elif op == "cache" and rid in live:
            fam, allocated = live[rid]
            kv.cache_computed(rid, tokens_of(fam, allocated), allocated)
        elif op == "preempt" and rid in live:
            kv.reset_request(rid)
            kv.free(rid)
            del live[rid]
        elif op == "free" and rid in live:
            kv.free(rid)
            del live[rid]
        check_block_accounting(kv, live)
    for rid in list(live):
        kv.free(rid)
    check_block_accounting(kv, ())
    assert kv.pool.num_free == NUM_BLOCKS


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 40), st.integers(0, 1))
def test_prefix_hit_blocks_hold_the_same_tokens(num_tokens: int, family: int) -> None:
    """A second request with the same prompt reuses exactly the full cached blocks of the first."""
    kv = KVCacheManager(NUM_BLOCKS * 2, BLOCK_SIZE, True)
    prompt = tokens_of(family, num_tokens)
    assert kv.allocate("a", num_tokens)
    kv.cache_computed("a", prompt, num_tokens)
    hit = kv.find_prefix("b", prompt)
    assert hit.num_tokens == min(num_tokens // BLOCK_SIZE, (num_tokens - 1) // BLOCK_SIZE) * BLOCK_SIZE
    assert hit.block_ids == kv.block_table("a")[: len(hit.block_ids)]
    assert kv.allocate("b", num_tokens, hit)
    check_block_accounting(kv, ("a", "b"))
    kv.free("a")
    kv.free("b")
    check_block_accounting(kv, ())
