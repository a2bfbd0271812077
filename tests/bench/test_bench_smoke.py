"""Smoke checks of the benchmark's pieces on a tiny random model: the checkpoint
and tokenizer are what the benchmark relies on, and both engines load it."""

import asyncio
import json

import pytest

from pytgi.bench.random_model import TINY, ensure_model, random_prompt_ids, words_for_ids
from pytgi.tokenizer.tokenizer import Tokenizer


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return ensure_model(TINY, tmp_path_factory.mktemp("bench-cache"))


def test_checkpoint_declares_no_eos(tiny_dir):
    for name in ("config.json", "generation_config.json"):
        assert json.loads((tiny_dir / name).read_text()).get("eos_token_id") is None
    assert (tiny_dir / "model.safetensors").is_file()


def test_cached_checkpoint_is_reused(tiny_dir):
    before = (tiny_dir / "model.safetensors").stat().st_mtime_ns
    assert ensure_model(TINY, tiny_dir.parent) == tiny_dir
    assert (tiny_dir / "model.safetensors").stat().st_mtime_ns == before


def test_word_tokenizer_is_one_token_per_word(tiny_dir):
    tokenizer = Tokenizer(tiny_dir)
    assert tokenizer.vocab_size == TINY.vocab_size
    assert tokenizer.eos_token is None and not tokenizer.special_token_ids
    ids = random_prompt_ids(128, TINY.vocab_size, seed=3)
    assert tokenizer.encode(words_for_ids(ids)) == ids
    every_id = list(range(TINY.vocab_size))
    assert tokenizer.encode(words_for_ids(every_id)) == every_id


def test_both_decoders_generate_exact_lengths(tiny_dir):
    pytest.importorskip("transformers")
    from pytgi.bench.decode_bench import pytgi_decoder, time_decode, transformers_decoder

    prompt_ids = random_prompt_ids(16, TINY.vocab_size, seed=0)
    for make in (pytgi_decoder, transformers_decoder):
        timing = time_decode(make(tiny_dir, "float32"), prompt_ids, 8)
        assert len(timing.token_ids) == 8
        assert timing.first_token_s > 0 and timing.total_s > 0


@pytest.mark.slow
def test_server_streams_exact_token_counts(tiny_dir, tmp_path):
    from pytgi.bench.server_process import ServerProcess, generate_concurrent, generate_streams

    flags = ["--model-id", str(tiny_dir), "--max-batch-total-tokens", "512"]
    body = {"inputs": words_for_ids(random_prompt_ids(8, TINY.vocab_size, seed=1)),
            "parameters": {"max_new_tokens": 5, "details": True}}
    with ServerProcess(flags, tmp_path / "server.log", num_threads=1) as server:
        run = asyncio.run(generate_streams(server.base_url, [body, body]))
        batch = asyncio.run(generate_concurrent(server.base_url, [body]))
        assert server.served_dtype() in ("float32", "bfloat16")
    assert [len(t.token_times_s) for t in run.traces] == [5, 5]
    assert [t.reported_tokens for t in run.traces] == [5, 5]
    assert all(t.error is None for t in run.traces)
    assert batch.generated_tokens == (5,)
