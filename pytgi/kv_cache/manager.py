"""KV-cache accounting per request: which blocks it holds, prefix-cache hits,
and registering newly completed blocks for reuse. Plain Python, no tensors:
the executor only sees the resulting block tables."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pytgi.kv_cache.block_pool import BlockPool
from pytgi.kv_cache.prefix_cache import extend_block_hashes


@dataclass(frozen=True, slots=True)
class PrefixHit:
    """Cached blocks covering the first `num_tokens` tokens of a request."""

    block_ids: tuple[int, ...]
    num_tokens: int


NO_HIT = PrefixHit((), 0)


def blocks_for(num_tokens: int, block_size: int) -> int:
    return -(-num_tokens // block_size)


class KVCacheManager:
    """Owns the block pool and each request's block list."""

    def __init__(self, num_blocks: int, block_size: int, enable_prefix_caching: bool) -> None:
        self.block_size = block_size
        self.pool = BlockPool(num_blocks, enable_prefix_caching)
        self._blocks: dict[str, list[int]] = {}
        self._hashes: dict[str, list[int]] = {}
        self._num_cached_blocks: dict[str, int] = {}

    @property
    def num_blocks(self) -> int:
        return self.pool.num_blocks

    @property
    def num_blocks_in_use(self) -> int:
        return self.pool.num_in_use

    def find_prefix(self, request_id: str, token_ids: Sequence[int]) -> PrefixHit:
        """Longest run of cached full blocks at the start of `token_ids`, leaving
        at least one token to compute (the model must produce logits)."""
        if not self.pool.enable_caching:
            return NO_HIT
        hashes = self._hashes.setdefault(request_id, [])
        extend_block_hashes(hashes, token_ids, len(token_ids), self.block_size)
        max_blocks = (len(token_ids) - 1) // self.block_size
        hit: list[int] = []
        for block_hash in hashes[:max_blocks]:
            block_id = self.pool.lookup(block_hash)
            if block_id is None:
                break
            hit.append(block_id)
        return PrefixHit(tuple(hit), len(hit) * self.block_size)

    def allocate(self, request_id: str, num_tokens: int, hit: PrefixHit = NO_HIT) -> bool:
        """Make the request hold blocks for its first `num_tokens` tokens, taking
        the prefix-hit blocks first. False (and no change) when blocks run out."""
        held = self._blocks.setdefault(request_id, [])
        num_needed = blocks_for(num_tokens, self.block_size) - len(held) - len(hit.block_ids)
        num_new = max(num_needed, 0)
        if num_new > self.pool.num_free_after_touch(hit.block_ids):
            return False
        if hit.block_ids:
            self.pool.touch(hit.block_ids)
            held.extend(hit.block_ids)
            self._num_cached_blocks[request_id] = len(hit.block_ids)
        held.extend(self.pool.allocate(num_new))
        return True

    def block_table(self, request_id: str) -> tuple[int, ...]:
        return tuple(self._blocks.get(request_id, ()))

    def has_uncached_full_block(self, request_id: str, num_computed: int) -> bool:
        """Cheap check, so that hashing runs once per completed block."""
        if not self.pool.enable_caching:
            return False
        return num_computed // self.block_size > self._num_cached_blocks.get(request_id, 0)

    def cache_computed(self, request_id: str, token_ids: Sequence[int], num_computed: int) -> None:
        """Register every block that is now full of computed tokens."""
        if not self.pool.enable_caching:
            return
        hashes = self._hashes.setdefault(request_id, [])
        extend_block_hashes(hashes, token_ids, num_computed, self.block_size)
        held = self._blocks[request_id]
        start = self._num_cached_blocks.get(request_id, 0)
        end = min(len(hashes), num_computed // self.block_size, len(held))
        for index in range(start, end):
            self.pool.cache(held[index], hashes[index])
        self._num_cached_blocks[request_id] = max(start, end)

    def free(self, request_id: str) -> None:
        """Release every block the request holds (tail first, see BlockPool.free)."""
        held = self._blocks.pop(request_id, [])
        self.pool.free(reversed(held))
        self._hashes.pop(request_id, None)
        self._num_cached_blocks.pop(request_id, None)

    def reset_request(self, request_id: str) -> None:
        """For preemption: free the blocks but keep the token hashes."""
        held = self._blocks.pop(request_id, [])
        self.pool.free(reversed(held))
        self._num_cached_blocks.pop(request_id, None)
