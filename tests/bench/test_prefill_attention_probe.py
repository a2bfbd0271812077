"""`python -m pytgi.bench.prefill_attention`: both paths timed on every shape, JSON written."""

from __future__ import annotations

import json

import pytest

from pytgi import kernels
from pytgi.bench import prefill_attention

MODULE = kernels.cpu_kernels()


@pytest.mark.skipif(
    MODULE is None or not MODULE.prefill_attention_available(), reason="no CPU kernels with AVX512-BF16 here"
)
def test_times_the_kernel_and_sdpa_on_every_shape(tmp_path, capsys):
    out = tmp_path / "rows.json"
    assert prefill_attention.main(["--repeats", "1", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert [(r["cached"], r["new"]) for r in rows] == list(prefill_attention.SHAPES)
    assert all(r["kernel_ms"] > 0 and r["sdpa_ms"] > 0 for r in rows)
    assert len(capsys.readouterr().out.splitlines()) == len(prefill_attention.SHAPES)
