"""Copying checkpoint tensors into a model's parameters.

Each model supplies a `rename` function: checkpoint name -> `WeightTarget`
(parameter name, fused shard, transpose) or None for tensors to skip (buffers,
tied copies). Loading checks that every parameter (every shard of a fused one)
was filled exactly as shaped, so a wrong mapping fails at start-up, not as
garbage output.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn

from pytgi.errors import ConfigError
from pytgi.layers.linear import Linear


@dataclass(frozen=True, slots=True)
class WeightTarget:
    param_name: str
    shard: int | None = None  # part of a fused Linear (q=0, k=1, v=2; gate=0, up=1)
    transpose: bool = False  # GPT-2's Conv1D stores [in, out]


Rename = Callable[[str], WeightTarget | None]


def load_checkpoint(model: nn.Module, weights: Iterable[tuple[str, torch.Tensor]], rename: Rename) -> None:
    params = dict(model.named_parameters())
    filled: set[tuple[str, int | None]] = set()
    for name, tensor in weights:
        target = rename(name)
        if target is None:
            continue
        if target.param_name not in params:
            raise ConfigError(f"checkpoint tensor {name!r} matches no model parameter")
        param = params[target.param_name]
        destination = param.data
        if target.shard is not None:
            owner = model.get_submodule(target.param_name.rsplit(".", 1)[0])
            assert isinstance(owner, Linear), f"{target.param_name} is not a fused Linear"
            destination = destination[owner.shard_rows(target.shard)]
        source = tensor.t() if target.transpose else tensor
        if source.shape != destination.shape:
            raise ConfigError(
                f"checkpoint tensor {name!r} has shape {tuple(source.shape)}, "
                f"expected {tuple(destination.shape)}"
            )
        destination.copy_(source)
        filled.add((target.param_name, target.shard))
    check_all_filled(model, params, filled)


def check_all_filled(
    model: nn.Module, params: dict[str, nn.Parameter], filled: set[tuple[str, int | None]]
) -> None:
    missing = []
    for param_name in params:
        owner = model.get_submodule(param_name.rsplit(".", 1)[0]) if "." in param_name else model
        num_shards = len(owner.out_sizes) if isinstance(owner, Linear) else 1
        if (param_name, None) in filled:
            continue  # filled whole: a checkpoint that stores the fusion itself (Phi-3)
        if num_shards == 1:
            if (param_name, 0) not in filled:
                missing.append(param_name)
            continue
        missing += [f"{param_name}[{i}]" for i in range(num_shards) if (param_name, i) not in filled]
    if missing:
        raise ConfigError(f"checkpoint lacks weights for: {', '.join(missing[:10])}")
