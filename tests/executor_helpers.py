"""Shared helpers for executor / model tests: tiny random HF checkpoints and a
minimal scheduler stand-in that drives a ModelRunner step by step."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from pytgi.executor.model_runner import ModelRunner, create_model_runner
from pytgi.protocol import SamplingParams
from pytgi.step import NewRequestData, ScheduledChunk, SchedulerOutput, StepResult

BLOCK_SIZE = 4

# Tiny models gain nothing from intra-op threads, and on a shared 2-core machine
# the threads contend (transformers' generate runs ~5x slower with two).
torch.set_num_threads(1)

COMMON = {
    "vocab_size": 256,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 256,
    "initializer_range": 0.2,
}


def tiny_config(kind: str, **overrides: Any) -> Any:
    """A tiny random transformers config for one of our families."""
    import transformers

    if kind == "gpt2":
        values: dict[str, Any] = {
            "vocab_size": 256,
            "n_embd": 64,
            "n_layer": 2,
            "n_head": 4,
            "n_positions": 256,
            "initializer_range": 0.2,
        }
        values.update(overrides)
        return transformers.GPT2Config(**values)
    config_cls = {
        "llama": transformers.LlamaConfig,
        "mistral": transformers.MistralConfig,
        "qwen2": transformers.Qwen2Config,
    }[kind]
    return config_cls(**{**COMMON, **overrides})


def save_tiny_model(
    kind: str, folder: Path, *, seed: int = 0, max_shard_size: str | None = None, **overrides: Any
) -> Any:
    """Random weights (float32) saved as safetensors in `folder`; returns the HF model (eval, eager)."""
    import transformers

    torch.manual_seed(seed)
    config = tiny_config(kind, **overrides)
    model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    model.eval()
    kwargs: dict[str, Any] = {"safe_serialization": True}
    if max_shard_size is not None:
        kwargs["max_shard_size"] = max_shard_size
    model.save_pretrained(folder, **kwargs)
    return model


def make_runner(
    folder: Path, *, num_tokens: int = 1024, backend: str = "batched", device: str = "cpu"
) -> ModelRunner:
    return create_model_runner(
        folder,
        dtype="float32",
        device=device,
        block_size=BLOCK_SIZE,
        max_batch_total_tokens=num_tokens,
        kv_cache_memory_fraction=0.1,
        max_num_batched_tokens=512,
        attention_backend=backend,
    )


@dataclass
class Sequence_:
    request_id: str
    tokens: list[int]  # prompt + generated
    num_prompt: int
    num_computed: int = 0
    block_table: list[int] = field(default_factory=list)

    @property
    def generated(self) -> list[int]:
        return self.tokens[self.num_prompt :]


class TinyDriver:
    """Plays the scheduler: hands out blocks (shuffled, so requests interleave in
    the cache), prefills prompts in chunks of `chunk_size`, then decodes."""

    def __init__(self, runner: ModelRunner, *, seed: int = 0) -> None:
        self.runner = runner
        self.free_blocks = list(range(runner.kv_cache_spec.num_blocks))
        random.Random(seed).shuffle(self.free_blocks)
        self.sequences: dict[str, Sequence_] = {}
        self.pending_new: list[NewRequestData] = []
        self.finished: list[str] = []
        self.results: list[StepResult] = []

    def add(
        self,
        request_id: str,
        prompt: Sequence[int],
        sampling: SamplingParams | None = None,
        want_prompt_logprobs: bool = False,
    ) -> None:
        self.sequences[request_id] = Sequence_(request_id, list(prompt), len(prompt))
        self.pending_new.append(
            NewRequestData(request_id, tuple(prompt), sampling or SamplingParams(), want_prompt_logprobs)
        )

    def finish(self, request_id: str) -> None:
        seq = self.sequences.pop(request_id)
        self.free_blocks.extend(seq.block_table)
        self.finished.append(request_id)

    def step(self, chunk_size: int | None = None, request_ids: Sequence[str] | None = None) -> StepResult:
        chunks = []
        for seq in self.sequences.values():
            if request_ids is not None and seq.request_id not in request_ids:
                continue
            remaining = len(seq.tokens) - seq.num_computed
            n = remaining if chunk_size is None else min(chunk_size, remaining)
            end = seq.num_computed + n
            while len(seq.block_table) * BLOCK_SIZE < end:
                seq.block_table.append(self.free_blocks.pop())
            chunks.append(
                ScheduledChunk(
                    seq.request_id,
                    tuple(seq.tokens[seq.num_computed : end]),
                    seq.num_computed,
                    tuple(seq.block_table),
                    end == len(seq.tokens),
                )
            )
        out = SchedulerOutput(tuple(self.pending_new), tuple(chunks), tuple(self.finished))
        self.pending_new, self.finished = [], []
        result = self.runner.execute(out)
        for chunk in chunks:
            seq = self.sequences[chunk.request_id]
            seq.num_computed += len(chunk.token_ids)
            if chunk.sample:
                seq.tokens.append(result.sampled[chunk.request_id].token_id)
        self.results.append(result)
        return result

    def generate(self, num_new_tokens: int, chunk_size: int | None = None) -> dict[str, list[int]]:
        """Step until every sequence has `num_new_tokens` generated tokens."""
        while any(len(s.generated) < num_new_tokens for s in self.sequences.values()):
            active = [r for r, s in self.sequences.items() if len(s.generated) < num_new_tokens]
            self.step(chunk_size, active)
        return {r: s.generated[:num_new_tokens] for r, s in self.sequences.items()}


class LogitsRecorder:
    """Wraps `runner.model.compute_logits` to keep every logits tensor it returns."""

    def __init__(self, runner: ModelRunner) -> None:
        self.calls: list[torch.Tensor] = []
        original = runner.model.compute_logits

        def record(hidden: torch.Tensor) -> torch.Tensor:
            logits = original(hidden)
            self.calls.append(logits.detach().clone())
            return logits

        runner.model.compute_logits = record  # type: ignore[method-assign]


def hf_greedy(model: Any, prompt: Sequence[int], num_new_tokens: int) -> tuple[list[int], torch.Tensor]:
    """transformers' greedy generate -> (new token ids, raw logits [num_new_tokens, vocab])."""
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    with torch.no_grad():
        out = model.generate(
            torch.tensor([list(prompt)]),
            max_new_tokens=num_new_tokens,
            do_sample=False,
            min_new_tokens=num_new_tokens,
            output_logits=True,
            return_dict_in_generate=True,
        )
    new_tokens = out.sequences[0, len(prompt) :].tolist()
    return new_tokens, torch.cat(list(out.logits), dim=0)


def perturbed_tiny_model(config: Any) -> Any:
    """A transformers model with seeded random float32 weights, in eval mode.
    Norm weights are perturbed: their init (ones, or zeros for `1 + w` norms)
    would leave per-head norms and offset weights untested."""
    import transformers

    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    model.eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name:
                param.add_(0.2 * torch.randn_like(param))
    return model


def assert_matches_reference(
    model_dir: Path,
    reference: tuple[list[int], torch.Tensor],
    prompt: list[int],
    num_new_tokens: int,
    chunk_size: int | None,
    atol: float,
) -> None:
    """pytgi's greedy tokens and sampled-position logits equal transformers'."""
    ref_tokens, ref_logits = reference
    runner = make_runner(model_dir)
    recorder = LogitsRecorder(runner)
    driver = TinyDriver(runner)
    driver.add("a", prompt)
    tokens = driver.generate(num_new_tokens, chunk_size=chunk_size)["a"]
    assert tokens == ref_tokens
    # One logits row per sampled token: intermediate prefill chunks sample nothing.
    torch.testing.assert_close(torch.cat(recorder.calls), ref_logits, atol=atol, rtol=0)
