"""Phi-3: Llama's decoder with the fusions stored in the checkpoint.

Phi-3 checkpoints hold `qkv_proj` ([q; k; v] rows) and `gate_up_proj`
([gate; up] rows: transformers splits it with `chunk(2)` and gates the first
half) already fused, in the order of pytgi's fused Linears, so they load as
whole tensors. No biases; Mistral's single sliding window; `partial_rotary_factor`
(top level, or inside transformers 5's `rope_parameters`) rotates only the first
part of each head. The long-context `longrope`/`su` RoPE is not implemented:
RotaryEmbedding refuses it, listing the supported types.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from pytgi.errors import UnsupportedArchitectureError
from pytgi.models.llama import LlamaArgs, LlamaForCausalLM, mistral_args


def partial_rotary_factor(config: Mapping[str, Any]) -> float:
    parameters = config.get("rope_parameters")
    nested = parameters.get("partial_rotary_factor") if isinstance(parameters, Mapping) else None
    return float(nested or config.get("partial_rotary_factor") or 1.0)


def phi3_args(config: Mapping[str, Any]) -> LlamaArgs:
    args = mistral_args(config)
    factor = partial_rotary_factor(config)
    rotary_dim = int(args.head_dim * factor)
    if rotary_dim % 2 or not 0 < rotary_dim <= args.head_dim:
        raise UnsupportedArchitectureError(
            f"partial_rotary_factor={factor} gives rotary_dim={rotary_dim} for head_dim={args.head_dim}; "
            "it must be even and in (0, head_dim]"
        )
    return dataclasses.replace(args, rope=dataclasses.replace(args.rope, rotary_dim=rotary_dim))


class Phi3ForCausalLM(LlamaForCausalLM):
    """Checkpoint names are Llama's, except that `qkv_proj`/`gate_up_proj` are
    not among the split projections Llama's mapping fuses: they map as-is."""

    parse_config = staticmethod(phi3_args)
