"""Incremental detokenization that never splits a UTF-8 character.

Decoding token by token is wrong for byte-level and SentencePiece tokenizers:
a character can span tokens, and a token's leading space depends on what is
before it. So each step decodes a short window of ids twice (without and with
the new tokens) and emits the difference, holding text back while the window
ends in an incomplete character (U+FFFD).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

Decode = Callable[[Sequence[int]], str]

# Tokens of context kept before the first generated token, so the first piece
# gets the right leading space.
CONTEXT_TOKENS = 5


@dataclass(frozen=True, slots=True)
class DecodeOffsets:
    """`prefix` .. `read`: the window already emitted, used as context."""

    prefix: int
    read: int


def initial_offsets(num_prompt_tokens: int) -> DecodeOffsets:
    start = max(num_prompt_tokens - CONTEXT_TOKENS, 0)
    return DecodeOffsets(start, num_prompt_tokens)


def decode_next(decode: Decode, token_ids: Sequence[int], offsets: DecodeOffsets) -> tuple[str, DecodeOffsets]:
    """Text newly completed by `token_ids[offsets.read:]`, and the next offsets.

    Returns "" (and unchanged offsets) while the new bytes do not yet form a
    complete character.
    """
    prefix_text = decode(token_ids[offsets.prefix : offsets.read])
    full_text = decode(token_ids[offsets.prefix :])
    if len(full_text) > len(prefix_text) and not full_text.endswith("\ufffd"):
        return full_text[len(prefix_text) :], DecodeOffsets(offsets.read, len(token_ids))
    return "", offsets
