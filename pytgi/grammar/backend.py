"""The seam between pytgi and a structured-output library.

A backend compiles a `GrammarSpec` into a `CompiledGrammar` (shared, cached,
read-only), and each request gets its own `GrammarMatcher` from it: the state
of one output against the grammar. Every step the engine asks the backend to
fill one bitmask row per constrained request; after sampling it feeds each
matcher the chosen token.

Bitmask layout (the one llguidance and xgrammar share): int32 words, token `t`
is allowed when bit `t % 32` of word `t // 32` is set; a row covers
`bitmask_width(vocab_size)` words. No torch here: rows are numpy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from pytgi.protocol import GrammarSpec

Bitmask = npt.NDArray[np.int32]  # [num_rows, bitmask_width(vocab_size)]


def bitmask_width(vocab_size: int) -> int:
    """Words per bitmask row: one bit per token id."""
    return (vocab_size + 31) // 32


def allocate_bitmask(num_rows: int, vocab_size: int) -> Bitmask:
    """All tokens allowed, until a matcher fills its row."""
    return np.full((num_rows, bitmask_width(vocab_size)), -1, dtype=np.int32)


def allow_only(bitmask: Bitmask, row: int, token_ids: Sequence[int]) -> None:
    """Set `row` to allow exactly `token_ids`."""
    words = bitmask[row].view(np.uint32)  # unsigned: bit 31 is a plain bit, not a sign
    words[:] = 0
    for token_id in token_ids:
        words[token_id // 32] |= np.uint32(1 << (token_id % 32))


def allowed_token_ids(row: npt.NDArray[np.int32], vocab_size: int) -> list[int]:
    """The token ids one bitmask row allows (tests and debugging; not on the hot path)."""
    bits = np.unpackbits(row.view(np.uint8), bitorder="little")[:vocab_size]
    return [int(i) for i in np.flatnonzero(bits)]


@dataclass(frozen=True, slots=True)
class GrammarLimits:
    """What one grammar may cost before it is refused with a 422.

    `max_spec_bytes` caps the schema / regex text; `compile_timeout_s` caps the
    wall time of one compilation; `max_cached_grammars` bounds the LRU (TGI keeps
    32 compiled FSMs). Backends add their own fuel limits on top.
    """

    max_spec_bytes: int = 64 * 1024
    compile_timeout_s: float = 10.0
    max_cached_grammars: int = 32


class GrammarMatcher(Protocol):
    """One request's position in its grammar. Engine thread only; not shared.

    Contract: `fill_bitmask` allows EOS exactly when the output so far is
    complete (`is_accepting`), and only EOS once `is_terminated`; it never
    leaves a row empty (a matcher in an error state allows only EOS, so the
    request ends instead of sampling from nothing).
    """

    def fill_bitmask(self, bitmask: Bitmask, row: int) -> None: ...

    def accept_token(self, token_id: int) -> bool:
        """Advance with the sampled token. False: the token was not allowed
        (the matcher is then in its error state)."""
        ...

    def is_accepting(self) -> bool: ...

    def is_terminated(self) -> bool: ...


class CompiledGrammar(Protocol):
    """A compiled grammar: immutable, safe to share between requests and threads."""

    def new_matcher(self) -> GrammarMatcher: ...


class GrammarBackend(Protocol):
    """Compiles specs for one tokenizer; created once at start-up.

    `compile` is blocking and may be slow: callers run it off the event loop,
    under `GrammarCache`'s timeout. It raises `ValidationError` (TGI's messages)
    for a spec the library refuses. `fill_bitmasks` fills row i of `bitmask`
    from `matchers[i]`, possibly in parallel, on the engine thread.
    """

    @property
    def name(self) -> str: ...

    @property
    def vocab_size(self) -> int: ...

    def compile(self, spec: GrammarSpec) -> CompiledGrammar: ...

    def fill_bitmasks(self, matchers: Sequence[GrammarMatcher], bitmask: Bitmask) -> None: ...
