"""The grammar state of running requests, on the engine side of the step.

The engine owns one `RequestMatchers`. Before each step it asks for the
bitmask of the constrained requests that sample this step; after the step it
feeds each of them the token it got. Matchers live as long as their request:
preemption keeps them (recomputing KV does not re-sample tokens), and finish,
abort or a failed step drops them. Engine thread only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pytgi.grammar.backend import CompiledGrammar, GrammarBackend, GrammarMatcher, allocate_bitmask
from pytgi.step import ScheduledChunk, TokenBitmask

logger = logging.getLogger(__name__)


class RequestMatchers:
    def __init__(self, backend: GrammarBackend | None) -> None:
        """`backend` None: this engine takes no constrained requests."""
        self.backend = backend
        self._matchers: dict[str, GrammarMatcher] = {}

    def __len__(self) -> int:
        return len(self._matchers)

    def add(self, request_id: str, grammar: CompiledGrammar) -> None:
        if self.backend is None:
            raise ValueError(f"request {request_id} has a grammar but the engine has no grammar backend")
        self._matchers[request_id] = grammar.new_matcher()

    def remove(self, request_id: str) -> None:
        self._matchers.pop(request_id, None)

    def get(self, request_id: str) -> GrammarMatcher | None:
        return self._matchers.get(request_id)

    def bitmask(self, chunks: Sequence[ScheduledChunk]) -> TokenBitmask | None:
        """One row per constrained chunk that samples; None when there is none
        (the common case costs one dict check)."""
        if not self._matchers:
            return None
        request_ids: list[str] = []
        matchers: list[GrammarMatcher] = []
        for chunk in chunks:
            matcher = self._matchers.get(chunk.request_id) if chunk.sample else None
            if matcher is not None:
                request_ids.append(chunk.request_id)
                matchers.append(matcher)
        if not matchers:
            return None
        assert self.backend is not None  # add() refuses matchers without one
        bits = allocate_bitmask(len(matchers), self.backend.vocab_size)
        self.backend.fill_bitmasks(matchers, bits)
        return TokenBitmask(tuple(request_ids), bits)

    def accept(self, request_id: str, token_id: int) -> None:
        """Advance a constrained request with its sampled token (no-op for the others)."""
        matcher = self._matchers.get(request_id)
        if matcher is not None and not matcher.accept_token(token_id):
            # The mask allowed the token, so this is a backend or executor bug;
            # the matcher's error state now allows only EOS and the request ends.
            logger.warning("grammar refused token %d of request %s", token_id, request_id)
