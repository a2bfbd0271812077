"""CUDA graphs for decode steps.

A decode step of a small model on a GPU is mostly kernel-launch time: dozens
of small kernels per layer, each launched from Python. Replaying a captured
graph launches them all at once. A graph has fixed shapes, so a step is padded
up to a captured batch size (TGI's `--cuda-graphs` list, default
1,2,4,8,16,32) and its context up to a power-of-two number of KV blocks; one
graph per (batch size, context blocks) pair, captured the first time that pair
is seen. Padding rows write their K/V into a scratch block no request owns and
their logits are dropped. Prefill, prompt logprobs and batches above the
largest size run eagerly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from pytgi.executor.kv_tensors import KVCache
from pytgi.layers.attention import AttentionMetadata, ChunkLayout
from pytgi.models.interface import CausalLM
from pytgi.step import ScheduledChunk


@dataclass(slots=True)
class CapturedStep:
    graph: torch.cuda.CUDAGraph
    logits: torch.Tensor  # [batch_size, vocab] float32, rewritten by each replay


class DecodeGraphs:
    """Captures and replays decode steps; the runner asks `applies` first."""

    def __init__(
        self,
        model: CausalLM,
        kv_cache: KVCache,
        batch_sizes: Sequence[int],
        scratch_block: int,
        device: torch.device,
    ) -> None:
        self.model = model
        self.kv_cache = kv_cache
        self.batch_sizes = tuple(sorted(batch_sizes))
        self.block_size = kv_cache.spec.block_size
        self.scratch_block = scratch_block
        self.max_blocks = -(-model.shape.max_position_embeddings // self.block_size)
        rows = self.batch_sizes[-1]
        # The captured graphs read their inputs from these buffers, whatever the step.
        self.token_ids = torch.zeros(rows, dtype=torch.int64, device=device)
        self.positions = torch.zeros(rows, dtype=torch.int64, device=device)
        self.slots = torch.zeros(rows, dtype=torch.int64, device=device)
        self.context_lens = torch.ones(rows, dtype=torch.int64, device=device)
        self.block_tables = torch.full((rows, self.max_blocks), scratch_block, dtype=torch.int64, device=device)
        self.pool: Any = None  # the graphs' shared memory pool, made at first capture
        self.captured: dict[tuple[int, int], CapturedStep] = {}

    def applies(self, chunks: Sequence[ScheduledChunk], want_all_logits: Sequence[bool]) -> bool:
        """Pure decode, every row sampled, no prompt logprobs, within the largest size."""
        if not self.batch_sizes or not chunks or len(chunks) > self.batch_sizes[-1]:
            return False
        return all(
            len(c.token_ids) == 1 and c.sample and not want and len(c.block_table) <= self.max_blocks
            for c, want in zip(chunks, want_all_logits, strict=True)
        )

    def run(self, chunks: Sequence[ScheduledChunk]) -> torch.Tensor:
        """The step's logits, [len(chunks), vocab] float32 (a view into the graph's output)."""
        batch_size = next(size for size in self.batch_sizes if size >= len(chunks))
        longest = max(c.start_position + 1 for c in chunks)
        context_blocks = min(self.max_blocks, 1 << max(0, (-(-longest // self.block_size) - 1).bit_length()))
        self._fill(chunks, batch_size, context_blocks)
        step = self.captured.get((batch_size, context_blocks))
        if step is None:
            step = self._capture(batch_size, context_blocks)
            self.captured[(batch_size, context_blocks)] = step
        step.graph.replay()
        return step.logits[: len(chunks)]

    def _fill(self, chunks: Sequence[ScheduledChunk], batch_size: int, context_blocks: int) -> None:
        """One host -> device copy per buffer; padding rows read and write the scratch block."""
        pad = batch_size - len(chunks)
        bs, scratch = self.block_size, self.scratch_block
        tokens = [c.token_ids[0] for c in chunks] + [0] * pad
        positions = [c.start_position for c in chunks] + [0] * pad
        slots = [c.block_table[c.start_position // bs] * bs + c.start_position % bs for c in chunks]
        slots += [scratch * bs] * pad
        lens = [c.start_position + 1 for c in chunks] + [1] * pad
        tables = [
            list(c.block_table[:context_blocks]) + [scratch] * (context_blocks - min(context_blocks, len(c.block_table)))
            for c in chunks
        ]
        tables += [[scratch] * context_blocks] * pad
        host = torch.tensor([tokens, positions, slots, lens], dtype=torch.int64)
        device_host = host.to(self.token_ids.device, non_blocking=True)
        self.token_ids[:batch_size].copy_(device_host[0])
        self.positions[:batch_size].copy_(device_host[1])
        self.slots[:batch_size].copy_(device_host[2])
        self.context_lens[:batch_size].copy_(device_host[3])
        table_t = torch.tensor(tables, dtype=torch.int64).to(self.block_tables.device, non_blocking=True)
        self.block_tables[:batch_size, :context_blocks].copy_(table_t)

    def _forward(self, batch_size: int, context_blocks: int) -> torch.Tensor:
        padded_len = context_blocks * self.block_size
        lens = self.context_lens[:batch_size]
        key_positions = torch.arange(padded_len, device=lens.device)
        meta = AttentionMetadata(
            block_size=self.block_size,
            chunks=tuple(ChunkLayout(i, 1, padded_len - 1) for i in range(batch_size)),
            slot_mapping=self.slots[:batch_size],
            block_tables=self.block_tables[:batch_size, :context_blocks],
            prefill_chunk_ids=(),
            decode_chunk_ids=tuple(range(batch_size)),
            decode_token_index=torch.arange(batch_size, device=lens.device),
            decode_block_tables=self.block_tables[:batch_size, :context_blocks],
            decode_context_lens=lens,
            max_decode_context_len=padded_len,
            # Always a mask, also for one row: the padded length is the bucket's, not the row's.
            decode_length_mask=key_positions[None, :] < lens[:, None],
        )
        hidden = self.model.forward(
            self.token_ids[:batch_size], self.positions[:batch_size], meta, self.kv_cache.layers
        )
        return self.model.compute_logits(hidden)

    def _capture(self, batch_size: int, context_blocks: int) -> CapturedStep:
        # A warm-up run on a side stream first (cuBLAS and the allocator settle);
        # it computes this same step, so its K/V writes are the ones replay makes.
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            self._forward(batch_size, context_blocks)
        torch.cuda.current_stream().wait_stream(stream)
        if self.pool is None:
            self.pool = torch.cuda.graph_pool_handle()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            logits = self._forward(batch_size, context_blocks)
        return CapturedStep(graph, logits)
