"""Normalisation layers, numerically matching transformers' implementations."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pytgi.kernels import cpu_kernels

# The dtypes pytgi's one-pass RMSNorm kernel takes (pytgi/kernels/row_ops.cpp).
RMS_NORM_KERNEL_DTYPES = (torch.float32, torch.bfloat16)


class RMSNorm(nn.Module):
    """x / rms(x) * weight, with the statistics in float32 (as Llama does)."""

    def __init__(self, dim: int, eps: float, *, dtype: torch.dtype) -> None:
        super().__init__()
        self.eps = eps
        # [dim]
        self.weight = nn.Parameter(torch.empty(dim, dtype=dtype), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            x.device.type == "cpu"
            and x.dtype in RMS_NORM_KERNEL_DTYPES
            and x.dtype == self.weight.dtype
            and x.is_contiguous()
        ):
            kernels = cpu_kernels()
            if kernels is not None:
                rows = kernels.rms_norm(x.reshape(-1, x.shape[-1]), self.weight, self.eps)
                return rows.view(x.shape)
        return rms_norm(x, self.weight, self.eps)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """The torch path of `RMSNorm` (and the kernel's reference in tests/kernels)."""
    x32 = x.float()
    variance = x32.pow(2).mean(-1, keepdim=True)
    normed = x32 * torch.rsqrt(variance + eps)
    return weight * normed.to(x.dtype)


class LayerNorm(nn.Module):
    """Standard LayerNorm with weight and bias (GPT-2)."""

    def __init__(self, dim: int, eps: float, *, dtype: torch.dtype) -> None:
        super().__init__()
        self.eps = eps
        self.dim = dim
        # [dim]
        self.weight = nn.Parameter(torch.empty(dim, dtype=dtype), requires_grad=False)
        # [dim]
        self.bias = nn.Parameter(torch.empty(dim, dtype=dtype), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, (self.dim,), self.weight, self.bias, self.eps)


class OffsetRMSNorm(RMSNorm):
    """Gemma's RMSNorm: x / rms(x) * (1 + weight), all in float32 before the cast
    back (checkpoints store weight - 1, so a zero weight is the identity)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        variance = x32.pow(2).mean(-1, keepdim=True)
        normed = x32 * torch.rsqrt(variance + self.eps)
        return (normed * (1.0 + self.weight.float())).to(x.dtype)
