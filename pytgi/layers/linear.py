"""Linear layers whose weights are loaded from checkpoints, possibly fused.

A fused layer (QKV, gate/up) is one matrix whose output is the concatenation
of several checkpoint matrices: one GEMM instead of three. `out_sizes` states
the parts; the loader copies checkpoint shard `i` into rows
`sum(out_sizes[:i]) .. sum(out_sizes[:i+1])`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


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
        return F.linear(x, self.weight, self.bias)

    def shard_rows(self, shard: int) -> slice:
        """Rows of the fused output that checkpoint part `shard` fills."""
        start = sum(self.out_sizes[:shard])
        return slice(start, start + self.out_sizes[shard])

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_sizes}, bias={self.bias is not None}"
