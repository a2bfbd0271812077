"""Rotary position embeddings (RoPE), with the rope_scaling variants we support.

The inverse frequencies are computed once, in float32, exactly as transformers
does; cos/sin are computed per forward from the batch's positions (no table, so
no maximum length), once per step and shared by every layer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from pytgi.errors import UnsupportedArchitectureError


@dataclass(frozen=True, slots=True)
class RopeConfig:
    """What RoPE needs from an HF config. `scaling` is `rope_scaling` as-is."""

    rotary_dim: int
    base: float
    max_position_embeddings: int
    scaling: Mapping[str, Any] | None = None

    @property
    def rope_type(self) -> str:
        if not self.scaling:
            return "default"
        return str(self.scaling.get("rope_type") or self.scaling.get("type") or "default")


def rope_config_from_hf(
    config: Mapping[str, Any], *, rotary_dim: int, max_position_embeddings: int
) -> RopeConfig:
    """RoPE settings from an HF config.json, in either layout: transformers 5
    writes `rope_parameters` (theta and scaling in one dict); older files have
    `rope_theta` and `rope_scaling` side by side. Both are on the Hub."""
    parameters = config.get("rope_parameters")
    if isinstance(parameters, Mapping):
        base = float(parameters.get("rope_theta", config.get("rope_theta", 10000.0)))
        rope_type = parameters.get("rope_type") or parameters.get("type") or "default"
        scaling = None if rope_type == "default" else dict(parameters)
        return RopeConfig(rotary_dim, base, max_position_embeddings, scaling)
    return RopeConfig(
        rotary_dim=rotary_dim,
        base=float(config.get("rope_theta", 10000.0)),
        max_position_embeddings=max_position_embeddings,
        scaling=config.get("rope_scaling"),
    )


def default_inv_freq(config: RopeConfig) -> torch.Tensor:
    """1 / base^(2i/d) for i < d/2 -> [rotary_dim // 2] float32."""
    exponents = torch.arange(0, config.rotary_dim, 2, dtype=torch.int64).float() / config.rotary_dim
    return 1.0 / (config.base**exponents)


def linear_inv_freq(config: RopeConfig) -> torch.Tensor:
    """Position interpolation: positions divided by `factor`."""
    assert config.scaling is not None
    return default_inv_freq(config) / float(config.scaling["factor"])


def llama3_inv_freq(config: RopeConfig) -> torch.Tensor:
    """Llama 3.1: long wavelengths scaled down by `factor`, short ones kept, a
    smooth blend in between."""
    assert config.scaling is not None
    scaling = config.scaling
    inv_freq = default_inv_freq(config)
    factor = float(scaling["factor"])
    low_freq_factor = float(scaling["low_freq_factor"])
    high_freq_factor = float(scaling["high_freq_factor"])
    old_context_len = float(scaling["original_max_position_embeddings"])

    low_freq_wavelen = old_context_len / low_freq_factor
    high_freq_wavelen = old_context_len / high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    is_medium = ~(wavelen < high_freq_wavelen) & ~(wavelen > low_freq_wavelen)
    return torch.where(is_medium, smoothed, scaled)


INV_FREQ_FUNCTIONS: dict[str, Callable[[RopeConfig], torch.Tensor]] = {
    "default": default_inv_freq,
    "linear": linear_inv_freq,
    "llama3": llama3_inv_freq,
}


class RotaryEmbedding(nn.Module):
    """Computes (cos, sin) for positions and rotates q/k with them (NeoX layout:
    the two halves of each head are the real and imaginary parts)."""

    inv_freq: torch.Tensor  # [rotary_dim // 2] float32

    def __init__(self, config: RopeConfig) -> None:
        super().__init__()
        try:
            inv_freq_fn = INV_FREQ_FUNCTIONS[config.rope_type]
        except KeyError:
            raise UnsupportedArchitectureError(
                f"unsupported rope_scaling type {config.rope_type!r}; "
                f"supported: {', '.join(sorted(INV_FREQ_FUNCTIONS))}"
            ) from None
        self.config = config
        # A buffer so it moves with the module; not a checkpoint weight.
        self.register_buffer("inv_freq", inv_freq_fn(config), persistent=False)

    def cos_sin(self, positions: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """positions [num_tokens] -> cos, sin [num_tokens, rotary_dim // 2] in `dtype`."""
        freqs = positions.float()[:, None] * self.inv_freq[None, :]
        return freqs.cos().to(dtype), freqs.sin().to(dtype)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [num_tokens, num_heads, head_dim] rotated by cos/sin [num_tokens, head_dim // 2]."""
    x1, x2 = x.chunk(2, dim=-1)
    cos = cos[:, None, :]
    sin = sin[:, None, :]
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)
