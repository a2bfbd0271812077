"""The shipped demo model folder (pytgi/demo/model) and the corpus rules it was trained under."""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from pytgi.demo import DEMO_MODEL_DIR
from pytgi.demo.corpus import (
    ENDOFTEXT,
    IM_END,
    IM_START,
    Document,
    chat_pair_texts,
    deduplicate_paragraphs,
    normalize_paragraph,
    render_chatml,
    split_heldout,
)

REQUIRED_FILES = (
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "training_report.json",
)
MAX_WEIGHTS_BYTES = 10 * 1024 * 1024
MAX_FOLDER_BYTES = 12 * 1024 * 1024
ENGLISH_CHARS = frozenset(string.ascii_letters + string.digits + string.punctuation + " \n")


def _read_json(name: str) -> dict:
    return json.loads((DEMO_MODEL_DIR / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer.from_file(str(DEMO_MODEL_DIR / "tokenizer.json"))


# -------------------------------------------------------------------------------------------------
# The shipped folder


def test_folder_is_complete_and_small() -> None:
    missing = [name for name in REQUIRED_FILES if not (DEMO_MODEL_DIR / name).is_file()]
    assert not missing, f"demo model folder lacks {missing}; run python -m pytgi.demo.train"
    assert (DEMO_MODEL_DIR / "model.safetensors").stat().st_size <= MAX_WEIGHTS_BYTES
    folder_bytes = sum(path.stat().st_size for path in DEMO_MODEL_DIR.iterdir() if path.is_file())
    assert folder_bytes <= MAX_FOLDER_BYTES


@pytest.mark.parametrize(
    "text",
    ["héllo 世界 🐍", "def f(x):\n\treturn {x: x ** 2}  # ok\r\n", "  leading spaces\u00a0\u200b\x00end", ""],
)
def test_tokenizer_round_trips_any_utf8(tokenizer: Tokenizer, text: str) -> None:
    ids = tokenizer.encode(text).ids
    assert tokenizer.decode(ids, skip_special_tokens=False) == text


def test_special_tokens_are_single_ids(tokenizer: Tokenizer) -> None:
    for token in (ENDOFTEXT, IM_START, IM_END):
        token_id = tokenizer.token_to_id(token)
        assert token_id is not None
        assert tokenizer.encode(f"a{token}b").ids.count(token_id) == 1


def test_generation_config_stops_on_both_eos_tokens(tokenizer: Tokenizer) -> None:
    eos_token_ids = _read_json("generation_config.json")["eos_token_id"]
    assert sorted(eos_token_ids) == sorted([tokenizer.token_to_id(ENDOFTEXT), tokenizer.token_to_id(IM_END)])


def test_tokenizer_config_fields() -> None:
    config = _read_json("tokenizer_config.json")
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert config.get("bos_token") is None
    assert config["eos_token"] == ENDOFTEXT
    assert config["model_max_length"] == 2048


def test_chat_template_renders_chatml_with_generation_prompt() -> None:
    jinja2 = pytest.importorskip("jinja2")
    template = jinja2.Environment().from_string(_read_json("tokenizer_config.json")["chat_template"])
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "What is a list?"}]},
    ]
    rendered = template.render(messages=messages, add_generation_prompt=True)
    expected = render_chatml(
        [("system", "Be brief."), ("user", "What is a list?")], add_generation_prompt=True
    )
    assert rendered == expected
    assert rendered.endswith(f"{IM_START}assistant\n")
    assert template.render(messages=messages, add_generation_prompt=False).endswith(f"{IM_END}\n")


def test_transformers_loads_and_greedy_generates_english() -> None:
    transformers = pytest.importorskip("transformers")
    model = transformers.AutoModelForCausalLM.from_pretrained(DEMO_MODEL_DIR)
    hf_tokenizer = transformers.AutoTokenizer.from_pretrained(DEMO_MODEL_DIR)
    encoded = hf_tokenizer("The list type", return_tensors="pt")
    output_ids = model.generate(
        **encoded,
        max_new_tokens=20,
        min_new_tokens=20,
        do_sample=False,
        pad_token_id=hf_tokenizer.pad_token_id,
    )
    text = hf_tokenizer.decode(output_ids[0, encoded.input_ids.shape[1] :], skip_special_tokens=True)
    assert len(text) >= 20
    english_fraction = sum(char in ENGLISH_CHARS for char in text) / len(text)
    assert english_fraction >= 0.8, text


# -------------------------------------------------------------------------------------------------
# Corpus rules


def _doc(doc_id: str, *paragraphs: str) -> Document:
    return Document(doc_id, "function", f"`{doc_id}`", doc_id, tuple(paragraphs))


def test_deduplicate_keeps_first_copy_and_drops_emptied_documents() -> None:
    documents = [
        _doc("a", "Return the  length of\nthe object.", "Unique to a."),
        _doc("b", "Return the length of the object."),  # same text, other whitespace
        _doc("c", "Unique to c.", "Unique to a."),
    ]
    unique = deduplicate_paragraphs(documents)
    assert [doc.doc_id for doc in unique] == ["a", "c"]
    assert unique[1].paragraphs == ("Unique to c.",)


def test_heldout_split_shares_no_paragraph_with_training() -> None:
    shared = "A paragraph that many documents repeat."
    documents = [_doc(f"doc{index}", shared, f"Paragraph number {index}.", shared) for index in range(400)]
    train, heldout = split_heldout(deduplicate_paragraphs(documents), heldout_fraction=0.1, seed=7)
    assert heldout and train
    train_paragraphs = {normalize_paragraph(p) for doc in train for p in doc.paragraphs}
    assert not any(normalize_paragraph(p) in train_paragraphs for doc in heldout for p in doc.paragraphs)


def test_heldout_split_is_seeded_and_stable() -> None:
    documents = [_doc(f"doc{index}", f"Text {index}.") for index in range(300)]
    first = split_heldout(documents, 0.1, seed=1)
    assert first == split_heldout(documents, 0.1, seed=1)
    assert first != split_heldout(documents, 0.1, seed=2)
    # Adding documents does not move existing ones between splits: the choice is per document id.
    _, heldout_more = split_heldout([*documents, _doc("extra", "More.")], 0.1, seed=1)
    assert {doc.doc_id for doc in first[1]} <= {doc.doc_id for doc in heldout_more}


def test_chat_pairs_are_chatml_and_answer_with_the_first_paragraph() -> None:
    doc = Document(
        "topic:typesmapping#0", "topic", "mapping types", "Mapping Types", ("A mapping maps keys.",)
    )
    texts = chat_pair_texts(doc, seed=3)
    assert any("What is a dictionary?" in text for text in texts)
    for text in texts:
        assert text.endswith(f"{IM_START}assistant\nA mapping maps keys.{IM_END}\n")
    assert chat_pair_texts(_doc("x", "    indented code only"), seed=3) == []


def test_model_dir_constant_points_inside_the_package() -> None:
    package_dir = Path(__file__).resolve().parents[2] / "pytgi"
    assert package_dir / "demo" / "model" == DEMO_MODEL_DIR
