"""A scriptable `EngineClient` for server tests: no model, milliseconds per request.

Prompt tokens are whitespace-separated words. Each request plays a `FakeScript`
(token texts, logprobs, pacing, failures); the engine records every request it
got, which ones were aborted (iterator closed or cancelled before the end) and
which finished. Lists are appended from the server's event loop and may be
read from a test thread (list.append is atomic).
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytgi.config import ServingLimits
from pytgi.demo import DEMO_MODEL_DIR
from pytgi.engine.client import EngineStats, ModelInfo, TokenSpan
from pytgi.errors import ChatTemplateError, GenerationError, ValidationError
from pytgi.metrics.stats import StepStats
from pytgi.protocol import FinishReason, GenerationRequest, RequestOutput, RequestTimings, Token
from pytgi.tokenizer.chat_template import ChatTemplate

EOS_TEXT = "</s>"
EOS_ID = 2
# The bundled demo model's template (ChatML), so chat tests see real rendering.
DEMO_CHAT_TEMPLATE = ChatTemplate.from_model(
    DEMO_MODEL_DIR, json.loads((DEMO_MODEL_DIR / "tokenizer_config.json").read_text()), eos_token=EOS_TEXT
)


def make_limits(**overrides: int | bool) -> ServingLimits:
    values: dict[str, int | bool] = dict(
        max_input_tokens=1000,
        max_total_tokens=2000,
        max_batch_total_tokens=4096,
        max_concurrent_requests=128,
        max_best_of=2,
        max_stop_sequences=4,
        max_top_n_tokens=5,
        max_client_batch_size=4,
    )
    values.update(overrides)
    return ServingLimits(**values)  # type: ignore[arg-type]


def make_model_info(**overrides: object) -> ModelInfo:
    values: dict[str, object] = dict(
        model_id="fake/model",
        model_sha=None,
        model_pipeline_tag=None,
        dtype="float32",
        device="cpu",
        max_position_embeddings=2048,
    )
    values.update(overrides)
    return ModelInfo(**values)  # type: ignore[arg-type]


@dataclass
class FakeScript:
    """What one request generates. After `texts` run out the request ends with EOS
    (an extra special token) unless `finish_reason` says otherwise."""

    texts: Sequence[str] = ("Hello", " world", "!", " How", " are", " you")
    logprobs: Sequence[float] | None = None  # default -0.5 for every token
    finish_reason: FinishReason = FinishReason.EOS_TOKEN
    delay_s: float = 0.0  # sleep before each token
    hold_after: int | None = None  # after this many tokens, wait for `release`
    release: threading.Event = field(default_factory=threading.Event)
    fail_after: int | None = None  # raise GenerationError after this many tokens
    end_without_finish: bool = False  # stop iterating without a finished output
    tokens_per_output: int = 1


class FakeEngine:
    def __init__(
        self,
        *,
        limits: ServingLimits | None = None,
        model_info: ModelInfo | None = None,
        script: FakeScript | None = None,
        script_for: Callable[[GenerationRequest, int], FakeScript] | None = None,
        healthy: bool = True,
        chat_template: ChatTemplate | None = DEMO_CHAT_TEMPLATE,
    ) -> None:
        self.chat_template = chat_template
        self._limits = limits or make_limits()
        self._model_info = model_info or make_model_info()
        self.script = script or FakeScript()
        self.script_for = script_for
        self.healthy = healthy
        self.step_observers: list[Callable[[StepStats], None]] = []
        self.requests: list[GenerationRequest] = []
        self.aborted: list[str] = []
        self.finished: list[str] = []
        self.num_running = 0

    # --- EngineClient ----------------------------------------------------------------------

    @property
    def model_info(self) -> ModelInfo:
        return self._model_info

    @property
    def limits(self) -> ServingLimits:
        return self._limits

    def generate(self, request: GenerationRequest) -> AsyncIterator[RequestOutput]:
        self.requests.append(request)
        return self._generate(request)

    async def tokenize(self, text: str) -> list[TokenSpan]:
        spans = []
        for i, match in enumerate(re.finditer(r"\S+", text)):
            start = len(text[: match.start()].encode())
            stop = start + len(match.group().encode())
            spans.append(TokenSpan(id=100 + i, text=match.group(), start=start, stop=stop))
        return spans

    @property
    def chat_template_uses_tools(self) -> bool | None:
        return None if self.chat_template is None else self.chat_template.uses_tools

    async def apply_chat_template(
        self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None
    ) -> str:
        if self.chat_template is None:
            raise ChatTemplateError("template not found")
        return self.chat_template.render(messages, add_generation_prompt=True, tools=tools)

    async def check_health(self) -> bool:
        return self.healthy

    def add_step_observer(self, observer: Callable[[StepStats], None]) -> None:
        self.step_observers.append(observer)

    def stats(self) -> EngineStats:
        return EngineStats(
            num_waiting=0,
            num_running=self.num_running,
            kv_blocks_total=256,
            kv_blocks_in_use=3 * self.num_running,
            max_batch_total_tokens=self._limits.max_batch_total_tokens,
        )

    # --- the fake generation ---------------------------------------------------------------

    def _prompt_ids(self, request: GenerationRequest) -> list[int]:
        words = (request.prompt or "").split()
        ids = [1000 + i for i in range(len(words))]
        if request.truncate is not None:
            ids = ids[-request.truncate :]
        return ids

    def _check_counts(self, request: GenerationRequest, num_input: int) -> int:
        """The engine-side token checks, in TGI's order; returns the max_new_tokens bound."""
        lim = self._limits
        max_new = request.stopping.max_new_tokens
        if max_new is not None and num_input + min(max_new, 1024) > lim.max_total_tokens:
            raise ValidationError(
                f"`inputs` tokens + `max_new_tokens` must be <= {lim.max_total_tokens}. "
                f"Given: {num_input} `inputs` tokens and {max_new} `max_new_tokens`"
            )
        if num_input > lim.max_input_tokens:
            raise ValidationError(
                f"`inputs` must have less than {lim.max_input_tokens} tokens. Given: {num_input}"
            )
        return max_new if max_new is not None else lim.max_total_tokens - num_input

    def _planned_tokens(self, script: FakeScript, max_new: int) -> tuple[list[Token], FinishReason]:
        logprobs = list(script.logprobs) if script.logprobs is not None else [-0.5] * len(script.texts)
        tokens = [
            Token(id=10 + i, text=t, logprob=lp, special=False)
            for i, (t, lp) in enumerate(zip(script.texts, logprobs, strict=True))
        ]
        reason = script.finish_reason
        if reason == FinishReason.EOS_TOKEN:
            tokens.append(Token(id=EOS_ID, text=EOS_TEXT, logprob=-0.1, special=True))
        if len(tokens) >= max_new:
            return tokens[:max_new], FinishReason.LENGTH
        return tokens, reason

    async def _generate(self, request: GenerationRequest) -> AsyncIterator[RequestOutput]:
        arrived_s = time.monotonic()
        prompt_ids = self._prompt_ids(request)
        max_new = self._check_counts(request, len(prompt_ids))
        seed = request.sampling.seed if request.sampling.seed is not None else random.getrandbits(63)
        script = self.script_for(request, seed) if self.script_for else self.script
        planned, reason = self._planned_tokens(script, max_new)
        prefill = (
            tuple(
                Token(id=i, text=f"w{n}", logprob=None if n == 0 else -1.0, special=False)
                for n, i in enumerate(prompt_ids)
            )
            if request.decoder_input_details
            else ()
        )
        timings = RequestTimings(arrived_s=arrived_s, queued_s=arrived_s, first_scheduled_s=time.monotonic())
        self.num_running += 1
        done = False
        try:
            emitted = 0
            while emitted < len(planned):
                if script.fail_after is not None and emitted >= script.fail_after:
                    raise GenerationError("fake step failed")
                if script.hold_after is not None and emitted >= script.hold_after:
                    while not script.release.is_set():
                        await asyncio.sleep(0.005)
                if script.delay_s:
                    await asyncio.sleep(script.delay_s)
                chunk = planned[emitted : emitted + script.tokens_per_output]
                emitted += len(chunk)
                done = emitted == len(planned) and not script.end_without_finish
                if done:
                    # Closing the iterator after the finished output is not an abort.
                    self.finished.append(request.request_id)
                yield self._output(
                    request,
                    planned[:emitted],
                    chunk,
                    len(prompt_ids),
                    seed,
                    done,
                    reason,
                    prefill if emitted == len(chunk) else (),
                    timings,
                )
        except (GeneratorExit, asyncio.CancelledError):
            if not done:
                self.aborted.append(request.request_id)
            raise
        finally:
            self.num_running -= 1

    def _output(
        self,
        request: GenerationRequest,
        so_far: list[Token],
        chunk: list[Token],
        num_prompt: int,
        seed: int,
        done: bool,
        reason: FinishReason,
        prefill: tuple[Token, ...],
        timings: RequestTimings,
    ) -> RequestOutput:
        n = request.sampling.top_n_tokens
        top = (
            tuple(
                tuple(
                    Token(id=t.id + k, text=f"{t.text}~{k}", logprob=-0.5 - k, special=False)
                    for k in range(n)
                )
                for t in chunk
            )
            if n > 0
            else ()
        )
        text = "".join(t.text for t in so_far if not t.special)
        return RequestOutput(
            request_id=request.request_id,
            tokens=tuple(chunk),
            top_tokens=top,
            num_prompt_tokens=num_prompt,
            num_generated_tokens=len(so_far),
            seed=seed,
            finished=done,
            finish_reason=reason if done else None,
            generated_text=text if done else None,
            prefill_tokens=prefill,
            timings=RequestTimings(
                arrived_s=timings.arrived_s,
                queued_s=timings.queued_s,
                first_scheduled_s=timings.first_scheduled_s,
                finished_s=time.monotonic() if done else None,
            ),
        )
