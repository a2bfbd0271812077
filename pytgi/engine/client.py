"""The seam between the HTTP server and the engine.

The server depends only on `EngineClient`; the real implementation is
`engine.async_engine.AsyncEngine`, and server tests use a fake.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pytgi.config import ServingLimits
from pytgi.metrics.stats import StepStats
from pytgi.protocol import GenerationRequest, RequestOutput


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What /info and the start-up log say about the served model."""

    model_id: str
    model_sha: str | None
    model_pipeline_tag: str | None
    dtype: str
    device: str
    max_position_embeddings: int


@dataclass(frozen=True, slots=True)
class TokenSpan:
    """One token of /tokenize: id, its text, and byte offsets into the input."""

    id: int
    text: str
    start: int
    stop: int


@dataclass(frozen=True, slots=True)
class EngineStats:
    """A snapshot for /metrics gauges."""

    num_waiting: int
    num_running: int
    kv_blocks_total: int
    kv_blocks_in_use: int
    max_batch_total_tokens: int
    # KV slots the running batch holds (blocks in use x block size): TGI's
    # tgi_batch_current_max_tokens, the tokens the current batch may reach.
    kv_tokens_in_use: int = 0


class EngineClient(Protocol):
    """What the server may ask of an engine. All methods are safe to call from
    the asyncio event loop: none of them blocks on a model step.
    """

    @property
    def model_info(self) -> ModelInfo: ...

    @property
    def limits(self) -> ServingLimits: ...

    def generate(self, request: GenerationRequest) -> AsyncIterator[RequestOutput]:
        """Submit `request` and yield its outputs until one has `finished`.

        Raises `errors.ValidationError` (before the first yield) for inputs that
        fail the token-count checks, `errors.GenerationError` when a model step
        fails. Closing the iterator early (client gone) aborts the request: its
        KV blocks are freed within one engine step.
        """
        ...

    async def tokenize(self, text: str) -> list[TokenSpan]: ...

    @property
    def chat_template_uses_tools(self) -> bool | None:
        """Whether the model's chat template reads `tools`; None when it has no template."""
        ...

    async def apply_chat_template(
        self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None
    ) -> str:
        """The prompt for a conversation (messages as template-ready dicts), rendered off
        the event loop within the template's time budget, with the generation prompt
        (or continuing a final assistant message). Raises `errors.ChatTemplateError`,
        also when the model has no chat template."""
        ...

    async def check_health(self) -> bool:
        """True when the engine loop is alive and the last model step worked (or,
        after a failure, when a real one-token forward now works)."""
        ...

    def stats(self) -> EngineStats: ...

    def add_step_observer(self, observer: Callable[[StepStats], None]) -> None:
        """Call `observer` after every engine step (from the engine's thread:
        it must be quick and must not block)."""
        ...
