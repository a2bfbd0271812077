"""`pytgi bench` against the live demo server, a few seconds per scenario with tiny
sizes: exact token counts, no crash, ratios printed in a comparison. No timed assertion:
the figures depend on the machine and its neighbours."""

import json

import pytest
from live_server import running_server

from pytgi.cli import main

QUIET = ["--idle-window-s", "0.1", "--max-idle-wait-s", "0", "--total-idle-wait-s", "0", "--no-progress"]
TINY = ["--input-len", "8", "--output-len", "4", "--prefix-len", "32", "--warmup", "1"]


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory):
    """The real server on the bundled demo model (the tests/e2e fixture's pattern)."""
    log = tmp_path_factory.mktemp("bench-server") / "server.log"
    with running_server(["--max-batch-total-tokens", "8192", "--max-concurrent-requests", "32"], log) as server:
        yield server


def run_bench(tmp_path, args):
    output = tmp_path / "bench.json"
    code = main(["bench", *QUIET, *TINY, "--output", str(output), *args])
    return code, json.loads(output.read_text())


def phases_of(result):
    return [(run["level"], name, phase) for run in result["runs"] for name, phase in run["phases"].items()]


@pytest.mark.parametrize("scenario", ["decode", "mixed", "prefix"])
def test_each_scenario_gets_exact_token_counts(demo_server, tmp_path, capsys, scenario):
    code, result = run_bench(tmp_path, ["--url", demo_server.url, "--scenario", scenario, "--concurrency", "1,3"])
    assert code == 0
    assert result["num_errors"] == 0 and result["exact_token_counts"]
    assert result["prompt_lengths_basis"] == "server /tokenize"
    levels = {level for level, _, _ in phases_of(result)}
    assert levels == {f"{scenario} c=1", f"{scenario} c=3"}
    for _, _, phase in phases_of(result):
        assert phase["total_output_tokens"] == phase["expected_output_tokens"]
        assert phase["num_completed"] == phase["num_requests"] > 0
        assert phase["ttft_s"]["num_values"] == phase["num_requests"]
        assert phase["prompt_tokens_reported"]  # TGI's stream details carry input_length
    printed = capsys.readouterr().out
    assert f"## {scenario}" in printed and "tokens got/asked" in printed
    if scenario == "prefix":
        assert {name for _, name, _ in phases_of(result)} == {"cold", "warm"}
        for run in result["runs"]:
            phases = run["phases"]
            expected = phases["warm"]["ttft_s"]["p50"] / phases["cold"]["ttft_s"]["p50"]
            assert run["warm_over_cold_ttft_p50"] == pytest.approx(expected)
            assert f"{run['level']} [A] warm/cold TTFT p50: median" in printed
    else:
        assert all(run["warm_over_cold_ttft_p50"] is None for run in result["runs"])
        assert "warm/cold" not in printed


def test_compare_against_a_second_url_prints_pair_ratios(demo_server, tmp_path, capsys):
    code, result = run_bench(tmp_path, ["--url", demo_server.url, "--compare-url", demo_server.url,
                                        "--concurrency", "2", "--request-rate", "50", "--repeat-noisy"])
    assert code == 0 and result["exact_token_counts"]
    runs = result["runs"]
    assert [run["endpoint"] for run in runs[:6]] == ["A", "B"] * 3  # interleaved, at least 3 pairs
    throughput = next(c for c in result["comparisons"] if c["metric"] == "output_tokens_per_s")
    assert len(throughput["pair_ratios"]) >= 3 and throughput["median_ratio"] > 0
    assert all("foreign_cpu" in run and "contaminated" in run for run in runs)
    printed = capsys.readouterr().out
    assert "Ratios A / baseline per pair" in printed and "A/B" in printed


def test_openai_chat_and_dataset(demo_server, tmp_path):
    dataset = tmp_path / "sharegpt.json"
    dataset.write_text(json.dumps([
        {"conversations": [{"from": "human", "value": "What does the import statement do?"},
                           {"from": "gpt", "value": "It binds a module to a name."}]},
        {"conversations": [{"from": "human", "value": "Explain generators."},
                           {"from": "gpt", "value": "They yield values lazily."}]},
    ]))
    code, result = run_bench(tmp_path, ["--url", demo_server.url, "--api", "openai", "--openai-route", "chat",
                                        "--dataset", str(dataset), "--concurrency", "2", "--no-plot"])
    assert code == 0 and result["num_errors"] == 0
    for _, _, phase in phases_of(result):
        # OpenAI routes take no ignore_eos on pytgi: counts come from `usage` and may stop early.
        assert 0 < phase["total_output_tokens"] <= phase["expected_output_tokens"]
        assert phase["prompt_tokens_reported"]
