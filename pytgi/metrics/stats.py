"""Plain dataclasses that metrics are recorded from (no prometheus_client here)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RequestDurations:
    """Where one request's time went, in seconds, as TGI splits it.

    validation = arrival -> enqueued, queue = enqueued -> first scheduled,
    inference = first scheduled -> done, time_per_token = inference / generated tokens.
    The same numbers feed the `x-*-time` headers and the duration histograms.
    """

    total_s: float
    validation_s: float
    queue_s: float
    inference_s: float
    time_per_token_s: float
