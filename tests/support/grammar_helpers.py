"""Grammar backends under test over the demo model's tokenizer (a new backend
adds one entry to BACKENDS and runs the whole conformance suite)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from tokenizers import Tokenizer

from pytgi.demo import DEMO_MODEL_DIR
from pytgi.grammar.backend import GrammarBackend
from pytgi.grammar.llguidance_backend import LLGuidanceBackend

TOKENIZER_JSON = (DEMO_MODEL_DIR / "tokenizer.json").read_text(encoding="utf-8")
HF_TOKENIZER = Tokenizer.from_str(TOKENIZER_JSON)
EOS_ID: int = HF_TOKENIZER.token_to_id("<|endoftext|>")
VOCAB_SIZE: int = HF_TOKENIZER.get_vocab_size()

BACKENDS: dict[str, Callable[[str, int, Iterable[int]], GrammarBackend]] = {
    "llguidance": LLGuidanceBackend,
}


@dataclass(frozen=True)
class Vocabulary:
    vocab_size: int
    eos_id: int

    def encode(self, text: str) -> list[int]:
        return HF_TOKENIZER.encode(text, add_special_tokens=False).ids

    def token_id(self, token: str) -> int:
        token_id = HF_TOKENIZER.token_to_id(token)
        assert token_id is not None, token
        return token_id


DEMO_VOCABULARY = Vocabulary(VOCAB_SIZE, EOS_ID)
