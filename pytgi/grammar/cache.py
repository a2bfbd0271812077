"""Compiled grammars by spec: a bounded LRU, with a size cap and a time limit.

Clients often send the same schema again (tool definitions, a fixed response
format), so compiled grammars are kept, keyed by the frozen `GrammarSpec`. The
cache holds futures, not results: a request for a spec that is still compiling
waits for that compilation instead of starting a second one, and a spec that
failed or timed out stays failed until evicted, so repeating an expensive
grammar cannot keep the compile workers busy.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeoutError

from pytgi.errors import ValidationError
from pytgi.grammar.backend import CompiledGrammar, GrammarBackend, GrammarLimits
from pytgi.protocol import GrammarSpec

# Compilations run here so that a caller can stop waiting after the time limit;
# a compilation cannot be interrupted, but the backend's fuel limits end it.
NUM_COMPILE_WORKERS = 2


class GrammarCache:
    """Thread-safe: called from the validation threads, off the event loop."""

    def __init__(self, backend: GrammarBackend, limits: GrammarLimits | None = None) -> None:
        self.backend = backend
        self.limits = limits or GrammarLimits()
        self._entries: OrderedDict[GrammarSpec, Future[CompiledGrammar]] = OrderedDict()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(NUM_COMPILE_WORKERS, thread_name_prefix="pytgi-grammar")

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, spec: GrammarSpec) -> CompiledGrammar:
        """The compiled grammar of `spec`; blocking. Raises ValidationError when
        the spec is too large, does not compile, or compiles too slowly."""
        num_bytes = len(spec.value.encode("utf-8"))
        if num_bytes > self.limits.max_spec_bytes:
            raise ValidationError(
                f"grammar is not valid: the grammar is {num_bytes} bytes, "
                f"over the limit of {self.limits.max_spec_bytes} bytes"
            )
        future = self._future(spec)
        try:
            return future.result(timeout=self.limits.compile_timeout_s)
        except FutureTimeoutError:
            raise ValidationError(
                f"grammar is not valid: compiling it took longer than {self.limits.compile_timeout_s:g} s"
            ) from None
        except ValidationError:
            raise
        except Exception as error:  # a library failure is still this grammar's fault
            raise ValidationError(f"grammar is not valid: {error}") from error

    def _future(self, spec: GrammarSpec) -> Future[CompiledGrammar]:
        with self._lock:
            future = self._entries.get(spec)
            if future is not None:
                self._entries.move_to_end(spec)
                return future
            future = self._pool.submit(self.backend.compile, spec)
            self._entries[spec] = future
            while len(self._entries) > self.limits.max_cached_grammars:
                self._entries.popitem(last=False)
            return future

    def close(self) -> None:
        """Stop the compile workers (tests, shutdown); running compilations finish."""
        self._pool.shutdown(wait=False, cancel_futures=True)
