"""Each op on a hand-computed example."""

from __future__ import annotations

import math

import torch

from pytgi.sampling import ops

INF = float("inf")
PROBS = [0.5, 0.3, 0.15, 0.05]


def log_probs_row() -> torch.Tensor:
    return torch.tensor([PROBS]).log()


def test_repetition_penalty_divides_positive_multiplies_negative() -> None:
    logits = torch.tensor([[2.0, -1.0, 0.5, 3.0], [2.0, -1.0, 0.5, 3.0]])
    counts = torch.tensor([[1.0, 3.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    out = ops.apply_repetition_penalty(logits, counts, torch.tensor([2.0, 1.0]))
    assert out.tolist() == [[1.0, -2.0, 0.5, 3.0], [2.0, -1.0, 0.5, 3.0]]


def test_frequency_penalty_is_normalised_by_length() -> None:
    logits = torch.tensor([[1.0, 1.0, 1.0]])
    counts = torch.tensor([[2.0, 1.0, 0.0]])
    out = ops.apply_frequency_penalty(logits, counts, torch.tensor([4.0]), torch.tensor([0.5]))
    assert out.tolist() == [[0.75, 0.875, 1.0]]


def test_temperature() -> None:
    out = ops.apply_temperature(torch.tensor([[2.0, 4.0], [2.0, 4.0]]), torch.tensor([2.0, 0.5]))
    assert out.tolist() == [[1.0, 2.0], [4.0, 8.0]]


def test_top_k_per_row_and_zero_is_off() -> None:
    logits = torch.tensor([[1.0, 4.0, 3.0, 2.0], [1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 2.0, 0.0]])
    out = ops.apply_top_k(logits, torch.tensor([2, 0, 1]), max_top_k=2)
    assert out.tolist() == [[-INF, 4.0, 3.0, -INF], [1.0, 2.0, 3.0, 4.0], [-INF, 2.0, 2.0, -INF]]  # ties kept


def test_top_p_keeps_smallest_nucleus() -> None:
    logits = log_probs_row().repeat(3, 1)
    out = ops.apply_top_p(logits, torch.tensor([0.7, 0.9, 1.0]))
    kept = torch.isfinite(out).tolist()
    assert kept == [[True, True, False, False], [True, True, True, False], [True, True, True, True]]
    assert out[2].tolist() == logits[2].tolist()


def test_top_p_always_keeps_best_token() -> None:
    out = ops.apply_top_p(log_probs_row(), torch.tensor([0.01]))
    assert torch.isfinite(out).tolist() == [[True, False, False, False]]


def test_typical_p_keeps_tokens_closest_to_entropy() -> None:
    # Entropy 1.142 nats; surprises 0.69, 1.20, 1.90, 3.00 -> order by distance: 0.3, 0.5, 0.15, 0.05.
    logits = log_probs_row().repeat(3, 1)
    out = ops.apply_typical_p(logits, torch.tensor([0.2, 0.5, 1.0]))
    kept = torch.isfinite(out).tolist()
    assert kept[0] == [False, True, False, False]  # the typical token, not the most likely one
    assert kept[1] == [True, True, False, False]
    assert out[2].tolist() == logits[2].tolist()


def test_greedy_and_chosen_logprobs() -> None:
    logits = torch.tensor([[0.0, 2.0, 1.0], [3.0, -INF, 1.0]])
    ids = ops.greedy(logits)
    assert ids.tolist() == [1, 0]
    expected = [2.0 - math.log(1 + math.exp(2) + math.e), 3.0 - math.log(math.exp(3) + math.e)]
    torch.testing.assert_close(ops.chosen_logprobs(logits, ids), torch.tensor(expected))


def test_top_logprobs_best_first() -> None:
    ids, values = ops.top_logprobs(log_probs_row(), 2)
    assert ids.tolist() == [[0, 1]]
    torch.testing.assert_close(values, torch.tensor([[math.log(0.5), math.log(0.3)]]))


def test_inverse_cdf_picks_the_token_whose_interval_holds_the_draw() -> None:
    logits = log_probs_row()  # probabilities 0.5, 0.3, 0.15, 0.05
    draws = {0.0: 0, 0.49: 0, 0.51: 1, 0.79: 1, 0.81: 2, 0.94: 2, 0.96: 3, 0.999999: 3}
    for u, token in draws.items():
        assert ops.sample_inverse_cdf(logits, torch.tensor([u])).tolist() == [token], u
    # Filtered tokens are never drawn, at either end of the range.
    filtered = logits.clone()
    filtered[0, 0] = -INF
    filtered[0, 3] = -INF
    assert ops.sample_inverse_cdf(filtered, torch.tensor([0.0])).tolist() == [1]
    assert ops.sample_inverse_cdf(filtered, torch.tensor([0.9999999])).tolist() == [2]


def test_uniform_draws_depend_only_on_each_rows_generator() -> None:
    def gen(seed: int) -> torch.Generator:
        return torch.Generator().manual_seed(seed)

    alone = ops.uniform_draws([gen(42)], torch.device("cpu"))
    batched = ops.uniform_draws([gen(1), gen(42), gen(3)], torch.device("cpu"))
    assert alone.shape == (1,) and batched.shape == (3,)
    assert torch.equal(alone[0], batched[1])
    assert ((batched >= 0) & (batched < 1)).all()


def test_sampling_frequencies_follow_probabilities() -> None:
    logits = log_probs_row().repeat(4000, 1)
    uniform = torch.rand(4000, generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(ops.sample_inverse_cdf(logits, uniform), minlength=4).float() / 4000
    torch.testing.assert_close(counts, torch.tensor(PROBS), atol=0.03, rtol=0)


def test_unpack_bitmask_covers_bit_31_and_trims_or_pads_to_the_vocab() -> None:
    # Word 0: tokens 0 and 31 (the sign bit); word 1: token 33.
    bits = torch.tensor([[1 | -(2**31), 1 << 1]], dtype=torch.int32)
    assert torch.nonzero(ops.unpack_bitmask(bits, 64)[0]).flatten().tolist() == [0, 31, 33]
    assert ops.unpack_bitmask(bits, 32).shape == (1, 32)
    wider = ops.unpack_bitmask(bits, 70)  # logits past the mask's words are disallowed
    assert wider.shape == (1, 70) and not wider[0, 64:].any()


def test_token_bitmask_masks_only_its_rows() -> None:
    logits = torch.zeros(3, 4)
    out = ops.apply_token_bitmask(logits, torch.tensor([2]), torch.tensor([[0b0101]], dtype=torch.int32))
    assert out[:2].tolist() == [[0.0] * 4] * 2
    assert out[2].tolist() == [0.0, -INF, 0.0, -INF]
    assert logits.eq(0).all()  # a new tensor: the input is untouched
