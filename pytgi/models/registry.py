"""HF `architectures[0]` -> model class, imported lazily."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from pytgi.errors import UnsupportedArchitectureError
from pytgi.models.interface import CausalLM

# architecture -> (module, class)
MODEL_CLASSES: dict[str, tuple[str, str]] = {
    "LlamaForCausalLM": ("pytgi.models.llama", "LlamaForCausalLM"),
    "MistralForCausalLM": ("pytgi.models.llama", "MistralForCausalLM"),
    "Qwen2ForCausalLM": ("pytgi.models.llama", "Qwen2ForCausalLM"),
    "Qwen3ForCausalLM": ("pytgi.models.qwen3", "Qwen3ForCausalLM"),
    "GemmaForCausalLM": ("pytgi.models.gemma", "GemmaForCausalLM"),
    "Gemma2ForCausalLM": ("pytgi.models.gemma2", "Gemma2ForCausalLM"),
    "Phi3ForCausalLM": ("pytgi.models.phi3", "Phi3ForCausalLM"),
    "GPT2LMHeadModel": ("pytgi.models.gpt2", "GPT2LMHeadModel"),
}


def supported_architectures() -> tuple[str, ...]:
    return tuple(sorted(MODEL_CLASSES))


def architecture_of(hf_config: Mapping[str, Any]) -> str:
    architectures = hf_config.get("architectures") or []
    if not architectures:
        raise UnsupportedArchitectureError(
            "config.json names no `architectures`; supported: " + ", ".join(supported_architectures())
        )
    return str(architectures[0])


def resolve_model_class(architecture: str) -> type[CausalLM]:
    try:
        module_name, class_name = MODEL_CLASSES[architecture]
    except KeyError:
        raise UnsupportedArchitectureError(
            f"unsupported architecture {architecture!r}; supported: {', '.join(supported_architectures())}"
        ) from None
    model_cls: type[CausalLM] = getattr(importlib.import_module(module_name), class_name)
    return model_cls
