import json

import pytest

from pytgi.bench import jitter


def test_jitter_times_a_fixed_block_and_reports_its_spread(capsys):
    assert jitter.main(["--seconds", "0.2", "--rows", "2", "--width", "64", "--repeats", "2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["runs"] >= 2
    assert 0 < report["p50_ms"] <= report["p90_ms"] <= report["p99_ms"]
    assert report["p99_over_p50"] == pytest.approx(report["p99_ms"] / report["p50_ms"])


def test_summary_of_known_durations():
    durations = [0.010] * 98 + [0.030, 0.050]
    report = jitter.summary(durations)
    assert report["runs"] == 100
    assert report["p50_ms"] == 10.0
    assert report["p99_ms"] == pytest.approx(30.2)  # 1 % of the way from the first slow run to the second
