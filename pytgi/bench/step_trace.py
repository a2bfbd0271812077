"""Inter-token gaps and step times of the offline engine under steady traffic.

    python -m pytgi.bench.step_trace --streams 32 --num-requests 96 --range-ratio 0.5

Keeps `--streams` requests in flight (a new one as soon as one finishes, as the
`decode` scenario's closed loop does over HTTP) on a random model with
SmolLM2-135M's shape, and records every step: its rows, its prompt tokens and
how long its forward took. Prints the inter-token latency (p50 / p90 / p99 and
p99 / p50), the first-token time of the requests that arrive while others
decode, and the forward time of decode-only steps against steps that carry
prompt tokens. With no HTTP in the way, it tells the engine's own unevenness
(the step mix, the machine's noise) from the server's. `--warm-pass` instead
times the first tokens of the `prefix` scenario's warm pass, the burst whose
step budget decides who waits. Findings are kept in docs/profile.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from pytgi.bench.random_model import SMOLLM2_135M, default_cache_dir, ensure_model, random_prompt_ids
from pytgi.bench.scenarios import spread
from pytgi.bench.stats import Summary, summarize
from pytgi.config import CacheConfig, EngineConfig, ModelConfig, SchedulerConfig
from pytgi.engine.builder import BuiltEngine, build_engine
from pytgi.protocol import GenerationRequest, StoppingParams
from pytgi.step import Executor, KVCacheSpec, SchedulerOutput, StepResult


@dataclass(frozen=True)
class StepRecord:
    num_rows: int
    num_prompt_tokens: int  # rows at prompt positions (the rest are decode rows)
    forward_s: float


class TimedExecutor:
    """Wraps the engine's executor: each step's rows, prompt tokens and forward time."""

    def __init__(self, inner: Executor, prompt_lens: dict[str, int]) -> None:
        self.inner = inner
        self.prompt_lens = prompt_lens
        self.steps: list[StepRecord] = []

    @property
    def kv_cache_spec(self) -> KVCacheSpec:
        return self.inner.kv_cache_spec

    def execute(self, step: SchedulerOutput) -> StepResult:
        started = time.perf_counter()
        result = self.inner.execute(step)
        forward_s = time.perf_counter() - started
        prompt_tokens = sum(
            max(0, min(c.start_position + len(c.token_ids), self.prompt_lens[c.request_id]) - c.start_position)
            for c in step.chunks
        )
        self.steps.append(StepRecord(step.num_tokens, prompt_tokens, forward_s))
        return result


@dataclass(frozen=True)
class Trace:
    steps: list[StepRecord]
    gaps_s: list[float]  # between a request's consecutive tokens
    refill_ttft_s: list[float]  # first tokens of the requests added as others finished
    num_tokens: int
    elapsed_s: float


def closed_loop(built: BuiltEngine, make_request: Callable[[int], GenerationRequest], streams: int,
                num_requests: int) -> Trace:
    """Run `num_requests` requests, `streams` at a time, adding one as each finishes."""
    engine = built.engine
    prompt_lens: dict[str, int] = {}
    timed = TimedExecutor(engine.executor, prompt_lens)
    engine.executor = timed
    added_s: dict[str, float] = {}
    first_wave: set[str] = set()
    last_token_s: dict[str, float] = {}
    gaps: list[float] = []
    refills: list[float] = []
    num_tokens = 0

    def add(index: int) -> None:
        processed = built.input_processor.process(make_request(index))
        request_id = processed.request.request_id
        prompt_lens[request_id] = len(processed.prompt_token_ids)
        added_s[request_id] = time.monotonic()
        engine.add(processed)

    start_s = time.monotonic()
    num_added = min(streams, num_requests)
    for index in range(num_added):
        add(index)
    first_wave.update(added_s)
    try:
        while engine.has_work():
            outputs = engine.step().outputs
            now = time.monotonic()
            for output in outputs:
                request_id = output.request_id
                num_tokens += len(output.tokens)
                if request_id in last_token_s:
                    gaps.append(now - last_token_s[request_id])
                elif request_id not in first_wave:
                    refills.append(now - added_s[request_id])
                last_token_s[request_id] = now
                if output.finished and num_added < num_requests:
                    add(num_added)
                    num_added += 1
    finally:
        engine.executor = timed.inner
    return Trace(timed.steps, gaps, refills, num_tokens, time.monotonic() - start_s)


def warm_pass_first_tokens(built: BuiltEngine, prefixes: list[list[int]], suffixes: list[list[int]],
                           max_new_tokens: int) -> list[float]:
    """The prefix scenario's warm pass: one request per prefix (already cached)
    with its suffix, all added at once; each one's first-token time, sorted."""
    engine = built.engine
    added_s: dict[str, float] = {}
    first_s: dict[str, float] = {}
    for prefix, suffix in zip(prefixes, suffixes, strict=True):
        request = GenerationRequest(
            request_id=uuid.uuid4().hex,
            prompt_token_ids=tuple(prefix + suffix),
            stopping=StoppingParams(max_new_tokens=max_new_tokens, ignore_eos=True),
        )
        engine.add(built.input_processor.process(request))
        added_s[request.request_id] = time.monotonic()
    while engine.has_work():
        outputs = engine.step().outputs
        now = time.monotonic()
        for output in outputs:
            first_s.setdefault(output.request_id, now - added_s[output.request_id])
    return sorted(first_s.values())


