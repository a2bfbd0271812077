"""The contract between the core (scheduler) and the executor (tensors).

One engine step: the scheduler produces a `SchedulerOutput` of plain ints, the
executor runs the model over it and returns a `StepResult` of plain ints and
floats. Nothing here imports torch (grammar masks cross as numpy arrays).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from pytgi.protocol import SamplingParams


@dataclass(frozen=True, slots=True)
class NewRequestData:
    """Sent once, the first step a request is scheduled, so the executor can set
    up its per-request sampling state (seeded generator, penalty counts).
    `prompt_token_ids` is the prompt as the model sees it (after truncation)."""

    request_id: str
    prompt_token_ids: tuple[int, ...]
    sampling: SamplingParams
    want_prompt_logprobs: bool = False


@dataclass(frozen=True, slots=True)
class ScheduledChunk:
    """The tokens of one request whose KV this step computes.

    `token_ids` sit at positions `start_position .. start_position+len-1`;
    positions before `start_position` are already in the KV cache, in the blocks
    of `block_table` (which covers every position up to the end of this chunk).
    When `sample` is set, this chunk reaches the end of the request's known
    tokens and the executor samples the next token from its last position.
    """

    request_id: str
    token_ids: tuple[int, ...]
    start_position: int
    block_table: tuple[int, ...]
    sample: bool


@dataclass(frozen=True, slots=True, eq=False)
class TokenBitmask:
    """The tokens each grammar-constrained request may sample this step.

    Row i is for `request_ids[i]` (a chunk with `sample` set): int32 words, token
    t allowed when bit t % 32 of word t // 32 is set. Logit columns past the
    last word are disallowed. Requests without a row are unconstrained.
    """

    request_ids: tuple[str, ...]
    bits: npt.NDArray[np.int32]  # [len(request_ids), ceil(vocab_size / 32)]


@dataclass(frozen=True, slots=True)
class SchedulerOutput:
    """One step of work. `finished_request_ids`: requests that ended since the
    previous step; the executor drops their state before running this step.
    `token_bitmask`: set by the engine when some sampled request has a grammar."""

    new_requests: tuple[NewRequestData, ...]
    chunks: tuple[ScheduledChunk, ...]
    finished_request_ids: tuple[str, ...]
    token_bitmask: TokenBitmask | None = None

    @property
    def num_tokens(self) -> int:
        return sum(len(c.token_ids) for c in self.chunks)

    @property
    def is_empty(self) -> bool:
        return not self.chunks


@dataclass(frozen=True, slots=True)
class SampledToken:
    """The token sampled for one request, with its logprob taken after all logits
    processors (TGI's convention: filtered tokens have -inf, reported as None),
    and the `top_n_tokens` best alternatives as (token_id, logprob) pairs."""

    token_id: int
    logprob: float
    top_tokens: tuple[tuple[int, float], ...] = ()


@dataclass(frozen=True, slots=True)
class StepResult:
    """request_id -> sampled token, for every chunk with `sample` set.

    `prompt_logprobs[request_id]` holds, when the request asked for
    decoder_input_details, the logprob of each token of its chunk given the
    preceding ones (the first prompt token has none: NaN)."""

    sampled: dict[str, SampledToken]
    prompt_logprobs: dict[str, tuple[float, ...]]


@dataclass(frozen=True, slots=True)
class KVCacheSpec:
    """What the executor found at start-up: how many KV blocks it allocated."""

    num_blocks: int
    block_size: int
    bytes_per_block: int


class Executor(Protocol):
    """Runs the model. Owned by the engine; called from the engine thread only.

    `execute` must not keep references to the step; it raises on a failed
    forward, after which the engine fails the step's requests and calls
    `execute` again with later steps (state of requests in the failed step is
    dropped via `finished_request_ids`).
    """

    @property
    def kv_cache_spec(self) -> KVCacheSpec: ...

    def execute(self, step: SchedulerOutput) -> StepResult: ...
