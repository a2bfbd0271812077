"""`pytgi generate`, `pytgi chat` and `pytgi download` (their own modules), driven
as a user drives them: subprocesses with arguments and stdin, plus the pieces
(sampling flags, the chat loop) in process."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from live_server import LiveServer

from pytgi import cli, cli_chat, cli_download, cli_generate

PROMPT = "Python lists are"


def run_pytgi(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytgi", *args], input=stdin, capture_output=True, text=True, timeout=120, env=env
    )


# --- generate -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def llm():
    from pytgi import LLM

    return LLM()


def test_generate_streams_the_same_text_as_the_llm_api(llm):
    result = run_pytgi("generate", "--max-new-tokens", "8", PROMPT)
    assert result.returncode == 0, result.stderr
    expected = llm.generate([PROMPT], max_new_tokens=8)[0].text
    assert result.stdout == expected + "\n"
    assert "[length: 8 tokens in" in result.stderr


def test_leaving_a_stream_early_aborts_its_request(llm):
    from pytgi.protocol import GenerationRequest, StoppingParams

    request = GenerationRequest("early", prompt=PROMPT, stopping=StoppingParams(max_new_tokens=50, ignore_eos=True))
    stream = llm.stream_requests([request])
    first = next(stream)
    assert first.request_id == "early" and not first.finished
    stream.close()  # what a Ctrl-C or a `break` does
    assert not llm._built.engine.has_work()
    assert len(llm.generate(PROMPT, max_new_tokens=3)[0].token_ids) == 3


def test_generate_reads_the_prompt_from_stdin_and_refuses_bad_flags():
    result = run_pytgi("generate", "--max-new-tokens", "3", "--temperature", "0.7", "--seed", "1", stdin=PROMPT)
    assert result.returncode == 0 and "[length: 3 tokens" in result.stderr
    refused = run_pytgi("generate", "--top-p", "1.5", PROMPT)
    assert refused.returncode == 2 and "--top-p must be in (0, 1]" in refused.stderr


def sampling(*argv: str):
    parser = cli_generate.build_parser()
    return cli_generate.sampling_from_args(parser, parser.parse_args([*argv, "x"]))


def test_sampling_flags_follow_tgi():
    assert sampling().is_greedy
    assert sampling("--temperature", "0").is_greedy  # as on the OpenAI routes
    sampled = sampling("--temperature", "0.5", "--top-k", "3", "--seed", "7")
    assert not sampled.is_greedy and sampled.temperature == 0.5 and sampled.top_k == 3 and sampled.seed == 7
    assert sampling("--do-sample").do_sample


def test_local_model_flags_are_generated_from_model_config():
    help_text = cli_generate.build_parser().format_help()
    for flag in ("--model-id", "--revision", "--dtype", "--huggingface-hub-cache", "[env: MODEL_ID]"):
        assert flag in help_text


# --- chat -----------------------------------------------------------------------------------------


class ScriptedReply:
    """Answers "answer N" and remembers what it was sent."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.seen: list[list[dict[str, str]]] = []
        self.fail_on = fail_on

    def __call__(self, messages: list[dict[str, str]]) -> Iterator[str]:
        self.seen.append(messages)
        if messages[-1]["content"] == self.fail_on:
            raise cli_chat.ChatFailed("Model is overloaded")
        yield "answer "
        yield str(len(self.seen))


def chat(lines: list[str], reply: ScriptedReply, system: str | None = None) -> str:
    feed = iter(lines)

    def read_line(prompt: str) -> str:
        try:
            return next(feed)
        except StopIteration:
            raise EOFError from None

    out = io.StringIO()
    cli_chat.run_chat(reply, read_line, out, system)
    return out.getvalue()


def test_chat_keeps_history_resets_and_exits():
    reply = ScriptedReply()
    out = chat(["hello", "again", "/reset", "fresh", "/exit", "never read"], reply, system="Be brief.")
    assert "answer 1\n" in out and "(conversation reset)" in out
    assert [m["content"] for m in reply.seen[1]] == ["Be brief.", "hello", "answer 1", "again"]
    assert [m["content"] for m in reply.seen[2]] == ["Be brief.", "fresh"]  # system prompt survives /reset
    assert len(reply.seen) == 3


def test_chat_error_turn_is_not_remembered_and_eof_ends():
    reply = ScriptedReply(fail_on="boom")
    out = chat(["boom", "", "ok"], reply)
    assert "[error: Model is overloaded]" in out
    assert [m["content"] for m in reply.seen[-1]] == ["ok"]


