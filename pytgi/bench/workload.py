"""Seeded workloads for `pytgi bench`: prompts of a chosen token length cut from text
every Python install has offline (the language reference behind `help()`, as the demo
model's corpus uses), or taken from a ShareGPT-style JSON file.

Prompt lengths are measured with the endpoint's own tokenizer when it can tell
(TGI's `/tokenize` gives every token's byte offsets), else with a local
`tokenizer.json`, else approximated by words; the JSON says which. A prompt of N
tokens is a window of N consecutive tokens of the text, cut at their offsets.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

Span = tuple[int, int]  # byte offsets [start, stop) of one token in the text
TOKENIZE_CHUNK_CHARS = 4000  # one /tokenize call each: far below any server's input limit
MIN_CORPUS_TOKENS = 2048


@dataclass(frozen=True, slots=True)
class BenchRequest:
    """One request of a workload; `num_prompt_tokens` as counted here (see `basis`)."""

    prompt: str
    num_prompt_tokens: int
    max_new_tokens: int


@dataclass(frozen=True, slots=True)
class TokenizedText:
    """A text and its tokens' byte spans; `basis` says whose tokenizer made them."""

    data: bytes
    spans: tuple[Span, ...]
    basis: str

    def window(self, first: int, num_tokens: int) -> str:
        start, stop = self.spans[first][0], self.spans[first + num_tokens - 1][1]
        return self.data[start:stop].decode("utf-8", errors="ignore")


def reference_text() -> str:
    """The Python language reference topics, in a fixed order (Python-version dependent)."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[name].strip() for name in sorted(topics))


def word_spans(data: bytes, offset: int = 0) -> list[Span]:
    """Whitespace-separated words as a stand-in for tokens (about 1.3 tokens each)."""
    spans, start = [], None
    for index, byte in enumerate(data):
        if chr(byte).isspace():
            if start is not None:
                spans.append((offset + start, offset + index))
                start = None
        elif start is None:
            start = index
    if start is not None:
        spans.append((offset + start, offset + len(data)))
    return spans


class SpanSource:
    """Turns text into token spans: the server's `/tokenize`, a local tokenizer file,
    or words. The first that works is kept for the whole workload."""

    def __init__(self, url: str | None, tokenizer_path: Path | None) -> None:
        self._url = url
        self._local = None
        if tokenizer_path is not None:
            from tokenizers import Tokenizer

            path = tokenizer_path / "tokenizer.json" if tokenizer_path.is_dir() else tokenizer_path
            self._local = Tokenizer.from_file(str(path))
        self.basis = "tokenizer file" if self._local else ("server /tokenize" if url else "words (approximate)")

    def spans(self, data: bytes, offset: int = 0) -> list[Span]:
        if self._local is not None:
            text = data.decode("utf-8")
            encoding = self._local.encode(text, add_special_tokens=False)
            byte_at = [0]  # character offsets (what tokenizers gives) -> byte offsets
            for char in text:
                byte_at.append(byte_at[-1] + len(char.encode("utf-8")))
            return [(offset + byte_at[a], offset + byte_at[b]) for a, b in encoding.offsets if b > a]
        if self.basis == "server /tokenize":
            found = self._server_spans(data, offset)
            if found is not None:
                return found
            self.basis = "words (approximate)"  # no TGI /tokenize there: say so, carry on
        return word_spans(data, offset)

    def _server_spans(self, data: bytes, offset: int) -> list[Span] | None:
        try:
            response = httpx.post(f"{self._url}/tokenize", json={"inputs": data.decode("utf-8")}, timeout=60.0)
            tokens = response.json() if response.status_code == 200 else None
            if not isinstance(tokens, list):
                return None
            return [(offset + int(t["start"]), offset + int(t["stop"])) for t in tokens if t["stop"] > t["start"]]
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return None

    def count(self, text: str) -> int:
        return len(self.spans(text.encode("utf-8")))


def tokenize_reference(source: SpanSource, num_tokens_needed: int) -> TokenizedText:
    """Enough of the reference text, tokenized chunk by chunk (paragraph-aligned)."""
    spans: list[Span] = []
    pieces: list[bytes] = []
    length = 0
    target = max(num_tokens_needed, MIN_CORPUS_TOKENS)
    for chunk in paragraph_chunks(reference_text(), TOKENIZE_CHUNK_CHARS):
        data = (chunk + "\n\n").encode("utf-8")
        spans.extend(source.spans(data, offset=length))
        pieces.append(data)
        length += len(data)
        if len(spans) >= target:
            break
    if len(spans) < num_tokens_needed:
        raise ValueError(f"the reference text has only {len(spans)} tokens, {num_tokens_needed} needed")
    return TokenizedText(b"".join(pieces), tuple(spans), source.basis)


def paragraph_chunks(text: str, max_chars: int) -> list[str]:
    chunks, current = [], ""
    for paragraph in text.split("\n\n"):
        if current and len(current) + len(paragraph) > max_chars:
            chunks.append(current)
            current = ""
        current = f"{current}\n\n{paragraph}" if current else paragraph[: max_chars * 4]
    return [*chunks, current] if current else chunks


def corpus_prompts(text: TokenizedText, lengths: Sequence[tuple[int, int]], rng: random.Random,
                   prefix: str = "", num_prefix_tokens: int = 0) -> list[BenchRequest]:
    """One request per (prompt tokens, new tokens), each a window at a random place
    (distinct places, so the prefix cache does not help unless `prefix` is shared)."""
    requests = []
    for num_tokens, num_new in lengths:
        first = rng.randrange(0, len(text.spans) - num_tokens + 1)
        body = text.window(first, num_tokens)
        requests.append(BenchRequest(prefix + body, num_prefix_tokens + num_tokens, num_new))
    return requests


def shared_prefix(text: TokenizedText, num_tokens: int, rng: random.Random) -> str:
    first = rng.randrange(0, len(text.spans) - num_tokens + 1)
    return text.window(first, num_tokens) + "\n\n"


# ---------------------------------------------------------------------------
# ShareGPT-style files: [{"conversations": [{"from": "human", "value": ...},
# {"from": "gpt", "value": ...}, ...]}, ...]; the first human turn is the prompt and
# the answer after it sets the output length (unless --output-len is given).


@dataclass(frozen=True, slots=True)
class DatasetEntry:
    prompt: str
    answer: str


def load_sharegpt(path: Path) -> list[DatasetEntry]:
    records = json.loads(path.read_text())
    if not isinstance(records, list):
        raise ValueError(f"{path}: expected a JSON list of conversations")
    entries = []
    for record in records:
        turns = (record.get("conversations") or record.get("conversation") or []) if isinstance(record, dict) else []
        texts = [str(turn.get("value", "")) for turn in turns if isinstance(turn, dict)]
        if len(texts) >= 2 and texts[0].strip() and texts[1].strip():
            entries.append(DatasetEntry(texts[0], texts[1]))
    if not entries:
        raise ValueError(f"{path}: no conversation with a prompt and an answer")
    return entries


def dataset_requests(entries: Sequence[DatasetEntry], num_requests: int, rng: random.Random,
                     source: SpanSource, output_len: int | None) -> list[BenchRequest]:
    """`num_requests` entries drawn with the seed (with replacement when the file is small)."""
    chosen = rng.sample(list(entries), num_requests) if num_requests <= len(entries) else \
        [rng.choice(entries) for _ in range(num_requests)]
    return [
        BenchRequest(entry.prompt, source.count(entry.prompt),
                     output_len if output_len is not None else max(source.count(entry.answer), 1))
        for entry in chosen
    ]
