"""(b) Single-stream decode: pytgi's offline `LLM` vs transformers' `generate()`,
in this process, on the same random model, interleaved in pairs."""

from __future__ import annotations

import dataclasses
import gc
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from pytgi.bench.options import BenchOptions
from pytgi.bench.random_model import SMOLLM2_135M, ensure_model, random_prompt_ids
from pytgi.bench.stats import (
    Noise,
    QuietGate,
    common_prefix_length,
    decode_tokens_per_s,
    headline_pairs,
    interleaved_pairs,
    median,
    ratios,
)
from pytgi.config import DType

Decoder = Callable[[Sequence[int], int], list[int]]


def pytgi_decoder(model_dir: Path, dtype: DType) -> Decoder:
    from pytgi.config import CacheConfig, EngineConfig, ModelConfig
    from pytgi.engine.llm import LLM
    from pytgi.protocol import GenerationRequest, SamplingParams, StoppingParams

    # Prefix caching off: every run repeats the prompt and must pay its prefill,
    # as transformers does.
    config = EngineConfig(
        model=ModelConfig(model_id=str(model_dir), dtype=dtype),
        cache=CacheConfig(max_batch_total_tokens=4096, prefix_caching=False),
    )
    llm = LLM(config=config)

    def decode(prompt_ids: Sequence[int], num_new_tokens: int) -> list[int]:
        request = GenerationRequest(
            request_id=uuid.uuid4().hex,
            prompt_token_ids=tuple(prompt_ids),
            sampling=SamplingParams(),
            stopping=StoppingParams(max_new_tokens=num_new_tokens, ignore_eos=True),
        )
        return list(llm.generate_requests([request])[0].token_ids)

    return decode


def transformers_decoder(model_dir: Path, dtype: DType) -> Decoder:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype)).eval()
    # transformers < 4.56 ignores `dtype` (it took `torch_dtype`): never compare unlike dtypes.
    if model.dtype != getattr(torch, dtype):
        raise RuntimeError(f"transformers loaded {model.dtype}, not {dtype}; upgrade transformers to >= 4.56")

    def decode(prompt_ids: Sequence[int], num_new_tokens: int) -> list[int]:
        input_ids = torch.tensor([list(prompt_ids)])  # [1, num_prompt_tokens]
        with torch.inference_mode():
            output = model.generate(
                input_ids,
                attention_mask=torch.ones_like(input_ids),
                max_new_tokens=num_new_tokens,
                min_new_tokens=num_new_tokens,
                do_sample=False,
                pad_token_id=0,
            )
        return output[0, input_ids.shape[1]:].tolist()

    return decode


@dataclass(frozen=True, slots=True)
class DecodeTiming:
    first_token_s: float
    total_s: float
    token_ids: tuple[int, ...]


def time_decode(decode: Decoder, prompt_ids: Sequence[int], num_new_tokens: int) -> DecodeTiming:
    began = time.perf_counter()
    decode(prompt_ids, 1)
    first = time.perf_counter() - began
    began = time.perf_counter()
    token_ids = decode(prompt_ids, num_new_tokens)
    return DecodeTiming(first, time.perf_counter() - began, tuple(token_ids))


def bench_decode(options: BenchOptions, gate: QuietGate) -> list[dict[str, Any]]:
    model_dir = ensure_model(SMOLLM2_135M, options.cache_dir)
    results = []
    for dtype in options.decode_dtypes:
        results.append(bench_decode_dtype(options, gate, model_dir, dtype))
        gc.collect()  # this dtype's two models go before the next two load
    return results


def bench_decode_dtype(options: BenchOptions, gate: QuietGate, model_dir: Path, dtype: DType) -> dict[str, Any]:
    prompt_ids = random_prompt_ids(options.decode_prompt_tokens, SMOLLM2_135M.vocab_size, seed=0)
    new_tokens = options.decode_new_tokens
    decoders = {"pytgi": pytgi_decoder(model_dir, dtype), "transformers": transformers_decoder(model_dir, dtype)}
    for decode in decoders.values():
        decode(prompt_ids, 4)  # warm-up: allocator, oneDNN kernels, first-call paths

    def one_pair(index: int) -> list[tuple[DecodeTiming, Noise]]:
        return [gate.measure(partial(time_decode, d, prompt_ids, new_tokens)) for d in decoders.values()]

    pairs = interleaved_pairs(one_pair, options.num_pairs, options.max_extra_pairs)
    chosen, basis = headline_pairs(pairs)

    def speed(timing: DecodeTiming) -> float:
        return decode_tokens_per_s(len(timing.token_ids), timing.total_s, timing.first_token_s)

    ours, theirs = [speed(p[0][0]) for p in chosen], [speed(p[1][0]) for p in chosen]
    last_ours, last_theirs = pairs[-1][0][0].token_ids, pairs[-1][1][0].token_ids
    return {
        "dtype": dtype,
        "runs": [
            {"pair": i, "engine": engine, "first_token_s": timing.first_token_s, "total_s": timing.total_s,
             "num_new_tokens": len(timing.token_ids), "decode_tokens_per_s": speed(timing),
             **dataclasses.asdict(noise)}
            for i, pair in enumerate(pairs)
            for engine, (timing, noise) in zip(("pytgi", "transformers"), pair, strict=True)
        ],
        "pair_ratios": ratios([speed(p[0][0]) for p in pairs], [speed(p[1][0]) for p in pairs]),
        "basis": basis,
        "median_pytgi_decode_tokens_per_s": median(ours),
        "median_transformers_decode_tokens_per_s": median(theirs),
        "median_pytgi_first_token_s": median([p[0][0].first_token_s for p in chosen]),
        "median_transformers_first_token_s": median([p[1][0].first_token_s for p in chosen]),
        "median_ratio": median(ratios(ours, theirs)),
        "target_ratio": 1.0,
        # Same greedy work on both sides; bf16 rounding may make them part ways late.
        "num_leading_tokens_equal": common_prefix_length(last_ours, last_theirs),
    }
