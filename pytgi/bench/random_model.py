"""Random-weight Llama checkpoints for benchmarks, built deterministically and cached.

A benchmark model needs the *shape* of a real model (that is what decides speed), not
its knowledge, so weights come from `torch.manual_seed(spec.seed)` and the checkpoint
can be rebuilt anywhere without a download. It ships a word-level tokenizer with
exactly `vocab_size` entries ("w0" .. "w{n-1}", one word per token, no special tokens)
so that a prompt of N words is exactly N tokens over HTTP and every id decodes. No EOS
is declared anywhere, so every generation runs to its `max_new_tokens`.
"""

from __future__ import annotations

import dataclasses
import json
import random
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers

MARKER_FILE = "pytgi-bench.json"
# Bump when build_model's output changes, so cached checkpoints are rebuilt.
BUILDER_VERSION = 1
# Ids below this stay unused in prompts: real vocabularies keep special tokens there.
FIRST_PROMPT_ID = 3


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """The LlamaConfig fields that decide a model's cost, plus the init seed."""

    name: str
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    vocab_size: int
    rope_theta: float
    rms_norm_eps: float
    max_position_embeddings: int
    tie_word_embeddings: bool = True
    seed: int = 0
    # "word": w{i} <-> id i (exact prompt lengths from ids); "bpe": a byte-level BPE
    # trained on the benchmark's own text, which llama.cpp tokenizes as pytgi does.
    tokenizer: str = "word"


SMOLLM2_135M = ModelSpec(
    name="smollm2-135m-random",
    hidden_size=576,
    intermediate_size=1536,
    num_hidden_layers=30,
    num_attention_heads=9,
    num_key_value_heads=3,
    vocab_size=49152,
    rope_theta=100000.0,
    rms_norm_eps=1e-5,
    max_position_embeddings=2048,
)

# The same weights with a byte-level BPE tokenizer: the model the llama.cpp comparison
# serves, so that a prompt is the same number of tokens on every server.
SMOLLM2_135M_BPE = dataclasses.replace(SMOLLM2_135M, name="smollm2-135m-random-bpe", tokenizer="bpe")

# Small enough to build and load in about a second: for smoke tests of the harness.
TINY = ModelSpec(
    name="tiny-llama-random",
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    vocab_size=512,
    rope_theta=10000.0,
    rms_norm_eps=1e-5,
    max_position_embeddings=512,
)


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "pytgi-bench"


def ensure_model(spec: ModelSpec, cache_dir: Path) -> Path:
    """The checkpoint folder for `spec`, built on first use and reused after.

    The marker file is written last, so a build that was interrupted is redone
    rather than half-used; a marker for a different spec also triggers a rebuild.
    """
    model_dir = cache_dir / spec.name
    marker = model_dir / MARKER_FILE
    wanted = {"builder_version": BUILDER_VERSION, "spec": dataclasses.asdict(spec)}
    if marker.is_file() and json.loads(marker.read_text()) == wanted:
        return model_dir
    staging = cache_dir / f".{spec.name}.building"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    build_model(spec, staging)
    (staging / MARKER_FILE).write_text(json.dumps(wanted, indent=2))
    shutil.rmtree(model_dir, ignore_errors=True)
    staging.rename(model_dir)
    return model_dir


def build_model(spec: ModelSpec, out_dir: Path) -> None:
    """Write config, generation config, bf16 safetensors weights and the tokenizer.

    Weights are stored in bfloat16 (half the disk, and the same values whichever
    dtype a run loads them in); both engines under test read the same files.
    """
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    # `rope_theta`: transformers 5 moves it into `rope_parameters` (and types its
    # keywords without it) but still takes it; 4.x knows only this spelling.
    config = LlamaConfig(  # type: ignore[call-arg]
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        vocab_size=spec.vocab_size,
        rope_theta=spec.rope_theta,
        rms_norm_eps=spec.rms_norm_eps,
        max_position_embeddings=spec.max_position_embeddings,
        tie_word_embeddings=spec.tie_word_embeddings,
        # No EOS/BOS/PAD: generations must run to their exact length.
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
    )
    torch.manual_seed(spec.seed)
    model = LlamaForCausalLM(config).bfloat16()
    model.generation_config = GenerationConfig(bos_token_id=None, eos_token_id=None, pad_token_id=None)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer = build_bpe_tokenizer(spec.vocab_size) if spec.tokenizer == "bpe" else build_word_tokenizer(spec.vocab_size)
    tokenizer.save(str(out_dir / "tokenizer.json"))
    tokenizer_config = {"model_max_length": spec.max_position_embeddings, "tokenizer_class": "PreTrainedTokenizerFast"}
    (out_dir / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2))


def build_word_tokenizer(vocab_size: int) -> Tokenizer:
    """A `tokenizers.Tokenizer`: word "w{i}" <-> id i, split on whitespace.

    The WordPiece decoder with an unused prefix is how `tokenizers` joins words
    with single spaces; no word starts with "##", so every token gets a space
    before it except the first. Unknown words map to "w0" so the vocabulary has
    exactly `vocab_size` entries.
    """
    vocab = {f"w{i}": i for i in range(vocab_size)}
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="w0"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    return tokenizer


def build_bpe_tokenizer(vocab_size: int) -> Tokenizer:
    """A GPT-2-style byte-level BPE of at most `vocab_size` tokens, trained on the
    Python language reference (`workload.reference_text`, what `pytgi bench`
    cuts prompts from); ids beyond the trained vocabulary stay unused."""
    from tokenizers import trainers

    from pytgi.bench.workload import paragraph_chunks, reference_text

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tokenizer.train_from_iterator(paragraph_chunks(reference_text(), 4000), trainer=trainer)
    return tokenizer


def random_prompt_ids(num_tokens: int, vocab_size: int, seed: int) -> list[int]:
    """Seeded random token ids, avoiding the low ids real vocabularies reserve."""
    rng = random.Random(seed)
    return [rng.randrange(FIRST_PROMPT_ID, vocab_size) for _ in range(num_tokens)]


def words_for_ids(token_ids: Sequence[int]) -> str:
    """The prompt text that the word tokenizer encodes back to exactly `token_ids`."""
    return " ".join(f"w{i}" for i in token_ids)


SPECS = {spec.name: spec for spec in (SMOLLM2_135M, SMOLLM2_135M_BPE, TINY)}


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m pytgi.bench.random_model [NAME]`: build (or find) a benchmark model, print its folder."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("name", nargs="?", default=SMOLLM2_135M.name, choices=sorted(SPECS))
    parser.add_argument("--cache-dir", type=Path, default=default_cache_dir())
    args = parser.parse_args(argv)
    print(ensure_model(SPECS[args.name], args.cache_dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
