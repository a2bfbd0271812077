"""The LM head: float32 logits, through a prepacked copy where bf16 allows one."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pytgi.layers.embedding import LMHead


@pytest.mark.skipif(not torch.ops.mkldnn._is_mkldnn_bf16_supported(), reason="no oneDNN bf16 on this CPU")
def test_the_bfloat16_lm_head_packs_its_weight_and_repacks_a_tied_one() -> None:
    torch.manual_seed(0)
    head = LMHead(32, 500, dtype=torch.bfloat16)
    head.weight.data.copy_(torch.randn(500, 32))
    hidden = torch.randn(7, 32, dtype=torch.bfloat16)
    assert torch.equal(head(hidden), F.linear(hidden, head.weight).float())
    first = head.packed_weight()
    assert first is not None and head.packed_weight() is first
    head.weight = nn.Parameter(torch.randn(500, 32, dtype=torch.bfloat16), requires_grad=False)  # tying
    assert head.packed_weight() is not first
    assert torch.equal(head(hidden), F.linear(hidden, head.weight).float())


def test_a_float32_lm_head_keeps_the_plain_weight() -> None:
    head = LMHead(8, 20, dtype=torch.float32)
    assert head.packed_weight() is None
