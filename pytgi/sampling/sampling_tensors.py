"""Per-row sampling parameters of one step, as device columns.

Only the columns some row needs are built (None otherwise), so the processors
no row uses cost nothing. All float columns travel host -> device in one copy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from pytgi.protocol import SamplingParams


@dataclass(frozen=True, slots=True)
class SamplingTensors:
    repetition_penalty: torch.Tensor | None  # [batch]
    frequency_penalty: torch.Tensor | None  # [batch]
    token_counts: torch.Tensor | None  # [batch, vocab] float32, set when a penalty column is
    num_tokens: torch.Tensor | None  # [batch] float32 prompt + generated length, with frequency_penalty
    temperature: torch.Tensor | None  # [batch]
    top_k: torch.Tensor | None  # [batch] int64, 0 = off
    max_top_k: int
    top_p: torch.Tensor | None  # [batch]
    typical_p: torch.Tensor | None  # [batch]
    sampled_rows: tuple[int, ...]  # rows drawn at random, in order
    top_n: tuple[int, ...]  # per row
    max_top_n: int

    @staticmethod
    def build(
        params: Sequence[SamplingParams],
        token_counts: Sequence[torch.Tensor | None],  # per row [vocab] or None (no penalty)
        num_tokens: Sequence[int],
        vocab_size: int,
        device: torch.device,
    ) -> SamplingTensors:
        columns: dict[str, list[float]] = {}

        def column(name: str, values: list[float], neutral: float) -> None:
            if any(v != neutral for v in values):
                columns[name] = values

        column("repetition_penalty", [p.repetition_penalty for p in params], 1.0)
        column("frequency_penalty", [p.frequency_penalty for p in params], 0.0)
        column("temperature", [p.temperature for p in params], 1.0)
        column("top_k", [float(p.top_k) for p in params], 0.0)
        column("top_p", [p.top_p for p in params], 1.0)
        column("typical_p", [p.typical_p for p in params], 1.0)
        greedy_flags = [p.is_greedy for p in params]
        sampled_rows = tuple(i for i, g in enumerate(greedy_flags) if not g)
        penalised = "repetition_penalty" in columns or "frequency_penalty" in columns
        if "frequency_penalty" in columns:
            columns["num_tokens"] = [float(n) for n in num_tokens]

        names = list(columns)
        device_columns: dict[str, torch.Tensor] = {}
        if names:
            # [num_columns, batch], one host -> device copy.
            stacked = torch.tensor([columns[n] for n in names], dtype=torch.float32).to(device)
            device_columns = dict(zip(names, stacked.unbind(0), strict=True))
        top_k = device_columns.get("top_k")
        top_n = tuple(p.top_n_tokens for p in params)
        return SamplingTensors(
            repetition_penalty=device_columns.get("repetition_penalty"),
            frequency_penalty=device_columns.get("frequency_penalty"),
            token_counts=stack_counts(token_counts, vocab_size, device) if penalised else None,
            num_tokens=device_columns.get("num_tokens"),
            temperature=device_columns.get("temperature"),
            top_k=top_k.long() if top_k is not None else None,
            max_top_k=max(p.top_k for p in params),
            top_p=device_columns.get("top_p"),
            typical_p=device_columns.get("typical_p"),
            sampled_rows=sampled_rows,
            top_n=top_n,
            max_top_n=max(top_n),
        )


def stack_counts(
    token_counts: Sequence[torch.Tensor | None], vocab_size: int, device: torch.device
) -> torch.Tensor:
    """[batch, vocab]: each row's counts, zeros for rows without penalties."""
    zeros = torch.zeros(vocab_size, device=device)
    return torch.stack([c if c is not None else zeros for c in token_counts])
