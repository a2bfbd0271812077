"""Choosing the next token of each sampled row, TGI's way.

Order: watermark -> repetition penalty -> frequency penalty -> grammar mask ->
temperature -> top_k -> top_p -> typical_p, then argmax for greedy rows and a
seeded draw for the others. The reported logprob is log_softmax of the
processed logits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

from pytgi.protocol import SamplingParams
from pytgi.sampling import ops
from pytgi.sampling.sampling_tensors import SamplingTensors
from pytgi.sampling.watermark import WatermarkConfig, apply_watermark


class RequestSamplingState:
    """What one request's sampling carries between steps: its generator (its
    only source of randomness) and, when it uses a penalty, the counts of its
    tokens so far (prompt + tokens sampled here) kept on the device, with
    their number (`num_tokens`, maintained only while counts are kept)."""

    def __init__(
        self, params: SamplingParams, prompt_token_ids: Sequence[int], vocab_size: int, device: torch.device
    ) -> None:
        self.params = params
        self.num_tokens = len(prompt_token_ids)
        self.generator: torch.Generator | None = None
        if not params.is_greedy:
            self.generator = torch.Generator(device=device)
            if params.seed is None:
                self.generator.seed()
            else:
                self.generator.manual_seed(params.seed)
        self.token_counts: torch.Tensor | None = None  # [vocab] float32
        if params.repetition_penalty != 1.0 or params.frequency_penalty != 0.0:
            prompt = torch.tensor(list(prompt_token_ids), dtype=torch.int64, device=device)
            self.token_counts = torch.bincount(prompt, minlength=vocab_size)[:vocab_size].float()
        # Greedy with no penalty, watermark or alternatives: argmax is all it needs.
        self.is_plain_greedy = (
            params.is_greedy and self.token_counts is None and params.top_n_tokens == 0 and not params.watermark
        )

    def record(self, token_id: torch.Tensor) -> None:
        """Count a sampled token ([1] int64 on the device; no host sync)."""
        self.num_tokens += 1
        if self.token_counts is not None:
            self.token_counts.index_add_(0, token_id, torch.ones(1, device=token_id.device))


@dataclass(frozen=True, slots=True, eq=False)
class AllowedTokens:
    """Grammar masks for some rows of a step: `bits[i]` applies to row `rows[i]`
    (token t allowed when bit t % 32 of word t // 32 is set)."""

    rows: tuple[int, ...]
    bits: npt.NDArray[np.int32]  # [len(rows), words]


@dataclass(frozen=True, slots=True)
class SamplerOutput:
    token_ids: torch.Tensor  # [batch] int64
    logprobs: torch.Tensor  # [batch] float32
    top_ids: torch.Tensor | None  # [batch, max_top_n] int64
    top_logprobs: torch.Tensor | None  # [batch, max_top_n] float32
    top_n: tuple[int, ...]  # per row: how many of the top columns it asked for


class Sampler:
    def __init__(self, watermark: WatermarkConfig | None = None) -> None:
        self.watermark = watermark or WatermarkConfig()

    def __call__(
        self,
        logits: torch.Tensor,
        states: Sequence[RequestSamplingState],
        previous_token_ids: Sequence[int] | None = None,
        allowed: AllowedTokens | None = None,
    ) -> SamplerOutput:
        """logits [batch, vocab] float32, one row per state -> tokens, recorded
        into the states. `previous_token_ids[row]` is the token before the one
        being chosen (needed by watermarked rows); `allowed` masks the rows of
        grammar-constrained requests (the others pay nothing)."""
        if allowed is None and all(s.is_plain_greedy for s in states):
            token_ids = ops.greedy(logits)
            return SamplerOutput(
                token_ids, ops.chosen_logprobs(logits, token_ids), None, None, (0,) * len(states)
            )
        tensors = SamplingTensors.build(
            [s.params for s in states],
            [s.token_counts for s in states],
            [s.num_tokens for s in states],
            logits.shape[-1],
            logits.device,
        )
        marked = [row for row, s in enumerate(states) if s.params.watermark]
        if marked:
            if previous_token_ids is None:
                raise ValueError("watermarked rows need their previous token ids")
            previous = [previous_token_ids[row] for row in marked]
            logits = apply_watermark(logits, marked, previous, self.watermark)
        logits = apply_penalties(logits, tensors)
        if allowed is not None:
            logits = apply_allowed(logits, allowed)
        logits = apply_warpers(logits, tensors)
        token_ids = choose_tokens(logits, tensors, [s.generator for s in states])
        for row, state in enumerate(states):
            if state.token_counts is not None:
                state.record(token_ids[row : row + 1])
        log_probs = logits.log_softmax(dim=-1)
        logprobs = log_probs.gather(1, token_ids[:, None])[:, 0]
        top_ids = top_values = None
        if tensors.max_top_n > 0:
            top_ids, top_values = ops.top_logprobs(log_probs, tensors.max_top_n)
        return SamplerOutput(token_ids, logprobs, top_ids, top_values, tensors.top_n)


def apply_penalties(logits: torch.Tensor, t: SamplingTensors) -> torch.Tensor:
    """The processors TGI runs before its grammar mask."""
    if t.repetition_penalty is not None:
        assert t.token_counts is not None
        logits = ops.apply_repetition_penalty(logits, t.token_counts, t.repetition_penalty)
    if t.frequency_penalty is not None:
        assert t.token_counts is not None and t.num_tokens is not None
        logits = ops.apply_frequency_penalty(logits, t.token_counts, t.num_tokens, t.frequency_penalty)
    return logits


def apply_allowed(logits: torch.Tensor, allowed: AllowedTokens) -> torch.Tensor:
    """The grammar mask; its one host -> device copy happens only for steps with a constrained row."""
    rows = torch.tensor(allowed.rows, dtype=torch.int64).to(logits.device)  # [num_masked]
    bits = torch.from_numpy(allowed.bits).to(logits.device)  # [num_masked, words] int32
    return ops.apply_token_bitmask(logits, rows, bits)


def apply_warpers(logits: torch.Tensor, t: SamplingTensors) -> torch.Tensor:
    """The processors TGI runs after its grammar mask."""
    if t.temperature is not None:
        logits = ops.apply_temperature(logits, t.temperature)
    if t.top_k is not None:
        logits = ops.apply_top_k(logits, t.top_k, t.max_top_k)
    if t.top_p is not None:
        logits = ops.apply_top_p(logits, t.top_p)
    if t.typical_p is not None:
        logits = ops.apply_typical_p(logits, t.typical_p)
    return logits


def choose_tokens(
    logits: torch.Tensor, t: SamplingTensors, generators: Sequence[torch.Generator | None]
) -> torch.Tensor:
    """argmax for greedy rows, a draw from the row's own generator for the others."""
    if not t.sampled_rows:
        return ops.greedy(logits)
    rows = list(t.sampled_rows)
    row_generators = [generators[r] for r in rows]
    assert all(g is not None for g in row_generators), "sampled rows carry a generator"
    uniform = ops.uniform_draws(row_generators, logits.device)  # type: ignore[arg-type]
    if len(rows) == logits.shape[0]:
        return ops.sample_inverse_cdf(logits, uniform)
    token_ids = ops.greedy(logits)
    row_index = torch.tensor(rows, device=logits.device)
    token_ids[row_index] = ops.sample_inverse_cdf(logits[row_index], uniform)
    return token_ids
