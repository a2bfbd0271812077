"""The unit of the demo corpus: one piece of documentation with a title."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

MIN_DOCSTRING_CHARS = 40
DocumentKind = Literal["topic", "module", "class", "function"]


@dataclass(frozen=True, slots=True)
class Document:
    """One unit of documentation; the unit the held-out split picks.

    ``title`` is a name (a heading or a qualified name with its signature), not content, so it is
    left out of de-duplication; ``paragraphs`` are the content.
    """

    doc_id: str  # unique and stable across runs: "topic:with#0", "py:json.dumps"
    kind: DocumentKind
    subject: str  # how a question would name it: 'the `with` statement', '`json.dumps`'
    title: str
    paragraphs: tuple[str, ...]

    def render(self) -> str:
        return "\n\n".join((self.title, *self.paragraphs))


def split_paragraphs(text: str) -> list[str]:
    """Blank-line separated blocks; prose is re-flowed to one line, code and lists keep layout."""
    blocks = re.split(r"\n\s*\n", text.strip("\n"))
    return [_reflow_if_prose(block.rstrip()) for block in blocks if block.strip()]


def _reflow_if_prose(block: str) -> str:
    # The docs hard-wrap prose at ~70 columns; a model trained on that learns to emit newlines
    # mid-sentence. Only unindented text that starts like a sentence is re-flowed, so code,
    # grammar rules, doctests and bullet lists keep their line structure.
    lines = block.split("\n")
    is_prose = all(line and not line[0].isspace() for line in lines) and starts_like_sentence(block)
    if not is_prose or "::=" in block or ">>>" in block:
        return block
    # A word hyphenated across a line break ("built-\nin") is one word.
    return " ".join(re.sub(r"(?<=[a-z])-\n\s*(?=[a-z])", "-", block).split())


def starts_like_sentence(text: str) -> bool:
    return text[0].isalpha() or (text[0] in "\"'(" and len(text) > 1 and text[1].isalpha())
