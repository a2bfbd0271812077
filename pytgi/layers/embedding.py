"""Token and position embeddings (lookup tables filled from the checkpoint)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pytgi.layers.linear import linear, packed_weight, packing_fits


class Embedding(nn.Module):
    """ids -> rows of a [num_embeddings, dim] table."""

    def __init__(self, num_embeddings: int, dim: int, *, dtype: torch.dtype) -> None:
        super().__init__()
        self.num_embeddings = num_embeddings
        self.dim = dim
        # [num_embeddings, dim]
        self.weight = nn.Parameter(torch.empty(num_embeddings, dim, dtype=dtype), requires_grad=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, self.weight)


class LMHead(nn.Module):
    """hidden -> float32 logits over the vocabulary. When embeddings are tied,
    the model replaces `weight` with the embedding's parameter."""

    def __init__(self, dim: int, vocab_size: int, *, dtype: torch.dtype) -> None:
        super().__init__()
        # [vocab_size, dim]
        self.weight = nn.Parameter(torch.empty(vocab_size, dim, dtype=dtype), requires_grad=False)
        self._packed: torch.Tensor | None = None
        self._packed_for: torch.Tensor | None = None

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        # Logits in float32: sampling and logprobs must not inherit bf16 rounding.
        return linear(hidden, self.weight, packed=self.packed_weight()).float()

    def packed_weight(self) -> torch.Tensor | None:
        """The prepacked copy of `weight` (layers/linear.py), made on first use:
        after loading, and after a tied model swapped in the embedding's table.
        At 8-64 rows it saves 3.5-5 ms a step over SmolLM2's 49,152-row vocabulary."""
        if self._packed_for is not self.weight:
            self._packed_for = self.weight
            nbytes = self.weight.numel() * self.weight.element_size()
            self._packed = packed_weight(self.weight) if packing_fits(nbytes) else None
        return self._packed
