"""The benchmark's arithmetic and CPU accounting, without running a benchmark."""

import math
import os
import time

import numpy as np
import pytest

from pytgi.bench import report
from pytgi.bench.server_process import StreamRun, StreamTrace
from pytgi.bench.stats import (
    CpuMonitor,
    Noise,
    ProcessTicks,
    QuietGate,
    common_prefix_length,
    decode_tokens_per_s,
    headline_pairs,
    interleaved_pairs,
    median,
    parse_pid_stat,
    parse_proc_stat,
    percentile,
    ratios,
    summarize,
    tree_ticks,
    wait_for_idle,
)


@pytest.mark.parametrize("values", [[3.0], [1.0, 2.0], [5.0, 1.0, 4.0, 2.0, 3.0], [0.1 * i * i for i in range(37)]])
@pytest.mark.parametrize("q", [0, 1, 25, 50, 90, 99, 100])
def test_percentile_matches_numpy_linear(values, q):
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_percentile_rejects_empty_and_out_of_range():
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_median_and_summary():
    assert median([4.0, 1.0, 3.0]) == 3.0
    assert median([1.0, 2.0, 3.0, 10.0]) == 2.5
    summary = summarize([1.0, 2.0, 3.0, 4.0])
    assert (summary.num_values, summary.mean, summary.min, summary.max) == (4, 2.5, 1.0, 4.0)
    assert summary.p50 == 2.5


def test_ratios_are_paired():
    assert ratios([4.0, 9.0], [2.0, 3.0]) == [2.0, 3.0]
    with pytest.raises(ValueError, match="unpaired"):
        ratios([1.0], [1.0, 2.0])


def test_decode_speed_takes_the_first_token_out():
    # 128 tokens in 5.3 s, 1 token in 0.3 s: 127 tokens in 5.0 s.
    assert decode_tokens_per_s(128, 5.3, 0.3) == pytest.approx(25.4)
    assert math.isnan(decode_tokens_per_s(1, 1.0, 0.5))
    assert math.isnan(decode_tokens_per_s(16, 0.5, 0.5))


def test_parse_proc_stat_counts_busy_and_idle():
    text = "cpu  100 5 50 1000 20 3 2 1 7 0\ncpu0 50 2 25 500 10 1 1 0 3 0\nintr 12345\n"
    ticks = parse_proc_stat(text)
    assert ticks.busy == 100 + 5 + 50 + 3 + 2 + 1  # guest (7) is inside user already
    assert ticks.total == ticks.busy + 1000 + 20


def test_parse_pid_stat_survives_odd_command_names():
    fields_after = "S 42 7 7 0 -1 4194304 100 0 0 0 11 22 33 44 20 0 3 0"
    ticks = parse_pid_stat(f"1234 (my (odd) name) {fields_after}")
    assert (ticks.pid, ticks.ppid, ticks.ticks) == (1234, 42, 11 + 22 + 33 + 44)


def test_tree_ticks_sums_descendants_only():
    processes = [
        ProcessTicks(pid=1, ppid=0, ticks=1000),
        ProcessTicks(pid=10, ppid=1, ticks=5),
        ProcessTicks(pid=11, ppid=10, ticks=7),
        ProcessTicks(pid=12, ppid=11, ticks=9),
        ProcessTicks(pid=20, ppid=1, ticks=100),
    ]
    assert tree_ticks(processes, 10) == 5 + 7 + 9
    assert tree_ticks(processes, 99) == 0


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="needs Linux /proc")
def test_cpu_monitor_sees_our_own_work():
    monitor = CpuMonitor()
    monitor.start()
    end = time.perf_counter() + 0.3
    while time.perf_counter() < end:
        pass
    sample = monitor.stop()
    assert sample.wall_s >= 0.3
    assert 0.0 <= sample.foreign <= 1.0
    assert sample.own > 0.0


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="needs Linux /proc")
def test_wait_for_idle_is_bounded():
    waited = wait_for_idle(window_s=0.1, max_wait_s=0.3, limit=-1.0)  # never idle
    assert not waited.idle
    assert 0.3 <= waited.waited_s < 2.0


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="needs Linux /proc")
def test_quiet_gate_measures_and_keeps_to_its_wait_budget():
    gate = QuietGate(idle_window_s=0.05, max_wait_s=10.0, total_wait_budget_s=0.0)
    result, measured = gate.measure(lambda: sum(range(1000)))
    assert result == 499500
    assert 0.0 <= measured.foreign <= 1.0
    assert gate.total_waited_s < 1.0  # no budget: one window, then measure anyway


def noise(foreign: float) -> Noise:
    return Noise(foreign=foreign, own=0.5, idle_wait_s=0.0, idle_before=True)


def test_contaminated_pairs_are_retried_a_bounded_number_of_times():
    foreign_by_pair = [0.0, 0.2, 0.0, 0.3, 0.4]
    pairs = interleaved_pairs(lambda i: [(i, noise(0.0)), (i, noise(foreign_by_pair[i]))], 3, 2)
    assert [pair[0][0] for pair in pairs] == [0, 1, 2, 3, 4]  # 2 clean of 3, then 2 extras
    chosen, basis = headline_pairs(pairs)
    assert [pair[0][0] for pair in chosen] == [0, 2]
    assert basis == "2 clean of 5 pairs"


def test_clean_pairs_need_no_extras():
    pairs = interleaved_pairs(lambda i: [(i, noise(0.01))], 3, 2)
    assert len(pairs) == 3
    _, basis = headline_pairs([[(0, noise(0.5))]])
    assert "contaminated" in basis


def test_stream_trace_latencies():
    trace = StreamTrace(sent_s=10.0, token_times_s=[10.5, 10.6, 10.8])
    assert trace.ttft_s == pytest.approx(0.5)
    assert trace.inter_token_s == pytest.approx([0.1, 0.2])
    assert StreamTrace(sent_s=1.0).ttft_s is None
    run = StreamRun(began_s=9.0, traces=(trace, StreamTrace(sent_s=9.5, token_times_s=[11.0])))
    assert run.num_tokens == 4
    assert run.wall_s == pytest.approx(2.0)


def test_common_prefix_length():
    assert common_prefix_length([1, 2, 3], [1, 2, 4]) == 2
    assert common_prefix_length([1, 2], [1, 2, 3]) == 2


def test_report_table_and_json_helpers(tmp_path):
    table = report.format_table(["a", "bb"], [["xyz", "1"]])
    assert table.splitlines()[0] == "| a   | bb |"
    assert report.mark({"foreign": 0.051}) == "5.1%*"
    assert report.mark({"foreign": 0.01}) == "1.0%"
    data = report.jsonable({"x": float("nan"), "p": tmp_path, "s": frozenset({"b", "a"})})
    assert data == {"x": None, "p": str(tmp_path), "s": ["a", "b"]}


def test_machine_probe_reports_positive_speeds():
    from pytgi.bench.stats import probe_machine

    probe = probe_machine(duration_s=0.05)
    assert probe.gemm_gflop_per_s > 0 and probe.read_gb_per_s > 0
