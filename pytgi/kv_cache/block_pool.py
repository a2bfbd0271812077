"""The pool of KV-cache blocks: reference counts, a free list, and the map of
cached (hashed) blocks used for prefix caching.

A block whose reference count drops to 0 goes to the tail of the free list but
keeps its hash, so a later request with the same prefix can take it back
(a prefix-cache hit) until it is evicted by being reallocated from the head.
The free list is therefore also the LRU order of reusable cached blocks.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(slots=True)
class Block:
    block_id: int
    ref_count: int = 0
    block_hash: int | None = None


class BlockPool:
    """Owns every block's bookkeeping. Not thread-safe: the engine thread only."""

    def __init__(self, num_blocks: int, enable_caching: bool) -> None:
        if num_blocks <= 0:
            raise ValueError(f"num_blocks must be > 0, got {num_blocks}")
        self.num_blocks = num_blocks
        self.enable_caching = enable_caching
        self._blocks = [Block(i) for i in range(num_blocks)]
        # Ordered oldest-freed first: allocation pops from the front (LRU eviction).
        self._free: OrderedDict[int, None] = OrderedDict.fromkeys(range(num_blocks))
        self._cached: dict[int, int] = {}  # block hash -> block id

    @property
    def num_free(self) -> int:
        return len(self._free)

    @property
    def num_in_use(self) -> int:
        """Blocks referenced by at least one live request."""
        return self.num_blocks - len(self._free)

    def allocate(self, num_blocks: int) -> list[int]:
        """Take `num_blocks` fresh blocks (evicting cached ones, oldest first)."""
        if num_blocks > len(self._free):
            raise RuntimeError(f"asked for {num_blocks} blocks, {len(self._free)} free")
        taken: list[int] = []
        for _ in range(num_blocks):
            block_id, _ = self._free.popitem(last=False)
            block = self._blocks[block_id]
            self._forget_hash(block)
            block.ref_count = 1
            taken.append(block_id)
        return taken

    def lookup(self, block_hash: int) -> int | None:
        """The block holding the KV for this chained hash, if still cached."""
        return self._cached.get(block_hash) if self.enable_caching else None

    def touch(self, block_ids: Iterable[int]) -> None:
        """Take a reference on cached blocks found by `lookup` (a prefix hit)."""
        for block_id in block_ids:
            block = self._blocks[block_id]
            if block.ref_count == 0:
                del self._free[block_id]
            block.ref_count += 1

    def num_free_after_touch(self, block_ids: Iterable[int]) -> int:
        """Free blocks left if `block_ids` were touched (hits on free cached blocks
        stop being free)."""
        return len(self._free) - sum(1 for b in block_ids if self._blocks[b].ref_count == 0)

    def free(self, block_ids: Iterable[int]) -> None:
        """Drop one reference from each block. Callers pass a request's blocks in
        reverse order so that its tail is evicted before its (more shared) head."""
        for block_id in block_ids:
            block = self._blocks[block_id]
            if block.ref_count <= 0:
                raise RuntimeError(f"block {block_id} freed twice")
            block.ref_count -= 1
            if block.ref_count == 0:
                self._free[block_id] = None

    def cache(self, block_id: int, block_hash: int) -> None:
        """Record that `block_id` holds the full block with this chained hash."""
        if not self.enable_caching:
            return
        block = self._blocks[block_id]
        if block.block_hash is not None:
            return
        if block_hash in self._cached:
            # Another request computed the same block first; keep that one.
            return
        block.block_hash = block_hash
        self._cached[block_hash] = block_id

    def ref_count(self, block_id: int) -> int:
        return self._blocks[block_id].ref_count

    def _forget_hash(self, block: Block) -> None:
        if block.block_hash is not None:
            if self._cached.get(block.block_hash) == block.block_id:
                del self._cached[block.block_hash]
            block.block_hash = None
