"""A request as the scheduler tracks it: its tokens, how many have KV in the
cache, and why it ended."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from pytgi.protocol import FinishReason, SamplingParams


class RequestStatus(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"


@dataclass(slots=True, eq=False)
class Request:
    """Mutable scheduling state of one request (engine thread only).

    `num_computed_tokens` counts tokens whose KV is in the cache; it goes back
    to 0 when the request is preempted (its blocks are freed and recomputed on
    resume, generated tokens included, so nothing generated is lost).
    """

    request_id: str
    prompt_token_ids: tuple[int, ...]
    sampling: SamplingParams
    max_new_tokens: int
    eos_token_ids: frozenset[int]
    ignore_eos: bool = False
    want_prompt_logprobs: bool = False
    output_token_ids: list[int] = field(default_factory=list)
    num_computed_tokens: int = 0
    num_prefix_hit_tokens: int = 0
    num_preemptions: int = 0
    status: RequestStatus = RequestStatus.WAITING
    finish_reason: FinishReason | None = None
    seen_by_executor: bool = False

    @property
    def num_tokens(self) -> int:
        return len(self.prompt_token_ids) + len(self.output_token_ids)

    @property
    def num_output_tokens(self) -> int:
        return len(self.output_token_ids)

    def token_ids(self, start: int, end: int) -> tuple[int, ...]:
        """Tokens at positions [start, end) of prompt + output."""
        num_prompt = len(self.prompt_token_ids)
        if end <= num_prompt:
            return self.prompt_token_ids[start:end]
        if start >= num_prompt:  # decode: no copy of the whole sequence
            return tuple(self.output_token_ids[start - num_prompt : end - num_prompt])
        return self.prompt_token_ids[start:] + tuple(self.output_token_ids[: end - num_prompt])

    def all_token_ids(self) -> tuple[int, ...]:
        return self.prompt_token_ids + tuple(self.output_token_ids)

    def append_output(self, token_id: int) -> FinishReason | None:
        """Record a generated token; return TGI's finish reason if it ends the
        request. Order as TGI: the length limit first, then EOS."""
        self.output_token_ids.append(token_id)
        if len(self.output_token_ids) >= self.max_new_tokens:
            return FinishReason.LENGTH
        if not self.ignore_eos and token_id in self.eos_token_ids:
            return FinishReason.EOS_TOKEN
        return None
