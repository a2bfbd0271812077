from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from pytgi.weights.safetensors import SafetensorsWeights


def test_single_file(tmp_path: Path) -> None:
    save_file({"a": torch.ones(2), "b": torch.zeros(3, 1)}, tmp_path / "model.safetensors")
    weights = SafetensorsWeights(tmp_path)
    assert sorted(weights.names()) == ["a", "b"]
    assert "a" in weights and "c" not in weights
    assert weights.get("b").shape == (3, 1)
    assert {name: t.shape for name, t in weights} == {"a": (2,), "b": (3, 1)}


def test_sharded_index(tmp_path: Path) -> None:
    save_file({"a": torch.ones(2)}, tmp_path / "model-00001-of-00002.safetensors")
    save_file({"b": torch.full((2,), 7.0)}, tmp_path / "model-00002-of-00002.safetensors")
    # A stray file the index does not list must be ignored.
    save_file({"stray": torch.ones(1)}, tmp_path / "extra.safetensors")
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    weights = SafetensorsWeights(tmp_path)
    assert sorted(weights.names()) == ["a", "b"]
    assert weights.get("b").tolist() == [7.0, 7.0]


def test_no_weights_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="safetensors"):
        SafetensorsWeights(tmp_path)
