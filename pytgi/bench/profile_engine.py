"""Where an engine step's time goes: cProfile over the offline engine.

    python -m pytgi.bench.profile_engine --dtype bfloat16 --streams 32

Runs `--streams` requests of `--prompt-len` random prompt tokens and
`--output-len` new tokens (EOS ignored) on a random model with SmolLM2-135M's
shape, batched together, under cProfile, and prints the output tokens/s (with
the profiler's overhead) and the functions with the most own time. Findings
are kept in docs/profile.md.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
import uuid

from pytgi.bench.random_model import SMOLLM2_135M, default_cache_dir, ensure_model, random_prompt_ids
from pytgi.engine.llm import LLM
from pytgi.protocol import GenerationRequest, StoppingParams


def requests(num: int, prompt_len: int, output_len: int, vocab_size: int) -> list[GenerationRequest]:
    return [
        GenerationRequest(
            request_id=uuid.uuid4().hex,
            prompt_token_ids=tuple(random_prompt_ids(prompt_len, vocab_size, seed)),
            stopping=StoppingParams(max_new_tokens=output_len, ignore_eos=True),
        )
        for seed in range(num)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="bfloat16")
    parser.add_argument("--streams", type=int, default=32)
    parser.add_argument("--prompt-len", type=int, default=128)
    parser.add_argument("--output-len", type=int, default=64)
    parser.add_argument("--top", type=int, default=18, help="functions to list")
    args = parser.parse_args(argv)
    spec = SMOLLM2_135M
    llm = LLM(str(ensure_model(spec, default_cache_dir())), dtype=args.dtype)
    llm.generate_requests(requests(2, args.prompt_len, 4, spec.vocab_size))  # warm-up
    batch = requests(args.streams, args.prompt_len, args.output_len, spec.vocab_size)
    profiler = cProfile.Profile()
    start_s = time.perf_counter()
    profiler.enable()
    llm.generate_requests(batch)
    profiler.disable()
    elapsed_s = time.perf_counter() - start_s
    print(f"{args.streams} x {args.output_len} tokens ({args.dtype}): "
          f"{args.streams * args.output_len / elapsed_s:.1f} output tok/s under cProfile")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(args.top)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
