from pytgi.engine.builder import default_prefill_cap
from pytgi.scheduler.scheduler import ProportionalCap


def test_prompt_tokens_are_capped_while_decoding_only_on_a_cpu():
    assert default_prefill_cap("cpu") == ProportionalCap()
    assert default_prefill_cap("cuda") is None
