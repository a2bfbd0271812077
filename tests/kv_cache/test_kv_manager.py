from pytgi.kv_cache.block_pool import BlockPool
from pytgi.kv_cache.manager import KVCacheManager


def test_pool_allocate_free_counts():
    pool = BlockPool(4, enable_caching=True)
    blocks = pool.allocate(3)
    assert pool.num_in_use == 3 and pool.num_free == 1
    pool.free(reversed(blocks))
    assert pool.num_in_use == 0 and pool.num_free == 4


def test_pool_double_free_is_an_error():
    pool = BlockPool(2, enable_caching=False)
    (block,) = pool.allocate(1)
    pool.free([block])
    try:
        pool.free([block])
    except RuntimeError:
        return
    raise AssertionError("double free not detected")


def test_prefix_hit_reuses_full_blocks_and_leaves_one_token():
    kv = KVCacheManager(num_blocks=8, block_size=4, enable_prefix_caching=True)
    prompt = list(range(10))  # 2 full blocks + 2 tokens
    assert kv.allocate("a", len(prompt))
    kv.cache_computed("a", prompt, len(prompt))
    kv.free("a")
    assert kv.num_blocks_in_use == 0
    hit = kv.find_prefix("b", prompt)
    assert hit.num_tokens == 8 and len(hit.block_ids) == 2
    # An exact multiple of the block size still leaves the last token to compute.
    hit8 = kv.find_prefix("c", prompt[:8])
    assert hit8.num_tokens == 4
    assert kv.allocate("b", len(prompt), hit)
    assert kv.block_table("b")[:2] == hit.block_ids
    kv.free("b")
    assert kv.num_blocks_in_use == 0


def test_different_prefix_misses():
    kv = KVCacheManager(num_blocks=8, block_size=4, enable_prefix_caching=True)
    prompt = list(range(9))
    assert kv.allocate("a", 9)
    kv.cache_computed("a", prompt, 9)
    kv.free("a")
    other = [99] + prompt[1:]
    assert kv.find_prefix("b", other).num_tokens == 0


def test_shared_blocks_are_refcounted():
    kv = KVCacheManager(num_blocks=8, block_size=4, enable_prefix_caching=True)
    prompt = list(range(9))
    assert kv.allocate("a", 9)
    kv.cache_computed("a", prompt, 9)
    hit = kv.find_prefix("b", prompt)
    assert kv.allocate("b", 9, hit)
    assert kv.num_blocks_in_use == 3 + 1  # a: 3 blocks, b shares 2 and adds 1
    kv.free("a")
    assert kv.num_blocks_in_use == 3
    kv.free("b")
    assert kv.num_blocks_in_use == 0


def test_allocation_fails_cleanly_when_full():
    kv = KVCacheManager(num_blocks=3, block_size=4, enable_prefix_caching=False)
    assert kv.allocate("a", 8)
    assert not kv.allocate("b", 8)
    assert kv.block_table("b") == ()
    assert kv.num_blocks_in_use == 2


def test_cached_free_blocks_are_evicted_lru():
    kv = KVCacheManager(num_blocks=2, block_size=4, enable_prefix_caching=True)
    prompt = list(range(5))
    assert kv.allocate("a", 5)
    kv.cache_computed("a", prompt, 5)
    kv.free("a")
    # Needing both blocks evicts the cached one.
    assert kv.allocate("b", 8)
    kv.free("b")
    assert kv.find_prefix("c", prompt).num_tokens == 0
