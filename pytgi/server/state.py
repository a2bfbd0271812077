"""What every route of one app shares: the engine client, limits, permits, metrics."""

from __future__ import annotations

import time
from dataclasses import dataclass

from pytgi.config import ServingLimits
from pytgi.engine.client import EngineClient
from pytgi.errors import OverloadedError, ShuttingDownError
from pytgi.metrics.prometheus import TgiMetrics


class Permit:
    """Held concurrency slots; `release` is idempotent so every exit path may call it."""

    def __init__(self, limiter: ConcurrencyLimiter, num_slots: int) -> None:
        self._limiter = limiter
        self._num_slots = num_slots

    def release(self) -> None:
        if self._num_slots:
            self._limiter.num_free += self._num_slots
            self._num_slots = 0


class ConcurrencyLimiter:
    """`max_concurrent_requests` slots with try-acquire: TGI answers 429 at once, never queues.

    Only touched from the event loop, so a plain counter suffices.
    """

    def __init__(self, max_concurrent_requests: int) -> None:
        self.num_free = max_concurrent_requests
        self.draining = False
        # Monotonic time at which requests still running are ended with an error.
        self.terminate_at_s: float | None = None

    def begin_drain(self, grace_s: float | None = None) -> None:
        """From now on: no new work, and /health answers 503 (the server is
        going away); requests already running may finish for `grace_s`
        seconds, then end with an error (None: no limit). Plain attribute
        writes, so it is safe to call from a signal handler."""
        if grace_s is not None and self.terminate_at_s is None:
            self.terminate_at_s = time.monotonic() + grace_s
        self.draining = True

    def termination_deadline(self) -> float | None:
        return self.terminate_at_s

    def try_acquire(self, num_slots: int = 1) -> Permit:
        """All or nothing (best_of takes one slot per sequence)."""
        if self.draining:
            raise ShuttingDownError()
        if num_slots > self.num_free:
            raise OverloadedError()
        self.num_free -= num_slots
        return Permit(self, num_slots)


@dataclass(frozen=True, slots=True)
class ServerState:
    client: EngineClient
    limits: ServingLimits
    limiter: ConcurrencyLimiter
    metrics: TgiMetrics
    version: str
    compute_type: str
    payload_limit: int
    keepalive_interval_s: float
    validation_workers: int
