"""Engine plumbing of grammar state over the scripted executor: masks reach the
executor for constrained rows only, matchers follow their request's life."""

from __future__ import annotations

import dataclasses

import pytest
from engine_helpers import build, request

from pytgi.errors import ValidationError
from pytgi.grammar.backend import allowed_token_ids
from pytgi.grammar.cache import GrammarCache
from pytgi.grammar.llguidance_backend import LLGuidanceBackend
from pytgi.grammar.matchers import RequestMatchers
from pytgi.protocol import FinishReason, GrammarSpec

SCRIPT = "Python lists are mutable sequences; tuples are immutable."
# Matches SCRIPT, so the scripted tokens are all allowed.
WORDS = GrammarSpec("regex", "[A-Za-z ;.]+")


def build_with_grammar(tmp_path):
    engine, inputs, tokenizer, executor = build(tmp_path, SCRIPT)
    backend = LLGuidanceBackend(
        (tmp_path / "tokenizer.json").read_text(), tokenizer.vocab_size, sorted(engine.eos_token_ids)
    )
    engine.matchers = RequestMatchers(backend)
    inputs.grammars = GrammarCache(backend)
    return engine, inputs, tokenizer, executor


def constrained(spec: GrammarSpec = WORDS, **kwargs):
    return dataclasses.replace(request(**kwargs), grammar=spec)


def test_only_constrained_rows_get_a_mask(tmp_path) -> None:
    engine, inputs, tokenizer, executor = build_with_grammar(tmp_path)
    free, bound = inputs.process(request()), inputs.process(constrained())
    engine.add(free)
    engine.add(bound)
    engine.step()
    mask = executor.steps[-1].token_bitmask
    assert mask is not None and mask.request_ids == (bound.request.request_id,)
    eos = tokenizer.token_to_id("<|endoftext|>")
    allowed = allowed_token_ids(mask.bits[0], tokenizer.vocab_size)
    assert tokenizer.encode("Python")[0] in allowed and eos not in allowed
    outputs = []
    while engine.has_work():
        outputs.extend(engine.step().outputs)
    finals = {o.request_id: o for o in outputs if o.finished}
    assert finals[bound.request.request_id].generated_text == SCRIPT
    assert finals[bound.request.request_id].finish_reason is FinishReason.EOS_TOKEN
    assert len(engine.matchers) == 0


def test_unconstrained_steps_carry_no_mask(tmp_path) -> None:
    engine, inputs, _, executor = build_with_grammar(tmp_path)
    engine.add(inputs.process(request(max_new_tokens=3)))
    while engine.has_work():
        engine.step()
    assert all(step.token_bitmask is None for step in executor.steps)


@pytest.mark.parametrize("ending", ["abort", "failed step", "length", "stop sequence"])
def test_matcher_released_however_the_request_ends(tmp_path, ending: str) -> None:
    engine, inputs, _, executor = build_with_grammar(tmp_path)
    kwargs = (
        {"max_new_tokens": 2}
        if ending == "length"
        else {"stop": ("lists",)}
        if ending == "stop sequence"
        else {}
    )
    processed = inputs.process(constrained(**kwargs))
    engine.add(processed)
    assert len(engine.matchers) == 1
    if ending == "abort":
        engine.step()
        engine.abort(processed.request.request_id)
    elif ending == "failed step":
        executor.fail_next = True
        engine.step()
    while engine.has_work():
        engine.step()
    assert len(engine.matchers) == 0


def test_grammar_refused_by_the_processor_before_the_engine(tmp_path) -> None:
    engine, inputs, _, _ = build(tmp_path, SCRIPT)
    with pytest.raises(ValidationError, match="^grammar is not supported$"):
        inputs.process(constrained())  # no grammar cache: support is off
    _, inputs, _, _ = build_with_grammar(tmp_path)
    with pytest.raises(ValidationError, match="^grammar is not valid: "):
        inputs.process(constrained(GrammarSpec("regex", "[unclosed")))
