"""The prepacked bf16 weight: the same products as F.linear, or no copy at all."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pytgi.layers.linear import packed_weight

needs_bf16 = pytest.mark.skipif(
    not torch.ops.mkldnn._is_mkldnn_bf16_supported(), reason="no oneDNN bf16 on this CPU"
)


@needs_bf16
@pytest.mark.parametrize("rows", [1, 3, 40, 300])
def test_a_packed_bfloat16_product_is_bitwise_f_linear(rows: int) -> None:
    torch.manual_seed(rows)
    weight = torch.randn(96, 64, dtype=torch.bfloat16)
    bias = torch.randn(96, dtype=torch.bfloat16)
    x = torch.randn(rows, 64, dtype=torch.bfloat16)
    packed = packed_weight(weight)
    assert packed is not None
    for b in (None, bias):
        got = torch.ops.mkldnn._linear_pointwise(x, packed, b, "none", [], "")
        assert torch.equal(got, F.linear(x, weight, b))


def test_float32_and_the_off_switch_keep_the_plain_weight(monkeypatch: pytest.MonkeyPatch) -> None:
    assert packed_weight(torch.randn(8, 8)) is None
    monkeypatch.setenv("PYTGI_PACKED_WEIGHTS", "0")
    assert packed_weight(torch.randn(8, 8, dtype=torch.bfloat16)) is None
