from __future__ import annotations

import pytest
import torch

from pytgi.errors import ConfigError
from pytgi.executor import device


def test_explicit_dtype_wins() -> None:
    cpu = torch.device("cpu")
    assert device.resolve_dtype("float16", cpu, {"torch_dtype": "bfloat16"}) == torch.float16
    with pytest.raises(ConfigError, match="float64"):
        device.resolve_dtype("float64", cpu, {})


def test_cpu_without_native_bf16_uses_float32(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: False)
    assert device.resolve_dtype(None, torch.device("cpu"), {"torch_dtype": "bfloat16"}) == torch.float32


def test_cpu_with_native_bf16_follows_the_timing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr(device, "bf16_is_faster_on_cpu", lambda hidden: hidden > 100)
    assert device.resolve_dtype(None, torch.device("cpu"), {"hidden_size": 512}) == torch.bfloat16
    assert device.resolve_dtype(None, torch.device("cpu"), {"n_embd": 64}) == torch.float32


def test_bf16_probe_is_quick() -> None:
    import time

    start = time.perf_counter()
    device.bf16_is_faster_on_cpu(4096)
    assert time.perf_counter() - start < 1.0  # budget 0.08 s; generous for a loaded CI machine


def test_gpu_default_is_the_checkpoint_dtype(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert device.gpu_default_dtype({"torch_dtype": "bfloat16"}) == torch.bfloat16
    assert device.gpu_default_dtype({"dtype": "float32"}) == torch.float32
    assert device.gpu_default_dtype({}) == torch.float16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert device.gpu_default_dtype({"torch_dtype": "bfloat16"}) == torch.float16


def test_resolve_device() -> None:
    assert device.resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert device.resolve_device(None) == torch.device("cpu")
        with pytest.raises(ConfigError, match="cuda"):
            device.resolve_device("cuda")
    with pytest.raises(ConfigError, match="device"):
        device.resolve_device("mps")
    assert device.available_memory_bytes(torch.device("cpu")) > 0
