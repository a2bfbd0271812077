"""Device, dtype and memory facts found at start-up.

dtype rule (explicit always wins): on GPU the checkpoint's dtype; on CPU
bfloat16 only when the CPU computes it natively (AVX512-BF16 / AMX through
oneDNN) and a short timing of a model-shaped matmul confirms it is faster,
else float32 (emulated bf16 is slower than fp32 on most CPUs).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

import torch

from pytgi.errors import ConfigError

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}
DTYPE_NAMES: dict[torch.dtype, str] = {dtype: name for name, dtype in DTYPES.items()}


def resolve_device(device: str | None) -> torch.device:
    """None -> cuda when available, else cpu. "cuda" is pinned to the current index."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    resolved = torch.device(device)
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"`device` is {device!r} but no CUDA device is available")
        if resolved.index is None:
            resolved = torch.device("cuda", torch.cuda.current_device())
    elif resolved.type != "cpu":
        raise ConfigError(f"`device` must be cpu or cuda. Given: {device!r}")
    return resolved


def device_name(device: torch.device) -> str:
    return str(device)


def resolve_dtype(requested: str | None, device: torch.device, hf_config: Mapping[str, Any]) -> torch.dtype:
    if requested is not None:
        if requested not in DTYPES:
            raise ConfigError(f"`dtype` must be one of {', '.join(DTYPES)}. Given: {requested!r}")
        return DTYPES[requested]
    if device.type == "cuda":
        return gpu_default_dtype(hf_config)
    hidden = int(hf_config.get("hidden_size") or hf_config.get("n_embd") or 1024)
    return torch.bfloat16 if cpu_has_native_bf16() and bf16_is_faster_on_cpu(hidden) else torch.float32


def gpu_default_dtype(hf_config: Mapping[str, Any]) -> torch.dtype:
    """The checkpoint's dtype (float16 when it names none); bf16 falls back to
    float16 on GPUs without bf16."""
    name = hf_config.get("torch_dtype") or hf_config.get("dtype") or "float16"
    dtype = DTYPES.get(str(name), torch.float16)
    if dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        return torch.float16
    return dtype


def cpu_has_native_bf16() -> bool:
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def bf16_is_faster_on_cpu(hidden_size: int, budget_s: float = 0.08) -> bool:
    """Time a [16, h] x [h, h] matmul in both dtypes (h capped at 1024, best of
    a few runs within ~`budget_s` in all): native-bf16 flags do not guarantee
    that oneDNN's bf16 path beats fp32 on this CPU."""
    features = max(64, min(hidden_size, 1024))
    deadline = time.perf_counter() + budget_s
    best: dict[torch.dtype, float] = {}
    for dtype in (torch.float32, torch.bfloat16):
        x = torch.full((16, features), 0.5, dtype=dtype)
        w = torch.full((features, features), 0.25, dtype=dtype)
        torch.nn.functional.linear(x, w)  # warm-up: oneDNN primitive creation
        best[dtype] = float("inf")
        dtype_deadline = deadline - (budget_s / 2 if dtype == torch.float32 else 0.0)
        for _ in range(5):
            start = time.perf_counter()
            torch.nn.functional.linear(x, w)
            best[dtype] = min(best[dtype], time.perf_counter() - start)
            if time.perf_counter() > dtype_deadline:
                break
    return best[torch.bfloat16] < best[torch.float32]


def available_memory_bytes(device: torch.device) -> int:
    """Memory free for the KV cache right now (call after loading weights)."""
    if device.type == "cuda":
        free_bytes, _total = torch.cuda.mem_get_info(device)
        return int(free_bytes)
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
