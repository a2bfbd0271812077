"""The Sampler over batches: seeded reproducibility in any batch, greedy
fast path, penalties over prompt + generated tokens, top_n, logprobs."""

from __future__ import annotations

import math

import numpy as np
import torch

from pytgi.protocol import SamplingParams
from pytgi.sampling.sampler import AllowedTokens, RequestSamplingState, Sampler

CPU = torch.device("cpu")
VOCAB = 50


def state(params: SamplingParams, prompt: tuple[int, ...] = (1, 2, 3)) -> RequestSamplingState:
    return RequestSamplingState(params, prompt, VOCAB, CPU)


def random_logits(num_steps: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(num_steps, VOCAB, generator=torch.Generator().manual_seed(seed))


def test_seeded_request_gives_same_tokens_alone_or_in_any_batch() -> None:
    sampler = Sampler()
    seeded = SamplingParams(do_sample=True, temperature=0.8, top_k=20, top_p=0.9, seed=1234)
    steps = random_logits(6)
    alone = state(seeded)
    tokens_alone = [sampler(steps[i : i + 1], [alone]).token_ids.item() for i in range(6)]

    target = state(seeded)
    others = [
        state(SamplingParams()),
        state(SamplingParams(do_sample=True, seed=9)),
        state(SamplingParams(typical_p=0.5, seed=5)),
    ]
    tokens_batched = []
    for i in range(6):
        # The target moves around in the batch and the other rows change.
        batch_states = others[: i % 3] + [target] + others[i % 3 :]
        logits = random_logits(len(batch_states), seed=100 + i)
        row = i % 3
        logits[row] = steps[i]
        tokens_batched.append(sampler(logits, batch_states).token_ids[row].item())
    assert tokens_alone == tokens_batched


def test_all_greedy_fast_path_matches_argmax() -> None:
    logits = random_logits(4)
    out = Sampler()(logits, [state(SamplingParams()) for _ in range(4)])
    assert out.token_ids.tolist() == logits.argmax(-1).tolist()
    torch.testing.assert_close(out.logprobs, logits.log_softmax(-1).max(-1).values)
    assert out.top_ids is None


def test_greedy_with_repetition_penalty_avoids_seen_tokens() -> None:
    logits = torch.zeros(1, VOCAB)
    logits[0, 2] = 5.0  # in the prompt
    logits[0, 7] = 4.0
    st = state(SamplingParams(repetition_penalty=2.0), prompt=(2, 2, 9))
    out = Sampler()(logits, [st])
    assert out.token_ids.tolist() == [7]
    # The sampled token is now counted: next step it is penalised too.
    assert (
        st.token_counts is not None and st.token_counts[7].item() == 1.0 and st.token_counts[2].item() == 2.0
    )
    assert st.num_tokens == 4


def test_frequency_penalty_uses_counts_over_sequence_length() -> None:
    logits = torch.zeros(1, VOCAB)
    logits[0, 4] = 1.0
    logits[0, 5] = 0.9
    # Token 4 is 2 of 4 prompt tokens: 1.0 - 0.5 * 2/4 = 0.75 < 0.9.
    out = Sampler()(logits, [state(SamplingParams(frequency_penalty=0.5), prompt=(4, 4, 1, 2))])
    assert out.token_ids.tolist() == [5]


def test_logprob_and_top_tokens_come_from_processed_distribution() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05] + [1e-9] * (VOCAB - 4)])).repeat(2, 1)
    params = SamplingParams(top_k=2, top_n_tokens=3, seed=0)
    out = Sampler()(logits, [state(params), state(SamplingParams(top_n_tokens=1))])
    assert out.top_ids is not None and out.top_logprobs is not None
    assert out.top_n == (3, 1)
    assert out.top_ids[0, :2].tolist() == [0, 1]
    expected = torch.log(torch.tensor([0.5, 0.3]) / 0.8)
    torch.testing.assert_close(out.top_logprobs[0, :2], expected)
    assert out.top_logprobs[0, 2].item() == -math.inf  # filtered by top_k
    assert out.token_ids[0].item() in (0, 1)


def test_mixed_batch_greedy_rows_stay_argmax() -> None:
    logits = random_logits(3, seed=4)
    states = [state(SamplingParams()), state(SamplingParams(do_sample=True, seed=3)), state(SamplingParams())]
    out = Sampler()(logits, states)
    assert out.token_ids[0].item() == logits[0].argmax().item()
    assert out.token_ids[2].item() == logits[2].argmax().item()


def bitmask_allowing(*allowed: list[int]) -> np.ndarray:
    """[len(allowed), words] int32 rows allowing exactly the given token ids."""
    bits = np.zeros((len(allowed), (VOCAB + 31) // 32), dtype=np.uint32)
    for row, token_ids in enumerate(allowed):
        for token_id in token_ids:
            bits[row, token_id // 32] |= np.uint32(1 << (token_id % 32))
    return bits.view(np.int32)


def test_grammar_mask_applies_only_to_constrained_rows() -> None:
    logits = random_logits(3, seed=11)
    states = [state(SamplingParams()) for _ in range(3)]
    allowed = AllowedTokens(rows=(1,), bits=bitmask_allowing([5, 40]))
    out = Sampler()(logits, states, allowed=allowed)  # all greedy: no fast path past a mask
    expected_row1 = 5 if logits[1, 5] > logits[1, 40] else 40
    assert out.token_ids.tolist() == [logits[0].argmax().item(), expected_row1, logits[2].argmax().item()]
    # Logprobs come after the mask: the two allowed tokens share all the mass.
    pair = logits[1, [5, 40]].log_softmax(-1)
    torch.testing.assert_close(out.logprobs[1], pair.max())
    torch.testing.assert_close(out.logprobs[0], logits[0].log_softmax(-1).max())


def test_sampled_rows_never_draw_a_masked_token() -> None:
    states = [state(SamplingParams(do_sample=True, temperature=1.5, seed=s)) for s in range(8)]
    allowed = AllowedTokens(rows=tuple(range(0, 8, 2)), bits=bitmask_allowing(*([[3, 31, 32, 49]] * 4)))
    for step in range(20):
        out = Sampler()(random_logits(8, seed=step), states, allowed=allowed)
        assert all(out.token_ids[row].item() in (3, 31, 32, 49) for row in allowed.rows)


def test_mask_comes_after_penalties_and_before_top_k() -> None:
    # Token 2 is the best logit but penalised below token 9; top_k=1 then keeps the best *allowed* token.
    logits = torch.zeros(1, VOCAB)
    logits[0, 2], logits[0, 9], logits[0, 7] = 5.0, 4.0, 6.0
    st = state(SamplingParams(repetition_penalty=2.0, top_k=1, do_sample=True, seed=1), prompt=(2,))
    out = Sampler()(logits, [st], allowed=AllowedTokens(rows=(0,), bits=bitmask_allowing([2, 9])))
    assert out.token_ids.tolist() == [9]
    assert out.logprobs[0].item() == 0.0
