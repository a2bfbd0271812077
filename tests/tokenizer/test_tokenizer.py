import pytest
from tokenizer_helpers import build_tokenizer

from pytgi.tokenizer.detokenizer import decode_next, initial_offsets
from pytgi.tokenizer.tokenizer import Tokenizer, char_to_byte_offsets


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return Tokenizer(build_tokenizer(tmp_path_factory.mktemp("tok")))


def test_special_tokens_and_config(tokenizer):
    eos = tokenizer.token_to_id("<|endoftext|>")
    assert eos in tokenizer.special_token_ids
    assert tokenizer.eos_token == "<|endoftext|>"
    assert tokenizer.model_max_length == 512


def test_byte_offsets(tokenizer):
    text = "café 東京 🐍!"
    raw = text.encode()
    encoded = tokenizer.encode_with_offsets(text)
    assert encoded[0].start == 0 and encoded[-1].stop == len(raw)
    for token in encoded:
        assert 0 <= token.start <= token.stop <= len(raw)
    assert char_to_byte_offsets("é🐍")[1:] == [2, 6]


@pytest.mark.parametrize("text", ["Un café à Paris 🐍 東京 hiss.", "plain ascii words", "🐍🐍🐍"])
def test_incremental_decode_matches_full_decode(tokenizer, text):
    prompt = tokenizer.encode("Snakes ")
    generated = tokenizer.encode(text)
    ids = list(prompt)
    offsets = initial_offsets(len(prompt))
    pieces = []
    for token_id in generated:
        ids.append(token_id)
        piece, offsets = decode_next(lambda t: tokenizer.decode(t, False), ids, offsets)
        assert "\ufffd" not in piece
        pieces.append(piece)
    assert "".join(pieces) == tokenizer.decode(generated)


def test_tokenizer_config_path_overrides_the_models(tmp_path):
    import json

    folder = build_tokenizer(tmp_path / "model")
    override = tmp_path / "override.json"
    override.write_text(json.dumps({"eos_token": "<|im_end|>", "model_max_length": 64}))
    tokenizer = Tokenizer(folder, override)
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.model_max_length == 64
