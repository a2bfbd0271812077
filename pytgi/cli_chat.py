"""`pytgi chat`: a terminal chat, either with a running server (`--url`, through
its streaming `/v1/chat/completions`) or with a model loaded in this process
(the model flags of `pytgi generate`, rendered with the model's chat template).

Type a message and press Enter; `/reset` forgets the conversation (the system
prompt stays), `/exit` (or Ctrl-D) leaves. The remote client uses only the
standard library, so it works wherever pytgi is installed.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TextIO

from pytgi import __version__
from pytgi.cli_generate import (
    add_model_flags,
    add_sampling_flags,
    configure_logging,
    load_llm,
    sampling_from_args,
)
from pytgi.errors import PytgiError
from pytgi.protocol import GenerationRequest, SamplingParams, StoppingParams

Message = dict[str, str]
# The model's answer to the conversation so far, as text pieces in order.
Reply = Callable[[list[Message]], Iterator[str]]

EXIT_COMMANDS = ("/exit", "/quit")
RESET_COMMAND = "/reset"
HELP_TEXT = "Type a message; /reset forgets the conversation, /exit (or Ctrl-D) leaves."


class RemoteChat:
    """Streams answers from a server's `/v1/chat/completions`."""

    def __init__(self, url: str, options: dict[str, Any], api_key: str | None = None) -> None:
        self.endpoint = url.rstrip("/") + "/v1/chat/completions"
        self.options = options
        self.api_key = api_key

    def __call__(self, messages: list[Message]) -> Iterator[str]:
        body = {"model": "tgi", "messages": messages, "stream": True, **self.options}
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self.api_key is not None:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.endpoint, json.dumps(body).encode(), headers, method="POST")
        with urllib.request.urlopen(request, timeout=300) as response:
            for raw_line in response:
                line = raw_line.decode("utf-8").strip()
                if not line.startswith("data:"):
                    continue  # keep-alive comments and blank separators
                data = line[len("data:"):].strip()
                if data == "[DONE]":
                    return
                event = json.loads(data)
                if "error" in event:
                    raise ChatFailed(error_message(event["error"]))
                for choice in event.get("choices", []):
                    content = (choice.get("delta") or {}).get("content")
                    if content:
                        yield content


class LocalChat:
    """Answers with a model loaded in this process through the `LLM` API."""

    def __init__(self, args: argparse.Namespace, sampling: SamplingParams) -> None:
        self.llm = load_llm(args)
        template = self.llm.tokenizer.chat_template
        if template is None:
            raise PytgiError("the model has no chat template: use `pytgi generate` for plain completion")
        self.template = template
        self.sampling = sampling
        self.stopping = StoppingParams(max_new_tokens=args.max_new_tokens, stop=tuple(args.stop))

    def __call__(self, messages: list[Message]) -> Iterator[str]:
        request = GenerationRequest(
            request_id=uuid.uuid4().hex,
            prompt=self.template.render(messages),
            sampling=self.sampling,
            stopping=self.stopping,
            add_special_tokens=False,  # the template wrote them, as on the server's chat route
        )
        for output in self.llm.stream_requests([request]):
            for token in output.tokens:
                if not token.special:
                    yield token.text


class ChatFailed(Exception):
    """The server answered with an error; the conversation goes on without that turn."""


def error_message(error: object) -> str:
    """An in-band stream error: OpenAI's `{"message", ...}` object, or TGI's plain string."""
    if isinstance(error, dict) and "message" in error:
        return str(error["message"])
    return str(error)


def run_chat(reply: Reply, read_line: Callable[[str], str], out: TextIO, system: str | None = None) -> None:
    """The loop: read a line, answer it, keep the history. Ends on /exit or EOF."""
    base: list[Message] = [{"role": "system", "content": system}] if system else []
    history = list(base)
    out.write(HELP_TEXT + "\n")
    while True:
        try:
            line = read_line("> ").strip()
        except (EOFError, KeyboardInterrupt):  # Ctrl-D or Ctrl-C at the prompt: leave quietly
            out.write("\n")
            return
        if line in EXIT_COMMANDS:
            return
        if line == RESET_COMMAND:
            history = list(base)
            out.write("(conversation reset)\n")
            continue
        if not line:
            continue
        answer = answer_turn(reply, [*history, {"role": "user", "content": line}], out)
        if answer is not None:
            history += [{"role": "user", "content": line}, {"role": "assistant", "content": answer}]


def answer_turn(reply: Reply, messages: list[Message], out: TextIO) -> str | None:
    """Print the answer as it streams; None (and a message) when it failed."""
    pieces: list[str] = []
    try:
        for piece in reply(messages):
            pieces.append(piece)
            out.write(piece)
            out.flush()
    except urllib.error.HTTPError as error:
        out.write(f"\n[error {error.code}: {error.read().decode('utf-8', 'replace')}]\n")
        return None
    except (urllib.error.URLError, ChatFailed, PytgiError) as error:
        out.write(f"\n[error: {error}]\n")
        return None
    except KeyboardInterrupt:
        # Ctrl-C stops this answer only; leaving the loop closes the stream, which aborts
        # the request (server side: the disconnect; local: stream_requests' clean-up).
        out.write("\n[interrupted]\n")
        return None
    out.write("\n")
    return "".join(pieces)


def remote_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, Any]:
    """The sampling flags as OpenAI fields. Greedy unless asked otherwise, as a local
    chat is (the chat route samples at temperature 1 when `temperature` is absent)."""
    for flag, value in (("--top-k", args.top_k), ("--repetition-penalty", args.repetition_penalty)):
        if value is not None:
            parser.error(f"{flag} works with a local model only: the chat route has no such field")
    temperature = args.temperature if args.temperature is not None else (1.0 if args.do_sample else 0.0)
    options: dict[str, Any] = {"max_tokens": args.max_new_tokens, "temperature": temperature}
    for name, value in (("top_p", args.top_p), ("seed", args.seed), ("stop", args.stop or None)):
        if value is not None:
            options[name] = value
    return options


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pytgi chat", description="Chat in the terminal. " + HELP_TEXT)
    parser.add_argument("--version", action="version", version=f"pytgi {__version__}")
    parser.add_argument("--url", help="A running server (e.g. http://127.0.0.1:8080); else a local model.")
    parser.add_argument("--api-key", help="Bearer token for a server started with --api-key.")
    parser.add_argument("--system", help="System prompt at the start of the conversation.")
    add_model_flags(parser)
    add_sampling_flags(parser, max_new_tokens=256)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    sampling = sampling_from_args(parser, args)
    configure_logging(args.verbose)
    reply: Reply
    if args.url is not None:
        reply = RemoteChat(args.url, remote_options(parser, args), args.api_key)
    else:
        try:
            reply = LocalChat(args, sampling)
        except (PytgiError, OSError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    run_chat(reply, input, sys.stdout, args.system)
    return 0
