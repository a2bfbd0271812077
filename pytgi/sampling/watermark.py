"""The Kirchenbauer et al. (2023) watermark, as TGI applies it.

Before sampling, the vocabulary is split by a generator seeded with the
previous token: a "green list" of gamma * vocab tokens gets `delta` added to its
logits. Text then over-uses green tokens in a way a detector that knows the
seeding rule can test for, without the model's weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

# The seeding rule of the reference implementation (a large prime times the
# previous token), so detectors built for it recognise pytgi's text.
HASH_KEY = 15485863


@dataclass(frozen=True, slots=True)
class WatermarkConfig:
    gamma: float = 0.5  # share of the vocabulary in each green list
    delta: float = 2.0  # logit bias added to green tokens


def green_list(previous_token_id: int, vocab_size: int, gamma: float) -> torch.Tensor:
    """[int(gamma * vocab_size)] int64 token ids, a pure function of the previous token."""
    generator = torch.Generator(device="cpu")
    generator.manual_seed(HASH_KEY * previous_token_id)
    permutation = torch.randperm(vocab_size, generator=generator)
    return permutation[: int(gamma * vocab_size)]


def apply_watermark(
    logits: torch.Tensor,  # [batch, vocab]
    rows: Sequence[int],
    previous_token_ids: Sequence[int],  # one per row in `rows`
    config: WatermarkConfig,
) -> torch.Tensor:
    """Add `delta` to each listed row's green list; other rows are unchanged."""
    if not rows:
        return logits
    vocab_size = logits.shape[-1]
    bias = torch.zeros_like(logits)
    for row, previous in zip(rows, previous_token_ids, strict=True):
        bias[row, green_list(previous, vocab_size, config.gamma).to(logits.device)] = config.delta
    return logits + bias
