"""pytgi: Text Generation Inference in Python."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytgi.config import EngineConfig
from pytgi.protocol import SamplingParams, StoppingParams

__version__ = "0.1.0"

if TYPE_CHECKING:
    from pytgi.engine.async_engine import AsyncEngine
    from pytgi.engine.llm import LLM

__all__ = ["LLM", "AsyncEngine", "EngineConfig", "SamplingParams", "StoppingParams", "__version__"]


def __getattr__(name: str) -> object:
    # Lazy: `import pytgi` must not load torch or the engine.
    if name == "LLM":
        from pytgi.engine.llm import LLM

        return LLM
    if name == "AsyncEngine":
        from pytgi.engine.async_engine import AsyncEngine

        return AsyncEngine
    raise AttributeError(name)
