"""Lazy access to a model folder's safetensors weights.

Tensors are read one at a time (memory-mapped by safetensors), so loading a
model never holds a second full copy of its weights in host memory. Handles a
single `model.safetensors`, a sharded `model.safetensors.index.json`, and
folders with several unindexed `*.safetensors` files. With `show_progress`,
iterating draws a tqdm bar over the tensors on stderr (the caller decides:
only when stderr is a terminal and logs are not JSON lines).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors import safe_open
from tqdm import tqdm

INDEX_FILE = "model.safetensors.index.json"


class SafetensorsWeights:
    """The weights of one model folder, name -> tensor, read on demand."""

    def __init__(self, model_dir: Path, show_progress: bool = False) -> None:
        self.model_dir = Path(model_dir)
        self.show_progress = show_progress
        self._file_of_name = self._map_names_to_files()

    def _map_names_to_files(self) -> dict[str, Path]:
        index_path = self.model_dir / INDEX_FILE
        if index_path.is_file():
            weight_map: dict[str, str] = json.loads(index_path.read_text())["weight_map"]
            return {name: self.model_dir / file for name, file in weight_map.items()}
        files = sorted(self.model_dir.glob("*.safetensors"))
        if not files:
            raise FileNotFoundError(f"no *.safetensors weights in {self.model_dir}")
        mapping: dict[str, Path] = {}
        for path in files:
            with safe_open(str(path), framework="pt", device="cpu") as f:
                for name in f.keys():  # noqa: SIM118 - safe_open is not a Mapping
                    mapping[name] = path
        return mapping

    def names(self) -> list[str]:
        return list(self._file_of_name)

    def __contains__(self, name: str) -> bool:
        return name in self._file_of_name

    def get(self, name: str) -> torch.Tensor:
        """One tensor, on CPU, in its stored dtype."""
        with safe_open(str(self._file_of_name[name]), framework="pt", device="cpu") as f:
            return f.get_tensor(name)

    def __iter__(self) -> Iterator[tuple[str, torch.Tensor]]:
        """Every (name, tensor), opening each file once."""
        names_by_file: dict[Path, list[str]] = {}
        for name, path in self._file_of_name.items():
            names_by_file.setdefault(path, []).append(name)
        with tqdm(
            total=len(self._file_of_name), desc="loading weights", unit="tensor",
            disable=not self.show_progress, leave=False,
        ) as bar:
            for path, names in names_by_file.items():
                bar.set_postfix_str(path.name, refresh=False)
                with safe_open(str(path), framework="pt", device="cpu") as f:
                    for name in names:
                        yield name, f.get_tensor(name)
                        bar.update()
