"""Training text for the demo model, built only from what every Python install has offline.

Sources, in this order (the order matters: de-duplication keeps the first copy of a paragraph):

1. ``pydoc_data.topics``: the language reference topics behind ``help("with")``, split into sections.
2. Docstrings of the standard library: every importable public module (minus the ones with side
   effects on import), its public classes and functions, and the methods of those classes.

Paragraphs are de-duplicated (normalized whitespace) across all documents *before* a seeded hash
picks the held-out documents, so no held-out paragraph is ever trained on. Chat pairs
(question -> first paragraph) are derived per split from the surviving documents, so a held-out
document's chat pair is held out with it.

The text depends on the Python version (docstrings change between releases); the training
report records it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import re
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pytgi import envs
from pytgi.demo.documents import (
    Document,
    DocumentKind,
    split_paragraphs,
    starts_like_sentence,
)
from pytgi.demo.stdlib_docs import stdlib_documents

ENDOFTEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = (ENDOFTEXT, IM_START, IM_END)

MAX_ANSWER_CHARS = 700
@dataclass(frozen=True, slots=True)
class CorpusStats:
    num_documents_raw: int
    num_paragraphs_raw: int
    num_chars_raw: int
    num_documents_unique: int
    num_paragraphs_unique: int
    num_chars_unique: int
    num_train_documents: int
    num_heldout_documents: int
    num_train_chat_pairs: int
    num_heldout_chat_pairs: int
    num_train_chars: int
    num_heldout_chars: int


@dataclass(frozen=True, slots=True)
class Corpus:
    """Texts ready to tokenize: each ends with ``<|endoftext|>``, order is shuffled by the seed."""

    train_texts: tuple[str, ...]
    heldout_texts: tuple[str, ...]
    stats: CorpusStats


def build_corpus(seed: int, heldout_fraction: float = 0.02) -> Corpus:
    """Collect, de-duplicate, split and format the whole corpus (a few seconds of imports)."""
    raw = collect_documents()
    unique = deduplicate_paragraphs(raw)
    train_docs, heldout_docs = split_heldout(unique, heldout_fraction, seed)
    train_chats = [text for doc in train_docs for text in chat_pair_texts(doc, seed)]
    heldout_chats = [text for doc in heldout_docs for text in chat_pair_texts(doc, seed)]
    train_texts = _shuffled([doc.render() for doc in train_docs] + train_chats, seed)
    heldout_texts = _shuffled([doc.render() for doc in heldout_docs] + heldout_chats, seed)
    stats = CorpusStats(
        num_documents_raw=len(raw),
        num_paragraphs_raw=sum(len(doc.paragraphs) for doc in raw),
        num_chars_raw=sum(len(doc.render()) for doc in raw),
        num_documents_unique=len(unique),
        num_paragraphs_unique=sum(len(doc.paragraphs) for doc in unique),
        num_chars_unique=sum(len(doc.render()) for doc in unique),
        num_train_documents=len(train_docs),
        num_heldout_documents=len(heldout_docs),
        num_train_chat_pairs=len(train_chats),
        num_heldout_chat_pairs=len(heldout_chats),
        num_train_chars=sum(map(len, train_texts)),
        num_heldout_chars=sum(map(len, heldout_texts)),
    )
    return Corpus(
        train_texts=tuple(text + ENDOFTEXT for text in train_texts),
        heldout_texts=tuple(text + ENDOFTEXT for text in heldout_texts),
        stats=stats,
    )


def collect_documents() -> list[Document]:
    """All raw documents, gathered in a fresh interpreter.

    The caller has usually imported torch and transformers, which patch stdlib objects (transformers
    adds methods to logging.Logger); collecting in-process would make the corpus depend on what
    was imported first. A child process also keeps import side effects out of the caller.
    """
    with tempfile.TemporaryDirectory() as tmp_dir:
        out_path = Path(tmp_dir) / "documents.json"
        env = envs.child_environment(PYTHONHASHSEED="0")
        command = [sys.executable, "-m", "pytgi.demo.corpus", str(out_path)]
        subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
        items = json.loads(out_path.read_text(encoding="utf-8"))
    return [Document(**{**item, "paragraphs": tuple(item["paragraphs"])}) for item in items]


def raw_documents() -> list[Document]:
    """Topics first (the language reference wins de-duplication ties), then stdlib docstrings."""
    return [*topic_documents(), *stdlib_documents()]


# ---------------------------------------------------------------------------------------------
# Paragraph handling


def normalize_paragraph(paragraph: str) -> str:
    return " ".join(paragraph.split())


def deduplicate_paragraphs(documents: Iterable[Document]) -> list[Document]:
    """Drop every paragraph whose normalized text was seen earlier; drop documents left empty."""
    seen: set[str] = set()
    unique: list[Document] = []
    for doc in documents:
        kept = []
        for paragraph in doc.paragraphs:
            key = normalize_paragraph(paragraph)
            if key and key not in seen:
                seen.add(key)
                kept.append(paragraph)
        if kept:
            unique.append(Document(doc.doc_id, doc.kind, doc.subject, doc.title, tuple(kept)))
    return unique


def split_heldout(
    documents: Iterable[Document], heldout_fraction: float, seed: int
) -> tuple[list[Document], list[Document]]:
    """Pick held-out documents by a seeded hash of their id: stable when other documents change."""
    train: list[Document] = []
    heldout: list[Document] = []
    for doc in documents:
        (heldout if _unit_hash(f"heldout:{seed}:{doc.doc_id}") < heldout_fraction else train).append(doc)
    return train, heldout


def _unit_hash(key: str) -> float:
    """A deterministic number in [0, 1) (Python's hash() is salted per process)."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _shuffled(texts: list[str], seed: int) -> list[str]:
    ordered = list(texts)
    random.Random(seed).shuffle(ordered)
    return ordered


# ---------------------------------------------------------------------------------------------
# Language reference topics

_HEADING = re.compile(r"^(\S[^\n]*)\n([=\-*~^\"])\2{2,}\s*$", re.MULTILINE)


def topic_documents() -> list[Document]:
    """One document per section of each reference topic (sorted by topic key)."""
    from pydoc_data.topics import topics

    documents = []
    for key in sorted(topics):
        for index, (heading, body) in enumerate(_topic_sections(topics[key])):
            paragraphs = tuple(split_paragraphs(body))
            if paragraphs:
                subject = _topic_subject(heading)
                documents.append(Document(f"topic:{key}#{index}", "topic", subject, heading, paragraphs))
    return documents


def _topic_sections(text: str) -> Iterator[tuple[str, str]]:
    """(heading, body) pairs; headings are RST-style lines underlined with = - * ~ ^ or "."""
    matches = list(_HEADING.finditer(text))
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        yield match.group(1).strip(), text[match.end() : end]


def _topic_subject(heading: str) -> str:
    # pydoc renders code as "with"; questions read better with markdown code spans.
    subject = re.sub(r'"([^"]+)"', r"`\1`", heading)
    return subject[0].lower() + subject[1:] if subject.startswith("The ") else subject


# ---------------------------------------------------------------------------------------------
# Chat pairs

# Everyday names for reference topics, so that plain questions ("What is a dictionary?") have
# an answer in the data; the key is the topic and the section index within it.
TOPIC_ALIASES: dict[str, tuple[str, ...]] = {
    "typesmapping#0": ("a dictionary", "a dict", "a mapping"),
    "typesseq#0": ("a sequence", "a list"),
    "typesseq-mutable#0": ("a mutable sequence",),
    "strings#0": ("a string literal", "a string"),
    "function#0": ("a function definition", "a function"),
    "class#0": ("a class definition", "a class"),
    "lambda#0": ("a lambda",),
    "exceptions#0": ("an exception",),
    "import#0": ("an import",),
    "async#0": ("a coroutine",),
    "truth#0": ("truth value testing",),
    "objects#0": ("a Python object", "an object"),
    "typesmodules#0": ("a module",),
    "yield#0": ("a generator",),
}
SYSTEM_PROMPTS = (
    "You are a helpful assistant.",
    "You are a helpful assistant who knows Python well.",
    "Answer questions about the Python language and its standard library.",
)
QUESTION_TEMPLATES: dict[DocumentKind, tuple[str, ...]] = {
    "topic": ("What is {s}?", "Explain {s}.", "Tell me about {s}.", "Can you describe {s}?"),
    "module": ("What is {s} for?", "What does {s} do?", "Tell me about {s}."),
    "class": ("What is {s}?", "Explain {s}.", "What is {s} used for?"),
    "function": ("What does {s} do?", "Explain {s}.", "How do I use {s}?"),
}


def render_chatml(messages: Iterable[tuple[str, str]], add_generation_prompt: bool = False) -> str:
    """ChatML exactly as the shipped chat_template renders it: <|im_start|>role\\ntext<|im_end|>\\n."""
    text = "".join(f"{IM_START}{role}\n{content}{IM_END}\n" for role, content in messages)
    return text + (f"{IM_START}assistant\n" if add_generation_prompt else "")


def answer_paragraphs(doc: Document) -> tuple[str, ...]:
    """Leading prose paragraphs (re-flowed, so single-line) up to MAX_ANSWER_CHARS; may be empty."""
    answer: list[str] = []
    for paragraph in doc.paragraphs:
        is_prose = "\n" not in paragraph and starts_like_sentence(paragraph)
        if not is_prose or (answer and sum(map(len, answer)) + len(paragraph) > MAX_ANSWER_CHARS):
            break
        answer.append(paragraph)
    return tuple(answer)


def chat_pair_texts(doc: Document, seed: int) -> list[str]:
    """User questions about ``doc`` answered by its first prose paragraphs, in ChatML.

    One question in the document's own words, plus one per everyday alias of aliased topics.
    Phrasing and the optional system prompt are picked by a seeded hash of the document id, so the
    set of pairs is the same on every run. Empty when the document has no prose to answer with.
    """
    answer = "\n\n".join(answer_paragraphs(doc))
    if not answer:
        return []
    template = _pick(QUESTION_TEMPLATES[doc.kind], seed, doc.doc_id, "question")
    aliases = TOPIC_ALIASES.get(doc.doc_id.removeprefix("topic:"), ())
    questions = [template.format(s=doc.subject), *(f"What is {alias}?" for alias in aliases)]
    return [_chat_text(question, answer, seed, f"{doc.doc_id}:{question}") for question in questions]


def _chat_text(question: str, answer: str, seed: int, pair_id: str) -> str:
    messages = [("user", question), ("assistant", answer)]
    # A third of the pairs carry a system prompt: API clients often send one.
    if _unit_hash(f"system:{seed}:{pair_id}") < 1 / 3:
        messages.insert(0, ("system", _pick(SYSTEM_PROMPTS, seed, pair_id, "system")))
    return render_chatml(messages)


def _pick(options: tuple[str, ...], seed: int, key: str, purpose: str) -> str:
    return options[int(_unit_hash(f"{purpose}:{seed}:{key}") * len(options))]


if __name__ == "__main__":
    # Child process of collect_documents(): python -m pytgi.demo.corpus OUT.json
    warnings.simplefilter("ignore")  # deprecated modules warn on attribute access, not only import
    documents = raw_documents()
    Path(sys.argv[1]).write_text(json.dumps([dataclasses.asdict(doc) for doc in documents]), encoding="utf-8")
