"""One step's chunks -> the tensors of one forward pass.

Host work is proportional to the step's tokens and blocks (flattening the
chunks' tuples), everything else is a few device ops; all integers travel to
the device in a single copy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain

import torch

from pytgi.layers.attention import AttentionMetadata, ChunkLayout
from pytgi.step import ScheduledChunk


@dataclass(frozen=True, slots=True)
class LogitsSpan:
    """Rows `first_row .. first_row + length - 1` of the logits hold every
    position of chunk `chunk_id` (for prompt logprobs)."""

    chunk_id: int
    first_row: int
    length: int


@dataclass(frozen=True, slots=True)
class ForwardBatch:
    token_ids: torch.Tensor  # [num_tokens] int64
    positions: torch.Tensor  # [num_tokens] int64
    attention: AttentionMetadata
    # Rows of the final hidden states that get logits: first the last token of
    # each sampled chunk (in `sample_chunk_ids` order), then every token of the
    # chunks in `all_logits_spans`.
    logits_indices: torch.Tensor  # [num_logits] int64
    sample_chunk_ids: tuple[int, ...]
    all_logits_spans: tuple[LogitsSpan, ...]

    @property
    def num_logits(self) -> int:
        return len(self.sample_chunk_ids) + sum(span.length for span in self.all_logits_spans)


def build_forward_batch(
    chunks: Sequence[ScheduledChunk],
    all_logits: Sequence[bool],  # per chunk: logits for every position, not only the last
    block_size: int,
    device: torch.device,
) -> ForwardBatch:
    layouts = chunk_layouts(chunks)
    token_ids, positions, chunk_of_token = flat_token_lists(chunks, layouts)
    tables, max_blocks = padded_block_tables(chunks, layouts, block_size)
    decode_ids = tuple(i for i, c in enumerate(layouts) if c.query_len == 1)
    decode_rows = [layouts[i].query_start for i in decode_ids]
    decode_lens = [layouts[i].context_len for i in decode_ids]
    sample_ids = tuple(i for i, c in enumerate(chunks) if c.sample)
    logits_rows, spans = logits_layout(layouts, sample_ids, all_logits)

    (token_t, position_t, chunk_t, table_t, decode_id_t, decode_row_t, decode_len_t, logits_t) = to_device(
        [
            token_ids,
            positions,
            chunk_of_token,
            tables,
            list(decode_ids),
            decode_rows,
            decode_lens,
            logits_rows,
        ],
        device,
    )
    block_tables = table_t.view(len(chunks), max_blocks)  # [num_chunks, max_blocks]
    # Cache slot of each new token: its block (via its chunk's table) and row in it.
    slots = block_tables[chunk_t, position_t // block_size] * block_size + position_t % block_size
    max_decode_len = max(decode_lens, default=0)
    decode_blocks = -(-max_decode_len // block_size)
    length_mask = None
    if len(decode_ids) > 1:
        key_positions = torch.arange(decode_blocks * block_size, device=device)  # [padded_len]
        length_mask = key_positions[None, :] < decode_len_t[:, None]  # [num_decode, padded_len]
    meta = AttentionMetadata(
        block_size=block_size,
        chunks=layouts,
        slot_mapping=slots,
        block_tables=block_tables,
        prefill_chunk_ids=tuple(i for i, c in enumerate(layouts) if c.query_len > 1),
        decode_chunk_ids=decode_ids,
        decode_token_index=decode_row_t,
        decode_block_tables=block_tables[decode_id_t, :decode_blocks],
        decode_context_lens=decode_len_t,
        max_decode_context_len=max_decode_len,
        decode_length_mask=length_mask,
    )
    return ForwardBatch(
        token_ids=token_t,
        positions=position_t,
        attention=meta,
        logits_indices=logits_t,
        sample_chunk_ids=sample_ids,
        all_logits_spans=spans,
    )


def flat_token_lists(
    chunks: Sequence[ScheduledChunk], layouts: Sequence[ChunkLayout]
) -> tuple[list[int], list[int], list[int]]:
    """Token ids, positions and owning chunk of every token of the step."""
    token_ids: list[int] = []
    positions: list[int] = []
    chunk_of_token: list[int] = []
    for chunk_id, (chunk, layout) in enumerate(zip(chunks, layouts, strict=True)):
        token_ids.extend(chunk.token_ids)
        positions.extend(range(layout.start_position, layout.context_len))
        chunk_of_token.extend([chunk_id] * layout.query_len)
    return token_ids, positions, chunk_of_token


def padded_block_tables(
    chunks: Sequence[ScheduledChunk], layouts: Sequence[ChunkLayout], block_size: int
) -> tuple[list[int], int]:
    """Row-major [num_chunks, max_blocks] table, padded with block 0 (masked by
    context lengths). Only the blocks each chunk reads: tables may run ahead."""
    tables = []
    for chunk, layout in zip(chunks, layouts, strict=True):
        num_blocks = -(-layout.context_len // block_size)
        if len(chunk.block_table) < num_blocks:
            raise ValueError(
                f"block table of {chunk.request_id!r} does not cover position {layout.context_len - 1}"
            )
        tables.append(chunk.block_table[:num_blocks])
    max_blocks = max(len(t) for t in tables)
    padding = (0,) * max_blocks
    return list(chain.from_iterable(t + padding[len(t) :] for t in tables)), max_blocks


def logits_layout(
    layouts: Sequence[ChunkLayout], sample_ids: Sequence[int], all_logits: Sequence[bool]
) -> tuple[list[int], tuple[LogitsSpan, ...]]:
    """Rows of the hidden states to compute logits for: the last token of each
    sampled chunk, then every token of the chunks that want all logits."""
    rows = [layouts[i].query_start + layouts[i].query_len - 1 for i in sample_ids]
    spans = []
    for chunk_id in (i for i, wanted in enumerate(all_logits) if wanted):
        layout = layouts[chunk_id]
        spans.append(LogitsSpan(chunk_id, len(rows), layout.query_len))
        rows.extend(range(layout.query_start, layout.query_start + layout.query_len))
    return rows, tuple(spans)


def to_device(parts: Sequence[list[int]], device: torch.device) -> tuple[torch.Tensor, ...]:
    """Int lists -> int64 device tensors, through one host -> device copy."""
    packed = torch.tensor(list(chain.from_iterable(parts)), dtype=torch.int64).to(device)
    return packed.split([len(p) for p in parts])


def chunk_layouts(chunks: Sequence[ScheduledChunk]) -> tuple[ChunkLayout, ...]:
    layouts = []
    query_start = 0
    for chunk in chunks:
        layouts.append(ChunkLayout(query_start, len(chunk.token_ids), chunk.start_position))
        query_start += len(chunk.token_ids)
    return tuple(layouts)
