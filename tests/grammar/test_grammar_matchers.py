"""RequestMatchers: rows only for constrained chunks that sample, tokens fed back,
matchers dropped with their request."""

from __future__ import annotations

from grammar_helpers import EOS_ID, TOKENIZER_JSON, VOCAB_SIZE, Vocabulary

from pytgi.grammar.backend import allowed_token_ids
from pytgi.grammar.llguidance_backend import LLGuidanceBackend
from pytgi.grammar.matchers import RequestMatchers
from pytgi.protocol import GrammarSpec
from pytgi.step import ScheduledChunk

BACKEND = LLGuidanceBackend(TOKENIZER_JSON, VOCAB_SIZE, (EOS_ID,))
DIGITS = BACKEND.compile(GrammarSpec("regex", "[0-9]{2}"))


def chunk(request_id: str, sample: bool = True) -> ScheduledChunk:
    return ScheduledChunk(request_id, (1,), 0, (0,), sample)


def test_no_constrained_request_means_no_bitmask() -> None:
    matchers = RequestMatchers(BACKEND)
    assert matchers.bitmask([chunk("a"), chunk("b")]) is None
    assert RequestMatchers(None).bitmask([chunk("a")]) is None


def test_rows_only_for_constrained_chunks_that_sample() -> None:
    matchers = RequestMatchers(BACKEND)
    matchers.add("c1", DIGITS)
    matchers.add("c2", DIGITS)
    bitmask = matchers.bitmask([chunk("free"), chunk("c2"), chunk("c1", sample=False)])
    assert bitmask is not None
    assert bitmask.request_ids == ("c2",)
    assert bitmask.bits.shape == (1, (VOCAB_SIZE + 31) // 32)
    assert matchers.bitmask([chunk("c1", sample=False)]) is None


def test_accept_advances_only_that_request_and_remove_releases(vocab: Vocabulary) -> None:
    matchers = RequestMatchers(BACKEND)
    matchers.add("a", DIGITS)
    matchers.add("b", DIGITS)
    for token_id in vocab.encode("42"):
        matchers.accept("a", token_id)
    matchers.accept("free", 7)  # unconstrained: nothing to do
    bitmask = matchers.bitmask([chunk("a"), chunk("b")])
    assert bitmask is not None
    assert allowed_token_ids(bitmask.bits[0], VOCAB_SIZE) == [EOS_ID]
    assert EOS_ID not in allowed_token_ids(bitmask.bits[1], VOCAB_SIZE)
    matchers.remove("a")
    matchers.remove("a")  # idempotent (finish then abort)
    assert len(matchers) == 1 and matchers.get("a") is None
