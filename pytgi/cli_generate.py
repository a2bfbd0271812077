"""`pytgi generate`: one prompt through the offline `LLM` API, tokens printed as
the engine produces them. No HTTP, no server: the quickest way to see whether a
model loads and what it says.

    pytgi generate "Python lists are"
    pytgi generate --model-id HuggingFaceTB/SmolLM2-135M-Instruct --max-new-tokens 40 "Hello"
    echo "A dictionary maps" | pytgi generate

The model flags are generated from `ModelConfig`, like `pytgi serve`'s, so they
carry the same names, help and environment variables.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

from pytgi import __version__, logs
from pytgi.cli import add_flag
from pytgi.config import CacheConfig, EngineConfig, ModelConfig
from pytgi.errors import PytgiError
from pytgi.protocol import GenerationRequest, SamplingParams, StoppingParams

if TYPE_CHECKING:
    from pytgi.engine.llm import LLM

# The `serve` model flags that make sense for a one-process, one-user run.
LOCAL_MODEL_FLAGS = ("model_id", "revision", "dtype", "huggingface_hub_cache", "device")
# KV capacity of a local run: one conversation, so no need for the server's share of memory.
LOCAL_KV_TOKENS = 16384


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Model", "What to load (default: the bundled demo model).")
    for field in dataclasses.fields(ModelConfig):
        if field.name in LOCAL_MODEL_FLAGS:
            add_flag(group, field)
    group.add_argument("--verbose", action="store_true", help="Log what the engine does while it loads.")


def add_sampling_flags(parser: argparse.ArgumentParser, max_new_tokens: int) -> None:
    group = parser.add_argument_group("Sampling", "Greedy unless --temperature, --top-p, --top-k or --do-sample.")
    group.add_argument("--max-new-tokens", type=int, default=max_new_tokens,
                       help=f"Most tokens to generate (default: {max_new_tokens}).")
    group.add_argument("--temperature", type=float, help="Sample with this temperature (0: greedy).")
    group.add_argument("--top-p", type=float, help="Nucleus sampling: keep tokens up to this mass, in (0, 1].")
    group.add_argument("--top-k", type=int, help="Sample among the k most likely tokens.")
    group.add_argument("--repetition-penalty", type=float, help="Penalise tokens already seen (> 1).")
    group.add_argument("--seed", type=int, help="Seed of the sampler, for reproducible sampling.")
    group.add_argument("--do-sample", action="store_true", help="Sample at temperature 1.")
    group.add_argument("--stop", action="append", default=[], help="Stop sequence (repeatable).")


def sampling_from_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> SamplingParams:
    """TGI's meaning of each flag; `--temperature 0` is greedy, as on the OpenAI routes."""
    if args.max_new_tokens <= 0:
        parser.error(f"--max-new-tokens must be > 0, got {args.max_new_tokens}")
    if args.top_p is not None and not 0.0 < args.top_p <= 1.0:
        parser.error(f"--top-p must be in (0, 1], got {args.top_p}")
    if args.temperature is not None and args.temperature < 0:
        parser.error(f"--temperature must be >= 0, got {args.temperature}")
    if args.top_k is not None and args.top_k <= 0:
        parser.error(f"--top-k must be > 0, got {args.top_k}")
    if args.repetition_penalty is not None and args.repetition_penalty <= 0:
        parser.error(f"--repetition-penalty must be > 0, got {args.repetition_penalty}")
    greedy_temperature = args.temperature == 0.0
    return SamplingParams(
        do_sample=args.do_sample and not greedy_temperature,
        temperature=1.0 if args.temperature is None or greedy_temperature else args.temperature,
        top_p=args.top_p or 1.0,
        top_k=args.top_k or 0,
        repetition_penalty=args.repetition_penalty or 1.0,
        seed=args.seed,
    )


def configure_logging(verbose: bool) -> None:
    """Human log lines on stderr; only warnings unless --verbose, so the generated
    text on stdout stays readable."""
    logs.configure(json_output=False)
    if not verbose:
        logging.getLogger().setLevel(logging.WARNING)


def load_llm(args: argparse.Namespace) -> LLM:
    from pytgi.engine.llm import LLM

    model = ModelConfig(**{name: getattr(args, name) for name in LOCAL_MODEL_FLAGS})
    config = EngineConfig(model=model, cache=CacheConfig(max_batch_total_tokens=LOCAL_KV_TOKENS))
    return LLM(config=config)


def stream_text(llm: LLM, request: GenerationRequest, out: TextIO) -> str:
    """Print each generated token as it comes (special tokens skipped, as in the
    final text) and return the finish line for stderr."""
    started = time.monotonic()
    num_tokens, finish = 0, "unfinished"
    for output in llm.stream_requests([request]):
        for token in output.tokens:
            num_tokens += 1
            if not token.special:
                out.write(token.text)
                out.flush()
        if output.finished and output.finish_reason is not None:
            finish = output.finish_reason.value
    out.write("\n")
    elapsed_s = time.monotonic() - started
    return f"[{finish}: {num_tokens} tokens in {elapsed_s:.2f} s, {num_tokens / max(elapsed_s, 1e-9):.1f} tokens/s]"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pytgi generate",
        description="Generate from one prompt offline, printing tokens as they come.",
    )
    parser.add_argument("--version", action="version", version=f"pytgi {__version__}")
    parser.add_argument("prompt", nargs="?", help="The prompt (default: read from stdin).")
    add_model_flags(parser)
    add_sampling_flags(parser, max_new_tokens=64)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    sampling = sampling_from_args(parser, args)
    prompt = args.prompt if args.prompt is not None else sys.stdin.read()
    if not prompt.strip():
        parser.error("the prompt is empty")
    configure_logging(args.verbose)
    request = GenerationRequest(
        request_id=uuid.uuid4().hex,
        prompt=prompt,
        sampling=sampling,
        stopping=StoppingParams(max_new_tokens=args.max_new_tokens, stop=tuple(args.stop)),
    )
    try:
        llm = load_llm(args)
        summary = stream_text(llm, request, sys.stdout)
    except (PytgiError, OSError) as error:  # OSError: hub and file errors (unknown repo, offline miss)
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\n[interrupted]", file=sys.stderr)
        return 130  # the shell's code for "ended by SIGINT"
    print(summary, file=sys.stderr)
    return 0
