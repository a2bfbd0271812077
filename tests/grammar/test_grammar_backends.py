"""Conformance of every grammar backend: masks follow the grammar, EOS only when
the output is complete, only EOS once it is terminated, TGI's compile errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from grammar_helpers import Vocabulary

from pytgi.errors import ValidationError
from pytgi.grammar.backend import GrammarBackend, GrammarMatcher, allocate_bitmask, allowed_token_ids
from pytgi.protocol import GrammarSpec

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


def allowed(backend: GrammarBackend, matcher: GrammarMatcher) -> set[int]:
    bits = allocate_bitmask(1, backend.vocab_size)
    matcher.fill_bitmask(bits, 0)
    return set(allowed_token_ids(bits[0], backend.vocab_size))


def feed(backend: GrammarBackend, matcher: GrammarMatcher, token_ids: list[int]) -> None:
    """Accept tokens one by one, each of which the mask must allow."""
    for token_id in token_ids:
        assert token_id in allowed(backend, matcher), token_id
        assert matcher.accept_token(token_id)


def test_json_schema_walk(backend: GrammarBackend, vocab: Vocabulary) -> None:
    matcher = backend.compile(GrammarSpec("json", json.dumps(PERSON))).new_matcher()
    first = allowed(backend, matcher)
    assert vocab.encode("{")[0] in first
    assert vocab.eos_id not in first and vocab.encode("Hello")[0] not in first
    feed(backend, matcher, vocab.encode('{"name": "Ada", "age": 36'))
    assert not matcher.is_accepting() and vocab.eos_id not in allowed(backend, matcher)
    feed(backend, matcher, vocab.encode("}"))
    assert matcher.is_accepting() and matcher.is_terminated()
    assert allowed(backend, matcher) == {vocab.eos_id}
    assert matcher.accept_token(vocab.eos_id)


def test_json_schema_refuses_what_the_schema_does_not_allow(
    backend: GrammarBackend, vocab: Vocabulary
) -> None:
    matcher = backend.compile(GrammarSpec("json", json.dumps(PERSON))).new_matcher()
    feed(backend, matcher, vocab.encode('{"name": "Ada", "age": '))
    mask = allowed(backend, matcher)
    assert vocab.encode("3")[0] in mask
    assert vocab.encode('"')[0] not in mask  # an integer, not a string


def test_regex_accepting_before_terminated(backend: GrammarBackend, vocab: Vocabulary) -> None:
    matcher = backend.compile(GrammarSpec("regex", "a+")).new_matcher()
    a = vocab.token_id("a")
    assert vocab.eos_id not in allowed(backend, matcher)
    feed(backend, matcher, [a])
    assert matcher.is_accepting() and not matcher.is_terminated()
    mask = allowed(backend, matcher)
    assert {a, vocab.eos_id} <= mask and vocab.token_id("b") not in mask


def test_regex_terminated_allows_only_eos(backend: GrammarBackend, vocab: Vocabulary) -> None:
    matcher = backend.compile(GrammarSpec("regex", "[0-9]{3}-ok")).new_matcher()
    feed(backend, matcher, vocab.encode("123-ok"))
    assert matcher.is_terminated()
    assert allowed(backend, matcher) == {vocab.eos_id}


def test_matchers_of_one_grammar_are_independent(backend: GrammarBackend, vocab: Vocabulary) -> None:
    grammar = backend.compile(GrammarSpec("regex", "(ab)+"))
    first, second = grammar.new_matcher(), grammar.new_matcher()
    feed(backend, first, [vocab.token_id("a")])
    assert vocab.token_id("b") in allowed(backend, first)
    assert vocab.token_id("b") not in allowed(backend, second)


def test_fill_bitmasks_matches_one_row_at_a_time(backend: GrammarBackend, vocab: Vocabulary) -> None:
    grammars = [
        backend.compile(GrammarSpec("regex", "[0-9]+")),
        backend.compile(GrammarSpec("json", json.dumps(PERSON))),
    ]
    matchers = [g.new_matcher() for g in grammars] + [grammars[0].new_matcher()]
    feed(backend, matchers[2], vocab.encode("42"))
    batch = allocate_bitmask(len(matchers), backend.vocab_size)
    backend.fill_bitmasks(matchers, batch)
    for row, matcher in enumerate(matchers):
        single = allocate_bitmask(1, backend.vocab_size)
        matcher.fill_bitmask(single, 0)
        np.testing.assert_array_equal(batch[row], single[0])


def test_refused_token_leaves_only_eos(backend: GrammarBackend, vocab: Vocabulary) -> None:
    grammar = backend.compile(GrammarSpec("regex", "[0-9]+"))
    refused, fine = grammar.new_matcher(), grammar.new_matcher()
    assert not refused.accept_token(vocab.token_id("a"))
    assert allowed(backend, refused) == {vocab.eos_id}
    batch = allocate_bitmask(2, backend.vocab_size)
    backend.fill_bitmasks([fine, refused], batch)  # the batched path too
    assert set(allowed_token_ids(batch[1], backend.vocab_size)) == {vocab.eos_id}
    assert vocab.encode("7")[0] in allowed_token_ids(batch[0], backend.vocab_size)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (GrammarSpec("regex", "(unclosed"), "grammar is not valid: "),
        (GrammarSpec("regex", "a{3,1}"), "grammar is not valid: "),
        (
            GrammarSpec("json", json.dumps({"properties": {"a": {"type": "strin"}}})),
            "cannot compile regex from schema: ",
        ),
        (GrammarSpec("json", "[1, 2]"), "cannot compile regex from schema: "),
    ],
)
def test_compile_errors_use_tgi_templates(backend: GrammarBackend, spec: GrammarSpec, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        backend.compile(spec)
    assert str(info.value).startswith(message)
    assert "<state>" not in str(info.value)  # no parser dump in client-facing errors


def test_tgi_tool_grammar_compiles(backend: GrammarBackend, vocab: Vocabulary) -> None:
    tool = {
        "properties": {"_name": {"type": "string", "const": "get_weather"}, "city": {"type": "string"}},
        "required": ["_name", "city"],
    }
    schema = {
        "$functions": {"get_weather": tool},
        "properties": {"function": {"anyOf": [{"$ref": "#/$functions/get_weather"}]}},
        "required": ["function"],
    }
    matcher = backend.compile(GrammarSpec("json", json.dumps(schema))).new_matcher()
    feed(backend, matcher, vocab.encode('{"function": {"_name": "get_weather", "city": "Paris"}}'))
    assert matcher.is_accepting()


def test_schema_with_properties_but_no_type_is_an_object(backend: GrammarBackend, vocab: Vocabulary) -> None:
    schema = {"properties": {"a": {"type": "integer"}}}
    first = allowed(backend, backend.compile(GrammarSpec("json", json.dumps(schema))).new_matcher())
    assert vocab.encode("{")[0] in first
    assert not {vocab.encode("7")[0], vocab.encode('"')[0], vocab.encode("[")[0]} & first
