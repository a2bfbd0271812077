"""The only reader of os.environ. Every environment variable pytgi honours is
named here, so `grep envs.` finds every use."""

from __future__ import annotations

import os


def get(name: str) -> str | None:
    """Raw value of an environment variable, None when unset or empty."""
    value = os.environ.get(name)
    return value if value else None


def child_environment(**overrides: str) -> dict[str, str]:
    """This process's environment with `overrides`, for a child process."""
    return {**os.environ, **overrides}


def hf_token() -> str | None:
    """TGI accepts the Hub token under three names."""
    return get("HF_TOKEN") or get("HF_API_TOKEN") or get("HUGGING_FACE_HUB_TOKEN")


def hf_hub_offline() -> bool:
    return (get("HF_HUB_OFFLINE") or "0").lower() in ("1", "true", "yes", "on")


def compute_type() -> str | None:
    """TGI's `x-compute-type` header value override."""
    return get("COMPUTE_TYPE")
