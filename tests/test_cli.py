import subprocess
import sys

import pytest

from pytgi import cli
from pytgi.config import EngineConfig


def parse(argv, monkeypatch=None):
    parser = cli.build_parser("pytgi serve")
    cli.add_config_flags(parser)
    return cli.config_from_args(parser.parse_args(argv))


def test_defaults_match_config():
    assert parse([]) == EngineConfig()


def test_tgi_flag_names():
    config = parse([
        "--model-id", "org/model", "--revision", "main", "--dtype", "float32", "--hostname", "0.0.0.0",
        "--port", "3000", "--max-concurrent-requests", "7", "--max-input-tokens", "100",
        "--max-total-tokens", "200", "--max-batch-prefill-tokens", "512", "--max-batch-total-tokens", "4096",
        "--max-batch-size", "8", "--max-stop-sequences", "2", "--max-best-of", "3", "--max-top-n-tokens", "4",
    ])
    assert config.model.model_id == "org/model" and config.model.dtype == "float32"
    assert config.server.port == 3000 and config.server.hostname == "0.0.0.0"
    assert config.limits.max_input_tokens == 100 and config.limits.max_total_tokens == 200
    assert config.scheduler.max_batch_size == 8 and config.cache.max_batch_total_tokens == 4096


def test_environment_variables_and_flag_precedence(monkeypatch):
    monkeypatch.setenv("MAX_CONCURRENT_REQUESTS", "9")
    monkeypatch.setenv("PORT", "4000")
    monkeypatch.setenv("PREFIX_CACHING", "false")
    config = parse(["--port", "5000"])
    assert config.limits.max_concurrent_requests == 9
    assert config.server.port == 5000
    assert config.cache.prefix_caching is False


def test_invalid_values_fail_loudly():
    with pytest.raises(Exception, match="max_input_tokens"):
        parse(["--max-input-tokens", "300", "--max-total-tokens", "200"])
    with pytest.raises(SystemExit):
        parse(["--dtype", "float64"])


def test_launcher_alias_help():
    out = subprocess.run(
        [sys.executable, "-m", "pytgi", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for flag in ("--model-id", "--max-batch-prefill-tokens", "MAX_BATCH_TOTAL_TOKENS"):
        assert flag in out


def test_repeatable_cors_flag_and_env(monkeypatch):
    assert parse([]).server.cors_allow_origin == ()
    monkeypatch.setenv("CORS_ALLOW_ORIGIN", "http://a.example, http://b.example")
    assert parse([]).server.cors_allow_origin == ("http://a.example", "http://b.example")
    config = parse(["--cors-allow-origin", "http://c.example", "--cors-allow-origin", "http://d.example"])
    assert config.server.cors_allow_origin == ("http://c.example", "http://d.example")


def test_api_key_and_payload_limit_flags():
    config = parse(["--api-key", "s3cret", "--payload-limit", "1000"])
    assert config.server.api_key == "s3cret" and config.server.payload_limit == 1000


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--trust-remote-code"], "never runs code"),
        (["--quantize", "gptq"], "`--quantize` is not supported by pytgi yet"),
        (["--lora-adapters", "a,b"], "`--lora-adapters` is not supported"),
        (["--speculate", "2"], "`--speculate` is not supported"),
        (["--num-shard", "2"], "`--num-shard` > 1 is not supported"),
    ],
)
def test_flags_for_missing_features_fail_at_start(argv, message):
    with pytest.raises(Exception, match=message):
        parse(argv)


def test_one_shard_and_graceful_timeout_are_accepted():
    config = parse(["--num-shard", "1", "-g", "5"])
    assert config.parallel.num_shard == 1 and config.server.graceful_termination_timeout == 5


def test_refused_flag_exits_with_a_message():
    result = subprocess.run(
        [sys.executable, "-m", "pytgi", "serve", "--quantize", "awq"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "`--quantize` is not supported by pytgi yet" in result.stderr



def test_json_formatter_and_runtime_report():
    import json
    import logging

    from pytgi.logs import JsonFormatter, runtime_report

    record = logging.LogRecord("pytgi.x", logging.INFO, __file__, 1, "loaded %s", ("m",), None)
    entry = json.loads(JsonFormatter().format(record))
    assert entry["level"] == "INFO" and entry["message"] == "loaded m" and entry["target"] == "pytgi.x"
    report = runtime_report()
    assert report["torch"].startswith("2.13") and "python" in report


def test_compatibility_flags_and_validation_workers():
    config = parse([
        "--validation-workers", "3", "--enable-prefill-logprobs", "--waiting-served-ratio", "1.2",
        "--max-waiting-tokens", "10", "--tokenizer-config-path", "/x/tokenizer_config.json",
    ])
    assert config.server.validation_workers == 3 and config.server.enable_prefill_logprobs
    assert config.model.tokenizer_config_path == "/x/tokenizer_config.json"
    with pytest.raises(Exception, match="`validation_workers` must be > 0"):
        parse(["--validation-workers", "0"])


def test_serve_loads_the_model_off_the_main_thread(monkeypatch):
    """Loading on the main thread would leave a second OpenMP pool beside the engine
    thread's, and libgomp then lets its workers sleep between ops (engine/threads.py)."""
    import threading

    from pytgi.engine import async_engine, builder
    from pytgi.server import app, launch

    loaded_on: list[threading.Thread] = []

    class Built:
        engine = input_processor = tokenizer = model_info = limits = None

    def fake_build(config):
        loaded_on.append(threading.current_thread())
        return Built()

    class FakeAsyncEngine:
        def __init__(self, *args, **kwargs):
            pass

        def start(self):
            pass

        def shutdown(self):
            pass

    monkeypatch.setattr(builder, "build_engine", fake_build)
    monkeypatch.setattr(async_engine, "AsyncEngine", FakeAsyncEngine)
    monkeypatch.setattr(app, "build_app", lambda *args, **kwargs: None)
    monkeypatch.setattr(launch, "serve", lambda *args, **kwargs: None)
    monkeypatch.setattr(Built, "model_info", type("Info", (), {"model_id": "m"})())
    cli.serve(EngineConfig())
    assert loaded_on and loaded_on[0] is not threading.main_thread()
    assert not loaded_on[0].is_alive()
