"""GrammarCache: one compilation per spec, bounded LRU, size cap, time limit."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest

from pytgi.errors import ValidationError
from pytgi.grammar.backend import Bitmask, GrammarLimits, GrammarMatcher
from pytgi.grammar.cache import GrammarCache
from pytgi.protocol import GrammarSpec


class FakeGrammar:
    def __init__(self, spec: GrammarSpec) -> None:
        self.spec = spec

    def new_matcher(self) -> GrammarMatcher:
        raise NotImplementedError


class CountingBackend:
    """Compiles instantly (or after `delay_s`), counting compilations per spec."""

    def __init__(self, delay_s: float = 0.0, error: Exception | None = None) -> None:
        self.delay_s = delay_s
        self.error = error
        self.compiled: list[GrammarSpec] = []
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return "counting"

    @property
    def vocab_size(self) -> int:
        return 64

    def compile(self, spec: GrammarSpec) -> FakeGrammar:
        with self._lock:
            self.compiled.append(spec)
        time.sleep(self.delay_s)
        if self.error is not None:
            raise self.error
        return FakeGrammar(spec)

    def fill_bitmasks(self, matchers: Sequence[GrammarMatcher], bitmask: Bitmask) -> None:
        raise NotImplementedError


def regex(i: int) -> GrammarSpec:
    return GrammarSpec("regex", f"a{{{i}}}")


def test_same_spec_compiles_once_even_concurrently() -> None:
    backend = CountingBackend(delay_s=0.05)
    cache = GrammarCache(backend)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: cache.get(regex(1)), range(8)))
    assert len(backend.compiled) == 1
    assert all(r is results[0] for r in results)


def test_lru_is_bounded_and_evicts_the_least_recently_used() -> None:
    backend = CountingBackend()
    cache = GrammarCache(backend, GrammarLimits(max_cached_grammars=2))
    cache.get(regex(1))
    cache.get(regex(2))
    cache.get(regex(1))  # 1 is now the most recent
    cache.get(regex(3))  # evicts 2
    assert len(cache) == 2
    cache.get(regex(1))
    assert backend.compiled == [regex(1), regex(2), regex(3)]
    cache.get(regex(2))
    assert backend.compiled[-1] == regex(2) and len(cache) == 2


def test_size_cap_refuses_before_compiling() -> None:
    backend = CountingBackend()
    cache = GrammarCache(backend, GrammarLimits(max_spec_bytes=10))
    cache.get(GrammarSpec("regex", "é" * 5))  # 10 bytes: at the cap
    with pytest.raises(
        ValidationError, match=r"^grammar is not valid: the grammar is 12 bytes, over the limit of 10 bytes$"
    ):
        cache.get(GrammarSpec("regex", "é" * 6))
    assert len(backend.compiled) == 1


def test_slow_compilation_times_out_and_stays_refused() -> None:
    backend = CountingBackend(delay_s=0.3)
    cache = GrammarCache(backend, GrammarLimits(compile_timeout_s=0.05))
    started = time.monotonic()
    with pytest.raises(
        ValidationError, match=r"^grammar is not valid: compiling it took longer than 0.05 s$"
    ):
        cache.get(regex(1))
    assert time.monotonic() - started < 0.25
    with pytest.raises(ValidationError, match="took longer"):
        cache.get(regex(1))  # waits on the same compilation, starts no new one
    assert len(backend.compiled) == 1
    cache.close()


def test_backend_errors_become_validation_errors() -> None:
    cache = GrammarCache(CountingBackend(error=ValidationError("grammar is not valid: bad")))
    with pytest.raises(ValidationError, match="^grammar is not valid: bad$"):
        cache.get(regex(1))
    cache = GrammarCache(CountingBackend(error=RuntimeError("library exploded")))
    with pytest.raises(ValidationError, match="^grammar is not valid: library exploded$"):
        cache.get(regex(1))
