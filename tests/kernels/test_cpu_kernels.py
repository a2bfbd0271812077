"""The compiled CPU kernels against the torch paths they replace."""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F

from pytgi import kernels
from pytgi.executor.forward_batch import build_forward_batch
from pytgi.layers import linear as linear_module
from pytgi.layers.attention import LayerKVCache
from pytgi.layers.attention_backends.batched import decode_attention, padded_decode_attention
from pytgi.step import ScheduledChunk

pytestmark = pytest.mark.skipif(kernels.cpu_kernels() is None, reason="the CPU kernels could not be built")

TOLERANCE = {torch.float32: 2e-5, torch.bfloat16: 2e-2}


def decode_chunks(
    rng: random.Random, num_rows: int, block_size: int, num_blocks: int
) -> list[ScheduledChunk]:
    free = list(range(num_blocks))
    rng.shuffle(free)
    chunks = []
    for i in range(num_rows):
        position = rng.randint(0, 70)
        table = tuple(free.pop() for _ in range(position // block_size + 1 + rng.randint(0, 2)))
        chunks.append(ScheduledChunk(f"r{i}", (1,), position, table, sample=True))
    return chunks


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(
    ("num_heads", "num_kv_heads", "head_dim"),
    # 64 and 128 take the register path (more query heads per KV head than it
    # holds at once: 16, 2 and 8, 2); 80 and 16 the generic loop.
    [(9, 3, 64), (4, 4, 128), (16, 2, 64), (8, 2, 128), (8, 2, 80), (2, 1, 16)],
)
@pytest.mark.parametrize(("sliding_window", "logit_softcap"), [(None, None), (7, None), (None, 2.0)])
@pytest.mark.parametrize("num_rows", [1, 5])
def test_paged_decode_matches_padded_torch_path(
    dtype: torch.dtype,
    num_heads: int,
    num_kv_heads: int,
    head_dim: int,
    sliding_window: int | None,
    logit_softcap: float | None,
    num_rows: int,
) -> None:
    rng = random.Random(num_rows * 31 + head_dim)
    torch.manual_seed(head_dim)
    block_size, num_blocks = 8, 160
    chunks = decode_chunks(rng, num_rows, block_size, num_blocks)
    meta = build_forward_batch(chunks, [False] * num_rows, block_size, torch.device("cpu")).attention
    shape = (num_blocks, block_size, num_kv_heads, head_dim)
    cache = LayerKVCache(torch.randn(shape).to(dtype), torch.randn(shape).to(dtype))
    query = torch.randn(num_rows, num_heads, head_dim).to(dtype)
    args = (cache, meta, head_dim**-0.5, sliding_window, logit_softcap)
    got = decode_attention(query, *args)
    expected = padded_decode_attention(query, *args)
    assert got.dtype == dtype and got.shape == expected.shape
    torch.testing.assert_close(got.float(), expected.float(), atol=TOLERANCE[dtype], rtol=TOLERANCE[dtype])


@pytest.mark.parametrize("query_scale", [0.01, 30.0])
def test_paged_decode_softmax_over_flat_and_widely_spread_scores(query_scale: float) -> None:
    """Long contexts with scores close together or hundreds apart (where most
    weights underflow to 0): the register path's exp against torch's."""
    chunks = [ScheduledChunk(f"r{i}", (1,), position, tuple(range(i * 40, i * 40 + 40)), sample=True)
              for i, position in enumerate((250, 317))]
    meta = build_forward_batch(chunks, [False, False], 8, torch.device("cpu")).attention
    torch.manual_seed(3)
    cache = LayerKVCache(torch.randn(80, 8, 2, 64), torch.randn(80, 8, 2, 64))
    query = torch.randn(2, 6, 64) * query_scale
    torch.testing.assert_close(
        decode_attention(query, cache, meta, 0.125, None, None),
        padded_decode_attention(query, cache, meta, 0.125, None, None),
        atol=2e-5,
        rtol=2e-5,
    )


def test_paged_decode_reads_a_non_contiguous_query() -> None:
    """A query sliced out of a fused QKV projection is a strided view."""
    chunks = decode_chunks(random.Random(0), 3, 4, 64)
    meta = build_forward_batch(chunks, [False] * 3, 4, torch.device("cpu")).attention
    cache = LayerKVCache(torch.randn(64, 4, 2, 16), torch.randn(64, 4, 2, 16))
    fused = torch.randn(3, 8 * 16)
    query = fused[:, : 4 * 16].view(3, 4, 16)
    assert not fused[:, : 4 * 16].is_contiguous()
    torch.testing.assert_close(
        decode_attention(query, cache, meta, 0.25, None, None),
        padded_decode_attention(query, cache, meta, 0.25, None, None),
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("rows", [1, 2, 3, 8])
@pytest.mark.parametrize(("in_features", "out_features"), [(576, 960), (100, 7), (33, 130)])
@pytest.mark.parametrize("with_bias", [False, True])
def test_small_batch_linear_matches_float64(
    dtype: torch.dtype, rows: int, in_features: int, out_features: int, with_bias: bool
) -> None:
    torch.manual_seed(rows + in_features)
    x = torch.randn(rows, in_features).to(dtype)
    weight = torch.randn(out_features, in_features).to(dtype)
    bias = torch.randn(out_features).to(dtype) if with_bias else None
    got = kernels.cpu_kernels().small_batch_linear(x, weight, bias)
    exact = F.linear(x.double(), weight.double(), None if bias is None else bias.double())
    assert got.dtype == dtype and got.shape == (rows, out_features)
    # The only rounding left is the output's own (float32 accumulation, like torch's).
    scale = exact.abs().max().item()
    tolerance = 1e-5 if dtype == torch.float32 else 1e-2
    assert (got.double() - exact).abs().max().item() <= tolerance * scale


def test_small_batch_linear_refuses_other_dtypes() -> None:
    with pytest.raises(RuntimeError, match="float32 or bfloat16"):
        kernels.cpu_kernels().small_batch_linear(torch.ones(1, 4).half(), torch.ones(2, 4).half(), None)


def test_linear_takes_the_kernel_for_few_rows_only(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = kernels.cpu_kernels()

    class Spy:
        def small_batch_linear(
            self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
        ) -> torch.Tensor:
            calls.append(x.shape[0])
            return real.small_batch_linear(x, weight, bias)

    monkeypatch.setattr(linear_module, "cpu_kernels", lambda: Spy())
    weight = torch.randn(16, 8).bfloat16()
    for rows in (1, 2, 3, 32):
        x = torch.randn(rows, 8).bfloat16()
        torch.testing.assert_close(linear_module.linear(x, weight), F.linear(x, weight), atol=2e-2, rtol=2e-2)
    assert calls == [1, 2]
    linear_module.linear(
        torch.randn(1, 8).bfloat16(), weight.t().contiguous().t()
    )  # a transposed view: torch path
    assert calls == [1, 2]
    # float32: one row only (at two, torch's GEMM streams as fast); float16: never.
    for rows in (1, 2):
        linear_module.linear(torch.randn(rows, 8), weight.float())
    linear_module.linear(torch.randn(1, 8).half(), weight.half())
    assert calls == [1, 2, 1]


def test_disabled_kernels_fall_back_to_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTGI_CPU_KERNELS", "0")
    monkeypatch.setattr(kernels, "_loaded", None)
    monkeypatch.setattr(kernels, "_tried", False)
    assert kernels.cpu_kernels() is None
    x, weight = torch.randn(1, 8), torch.randn(4, 8)
    torch.testing.assert_close(linear_module.linear(x, weight), F.linear(x, weight))
