"""What one load client does: a request of one kind, checked end to end.

Every scenario returns the name of its outcome ("ok", "overloaded", ...) or
raises `Unexpected` with a description; the runner counts both. A stream is
"ok" only when it ended properly: TGI's with a final event carrying
`generated_text`, the OpenAI ones with `data: [DONE]`.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import jsonschema

MESSAGES = [{"role": "user", "content": "What does the list type do?"}]
PROMPTS = ("The list type", "A dictionary maps", "The with statement", "Generators are", "import os")
SCHEMA = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 12},
                                           "size": {"type": "integer"}}, "required": ["name", "size"]}


class Unexpected(Exception):
    """An answer the server should never give."""


def expect_status(response: httpx.Response, *allowed: int) -> str:
    if response.status_code == 429:
        return "overloaded"
    if response.status_code not in allowed:
        raise Unexpected(f"{response.request.url.path}: {response.status_code} {response.text[:200]}")
    return "ok"


async def sse_data(response: httpx.Response) -> list[str]:
    return [line[5:].strip() async for line in response.aiter_lines() if line.startswith("data:")]


def check_tgi_stream(events: list[str]) -> str:
    if not events:
        raise Unexpected("empty TGI stream")
    last = json.loads(events[-1])
    if "error" in last:
        if last.get("error_type") == "overloaded":
            return "overloaded"
        raise Unexpected(f"TGI stream error: {last}")
    if last.get("generated_text") is None:
        raise Unexpected("TGI stream ended without its final event")
    return "ok"


def check_openai_stream(events: list[str]) -> str:
    if not events or events[-1] != "[DONE]":
        raise Unexpected("OpenAI stream did not end with [DONE]")
    for event in events[:-1]:
        if "error" in json.loads(event):
            message = json.loads(event)["error"]["message"]
            if "overloaded" in message:
                return "overloaded"
            raise Unexpected(f"OpenAI stream error: {message}")
    return "ok"


async def generate(client: httpx.AsyncClient, rng: random.Random) -> str:
    body = {"inputs": rng.choice(PROMPTS), "parameters": {"max_new_tokens": rng.randint(4, 32),
                                                          "details": True}}
    return expect_status(await client.post("/generate", json=body), 200)


async def generate_stream(client: httpx.AsyncClient, rng: random.Random) -> str:
    body = {"inputs": rng.choice(PROMPTS), "parameters": {"max_new_tokens": rng.randint(4, 32),
                                                          "do_sample": True}}
    async with client.stream("POST", "/generate_stream", json=body) as response:
        expect_status(response, 200)
        return check_tgi_stream(await sse_data(response))


async def chat(client: httpx.AsyncClient, rng: random.Random) -> str:
    body = {"messages": MESSAGES, "max_tokens": rng.randint(4, 32), "temperature": 0}
    return expect_status(await client.post("/v1/chat/completions", json=body), 200)


async def chat_stream(client: httpx.AsyncClient, rng: random.Random) -> str:
    body = {"messages": MESSAGES, "max_tokens": rng.randint(4, 32), "stream": True,
            "stream_options": {"include_usage": True}}
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        expect_status(response, 200)
        return check_openai_stream(await sse_data(response))


async def completions(client: httpx.AsyncClient, rng: random.Random) -> str:
    body = {"prompt": [rng.choice(PROMPTS), rng.choice(PROMPTS)], "max_tokens": rng.randint(4, 16),
            "stream": rng.random() < 0.5}
    if not body["stream"]:
        return expect_status(await client.post("/v1/completions", json=body), 200)
    async with client.stream("POST", "/v1/completions", json=body) as response:
        expect_status(response, 200)
        return check_openai_stream(await sse_data(response))


async def tokenize(client: httpx.AsyncClient, rng: random.Random) -> str:
    return expect_status(await client.post("/tokenize", json={"inputs": rng.choice(PROMPTS)}), 200)


async def invalid(client: httpx.AsyncClient, rng: random.Random) -> str:
    """A request the server must refuse with a 4xx JSON error, never a 5xx."""
    bodies = [
        ("/generate", {"inputs": "x", "parameters": {"temperature": -1}}, 422),
        ("/generate", {"inputs": 5}, 422),
        ("/v1/chat/completions", {"messages": "nope"}, 422),
        ("/v1/completions", {"prompt": "x", "suffix": "y"}, 422),
        ("/generate", {"inputs": "x", "parameters": {"top_p": 1.0}}, 422),
    ]
    path, body, status = rng.choice(bodies)
    response = await client.post(path, json=body)
    expect_status(response, status)
    if "error" not in response.json():
        raise Unexpected(f"{path}: error body without `error`: {response.text[:200]}")
    return "refused"


async def grammar(client: httpx.AsyncClient, rng: random.Random) -> str:
    body = {"messages": MESSAGES, "max_tokens": 64, "temperature": 1.0, "seed": rng.randint(0, 10**6),
            "response_format": {"type": "json", "value": SCHEMA}}
    response = await client.post("/v1/chat/completions", json=body)
    outcome = expect_status(response, 200)
    if outcome == "ok" and response.json()["choices"][0]["finish_reason"] == "stop":
        value = json.loads(response.json()["choices"][0]["message"]["content"])
        try:
            jsonschema.validate(value, SCHEMA)
        except jsonschema.ValidationError as error:
            raise Unexpected(f"grammar answer off its schema: {value}: {error.message}") from error
    return outcome


async def disconnect(client: httpx.AsyncClient, rng: random.Random) -> str:
    """Read a few events of a long stream, then go away (the server must abort it)."""
    body = {"inputs": rng.choice(PROMPTS), "parameters": {"max_new_tokens": 200, "ignore_eos": True}}
    async with client.stream("POST", "/generate_stream", json=body) as response:
        if response.status_code == 429:
            return "overloaded"
        expect_status(response, 200)
        seen = 0
        async for line in response.aiter_lines():
            seen += line.startswith("data:")
            if seen >= 2:
                break
    return "disconnected"


async def slow_reader(client: httpx.AsyncClient, rng: random.Random) -> str:
    """A client that reads its stream slowly; it must still get the whole stream."""
    body = {"inputs": rng.choice(PROMPTS), "parameters": {"max_new_tokens": 8}}
    async with client.stream("POST", "/generate_stream", json=body) as response:
        expect_status(response, 200)
        events = []
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                events.append(line[5:].strip())
                await asyncio.sleep(0.5)
    return check_tgi_stream(events)


Scenario = Callable[[httpx.AsyncClient, random.Random], Awaitable[str]]
LOAD_MIX: dict[str, tuple[Scenario, float]] = {
    "generate": (generate, 0.2),
    "generate_stream": (generate_stream, 0.25),
    "chat": (chat, 0.15),
    "chat_stream": (chat_stream, 0.2),
    "completions": (completions, 0.1),
    "tokenize": (tokenize, 0.1),
}
# `make soak`: the load mix plus 10% disconnects, 5% invalid, 5% grammar, 2% slow readers.
SOAK_MIX: dict[str, tuple[Scenario, float]] = {
    **{name: (fn, weight * 0.78) for name, (fn, weight) in LOAD_MIX.items()},
    "disconnect": (disconnect, 0.10),
    "invalid": (invalid, 0.05),
    "grammar": (grammar, 0.05),
    "slow_reader": (slow_reader, 0.02),
}


def pick(mix: dict[str, tuple[Scenario, float]], rng: random.Random) -> tuple[str, Scenario]:
    names = list(mix)
    name = rng.choices(names, weights=[mix[n][1] for n in names])[0]
    return name, mix[name][0]


def describe(value: Any) -> str:
    return f"{type(value).__name__}: {value}"[:300]
