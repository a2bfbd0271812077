from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytgi.errors import UnsupportedArchitectureError
from pytgi.executor.model_runner import create_model_runner
from pytgi.models.registry import resolve_model_class, supported_architectures


def test_known_architectures_resolve() -> None:
    for name in supported_architectures():
        assert resolve_model_class(name).__name__ == name


def test_unknown_architecture_lists_supported(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["FalconForCausalLM"]}))
    with pytest.raises(UnsupportedArchitectureError) as info:
        create_model_runner(
            tmp_path,
            dtype="float32",
            device="cpu",
            block_size=16,
            max_batch_total_tokens=64,
            kv_cache_memory_fraction=0.1,
            max_num_batched_tokens=64,
        )
    message = str(info.value)
    assert "FalconForCausalLM" in message
    for name in ("LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "GPT2LMHeadModel"):
        assert name in message
