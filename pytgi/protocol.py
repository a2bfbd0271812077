"""Data that crosses zones: what a request asks for and what comes back.

Frozen, slotted dataclasses with no torch and no HTTP: the server builds a
`GenerationRequest`, the engine answers with a stream of `RequestOutput`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Literal


class FinishReason(str, enum.Enum):
    """TGI's public finish reasons."""

    LENGTH = "length"
    EOS_TOKEN = "eos_token"
    STOP_SEQUENCE = "stop_sequence"


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """Per-request sampling, with TGI's neutral values meaning "off".

    `seed` is None only before the engine resolves it; the engine fills a random
    one so that every sampled request can report the seed it used.
    """

    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    typical_p: float = 1.0
    repetition_penalty: float = 1.0
    frequency_penalty: float = 0.0
    seed: int | None = None
    top_n_tokens: int = 0
    watermark: bool = False

    @property
    def is_greedy(self) -> bool:
        """TGI samples when do_sample is set or any warper is active."""
        return not (
            self.do_sample
            or self.temperature != 1.0
            or self.top_k > 0
            or self.top_p < 1.0
            or self.typical_p < 1.0
        )


@dataclass(frozen=True, slots=True)
class StoppingParams:
    """When a request ends. `max_new_tokens` None means: up to max_total_tokens."""

    max_new_tokens: int | None = None
    stop: tuple[str, ...] = ()
    ignore_eos: bool = False


@dataclass(frozen=True, slots=True)
class GrammarSpec:
    """A structured-output constraint, as the engine compiles it.

    `kind` "json": `value` is a JSON-Schema document (JSON text, already checked
    against the meta-schema); "regex": `value` is the regular expression the
    whole output must match. Frozen and hashable: it is the compiled-grammar
    cache key.
    """

    kind: Literal["json", "regex"]
    value: str


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """One validated request. Exactly one of `prompt` / `prompt_token_ids` is set."""

    request_id: str
    prompt: str | None = None
    prompt_token_ids: tuple[int, ...] | None = None
    sampling: SamplingParams = field(default_factory=SamplingParams)
    stopping: StoppingParams = field(default_factory=StoppingParams)
    truncate: int | None = None
    add_special_tokens: bool = True
    decoder_input_details: bool = False
    grammar: GrammarSpec | None = None


@dataclass(frozen=True, slots=True)
class Token:
    """One token as TGI reports it. `logprob` None means not finite / not computed."""

    id: int
    text: str
    logprob: float | None
    special: bool


@dataclass(frozen=True, slots=True)
class RequestTimings:
    """Monotonic timestamps (seconds) of a request's life, for headers and metrics."""

    arrived_s: float
    queued_s: float | None = None
    first_scheduled_s: float | None = None
    first_token_s: float | None = None
    finished_s: float | None = None


@dataclass(frozen=True, slots=True)
class RequestOutput:
    """What the engine pushes for a request after a step that touched it.

    `tokens` are the tokens generated since the previous output (usually one),
    with `top_tokens[i]` the alternatives for `tokens[i]` when top_n_tokens > 0.
    The last output has `finished` set, `finish_reason` and `generated_text`.
    """

    request_id: str
    tokens: tuple[Token, ...]
    top_tokens: tuple[tuple[Token, ...], ...]
    num_prompt_tokens: int
    num_generated_tokens: int
    seed: int | None
    finished: bool = False
    finish_reason: FinishReason | None = None
    generated_text: str | None = None
    prefill_tokens: tuple[Token, ...] = ()
    timings: RequestTimings | None = None
