"""The row kernels (RMSNorm, SiLU-and-multiply) against the torch paths they replace."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pytgi import kernels
from pytgi.layers.activation import silu_and_mul
from pytgi.layers.norm import RMSNorm, rms_norm

pytestmark = pytest.mark.skipif(kernels.cpu_kernels() is None, reason="the CPU kernels could not be built")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(("rows", "dim"), [(1, 576), (3, 64), (1000, 576), (5, 7)])
def test_rms_norm_kernel_matches_the_torch_path(dtype: torch.dtype, rows: int, dim: int) -> None:
    torch.manual_seed(rows + dim)
    x = (torch.randn(rows, dim) * 3).to(dtype)
    weight = torch.randn(dim).to(dtype)
    got = kernels.cpu_kernels().rms_norm(x, weight, 1e-6)
    expected = rms_norm(x, weight, 1e-6)
    assert got.dtype == dtype and got.shape == expected.shape
    if dtype == torch.bfloat16:
        # The same roundings: at most a few elements one bf16 step apart (the
        # float32 sums are added in another order).
        assert (got != expected).float().mean().item() < 0.01
        torch.testing.assert_close(got, expected, rtol=8e-3, atol=1e-2)
    else:
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_rms_norm_layer_takes_the_kernel_for_any_leading_shape() -> None:
    norm = RMSNorm(64, 1e-5, dtype=torch.bfloat16)
    torch.nn.init.normal_(norm.weight)
    x = torch.randn(4, 3, 64).to(torch.bfloat16)
    torch.testing.assert_close(norm(x), rms_norm(x, norm.weight, 1e-5), rtol=8e-3, atol=1e-2)
    strided = torch.randn(4, 128).to(torch.bfloat16)[:, :64]  # not contiguous: the torch path
    assert torch.equal(norm(strided), rms_norm(strided, norm.weight, 1e-5))


def test_rms_norm_layer_without_kernels_is_the_torch_path(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytgi.layers import norm as norm_module

    calls: list[str] = []
    monkeypatch.setattr(norm_module, "cpu_kernels", lambda: calls.append("asked"))
    layer = RMSNorm(32, 1e-5, dtype=torch.float32)
    torch.nn.init.normal_(layer.weight)
    x = torch.randn(2, 32)
    assert torch.equal(layer(x), rms_norm(x, layer.weight, 1e-5)) and calls == ["asked"]


def test_rms_norm_kernel_refuses_what_it_cannot_take() -> None:
    module = kernels.cpu_kernels()
    with pytest.raises(RuntimeError, match="float32 or bfloat16"):
        module.rms_norm(torch.randn(2, 8).half(), torch.randn(8).half(), 1e-5)
    with pytest.raises(RuntimeError, match="weight"):
        module.rms_norm(torch.randn(2, 8), torch.randn(9), 1e-5)
    with pytest.raises(RuntimeError, match="contiguous"):
        module.rms_norm(torch.randn(8, 2).t(), torch.randn(8), 1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_silu_and_mul_in_place_rounds_as_the_plain_product(dtype: torch.dtype) -> None:
    gate_up = (torch.randn(33, 96) * 4).to(dtype)
    gate, up = gate_up.chunk(2, dim=-1)
    assert torch.equal(silu_and_mul(gate_up), F.silu(gate) * up)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(("rows", "width"), [(1, 1536), (768, 1536), (3, 7), (2, 40)])
def test_silu_and_mul_kernel_matches_the_torch_path(dtype: torch.dtype, rows: int, width: int) -> None:
    torch.manual_seed(rows + width)
    gate_up = (torch.randn(rows, 2 * width) * 6).to(dtype)
    gate, up = gate_up.chunk(2, dim=-1)
    got = kernels.cpu_kernels().silu_and_mul(gate_up)
    expected = F.silu(gate) * up
    assert got.dtype == dtype and got.shape == expected.shape
    if dtype == torch.bfloat16:
        # torch's exp and this kernel's differ by an ulp or two of float32, which
        # moves a rare product across a bf16 rounding boundary.
        assert (got != expected).float().mean().item() < 0.01
        torch.testing.assert_close(got, expected, rtol=8e-3, atol=1e-2)
    else:
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_silu_and_mul_kernel_at_the_ends_of_the_exp() -> None:
    gate = torch.tensor([[0.0, -90.0, 90.0, -1e30, float("inf"), float("nan")]])
    gate_up = torch.cat([gate, torch.full_like(gate, 3.0)], dim=1)
    got = kernels.cpu_kernels().silu_and_mul(gate_up)
    # torch's e^90 overflows to inf, so its silu(-90) is -0 where this kernel's is
    # -7e-38: both within any tolerance of the exact value.
    torch.testing.assert_close(got, F.silu(gate) * 3.0, rtol=1e-6, atol=1e-30, equal_nan=True)


def test_silu_and_mul_kernel_refuses_what_it_cannot_take() -> None:
    module = kernels.cpu_kernels()
    with pytest.raises(RuntimeError, match="even width"):
        module.silu_and_mul(torch.randn(2, 5))
    with pytest.raises(RuntimeError, match="contiguous"):
        module.silu_and_mul(torch.randn(8, 2).t())
    with pytest.raises(RuntimeError, match="float32 or bfloat16"):
        module.silu_and_mul(torch.randn(2, 8).half())
