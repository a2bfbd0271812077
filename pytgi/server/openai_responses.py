"""Engine outputs -> OpenAI-style bodies and stream chunks, in TGI's shapes.

Pure functions (plus one small state machine for streamed tool calls): no I/O.
TGI's quirks kept: `id` is "", EOS is reported as "stop" in chat while
"stop_sequence" passes through, completions' intermediate chunks carry
`finish_reason: ""` and their last chunk TGI's own reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pytgi.errors import ToolError
from pytgi.protocol import FinishReason, RequestOutput, Token
from pytgi.server.chat_prompt import NO_TOOL, TOOL_NAME_KEY
from pytgi.server.responses import JsonObject, finite_or_none

DONE_EVENT = b"data: [DONE]\n\n"


@dataclass(frozen=True, slots=True)
class ChatContext:
    """What every chunk of one answer repeats."""

    model: str
    system_fingerprint: str
    created: int


def chat_finish_reason(reason: FinishReason | None) -> str | None:
    if reason is None:
        return None
    return "stop" if reason == FinishReason.EOS_TOKEN else reason.value


def usage_json(num_prompt_tokens: int, num_completion_tokens: int) -> JsonObject:
    return {
        "prompt_tokens": num_prompt_tokens,
        "completion_tokens": num_completion_tokens,
        "total_tokens": num_prompt_tokens + num_completion_tokens,
    }


def token_logprob_json(token: Token, alternatives: tuple[Token, ...]) -> JsonObject:
    return {
        "token": token.text,
        "logprob": finite_or_none(token.logprob),
        "top_logprobs": [{"token": t.text, "logprob": finite_or_none(t.logprob)} for t in alternatives],
    }


def logprobs_json(tokens: tuple[Token, ...], top_tokens: tuple[tuple[Token, ...], ...]) -> JsonObject:
    content = [
        token_logprob_json(token, top_tokens[i] if i < len(top_tokens) else ())
        for i, token in enumerate(tokens)
    ]
    return {"content": content}


def _envelope(context: ChatContext, obj: str) -> JsonObject:
    return {
        "object": obj,
        "id": "",
        "created": context.created,
        "model": context.model,
        "system_fingerprint": context.system_fingerprint,
    }


def chat_completion_body(
    context: ChatContext, message: JsonObject, logprobs: JsonObject | None, final: RequestOutput
) -> JsonObject:
    body = _envelope(context, "chat.completion")
    body["choices"] = [
        {
            "index": 0,
            "message": message,
            "logprobs": logprobs,
            "finish_reason": chat_finish_reason(final.finish_reason),
        }
    ]
    body["usage"] = usage_json(final.num_prompt_tokens, final.num_generated_tokens)
    return body


def text_message(text: str) -> JsonObject:
    return {"role": "assistant", "content": text}


def chat_chunk(
    context: ChatContext, delta: JsonObject, logprobs: JsonObject | None, finish_reason: str | None
) -> JsonObject:
    chunk = _envelope(context, "chat.completion.chunk")
    chunk["choices"] = [{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}]
    chunk["usage"] = None
    return chunk


def usage_chunk(context: ChatContext, final: RequestOutput) -> JsonObject:
    chunk = _envelope(context, "chat.completion.chunk")
    chunk["choices"] = []
    chunk["usage"] = usage_json(final.num_prompt_tokens, final.num_generated_tokens)
    return chunk


def openai_stream_error(message: str) -> JsonObject:
    """TGI's in-band error of the OpenAI streams: always 422, whatever the kind."""
    return {"error": {"message": message, "http_status_code": 422}}


# --- tool calls --------------------------------------------------------------------------------


def parse_tool_call(text: str) -> tuple[str, dict[str, Any]]:
    """`{"function": {"_name": N, ...arguments}}` -> (N, arguments). Raises ToolError."""
    try:
        value = json.loads(text)
        function = dict(value["function"])
        name = function.pop(TOOL_NAME_KEY)
    except (ValueError, KeyError, TypeError) as error:
        raise ToolError(f"Failed to parse generated text: {error} {text!r}") from error
    if not isinstance(name, str):
        raise ToolError(f"Failed to parse generated text: `_name` is not a string {text!r}")
    return name, function


def tool_call_message(name: str, arguments: dict[str, Any]) -> JsonObject:
    call = {
        "id": "0",
        "type": "function",
        "function": {"description": None, "name": name, "arguments": json.dumps(arguments, ensure_ascii=False)},
    }
    return {"role": "assistant", "tool_calls": [call]}


def tool_call_delta(call_id: str, name: str | None, arguments: str) -> JsonObject:
    call = {"index": 0, "id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
    return {"role": "assistant", "tool_calls": [call]}


@dataclass(slots=True)
class ToolCallStreamer:
    """Turns the streamed text `{"function": {"_name": "f", "a": 1}}` into tool-call deltas:
    first `name="f", arguments="{"`, then the argument text as it comes, the wrapper's
    closing brace dropped, so the fragments join to `{"a": 1}`.

    `feed` returns the argument fragments ready to send; `name` is set once known.
    Closing braces are held back until more text shows they were not the last ones.
    """

    buffer: str = ""
    name: str | None = None
    _pending: str = field(default="")
    _before_arguments: bool = True  # the `,` after the name may still be to come

    def feed(self, text: str) -> str:
        if self.name is None:
            self.buffer += text
            found = self._find_name()
            if found is None:
                return ""
            self.name, text = found
            return "{" + self._release(self._skip_separator(text))
        return self._release(self._skip_separator(text))

    def _skip_separator(self, text: str) -> str:
        """Drop what separates `_name` from the first argument (spaces, one comma)."""
        if not self._before_arguments:
            return text
        text = text.lstrip()
        if not text:
            return ""
        self._before_arguments = False
        return text[1:].lstrip() if text.startswith(",") else text

    def finish(self) -> str:
        """What remains at the end: the held braces but the wrapper's own."""
        held = self._pending.rstrip()
        self._pending = ""
        return held[:-1] if held.endswith("}") else held

    def _find_name(self) -> tuple[str, str] | None:
        key = f'"{TOOL_NAME_KEY}"'
        start = self.buffer.find(key)
        if start < 0:
            return None
        after = self.buffer[start + len(key) :].lstrip()
        if not after.startswith(":"):
            return None
        after = after[1:].lstrip()
        try:
            name, end = json.JSONDecoder().raw_decode(after)
        except ValueError:
            return None  # the name's string is not complete yet
        if not isinstance(name, str):
            return None
        return name, after[end:]

    def _release(self, text: str) -> str:
        combined = self._pending + text
        stripped = combined.rstrip("} \n\t")
        self._pending = combined[len(stripped) :]
        return stripped

    @property
    def is_no_tool(self) -> bool:
        return self.name == NO_TOOL


# --- completions -------------------------------------------------------------------------------


def completion_choice(index: int, text: str, finish_reason: str) -> JsonObject:
    return {"index": index, "text": text, "logprobs": None, "finish_reason": finish_reason}


def completion_body(context: ChatContext, choices: list[JsonObject], usage: JsonObject) -> JsonObject:
    body = _envelope(context, "text_completion")
    body["choices"] = choices
    body["usage"] = usage
    return body


def completion_chunk(context: ChatContext, choice: JsonObject, usage: JsonObject | None) -> JsonObject:
    chunk = _envelope(context, "text_completion")
    chunk["choices"] = [choice]
    if usage is not None:
        chunk["usage"] = usage
    return chunk
