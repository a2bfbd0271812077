"""Stop-sequence matching over generated text, as a pure function."""

from __future__ import annotations

from collections.abc import Sequence

# TGI keeps a rolling buffer of recent text; stop strings are short, so the
# tail needed to see a match that straddles tokens is bounded.
MAX_TAIL_CHARS = 300


def find_stop(tail: str, new_text: str, stops: Sequence[str]) -> str | None:
    """The first stop string that ends inside `new_text`, given the text before
    it (`tail`). A match may start in `tail` but must end in `new_text`, so a
    stop string is reported exactly once, on the token that completes it."""
    if not new_text:
        return None
    for stop in stops:
        window = tail[-(len(stop) - 1) :] + new_text if len(stop) > 1 else new_text
        position = window.find(stop)
        if position != -1 and position + len(stop) > len(window) - len(new_text):
            return stop
    return None


def trim_tail(text: str) -> str:
    return text[-MAX_TAIL_CHARS:] if len(text) > MAX_TAIL_CHARS else text
