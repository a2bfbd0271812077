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


@dataclass(frozen=True, slots=True)
class StepStats:
    """One engine step, as TGI's batch metrics see it.

    `method` is "prefill" when any chunk of the step is a prompt chunk, else
    "decode". forward = the model and sampling; outputs = detokenization, stop
    strings and building outputs (TGI's "decode" duration); total = the whole step.
    """

    method: str
    num_requests: int
    num_new_requests: int
    num_tokens: int
    forward_s: float
    outputs_s: float
    total_s: float
    ok: bool
