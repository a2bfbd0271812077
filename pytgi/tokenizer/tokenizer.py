"""The Hugging Face fast tokenizer (tokenizer.json) and what pytgi needs from
tokenizer_config.json: special tokens, EOS, the model's max length, the chat template."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer as HFTokenizer

from pytgi.errors import ConfigError
from pytgi.tokenizer.chat_template import ChatTemplate


@dataclass(frozen=True, slots=True)
class EncodedToken:
    """A prompt token with byte offsets into the UTF-8 encoded input."""

    id: int
    start: int
    stop: int


def read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    with path.open(encoding="utf-8") as handle:
        data = json.load(handle)
    return data if isinstance(data, dict) else {}


def token_content(value: object) -> str | None:
    """tokenizer_config stores special tokens as strings or AddedToken dicts."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]
    return None


class Tokenizer:
    """Thread-safe for encode/decode (the Rust tokenizer releases the GIL)."""

    def __init__(self, model_dir: Path, tokenizer_config_path: Path | None = None) -> None:
        tokenizer_file = model_dir / "tokenizer.json"
        if not tokenizer_file.is_file():
            raise ConfigError(f"no tokenizer.json in {model_dir}: pytgi needs a fast tokenizer")
        self._tok = HFTokenizer.from_file(str(tokenizer_file))
        self.config = read_json(tokenizer_config_path or model_dir / "tokenizer_config.json")
        self.special_token_ids = frozenset(
            token_id for token_id, added in self._tok.get_added_tokens_decoder().items() if added.special
        )
        self.eos_token = token_content(self.config.get("eos_token"))
        self.bos_token = token_content(self.config.get("bos_token"))
        # Compiled now so that a broken template stops the start, not the first chat request.
        self.chat_template = ChatTemplate.from_model(
            model_dir, self.config, bos_token=self.bos_token, eos_token=self.eos_token
        )
        # Asking the Rust tokenizer costs milliseconds (it rebuilds the vocab map).
        self.vocab_size = int(self._tok.get_vocab_size(with_added_tokens=True))

    @property
    def model_max_length(self) -> int | None:
        value = self.config.get("model_max_length")
        # transformers writes a huge sentinel when the length is unknown.
        if isinstance(value, (int, float)) and 0 < value < 1_000_000_000:
            return int(value)
        return None

    def token_to_id(self, token: str) -> int | None:
        return self._tok.token_to_id(token)

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return list(self._tok.encode(text, add_special_tokens=add_special_tokens).ids)

    def encode_with_offsets(self, text: str, add_special_tokens: bool = True) -> list[EncodedToken]:
        """Token ids with byte offsets (the tokenizer reports character offsets)."""
        encoding = self._tok.encode(text, add_special_tokens=add_special_tokens)
        byte_offsets = char_to_byte_offsets(text)
        return [
            EncodedToken(token_id, byte_offsets[start], byte_offsets[stop])
            for token_id, (start, stop) in zip(encoding.ids, encoding.offsets, strict=True)
        ]

    def decode(self, token_ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return str(self._tok.decode(list(token_ids), skip_special_tokens=skip_special_tokens))


def char_to_byte_offsets(text: str) -> list[int]:
    """offsets[i] = UTF-8 byte position of character i (len(text)+1 entries)."""
    offsets = [0] * (len(text) + 1)
    position = 0
    for index, char in enumerate(text):
        offsets[index] = position
        position += len(char.encode("utf-8", "surrogatepass"))
    offsets[len(text)] = position
    return offsets
