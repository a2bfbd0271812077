"""Logits processors and token choice as pure tensor functions.

Every function takes a [batch, vocab] float32 tensor and per-row parameter
columns ([batch]), returns a new tensor, and leaves rows whose parameter is
neutral (penalty 1.0 / 0.0, top_k 0, top_p 1.0, typical_p 1.0) unchanged.
Semantics follow transformers' / TGI's warpers; filtered tokens get -inf.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

NEG_INF = float("-inf")


def apply_repetition_penalty(
    logits: torch.Tensor,  # [batch, vocab]
    token_counts: torch.Tensor,  # [batch, vocab] occurrences in prompt + generated tokens
    penalty: torch.Tensor,  # [batch]
) -> torch.Tensor:
    """CTRL-style: seen tokens' positive logits are divided by the penalty,
    negative ones multiplied (both make them less likely for penalty > 1)."""
    p = penalty[:, None]
    penalized = torch.where(logits < 0, logits * p, logits / p)
    return torch.where(token_counts > 0, penalized, logits)


def apply_frequency_penalty(
    logits: torch.Tensor,  # [batch, vocab]
    token_counts: torch.Tensor,  # [batch, vocab]
    num_tokens: torch.Tensor,  # [batch] length of prompt + generated tokens
    penalty: torch.Tensor,  # [batch]
) -> torch.Tensor:
    """TGI's normalised form: logit -= penalty * count(token) / sequence_length."""
    return logits - penalty[:, None] * token_counts / num_tokens[:, None]


def unpack_bitmask(bits: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """[rows, words] int32 (token t = bit t % 32 of word t // 32) -> [rows, vocab_size] bool.
    Tokens past the last word are disallowed (a model vocab wider than the tokenizer's)."""
    shifts = torch.arange(32, dtype=torch.int32, device=bits.device)
    allowed = ((bits[:, :, None] >> shifts) & 1).bool().flatten(1)  # [rows, words * 32]
    if allowed.shape[1] >= vocab_size:
        return allowed[:, :vocab_size]
    return torch.nn.functional.pad(allowed, (0, vocab_size - allowed.shape[1]), value=False)


def apply_token_bitmask(
    logits: torch.Tensor,  # [batch, vocab]
    rows: torch.Tensor,  # [num_masked] int64, the rows the masks apply to
    bits: torch.Tensor,  # [num_masked, words] int32
) -> torch.Tensor:
    """Grammar constraint: disallowed tokens of the masked rows get -inf; other rows are unchanged."""
    allowed = unpack_bitmask(bits, logits.shape[-1])
    masked = logits.index_select(0, rows).masked_fill(~allowed, NEG_INF)
    return logits.index_copy(0, rows, masked)


def apply_temperature(logits: torch.Tensor, temperature: torch.Tensor) -> torch.Tensor:
    return logits / temperature[:, None]


def apply_top_k(logits: torch.Tensor, top_k: torch.Tensor, max_top_k: int) -> torch.Tensor:
    """Keep tokens at least as likely as the row's k-th best (ties kept); k = 0 keeps all.
    `max_top_k` is the largest k in the batch (a host int: no device sync)."""
    max_top_k = min(max_top_k, logits.shape[-1])
    best = logits.topk(max_top_k, dim=-1).values  # [batch, max_top_k]
    kth = best.gather(1, (top_k.clamp(1, max_top_k) - 1)[:, None])  # [batch, 1]
    threshold = torch.where(top_k[:, None] > 0, kth, torch.full_like(kth, NEG_INF))
    return logits.masked_fill(logits < threshold, NEG_INF)


def apply_top_p(logits: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """Nucleus: keep the smallest set of best tokens whose mass reaches top_p
    (drop tokens whose ascending cumulative mass is <= 1 - top_p; the best token always stays)."""
    sorted_logits, order = logits.sort(dim=-1)  # ascending
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    drop_sorted = cumulative <= (1 - top_p)[:, None]
    drop_sorted[:, -1] = False
    drop = drop_sorted.scatter(1, order, drop_sorted)
    filtered = logits.masked_fill(drop, NEG_INF)
    return torch.where((top_p < 1.0)[:, None], filtered, logits)


def apply_typical_p(logits: torch.Tensor, typical_p: torch.Tensor) -> torch.Tensor:
    """Locally typical sampling: keep the tokens whose surprise is closest to the
    entropy, until their mass reaches typical_p (at least one token)."""
    log_probs = logits.log_softmax(dim=-1)
    entropy = -(log_probs * log_probs.exp()).nansum(dim=-1, keepdim=True)  # [batch, 1]
    distance = (-log_probs - entropy).abs()
    sorted_distance, order = distance.sort(dim=-1)
    cumulative = logits.gather(1, order).softmax(dim=-1).cumsum(dim=-1)
    last_kept = (cumulative < typical_p[:, None]).sum(dim=1).clamp(max=logits.shape[-1] - 1)  # [batch]
    drop_sorted = sorted_distance > sorted_distance.gather(1, last_kept[:, None])
    drop_sorted[:, 0] = False
    drop = drop_sorted.scatter(1, order, drop_sorted)
    filtered = logits.masked_fill(drop, NEG_INF)
    return torch.where((typical_p < 1.0)[:, None], filtered, logits)


def uniform_draws(generators: Sequence[torch.Generator], device: torch.device) -> torch.Tensor:
    """[len(generators)] U[0, 1) draws, row i from generators[i] only, one per row:
    a seeded request's tokens do not depend on what else is in the batch."""
    draws = [torch.rand((1,), generator=generator, device=device) for generator in generators]
    return torch.cat(draws)


def sample_inverse_cdf(logits: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """Draw from softmax(logits) by inverting each row's CDF at its uniform draw ->
    [batch] int64. Exact categorical sampling from one random number per row (an
    exponential race would need one per vocabulary entry: 49k draws a row, a
    third of a CPU decode step at 32 rows)."""
    cdf = logits.softmax(dim=-1).cumsum(dim=-1)  # [batch, vocab]
    # Scaled to the row's own total so rounding in the sum never leaves u past the end;
    # right=True skips zero-probability (filtered) tokens, also when u is 0.
    target = (uniform * cdf[:, -1])[:, None]
    chosen = torch.searchsorted(cdf, target, right=True)[:, 0]
    return chosen.clamp_max(logits.shape[-1] - 1)


def greedy(logits: torch.Tensor) -> torch.Tensor:
    """[batch, vocab] -> [batch] int64, the most likely token (lowest id on ties)."""
    return logits.argmax(dim=-1)


def chosen_logprobs(logits: torch.Tensor, token_ids: torch.Tensor) -> torch.Tensor:
    """log_softmax(logits)[row, token_ids[row]] -> [batch], without materialising
    the whole log_softmax."""
    picked = logits.gather(1, token_ids[:, None])[:, 0]
    return picked - logits.logsumexp(dim=-1)


def top_logprobs(log_probs: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The n best tokens per row -> (ids [batch, n] int64, logprobs [batch, n]), best first."""
    values, ids = log_probs.topk(n, dim=-1)
    return ids, values
