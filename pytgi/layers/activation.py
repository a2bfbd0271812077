"""Activation functions by their Hugging Face config name."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from pytgi.errors import UnsupportedArchitectureError

Activation = Callable[[torch.Tensor], torch.Tensor]


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """GPT-2's "gelu_new": the tanh approximation of GELU."""
    return F.gelu(x, approximate="tanh")


ACTIVATIONS: dict[str, Activation] = {
    "silu": F.silu,
    "swish": F.silu,
    "gelu": F.gelu,
    "gelu_new": gelu_tanh,
    "gelu_pytorch_tanh": gelu_tanh,
    "gelu_fast": gelu_tanh,
    "relu": F.relu,
}


def get_activation(name: str) -> Activation:
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise UnsupportedArchitectureError(
            f"unsupported activation {name!r}; supported: {', '.join(sorted(ACTIVATIONS))}"
        ) from None


def silu_and_mul(gate_up: torch.Tensor) -> torch.Tensor:
    """SwiGLU on a fused [..., 2 * intermediate] gate/up output -> [..., intermediate]."""
    gate, up = gate_up.chunk(2, dim=-1)
    # In place on silu's fresh output: one allocation fewer, the same roundings,
    # and 1.2 ms instead of 3.2 ms at [1024, 3072] in bf16 (docs/profile.md).
    return F.silu(gate).mul_(up)
