"""The steps of a Llama-family model on the CPU in one compiled call.

From Python a layer is ~25 small torch ops around its four linear layers, each
paying 4-15 us of dispatch and interpreter time: at batch 1 that was ~15 ms a
step on top of ~25-30 ms of streaming the weights, and a step of 32 decode rows
plus a prompt chunk took ~20-25 ms longer through the modules than through the
stack (docs/profile.md, fourth and fifth passes). pytgi/kernels/layer_stack.cpp
runs every layer of a step (decode rows, prefill chunks, or both) without
coming back to Python, with the same kernels and the same roundings;
embedding, final norm and LM head stay here. Other devices and dtypes, and
layers that are not exactly models/llama.py's, take the module path.
`PYTGI_FUSED_LAYERS=0` turns it off (for A/B measurements).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from pytgi.kernels import cpu_kernels, fused_layers_enabled, prefill_kernel_enabled
from pytgi.layers.attention import AttentionMetadata, LayerKVCache
from pytgi.layers.linear import packed_weight, packing_fits, small_batch_rows

if TYPE_CHECKING:
    from pytgi.models.llama import LlamaDecoderLayer

logger = logging.getLogger(__name__)

FUSED_DTYPES = (torch.float32, torch.bfloat16)
NO_CHUNKS = torch.empty(0, 3, dtype=torch.int64)


class FusedLayers:
    """The compiled layer stack of one model, built on first use for the KV
    cache it is called with (and again if that cache changes)."""

    def __init__(self, layers: Sequence[LlamaDecoderLayer]) -> None:
        self._layers = tuple(layers)
        self._stack: Any = None  # the extension's LayerStack
        self._kv_caches: Sequence[LayerKVCache] | None = None

    def applies(self, hidden: torch.Tensor) -> bool:
        """A step on the CPU, in a dtype the kernels take."""
        return (
            hidden.device.type == "cpu"
            and hidden.dtype in FUSED_DTYPES
            and fused_layers_enabled()
            and cpu_kernels() is not None
        )

    def forward(
        self,
        hidden: torch.Tensor,  # [num_tokens, hidden]: the embedded tokens
        cos: torch.Tensor,  # [num_tokens, rotary_dim // 2]
        sin: torch.Tensor,
        meta: AttentionMetadata,
        kv_caches: Sequence[LayerKVCache],
    ) -> torch.Tensor:
        """The last layer's output [num_tokens, hidden], before the final norm."""
        if self._kv_caches is not kv_caches:
            self._stack = self._build(kv_caches, hidden.dtype)
            self._kv_caches = kv_caches
        return self._stack.forward(
            hidden.contiguous(),
            cos.contiguous(),
            sin.contiguous(),
            meta.slot_mapping,
            meta.decode_token_index,
            meta.decode_block_tables,
            meta.decode_context_lens,
            *prefill_layout(meta),
        )

    def _build(self, kv_caches: Sequence[LayerKVCache], dtype: torch.dtype) -> Any:
        kernels = cpu_kernels()
        assert kernels is not None  # applies() said so
        first = self._layers[0].self_attn
        pack = packed_copies_fit(self._layers)
        tensors = [layer_tensors(layer, cache, pack) for layer, cache in zip(self._layers, kv_caches, strict=True)]
        windows = [layer.self_attn.attn.sliding_window or 0 for layer in self._layers]
        return kernels.LayerStack(
            tensors,
            windows,
            first.num_heads,
            first.num_kv_heads,
            first.head_dim,
            first.rotary_dim,
            self._layers[0].input_layernorm.eps,
            first.attn.scale,
            small_batch_rows(dtype),
            prefill_kernel_enabled(),
        )


def prefill_layout(meta: AttentionMetadata) -> tuple[torch.Tensor, torch.Tensor]:
    """The prefill chunks as layer_stack.cpp takes them: int64 rows of
    (query_start, query_len, start_position), and their block tables."""
    ids = meta.prefill_chunk_ids
    if not ids:  # a decode step: nothing to build on the hot path
        return NO_CHUNKS, meta.block_tables[:0]
    layout = [(c.query_start, c.query_len, c.start_position) for c in (meta.chunks[i] for i in ids)]
    chunks = torch.tensor(layout, dtype=torch.int64).view(len(ids), 3)
    return chunks, meta.block_tables[list(ids)]


def linear_weights(layer: LlamaDecoderLayer) -> tuple[torch.Tensor, ...]:
    attn, mlp = layer.self_attn, layer.mlp
    return (attn.qkv_proj.weight, attn.o_proj.weight, mlp.gate_up_proj.weight, mlp.down_proj.weight)


def packed_copies_fit(layers: Sequence[LlamaDecoderLayer]) -> bool:
    """Whether prepacked copies of the linear weights (as much memory again) fit."""
    needed = sum(w.numel() * w.element_size() for layer in layers for w in linear_weights(layer))
    if packing_fits(needed):
        return True
    logger.info("linear weights not prepacked: %d MB would take too much of the free memory", needed >> 20)
    return False


def layer_tensors(layer: LlamaDecoderLayer, cache: LayerKVCache, pack: bool = False) -> list[torch.Tensor | None]:
    """One layer's tensors in the order layer_stack.cpp's `Slot` lists them;
    with `pack`, the prepacked copies of its linear weights where they apply."""
    attn, mlp = layer.self_attn, layer.mlp
    packed = [packed_weight(w) if pack else None for w in linear_weights(layer)]
    return [
        layer.input_layernorm.weight,
        attn.qkv_proj.weight,
        attn.qkv_proj.bias,
        attn.o_proj.weight,
        attn.o_proj.bias,
        layer.post_attention_layernorm.weight,
        mlp.gate_up_proj.weight,
        mlp.gate_up_proj.bias,
        mlp.down_proj.weight,
        mlp.down_proj.bias,
        cache.key,
        cache.value,
        *packed,
    ]
