import torch

from pytgi.protocol import SamplingParams
from pytgi.sampling.sampler import RequestSamplingState, Sampler
from pytgi.sampling.watermark import WatermarkConfig, apply_watermark, green_list


def test_green_list_is_a_function_of_the_previous_token():
    first = green_list(7, 100, 0.25)
    assert first.shape == (25,) and len(set(first.tolist())) == 25
    assert torch.equal(first, green_list(7, 100, 0.25))
    assert not torch.equal(first, green_list(8, 100, 0.25))


def test_apply_watermark_biases_only_listed_rows_and_green_tokens():
    logits = torch.zeros(2, 50)
    out = apply_watermark(logits, [1], [3], WatermarkConfig(gamma=0.5, delta=2.0))
    assert torch.equal(out[0], logits[0])
    green = green_list(3, 50, 0.5)
    assert torch.all(out[1, green] == 2.0)
    assert int((out[1] == 2.0).sum()) == 25


def test_sampler_with_a_large_delta_always_picks_green_tokens():
    vocab = 64
    torch.manual_seed(0)
    logits = torch.randn(3, vocab)
    params = SamplingParams(do_sample=True, seed=5, watermark=True)
    states = [RequestSamplingState(params, [1, 2], vocab, torch.device("cpu")) for _ in range(3)]
    previous = [4, 9, 4]
    out = Sampler(WatermarkConfig(gamma=0.25, delta=1000.0))(logits, states, previous)
    for row, token in enumerate(out.token_ids.tolist()):
        assert token in set(green_list(previous[row], vocab, 0.25).tolist())


def test_greedy_watermarked_rows_are_not_plain_greedy():
    state = RequestSamplingState(SamplingParams(watermark=True), [1], 10, torch.device("cpu"))
    assert not state.is_plain_greedy
