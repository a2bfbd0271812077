"""What each scenario of `pytgi bench` sends, as seeded lists of requests.

- decode: fixed lengths (or `--range-ratio`), one run per concurrency level: the
  decode speed at each batch size.
- mixed: spread lengths (prompts 1/4x..4x `--input-len`, outputs 1/4x..2x
  `--output-len`) and 4 requests per slot, so finished requests are refilled
  while others decode and long prompts go through chunked prefill.
- prefix: every prompt is one shared `--prefix-len` prefix plus its own suffix;
  a cold pass (prefix never seen) then a warm pass (same prefix, new suffixes).
  With `--prefix-groups N`, request i of each pass uses prefix i mod N: with N
  equal to the concurrency no two requests of a pass share a prefix, so a
  server that reuses a prefix computed earlier in the same pass cannot make
  cold requests warm (with one group, all but the first few cold requests
  usually find the prefix already cached).

Run `index` (pair k of a comparison) gets its own prompts, so a server's prefix
cache never carries one run into the next; both sides of a pair get the same ones.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from pytgi.bench.bench_options import BenchCliOptions
from pytgi.bench.workload import (
    BenchRequest,
    DatasetEntry,
    SpanSource,
    TokenizedText,
    corpus_prompts,
    dataset_requests,
    shared_prefix,
)

DEFAULT_OUTPUT_LEN = 128
MIXED_REQUESTS_PER_SLOT = 4


@dataclass(frozen=True, slots=True)
class Level:
    """One point of a scenario: measured once per endpoint per pair."""

    scenario: str
    concurrency: int
    request_rate: float | None

    @property
    def label(self) -> str:
        rate = f" rate={self.request_rate:g}/s" if self.request_rate is not None else ""
        return f"{self.scenario} c={self.concurrency}{rate}"


@dataclass(frozen=True, slots=True)
class Phase:
    """Requests sent together; the prefix scenario has two phases (cold, warm)."""

    name: str
    requests: tuple[BenchRequest, ...]


def levels(options: BenchCliOptions) -> list[Level]:
    return [Level(scenario, c, options.request_rate) for scenario in options.scenarios
            for c in options.concurrency]


def spread(rng: random.Random, center: int, ratio: float) -> int:
    if ratio <= 0.0:
        return center
    return rng.randint(max(1, round(center * (1 - ratio))), max(1, round(center * (1 + ratio))))


def tokens_needed(options: BenchCliOptions) -> int:
    """How much tokenized text the scenarios may cut prompts from."""
    longest = max(options.input_len * 4, options.prefix_len + options.input_len)
    return 4 * longest


class WorkloadBuilder:
    """Builds each level's phases for run `index`, from the seed, `index` and the level only."""

    def __init__(self, options: BenchCliOptions, text: TokenizedText, source: SpanSource,
                 dataset: Sequence[DatasetEntry] | None) -> None:
        self._options = options
        self._text = text
        self._source = source
        self._dataset = dataset

    def phases(self, level: Level, index: int) -> list[Phase]:
        rng = random.Random(f"{self._options.seed}/{level.scenario}/{level.concurrency}/{index}")
        if level.scenario == "prefix":
            return self._prefix(level, rng)
        per_slot = MIXED_REQUESTS_PER_SLOT if level.scenario == "mixed" else 1
        num = self._options.num_requests or level.concurrency * per_slot
        if self._dataset is not None:
            return [Phase("all", tuple(dataset_requests(self._dataset, num, rng, self._source,
                                                        self._options.output_len)))]
        lengths = [self._lengths(level.scenario, rng) for _ in range(num)]
        return [Phase("all", tuple(corpus_prompts(self._text, lengths, rng)))]

    def _lengths(self, scenario: str, rng: random.Random) -> tuple[int, int]:
        o = self._options
        output_len = o.output_len or DEFAULT_OUTPUT_LEN
        if scenario == "mixed":
            return (rng.randint(max(1, o.input_len // 4), o.input_len * 4),
                    rng.randint(max(1, output_len // 4), output_len * 2))
        return spread(rng, o.input_len, o.range_ratio), spread(rng, output_len, o.range_ratio)

    def _prefix(self, level: Level, rng: random.Random) -> list[Phase]:
        o = self._options
        num = o.num_requests or level.concurrency
        prefixes = [shared_prefix(self._text, o.prefix_len, rng) for _ in range(o.prefix_groups)]
        phases = []
        for name in ("cold", "warm"):
            lengths = [(spread(rng, o.input_len, o.range_ratio), o.output_len or DEFAULT_OUTPUT_LEN)
                       for _ in range(num)]
            requests = [request for i, length in enumerate(lengths)
                        for request in corpus_prompts(self._text, [length], rng, prefixes[i % len(prefixes)],
                                                      o.prefix_len)]
            phases.append(Phase(name, tuple(requests)))
        return phases
