"""Chained block hashes: a block's identity is its tokens plus everything
before it, so equal hashes mean equal KV contents (for one model)."""

from __future__ import annotations

from collections.abc import Sequence


def hash_block(parent_hash: int | None, block_token_ids: Sequence[int]) -> int:
    """Hash of one full block, chained to the hash of the block before it."""
    return hash((parent_hash, tuple(block_token_ids)))


def extend_block_hashes(
    hashes: list[int], token_ids: Sequence[int], num_tokens: int, block_size: int
) -> None:
    """Append to `hashes` the hashes of every full block within the first
    `num_tokens` of `token_ids` that `hashes` does not cover yet."""
    num_full = num_tokens // block_size
    for index in range(len(hashes), num_full):
        parent = hashes[index - 1] if index > 0 else None
        start = index * block_size
        hashes.append(hash_block(parent, token_ids[start : start + block_size]))
