"""Linear layers whose weights are loaded from checkpoints, possibly fused.

A fused layer (QKV, gate/up) is one matrix whose output is the concatenation
of several checkpoint matrices: one GEMM instead of three. `out_sizes` states
the parts; the loader copies checkpoint shard `i` into rows
`sum(out_sizes[:i]) .. sum(out_sizes[:i+1])`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from pytgi.kernels import cpu_kernels, packed_weights_enabled

# Up to this many rows, by dtype, a CPU linear layer is a weight-streaming
# matrix-vector product where pytgi's kernel beats torch: bf16 weights stream
# 1.5x faster; float32 ones 0-13 % faster at one row and no faster at two
# (docs/profile.md). Above it torch's GEMM is compute-bound and better.
SMALL_BATCH_ROWS: dict[torch.dtype, int] = {torch.bfloat16: 2, torch.float32: 1}


def small_batch_rows(dtype: torch.dtype) -> int:
    """Rows up to which `linear` takes the small-batch kernel in `dtype` (0: never)."""
    return SMALL_BATCH_ROWS.get(dtype, 0)


# The rows oneDNN lays a prepacked weight out for; the copy serves any number of
# rows (docs/profile.md, seventh pass).
PACKED_ROWS_HINT = 32
# A prepacked copy is as much memory again as its weight: copies are made only
# while they take at most this share of the memory free when they are made.
PACKED_MEMORY_SHARE = 0.25


def packing_fits(nbytes: int) -> bool:
    """Whether prepacked copies of `nbytes` of weights stay within `PACKED_MEMORY_SHARE` of free memory."""
    free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return nbytes <= PACKED_MEMORY_SHARE * free


def packed_weight(weight: torch.Tensor) -> torch.Tensor | None:
    """oneDNN's prepacked copy of a bf16 CPU weight [out, in], or None where the
    plain weight is used as is. torch's F.linear reorders a bf16 weight into
    oneDNN's layout on every call: at 8-128 rows that costs as much as the
    product (1.3-2x a step's matrix products, weights cold in cache). The packed
    product is bitwise F.linear's in bf16; float32 goes to MKL, so it keeps F.linear."""
    if weight.device.type != "cpu" or weight.dtype != torch.bfloat16 or not packed_weights_enabled():
        return None
    if not (torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()):
        return None
    return torch.ops.mkldnn._reorder_linear_weight(weight, PACKED_ROWS_HINT)


def linear(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, packed: torch.Tensor | None = None
) -> torch.Tensor:
    """F.linear for x [rows, in] and weight [out, in], through the small-batch
    CPU kernel where it applies, else through `packed` (`packed_weight(weight)`) if given."""
    if (
        x.device.type == "cpu"
        and x.dim() == 2
        and x.shape[0] <= small_batch_rows(x.dtype)
        and weight.dtype == x.dtype
        and weight.is_contiguous()
    ):
        kernels = cpu_kernels()
        if kernels is not None:
            return kernels.small_batch_linear(x, weight, bias)
    if packed is not None:
        return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")
    return F.linear(x, weight, bias)


class Linear(nn.Module):
    """y = x W^T + b. Parameters are created empty: the checkpoint fills them."""

    def __init__(
        self,
        in_features: int,
        out_sizes: int | Sequence[int],
        *,
        bias: bool,
        dtype: torch.dtype,
    ) -> None:
        super().__init__()
        self.out_sizes: tuple[int, ...] = (out_sizes,) if isinstance(out_sizes, int) else tuple(out_sizes)
        out_features = sum(self.out_sizes)
        self.in_features = in_features
        self.out_features = out_features
        # [out_features, in_features]
        self.weight = nn.Parameter(torch.empty(out_features, in_features, dtype=dtype), requires_grad=False)
        # [out_features]
        self.bias = (
            nn.Parameter(torch.empty(out_features, dtype=dtype), requires_grad=False) if bias else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)

    def shard_rows(self, shard: int) -> slice:
        """Rows of the fused output that checkpoint part `shard` fills."""
        start = sum(self.out_sizes[:shard])
        return slice(start, start + self.out_sizes[shard])

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_sizes}, bias={self.bias is not None}"
