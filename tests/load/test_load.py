"""`make load` inside `make test`: 16 clients mixing every route for 60 s, no unexpected
answer, every stream properly ended, the server idle afterwards."""

from __future__ import annotations

import load_runner


def test_sixteen_clients_for_a_minute(tmp_path):
    report = tmp_path / "load.json"
    assert load_runner.main(["--mix", "load", "--duration", "60", "--clients", "16", "--report", str(report)]) == 0
