"""The llguidance backend (chosen by measurement, see docs/grammar.md).

llguidance compiles a JSON schema or a regex into a matcher over the
tokenizer's byte-level token trie; the compiled grammar is a pristine
`LLMatcher` and each request gets a `deep_copy` of it (under a microsecond).
Masks are computed lazily per step, so compilation costs milliseconds even on
a 150k vocabulary.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import llguidance
import llguidance.numpy as llguidance_numpy

from pytgi.errors import ValidationError
from pytgi.grammar.backend import Bitmask, GrammarMatcher, allocate_bitmask, allow_only
from pytgi.grammar.json_schema import with_object_types
from pytgi.protocol import GrammarSpec

if TYPE_CHECKING:
    from llguidance._lib import JsonCompileOptions

# TGI's shards (outlines) allow an optional single space between JSON tokens;
# llguidance's default would allow any run of whitespace, which lets a weak
# model pad forever instead of closing the object.
JSON_OPTIONS: JsonCompileOptions = {"whitespace_pattern": "[ ]?"}

# Library defaults bound the work of one compile and one mask step (fuel);
# error texts go to clients, so they must not dump the parser state.
PARSER_LIMITS = llguidance.LLParserLimits(verbose_errors=False)


class LLGuidanceMatcher:
    """One request's `LLMatcher`. Engine thread only."""

    def __init__(self, matcher: llguidance.LLMatcher, eos_token_ids: Sequence[int]) -> None:
        self.matcher = matcher
        self._eos_token_ids = eos_token_ids

    def fill_bitmask(self, bitmask: Bitmask, row: int) -> None:
        llguidance_numpy.fill_next_token_bitmask(self.matcher, bitmask, row)
        self.fix_error_row(bitmask, row)

    def fix_error_row(self, bitmask: Bitmask, row: int) -> None:
        """A matcher in its error state would leave an empty row (nothing to
        sample); allow only EOS so that the request ends."""
        if self.matcher.is_error():
            allow_only(bitmask, row, self._eos_token_ids)

    def accept_token(self, token_id: int) -> bool:
        return bool(self.matcher.consume_token(token_id))

    def is_accepting(self) -> bool:
        return bool(self.matcher.is_accepting())

    def is_terminated(self) -> bool:
        return bool(self.matcher.is_stopped())


class LLGuidanceGrammar:
    """A compiled grammar: the pristine matcher every request copies."""

    def __init__(self, pristine: llguidance.LLMatcher, eos_token_ids: Sequence[int]) -> None:
        self._pristine = pristine
        self._eos_token_ids = eos_token_ids

    def new_matcher(self) -> LLGuidanceMatcher:
        return LLGuidanceMatcher(self._pristine.deep_copy(), self._eos_token_ids)


class LLGuidanceBackend:
    """Implements `GrammarBackend` for one tokenizer.

    `tokenizer_json` is the tokenizer.json text; `vocab_size` is the model's
    (logit) width, which may exceed the tokenizer's. The llguidance tokenizer
    (about 1 s for a 150k vocabulary) is built on first use, so servers that
    never see a grammar never pay for it.
    """

    def __init__(self, tokenizer_json: str, vocab_size: int, eos_token_ids: Iterable[int]) -> None:
        self._eos_token_ids = tuple(sorted(eos_token_ids))
        if not self._eos_token_ids:
            raise ValueError("grammar needs at least one EOS token id")
        self._tokenizer_json = tokenizer_json
        self._vocab_size = vocab_size
        self._tokenizer: llguidance.LLTokenizer | None = None
        self._lock = threading.Lock()
        self._executor: llguidance.LLExecutor | None = None

    @property
    def name(self) -> str:
        return "llguidance"

    @property
    def vocab_size(self) -> int:
        return self._vocab_size

    def compile(self, spec: GrammarSpec) -> LLGuidanceGrammar:
        tokenizer = self._llg_tokenizer()
        try:
            if spec.kind == "json":
                schema = with_object_types(json.loads(spec.value))
                grammar = llguidance.LLMatcher.grammar_from_json_schema(schema, defaults=JSON_OPTIONS)
            else:
                grammar = llguidance.LLMatcher.grammar_from_regex(spec.value)
        except ValueError as error:  # the schema is not JSON, or not a JSON object
            raise ValidationError(compile_error_message(spec, str(error))) from error
        matcher = llguidance.LLMatcher(tokenizer, grammar, log_level=0, limits=PARSER_LIMITS)
        if not matcher.is_error():
            # The first mask builds the lexer's start state: its cost and any
            # fuel error belong to compilation, not to the first decode step.
            llguidance_numpy.fill_next_token_bitmask(matcher, allocate_bitmask(1, self._vocab_size))
        if matcher.is_error():
            raise ValidationError(compile_error_message(spec, matcher.get_error()))
        return LLGuidanceGrammar(matcher, self._eos_token_ids)

    def fill_bitmasks(self, matchers: Sequence[GrammarMatcher], bitmask: Bitmask) -> None:
        if len(matchers) == 1:
            matchers[0].fill_bitmask(bitmask, 0)
            return
        rows = [(_llg_matcher(m).matcher, row) for row, m in enumerate(matchers)]
        if self._executor is None:  # engine thread only: no lock needed
            self._executor = llguidance.LLExecutor()
        llguidance_numpy.fill_next_token_bitmask_par(self._executor, rows, bitmask)
        for row, matcher in enumerate(matchers):
            _llg_matcher(matcher).fix_error_row(bitmask, row)

    def _llg_tokenizer(self) -> llguidance.LLTokenizer:
        with self._lock:  # compiles run on several validation threads
            if self._tokenizer is None:
                self._tokenizer = llguidance.LLTokenizer(
                    self._tokenizer_json, n_vocab=self._vocab_size, eos_token=list(self._eos_token_ids)
                )
            return self._tokenizer


def _llg_matcher(matcher: GrammarMatcher) -> LLGuidanceMatcher:
    if not isinstance(matcher, LLGuidanceMatcher):
        raise TypeError(f"llguidance cannot fill a mask for {type(matcher).__name__}")
    return matcher


def compile_error_message(spec: GrammarSpec, error: str) -> str:
    """TGI's templates: a schema that cannot be compiled, or an invalid regex."""
    error = error.strip()
    if spec.kind == "json":
        return f"cannot compile regex from schema: {error}"
    return f"grammar is not valid: {error}"
