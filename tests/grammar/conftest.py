"""Fixtures of the grammar tests: each backend of BACKENDS, the demo vocabulary."""

from __future__ import annotations

import pytest
from grammar_helpers import BACKENDS, DEMO_VOCABULARY, EOS_ID, TOKENIZER_JSON, VOCAB_SIZE, Vocabulary

from pytgi.grammar.backend import GrammarBackend


@pytest.fixture(scope="module")
def vocab() -> Vocabulary:
    return DEMO_VOCABULARY


@pytest.fixture(scope="module", params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> GrammarBackend:
    return BACKENDS[request.param](TOKENIZER_JSON, VOCAB_SIZE, (EOS_ID,))
