"""Offline, blocking use of the engine: no HTTP, no event loop.

    from pytgi import LLM, SamplingParams
    llm = LLM("path/or/hub-id")
    for completion in llm.generate(["Hello"], max_new_tokens=20):
        print(completion.text)
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from pytgi.config import CacheConfig, DType, EngineConfig
from pytgi.engine.builder import build_engine
from pytgi.errors import GenerationError
from pytgi.protocol import (
    FinishReason,
    GenerationRequest,
    RequestOutput,
    SamplingParams,
    StoppingParams,
    Token,
)


@dataclass(frozen=True, slots=True)
class Completion:
    prompt: str | None
    text: str
    token_ids: tuple[int, ...]
    tokens: tuple[Token, ...]
    finish_reason: FinishReason | None
    num_prompt_tokens: int


class LLM:
    def __init__(
        self,
        model_id: str | None = None,
        *,
        dtype: DType | None = None,
        config: EngineConfig | None = None,
    ) -> None:
        """`model_id`: local folder or Hub id (None: the demo model). `config`
        gives full control; `model_id` and `dtype` override its model section."""
        base = config or EngineConfig(cache=CacheConfig(max_batch_total_tokens=16384))
        model = base.model
        base = dataclasses.replace(
            base,
            model=dataclasses.replace(
                model,
                model_id=model_id if model_id is not None else model.model_id,
                dtype=dtype if dtype is not None else model.dtype,
            ),
        )
        self._built = build_engine(base)
        self.tokenizer = self._built.tokenizer
        self.limits = self._built.limits

    def generate(
        self,
        prompts: Sequence[str] | str,
        sampling: SamplingParams | None = None,
        max_new_tokens: int | None = 64,
        stop: Sequence[str] = (),
        ignore_eos: bool = False,
    ) -> list[Completion]:
        """Run every prompt to completion, batched together. Order is kept."""
        prompt_list = [prompts] if isinstance(prompts, str) else list(prompts)
        requests = [
            GenerationRequest(
                request_id=uuid.uuid4().hex,
                prompt=prompt,
                sampling=sampling or SamplingParams(),
                stopping=StoppingParams(max_new_tokens=max_new_tokens, stop=tuple(stop), ignore_eos=ignore_eos),
            )
            for prompt in prompt_list
        ]
        return self.generate_requests(requests)

    def generate_requests(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        tokens: dict[str, list[Token]] = {r.request_id: [] for r in requests}
        done: dict[str, Completion] = {}
        prompt_by_id = {r.request_id: r.prompt for r in requests}
        for output in self.stream_requests(requests):
            tokens[output.request_id].extend(output.tokens)
            if output.finished:
                done[output.request_id] = Completion(
                    prompt=prompt_by_id[output.request_id],
                    text=output.generated_text or "",
                    token_ids=tuple(t.id for t in tokens[output.request_id]),
                    tokens=tuple(tokens[output.request_id]),
                    finish_reason=output.finish_reason,
                    num_prompt_tokens=output.num_prompt_tokens,
                )
        return [done[r.request_id] for r in requests]

    def stream_requests(self, requests: Sequence[GenerationRequest]) -> Iterator[RequestOutput]:
        """Every `RequestOutput` as its step produces it (what `pytgi generate` prints
        token by token). Requests still running when the caller stops iterating are
        aborted, so the engine is free for the next call."""
        engine = self._built.engine
        unfinished = {r.request_id for r in requests}
        for request in requests:
            engine.add(self._built.input_processor.process(request))
        try:
            while engine.has_work():
                result = engine.step()
                if result.failed:
                    raise GenerationError(next(iter(result.failed.values())))
                for output in result.outputs:
                    if output.finished:
                        unfinished.discard(output.request_id)
                    yield output
        finally:
            for request_id in unfinished:
                engine.abort(request_id)
