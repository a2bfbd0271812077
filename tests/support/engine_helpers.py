"""An engine over a scripted fake executor and a small real tokenizer."""

from __future__ import annotations

import uuid
from pathlib import Path

from tokenizer_helpers import build_tokenizer

from pytgi.config import SchedulerConfig, ServingLimits
from pytgi.engine.engine import Engine
from pytgi.engine.input_processor import InputProcessor
from pytgi.engine.output_processor import OutputProcessor
from pytgi.kv_cache.manager import KVCacheManager
from pytgi.protocol import GenerationRequest, SamplingParams, StoppingParams
from pytgi.scheduler.scheduler import Scheduler
from pytgi.step import KVCacheSpec, SampledToken, SchedulerOutput, StepResult
from pytgi.tokenizer.tokenizer import Tokenizer


class ScriptedExecutor:
    """Emits, for each request, the token ids of `script` in order (cycling)."""

    def __init__(self, script: list[int], num_blocks: int = 64, block_size: int = 4) -> None:
        self.script = script
        self.spec = KVCacheSpec(num_blocks, block_size, 1024)
        self.positions: dict[str, int] = {}
        self.fail_next = False
        self.steps: list[SchedulerOutput] = []

    @property
    def kv_cache_spec(self) -> KVCacheSpec:
        return self.spec

    def execute(self, step: SchedulerOutput) -> StepResult:
        self.steps.append(step)
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("simulated device error")
        for request_id in step.finished_request_ids:
            self.positions.pop(request_id, None)
        sampled = {}
        for chunk in step.chunks:
            if chunk.sample:
                index = self.positions.get(chunk.request_id, 0)
                self.positions[chunk.request_id] = index + 1
                sampled[chunk.request_id] = SampledToken(self.script[index % len(self.script)], -0.25)
        return StepResult(sampled=sampled, prompt_logprobs={})


def limits(max_total: int = 128, max_input: int = 100) -> ServingLimits:
    return ServingLimits(
        max_input_tokens=max_input,
        max_total_tokens=max_total,
        max_batch_total_tokens=256,
        max_concurrent_requests=8,
        max_best_of=2,
        max_stop_sequences=4,
        max_top_n_tokens=5,
        max_client_batch_size=4,
    )


def build(folder: Path, script_text: str, num_blocks: int = 64) -> tuple[Engine, InputProcessor, Tokenizer, ScriptedExecutor]:
    tokenizer = Tokenizer(build_tokenizer(folder))
    script = tokenizer.encode(script_text) + [tokenizer.token_to_id("<|endoftext|>")]
    executor = ScriptedExecutor(script, num_blocks=num_blocks)
    kv = KVCacheManager(num_blocks, 4, True)
    eos = frozenset({tokenizer.token_to_id("<|endoftext|>")})
    engine = Engine(Scheduler(SchedulerConfig(max_batch_prefill_tokens=64), kv), executor, OutputProcessor(tokenizer), eos)
    return engine, InputProcessor(tokenizer, limits()), tokenizer, executor


def request(prompt: str = "The quick", max_new_tokens: int | None = 50, stop: tuple[str, ...] = ()) -> GenerationRequest:
    return GenerationRequest(
        request_id=uuid.uuid4().hex,
        prompt=prompt,
        sampling=SamplingParams(),
        stopping=StoppingParams(max_new_tokens=max_new_tokens, stop=stop),
    )
