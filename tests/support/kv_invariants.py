"""Block accounting checks shared by the scheduler and KV-cache property tests."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from pytgi.kv_cache.manager import KVCacheManager


def check_block_accounting(kv: KVCacheManager, live_request_ids: Iterable[str]) -> None:
    """Each block's reference count equals the number of live block tables that
    hold it, and the free blocks are exactly those nobody holds: no block lost,
    none counted twice."""
    held = Counter(block for rid in live_request_ids for block in kv.block_table(rid))
    for block_id in range(kv.num_blocks):
        assert kv.pool.ref_count(block_id) == held[block_id], f"block {block_id}"
    assert kv.pool.num_free == kv.num_blocks - len(held)
    assert kv.num_blocks_in_use == len(held)
