"""Attention backends by name. Each module holds one backend; tests compare
every backend with `reference`."""

from __future__ import annotations

import importlib

from pytgi.errors import ConfigError
from pytgi.layers.attention import AttentionBackend

# name -> (module, class); imported lazily so a kernel's dependencies load only when chosen.
ATTENTION_BACKENDS: dict[str, tuple[str, str]] = {
    "reference": ("pytgi.layers.attention_backends.reference", "ReferenceBackend"),
    "batched": ("pytgi.layers.attention_backends.batched", "BatchedBackend"),
}

DEFAULT_ATTENTION_BACKEND = "batched"


def get_attention_backend(name: str = DEFAULT_ATTENTION_BACKEND) -> AttentionBackend:
    try:
        module_name, class_name = ATTENTION_BACKENDS[name]
    except KeyError:
        raise ConfigError(
            f"unknown attention backend {name!r}; supported: {', '.join(sorted(ATTENTION_BACKENDS))}"
        ) from None
    backend_cls = getattr(importlib.import_module(module_name), class_name)
    return backend_cls()
