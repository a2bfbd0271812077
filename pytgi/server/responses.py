"""Engine outputs -> TGI's response bodies, stream events and headers.

Pure functions of the validated request and the engine's `RequestOutput`s: no
I/O, so every shape is unit-testable. Non-finite floats become JSON null here.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from pytgi.metrics.stats import RequestDurations
from pytgi.protocol import GenerationRequest, RequestOutput, RequestTimings, Token
from pytgi.server.validation import ValidatedGenerate

JsonObject = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Generation:
    """One finished non-streamed generation, gathered from all its outputs."""

    request: GenerationRequest
    tokens: tuple[Token, ...]
    top_tokens: tuple[tuple[Token, ...], ...]
    prefill_tokens: tuple[Token, ...]
    final: RequestOutput

    @property
    def mean_logprob(self) -> float:
        """best_of's ranking key; a missing (non-finite) logprob counts as -inf."""
        if not self.tokens:
            return -math.inf
        logprobs = [-math.inf if t.logprob is None else t.logprob for t in self.tokens]
        return sum(logprobs) / len(logprobs)


def finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def token_json(token: Token) -> JsonObject:
    return {
        "id": token.id,
        "text": token.text,
        "logprob": finite_or_none(token.logprob),
        "special": token.special,
    }


def prefill_token_json(token: Token) -> JsonObject:
    return {"id": token.id, "text": token.text, "logprob": finite_or_none(token.logprob)}


def reported_seed(request: GenerationRequest, seed: int | None) -> int | None:
    """TGI reports the seed only when the request sampled."""
    return None if request.sampling.is_greedy else seed


def output_text(validated: ValidatedGenerate, generated_text: str | None) -> str:
    text = generated_text or ""
    return validated.inputs + text if validated.return_full_text else text


def _top_tokens_json(validated: ValidatedGenerate, top_tokens: tuple[tuple[Token, ...], ...]) -> Any:
    if validated.request.sampling.top_n_tokens <= 0 or not top_tokens:
        return None
    return [[token_json(t) for t in alternatives] for alternatives in top_tokens]


def _sequence_json(validated: ValidatedGenerate, generation: Generation) -> JsonObject:
    """Fields shared by `details` and each `best_of_sequences` entry."""
    final = generation.final
    body: JsonObject = {
        "finish_reason": final.finish_reason.value if final.finish_reason is not None else None,
        "generated_tokens": final.num_generated_tokens,
        "seed": reported_seed(generation.request, final.seed),
        "prefill": [prefill_token_json(t) for t in generation.prefill_tokens],
        "tokens": [token_json(t) for t in generation.tokens],
    }
    top_tokens = _top_tokens_json(validated, generation.top_tokens)
    if top_tokens is not None:
        body["top_tokens"] = top_tokens
    return body


def generate_body(validated: ValidatedGenerate, best: Generation, others: list[Generation]) -> JsonObject:
    """GenerateResponse: `details` only when details or decoder_input_details was asked."""
    body: JsonObject = {"generated_text": output_text(validated, best.final.generated_text)}
    if validated.details or validated.request.decoder_input_details:
        details = _sequence_json(validated, best)
        if others:
            details["best_of_sequences"] = [
                {
                    "generated_text": output_text(validated, g.final.generated_text),
                    **_sequence_json(validated, g),
                }
                for g in others
            ]
        body["details"] = details
    return body


def stream_event(
    validated: ValidatedGenerate,
    index: int,
    token: Token,
    top_tokens: tuple[Token, ...],
    final: RequestOutput | None,
) -> JsonObject:
    """StreamResponse for one token; `final` is set only for the last token of the stream."""
    event: JsonObject = {"index": index, "token": token_json(token)}
    if validated.request.sampling.top_n_tokens > 0 and top_tokens:
        event["top_tokens"] = [token_json(t) for t in top_tokens]
    event["generated_text"] = None if final is None else output_text(validated, final.generated_text)
    event["details"] = None
    if final is not None and validated.details:
        event["details"] = {
            "finish_reason": final.finish_reason.value if final.finish_reason is not None else None,
            "generated_tokens": final.num_generated_tokens,
            "seed": reported_seed(validated.request, final.seed),
            "input_length": final.num_prompt_tokens,
        }
    return event


def json_bytes(value: Any) -> bytes:
    """Compact UTF-8 JSON, as serde_json writes it."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


# --- timings and headers -----------------------------------------------------------------------


def request_durations(
    start_s: float, timings: RequestTimings | None, num_generated_tokens: int, now_s: float
) -> RequestDurations:
    """TGI's split of a request's time. `start_s` is when the handler began (monotonic);
    missing engine timestamps collapse their phase to zero rather than failing."""
    queued_s = timings.queued_s if timings is not None and timings.queued_s is not None else start_s
    scheduled_s = (
        timings.first_scheduled_s
        if timings is not None and timings.first_scheduled_s is not None
        else queued_s
    )
    inference_s = max(0.0, now_s - scheduled_s)
    return RequestDurations(
        total_s=max(0.0, now_s - start_s),
        validation_s=max(0.0, queued_s - start_s),
        queue_s=max(0.0, scheduled_s - queued_s),
        inference_s=inference_s,
        time_per_token_s=inference_s / max(1, num_generated_tokens),
    )


def _ms(seconds: float) -> str:
    return str(int(seconds * 1000))


def generate_headers(
    compute_type: str, inputs: str, durations: RequestDurations, final: RequestOutput
) -> dict[str, str]:
    """Headers of a non-streamed answer: compute time in seconds, the others in integer ms."""
    return {
        "x-compute-type": compute_type,
        "x-compute-time": str(durations.total_s),
        "x-compute-characters": str(len(inputs)),
        "x-total-time": _ms(durations.total_s),
        "x-validation-time": _ms(durations.validation_s),
        "x-queue-time": _ms(durations.queue_s),
        "x-inference-time": _ms(durations.inference_s),
        "x-time-per-token": _ms(durations.time_per_token_s),
        "x-prompt-tokens": str(final.num_prompt_tokens),
        "x-generated-tokens": str(final.num_generated_tokens),
    }


def stream_headers(compute_type: str, inputs: str) -> dict[str, str]:
    """Stream headers go out before generation, so they carry no timings."""
    return {"x-compute-type": compute_type, "x-compute-characters": str(len(inputs))}
