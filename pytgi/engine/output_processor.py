"""The one loop over a step's results: detokenize each new token, match stop
strings, collect logprobs, and build the `RequestOutput`s."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from pytgi.engine.input_processor import ProcessedRequest
from pytgi.engine.stop import find_stop, trim_tail
from pytgi.protocol import FinishReason, RequestOutput, RequestTimings, Token
from pytgi.scheduler.scheduler import RequestUpdate
from pytgi.step import SampledToken
from pytgi.tokenizer.detokenizer import DecodeOffsets, decode_next, initial_offsets
from pytgi.tokenizer.tokenizer import Tokenizer


def finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


@dataclass(slots=True, eq=False)
class RequestState:
    """Per-request output state, owned by the engine thread."""

    processed: ProcessedRequest
    decode_ids: list[int]  # prompt tail (context) + generated ids
    offsets: DecodeOffsets
    arrived_s: float
    queued_s: float
    text_tail: str = ""
    prompt_logprobs: list[float] = field(default_factory=list)
    prefill_sent: bool = False
    first_scheduled_s: float | None = None
    first_token_s: float | None = None
    num_generated: int = 0

    @property
    def request_id(self) -> str:
        return self.processed.request.request_id


class OutputProcessor:
    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self._states: dict[str, RequestState] = {}

    def add(self, processed: ProcessedRequest, arrived_s: float) -> None:
        prompt = processed.prompt_token_ids
        context = initial_offsets(len(prompt))
        self._states[processed.request.request_id] = RequestState(
            processed=processed,
            decode_ids=list(prompt[context.prefix :]),
            offsets=DecodeOffsets(0, context.read - context.prefix),
            arrived_s=arrived_s,
            queued_s=time.monotonic(),
        )

    def remove(self, request_id: str) -> None:
        self._states.pop(request_id, None)

    def __contains__(self, request_id: str) -> bool:
        return request_id in self._states

    def add_prompt_logprobs(self, request_id: str, start_position: int, logprobs: tuple[float, ...]) -> None:
        """Place a chunk's prompt logprobs at their positions. A recompute after
        preemption reports them again (and past the prompt): only the prompt
        positions are kept, so duplicates overwrite with equal values."""
        state = self._states.get(request_id)
        if state is None:
            return
        num_prompt = len(state.processed.prompt_token_ids)
        if len(state.prompt_logprobs) < num_prompt:
            state.prompt_logprobs.extend([math.nan] * (num_prompt - len(state.prompt_logprobs)))
        end = min(start_position + len(logprobs), num_prompt)
        if start_position < end:
            state.prompt_logprobs[start_position:end] = logprobs[: end - start_position]

    def mark_scheduled(self, request_id: str, now_s: float) -> None:
        state = self._states.get(request_id)
        if state is not None and state.first_scheduled_s is None:
            state.first_scheduled_s = now_s

    def process(
        self, update: RequestUpdate, sampled: SampledToken | None
    ) -> tuple[RequestOutput, FinishReason | None]:
        """Build the output for one request after a step. Returns it with the
        finish reason found here (a stop string), which the engine must apply."""
        state = self._states[update.request.request_id]
        now = time.monotonic()
        tokens: tuple[Token, ...] = ()
        top_tokens: tuple[tuple[Token, ...], ...] = ()
        reason = update.finish_reason
        if update.new_token_id is not None and sampled is not None:
            token = self._next_token(state, sampled)
            tokens = (token,)
            top_tokens = (tuple(self._alternative(tid, lp) for tid, lp in sampled.top_tokens),)
            state.num_generated += 1
            if state.first_token_s is None:
                state.first_token_s = now
            if reason is None and find_stop(state.text_tail, token.text, state.processed.request.stopping.stop):
                reason = FinishReason.STOP_SEQUENCE
            state.text_tail = trim_tail(state.text_tail + token.text)
        output = self._output(state, tokens, top_tokens, reason, now)
        if reason is not None:
            self.remove(state.request_id)
        return output, reason

    def _next_token(self, state: RequestState, sampled: SampledToken) -> Token:
        state.decode_ids.append(sampled.token_id)
        text, state.offsets = decode_next(self._decode_with_special, state.decode_ids, state.offsets)
        return Token(
            id=sampled.token_id,
            text=text,
            logprob=finite_or_none(sampled.logprob),
            special=sampled.token_id in self.tokenizer.special_token_ids,
        )

    def _alternative(self, token_id: int, logprob: float) -> Token:
        return Token(
            id=token_id,
            text=self.tokenizer.decode([token_id], skip_special_tokens=False),
            logprob=finite_or_none(logprob),
            special=token_id in self.tokenizer.special_token_ids,
        )

    def _decode_with_special(self, token_ids: Sequence[int]) -> str:
        return self.tokenizer.decode(token_ids, skip_special_tokens=False)

    def _output(
        self,
        state: RequestState,
        tokens: tuple[Token, ...],
        top_tokens: tuple[tuple[Token, ...], ...],
        reason: FinishReason | None,
        now: float,
    ) -> RequestOutput:
        processed = state.processed
        finished = reason is not None
        prefill: tuple[Token, ...] = ()
        if processed.request.decoder_input_details and tokens and not state.prefill_sent:
            prefill = self._prefill_tokens(state)
            state.prefill_sent = True
        generated_text = None
        if finished:
            generated_text = self.tokenizer.decode(self._generated_ids(state), skip_special_tokens=True)
        return RequestOutput(
            request_id=state.request_id,
            tokens=tokens,
            top_tokens=top_tokens,
            num_prompt_tokens=len(processed.prompt_token_ids),
            num_generated_tokens=state.num_generated,
            seed=None if processed.sampling.is_greedy else processed.sampling.seed,
            finished=finished,
            finish_reason=reason,
            generated_text=generated_text,
            prefill_tokens=prefill,
            timings=RequestTimings(
                arrived_s=state.arrived_s,
                queued_s=state.queued_s,
                first_scheduled_s=state.first_scheduled_s,
                first_token_s=state.first_token_s,
                finished_s=now if finished else None,
            ),
        )

    def _generated_ids(self, state: RequestState) -> list[int]:
        return state.decode_ids[len(state.decode_ids) - state.num_generated :]

    def _prefill_tokens(self, state: RequestState) -> tuple[Token, ...]:
        prompt = state.processed.prompt_token_ids
        # The executor reports one logprob per prompt position, NaN for the first.
        logprobs = state.prompt_logprobs[: len(prompt)]
        logprobs += [math.nan] * (len(prompt) - len(logprobs))
        return tuple(
            Token(
                id=token_id,
                text=self.tokenizer.decode([token_id], skip_special_tokens=False),
                logprob=finite_or_none(logprob),
                special=token_id in self.tokenizer.special_token_ids,
            )
            for token_id, logprob in zip(prompt, logprobs, strict=True)
        )