@dataclass(frozen=True)
class TraceReport:
    itl_s: Summary
    itl_p99_over_p50: float
    refill_ttft_s: Summary | None
    decode_step_s: Summary | None  # forward of steps with decode rows only
    prompt_step_s: Summary | None  # forward of steps with prompt tokens beside decode rows
    output_tokens_per_s: float


def report(trace: Trace) -> TraceReport:
    def maybe(values: list[float]) -> Summary | None:
        return summarize(values) if values else None

    itl = summarize(trace.gaps_s)
    decoding = [s for s in trace.steps if s.num_prompt_tokens < s.num_rows]
    return TraceReport(
        itl_s=itl,
        itl_p99_over_p50=itl.p99 / itl.p50,
        refill_ttft_s=maybe(trace.refill_ttft_s),
        decode_step_s=maybe([s.forward_s for s in decoding if s.num_prompt_tokens == 0]),
        prompt_step_s=maybe([s.forward_s for s in decoding if s.num_prompt_tokens > 0]),
        output_tokens_per_s=trace.num_tokens / trace.elapsed_s,
    )


def format_report(result: TraceReport) -> str:
    def ms(summary: Summary | None) -> str:
        if summary is None:
            return "none"
        return (f"p50 {summary.p50 * 1e3:.1f}  p90 {summary.p90 * 1e3:.1f}  p99 {summary.p99 * 1e3:.1f}  "
                f"max {summary.max * 1e3:.1f} ms (n={summary.num_values})")

    return "\n".join([
        f"output tokens/s      {result.output_tokens_per_s:.1f}",
        f"ITL                  {ms(result.itl_s)}  p99/p50 {result.itl_p99_over_p50:.2f}",
        f"TTFT, later arrivals {ms(result.refill_ttft_s)}",
        f"decode-only steps    {ms(result.decode_step_s)}",
        f"steps with a prompt  {ms(result.prompt_step_s)}",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="bfloat16")
    parser.add_argument("--streams", type=int, default=32)
    parser.add_argument("--num-requests", type=int, default=96)
    parser.add_argument("--input-len", type=int, default=128)
    parser.add_argument("--output-len", type=int, default=128)
    parser.add_argument("--range-ratio", type=float, default=0.5, help="lengths drawn from len * (1 -/+ ratio)")
    parser.add_argument("--max-prefill-tokens-while-decoding", type=int, default=None)
    parser.add_argument("--max-batch-total-tokens", type=int, default=8704)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model-dir", help="a model folder (default: the random SmolLM2-135M-shaped one)")
    parser.add_argument("--json", help="write the report here")
    parser.add_argument("--max-batch-prefill-tokens", type=int, default=None)
    parser.add_argument("--warm-pass", action="store_true",
                        help="instead: the prefix scenario's warm pass (8 cached 512-token prefixes + "
                             "127-130 new tokens each, all at once), first-token times, 3 rounds")
    args = parser.parse_args(argv)
    spec = SMOLLM2_135M
    model_dir = args.model_dir or str(ensure_model(spec, default_cache_dir()))
    built = build_engine(EngineConfig(
        model=ModelConfig(model_id=model_dir, dtype=args.dtype),
        cache=CacheConfig(max_batch_total_tokens=args.max_batch_total_tokens),
        scheduler=SchedulerConfig(
            max_batch_prefill_tokens=args.max_batch_prefill_tokens,
            max_prefill_tokens_while_decoding=args.max_prefill_tokens_while_decoding,
        ),
    ))
    rng = random.Random(args.seed)
    if args.warm_pass:
        return print_warm_passes(built, rng, spec.vocab_size)

    def make_request(index: int) -> GenerationRequest:
        prompt = random_prompt_ids(spread(rng, args.input_len, args.range_ratio), spec.vocab_size, args.seed + index)
        return GenerationRequest(
            request_id=uuid.uuid4().hex,
            prompt_token_ids=tuple(prompt),
            stopping=StoppingParams(max_new_tokens=spread(rng, args.output_len, args.range_ratio), ignore_eos=True),
        )

    closed_loop(built, make_request, streams=2, num_requests=2)  # warm-up
    result = report(closed_loop(built, make_request, args.streams, args.num_requests))
    print(format_report(result))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump({"options": vars(args), "report": dataclasses.asdict(result)}, out, indent=2)
    return 0


def print_warm_passes(built: BuiltEngine, rng: random.Random, vocab_size: int) -> int:
    prefixes = [random_prompt_ids(512, vocab_size, 1000 + group) for group in range(8)]

    def suffixes(round_seed: int) -> list[list[int]]:
        return [random_prompt_ids(rng.randint(127, 130), vocab_size, round_seed * 100 + g) for g in range(8)]

    warm_pass_first_tokens(built, prefixes, suffixes(1), 16)  # the cold pass: caches the prefixes
    for round_seed in (10, 11, 12):
        times = warm_pass_first_tokens(built, prefixes, suffixes(round_seed), 16)
        print(f"warm first tokens {' '.join(f'{t:.2f}' for t in times)} s: "
              f"p50 {statistics.median(times):.3f}, mean {statistics.mean(times):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