def test_local_chat_with_the_demo_model():
    result = run_pytgi("chat", "--max-new-tokens", "6", stdin="What is a list?\n/reset\nHi\n/exit\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("> ") >= 3 and "(conversation reset)" in result.stdout


def test_remote_chat_needs_openai_fields_only():
    parser = cli_chat.build_parser()
    args = parser.parse_args(["--url", "http://x", "--max-new-tokens", "5", "--seed", "3"])
    assert cli_chat.remote_options(parser, args) == {"max_tokens": 5, "temperature": 0.0, "seed": 3}
    with pytest.raises(SystemExit):
        cli_chat.remote_options(parser, parser.parse_args(["--url", "http://x", "--top-k", "2"]))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    live = LiveServer(["--max-batch-total-tokens", "8192"], tmp_path_factory.mktemp("cli") / "server.log")
    live.wait_healthy()
    yield live
    live.stop()


def test_remote_chat_streams_what_the_server_answers(server):
    messages = [{"role": "user", "content": "What is a tuple?"}]
    streamed = "".join(cli_chat.RemoteChat(server.url, {"max_tokens": 12, "temperature": 0})(messages))
    body = {"model": "tgi", "messages": messages, "max_tokens": 12, "temperature": 0}
    plain = httpx.post(server.url + "/v1/chat/completions", json=body, timeout=60).json()
    assert streamed and streamed == plain["choices"][0]["message"]["content"]
    result = run_pytgi("chat", "--url", server.url, "--max-new-tokens", "4", stdin="Hi\n/exit\n")
    assert result.returncode == 0, result.stderr


def test_remote_chat_reports_http_errors(server):
    messages = [{"role": "user", "content": "Hi"}]
    out = io.StringIO()
    # A body of the wrong shape is refused before the stream starts: an HTTP 422.
    assert cli_chat.answer_turn(cli_chat.RemoteChat(server.url, {"max_tokens": -1}), messages, out) is None
    assert "[error 422:" in out.getvalue()
    # A failed validation once streaming is an in-band error event (TGI's way).
    out = io.StringIO()
    assert cli_chat.answer_turn(cli_chat.RemoteChat(server.url, {"max_tokens": 0}), messages, out) is None
    assert "[error: Input validation error: `max_new_tokens` must be strictly positive]" in out.getvalue()


# --- download -------------------------------------------------------------------------------------

MAIN_SHA = "a" * 40
OLD_SHA = "b" * 40


def fake_hub_cache(root: Path) -> Path:
    """A Hugging Face cache as huggingface_hub lays it out, with two revisions."""
    repo = root / "models--org--tiny"
    for sha in (MAIN_SHA, OLD_SHA):
        snapshot = repo / "snapshots" / sha
        snapshot.mkdir(parents=True)
        (snapshot / "config.json").write_text("{}")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(MAIN_SHA)
    (repo / "refs" / "v1").write_text(OLD_SHA)
    return root


@pytest.fixture
def offline(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def test_download_finds_the_snapshot_in_an_offline_cache(tmp_path, offline, capsys):
    cache = fake_hub_cache(tmp_path / "hub")
    assert cli.main(["download", "org/tiny", "--huggingface-hub-cache", str(cache)]) == 0
    assert Path(capsys.readouterr().out.strip()).name == MAIN_SHA
    assert cli_download.main(["org/tiny", "--revision", "v1", "--huggingface-hub-cache", str(cache)]) == 0
    assert Path(capsys.readouterr().out.strip()).name == OLD_SHA


def test_download_of_a_missing_model_fails_with_a_message(tmp_path, offline, capsys):
    assert cli_download.main(["org/absent", "--huggingface-hub-cache", str(tmp_path)]) == 1
    assert "error: cannot download org/absent" in capsys.readouterr().err


def test_download_subprocess_reads_cache_from_the_environment(tmp_path):
    import os

    cache = fake_hub_cache(tmp_path / "hub")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HUGGINGFACE_HUB_CACHE": str(cache)}
    result = run_pytgi("download", "org/tiny", env=env)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == cache / "models--org--tiny" / "snapshots" / MAIN_SHA
    code = "import sys, pytgi.cli_download; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_ctrl_c_stops_one_answer_not_the_chat():
    def interrupted(messages):
        yield "partial"
        raise KeyboardInterrupt

    out = io.StringIO()
    assert cli_chat.answer_turn(interrupted, [{"role": "user", "content": "Hi"}], out) is None
    assert out.getvalue() == "partial\n[interrupted]\n"
