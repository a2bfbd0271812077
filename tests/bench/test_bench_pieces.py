"""`pytgi bench`'s pieces without a server: options, workloads, arrivals, metrics, ports."""

import pytest

from pytgi.bench.bench_options import parse_bench_options
from pytgi.bench.endpoints import CommandServer, ExternalServer, endpoint_specs, listening_inodes
from pytgi.bench.metrics import run_metrics
from pytgi.bench.scenarios import Level, WorkloadBuilder
from pytgi.bench.traffic import PhaseRun, RequestTrace, arrival_offsets_s
from pytgi.bench.workload import (
    BenchRequest,
    SpanSource,
    TokenizedText,
    load_sharegpt,
    tokenize_reference,
    word_spans,
)


def test_word_spans_are_byte_offsets():
    data = "  héllo wörld\nx ".encode()
    assert [data[a:b].decode() for a, b in word_spans(data)] == ["héllo", "wörld", "x"]


def test_workload_is_seeded_and_exact_in_words():
    options = parse_bench_options(["--scenario", "decode,mixed,prefix", "--input-len", "12", "--output-len", "5",
                                   "--prefix-len", "20", "--seed", "7"])
    text = tokenize_reference(SpanSource(None, None), 1000)
    assert text.basis == "words (approximate)"
    builder = WorkloadBuilder(options, text, SpanSource(None, None), None)
    for scenario in ("decode", "mixed", "prefix"):
        level = Level(scenario, 3, None)
        assert builder.phases(level, 0) == builder.phases(level, 0)  # same seed, same requests
        assert builder.phases(level, 0) != builder.phases(level, 1)  # another round, fresh prompts
    decode = builder.phases(Level("decode", 3, None), 0)[0].requests
    assert len(decode) == 3 and all(len(r.prompt.split()) == 12 and r.max_new_tokens == 5 for r in decode)
    assert len(builder.phases(Level("mixed", 3, None), 0)[0].requests) == 12
    cold, warm = builder.phases(Level("prefix", 2, None), 0)
    prefix = cold.requests[0].prompt.split()[:20]
    assert all(r.prompt.split()[:20] == prefix and r.num_prompt_tokens == 32 for r in cold.requests + warm.requests)


def test_prefix_groups_give_request_i_prefix_i_mod_n_in_both_passes():
    options = parse_bench_options(["--scenario", "prefix", "--input-len", "6", "--output-len", "3",
                                   "--prefix-len", "20", "--prefix-groups", "2"])
    text = tokenize_reference(SpanSource(None, None), 1000)
    cold, warm = WorkloadBuilder(options, text, SpanSource(None, None), None).phases(Level("prefix", 4, None), 0)
    heads = [[r.prompt.split()[:20] for r in phase.requests] for phase in (cold, warm)]
    for phase_heads in heads:
        assert phase_heads[0] == phase_heads[2] != phase_heads[1] == phase_heads[3]
    assert heads[0] == heads[1]  # the warm pass reuses the cold pass's prefixes
    with pytest.raises(SystemExit):
        parse_bench_options(["--prefix-groups", "0"])


def test_sharegpt_loading_skips_incomplete_conversations(tmp_path):
    path = tmp_path / "d.json"
    path.write_text('[{"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a b"}]},'
                    ' {"conversations": [{"from": "human", "value": "only"}]}]')
    entries = load_sharegpt(path)
    assert [(e.prompt, e.answer) for e in entries] == [("q", "a b")]


def test_poisson_arrivals_are_seeded_and_closed_loop_is_all_at_once():
    assert arrival_offsets_s(4, None, 0) == [0.0] * 4
    offsets = arrival_offsets_s(2000, 50.0, seed=3)
    assert offsets == arrival_offsets_s(2000, 50.0, seed=3) and offsets == sorted(offsets)
    assert offsets[-1] / 2000 == pytest.approx(1 / 50.0, rel=0.1)


def test_metrics_from_traces():
    request = BenchRequest("p", 3, 3)
    ok = RequestTrace(request, sent_s=0.0, token_times_s=[0.5, 0.7, 1.0], done_s=1.1, reported_tokens=3,
                      reported_prompt_tokens=4)
    failed = RequestTrace(request, sent_s=0.0, done_s=0.1, error="HTTP 500")
    metrics = run_metrics(PhaseRun(began_s=0.0, ended_s=2.0, traces=(ok, failed)))
    assert metrics.num_completed == 1 and metrics.num_errors == 1 and not metrics.exact_token_counts
    assert metrics.output_tokens_per_s == 1.5 and metrics.request_throughput == 0.5
    assert metrics.ttft_s.p50 == 0.5 and metrics.tpot_s.p50 == pytest.approx(0.25)
    assert metrics.itl_s.num_values == 2 and metrics.e2e_s.p50 == pytest.approx(1.1)
    assert metrics.total_prompt_tokens == 4 and metrics.errors == ("1x HTTP 500",)


def test_options_refuse_a_compare_without_baseline_and_too_few_pairs():
    with pytest.raises(SystemExit):
        parse_bench_options(["--compare"])
    with pytest.raises(SystemExit):
        parse_bench_options(["--compare-url", "http://x", "--pairs", "2"])
    assert parse_bench_options(["--compare-url", "http://x"]).comparing


def test_options_refuse_a_server_command_the_bench_cannot_reach(capsys):
    # Without `{port}` the server would listen where it likes while the bench
    # waited for it on the port it picked, until the start-up timeout.
    for argv in (["--cmd", "/venv/bin/pytgi serve --dtype bfloat16"],
                 ["--compare-cmd", "env X=0 pytgi serve --dtype bfloat16"]):
        with pytest.raises(SystemExit):
            parse_bench_options(argv)
        assert "has no `{port}`" in capsys.readouterr().err
    options = parse_bench_options(["--cmd", "pytgi serve --dtype bfloat16", "--compare-cmd", "llamacpp",
                                   "--compare-cmd", "env X=0 /venv/bin/pytgi serve --port {port}"])
    assert len(options.compare_cmds) == 2


def test_endpoints_target_first_then_baselines(tmp_path):
    specs = endpoint_specs("http://a:1", None, ["http://b:2"], ["pytgi serve --max-batch-size 4"])
    assert [(s.name, s.kind) for s in specs] == [("A", "url"), ("B", "url"), ("C", "command")]
    server = CommandServer("C", "pytgi serve --max-batch-size 4", tmp_path / "c.log", 2)
    assert server.describe()["argv"][-2:] == ["--max-batch-size", "4"]
    other = CommandServer("D", "llama-server --port {port} -m m.gguf", tmp_path / "d.log", 2)
    assert other.describe()["argv"] == ["llama-server", "--port", other.url.rsplit(":", 1)[1], "-m", "m.gguf"]
    assert ExternalServer("A", "http://a:1/").url == "http://a:1"


def test_listening_inodes_reads_proc_net_tcp():
    table = ("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
             "   0: 0100007F:4A61 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242\n"
             "   1: 0100007F:4A61 0100007F:9C40 01 00000000:00000000 00:00000000 00000000  1000        0 4343\n")
    assert listening_inodes(table, 0x4A61) == {"4242"}
    assert listening_inodes(table, 80) == set()


def test_tokenized_window_cuts_at_token_offsets():
    text = TokenizedText(b"ab cd ef", ((0, 2), (2, 5), (5, 8)), "test")
    assert text.window(1, 2) == " cd ef"
