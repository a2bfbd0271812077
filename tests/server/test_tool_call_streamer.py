"""The streamed tool call: fragments join to the arguments object, however the text is cut."""

from __future__ import annotations

import json

import pytest

from pytgi.server.openai_responses import ToolCallStreamer


def stream(pieces: list[str]) -> tuple[str | None, str]:
    streamer = ToolCallStreamer()
    out = "".join(streamer.feed(piece) for piece in pieces)
    return streamer.name, out + streamer.finish()


TEXT = '{"function": {"_name": "get_weather", "city": "Paris", "days": [1, {"a": 2}]}}'


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13, len(TEXT)])
def test_any_cut_gives_the_arguments(size: int) -> None:
    pieces = [TEXT[i : i + size] for i in range(0, len(TEXT), size)]
    name, arguments = stream(pieces)
    assert name == "get_weather"
    assert json.loads(arguments) == {"city": "Paris", "days": [1, {"a": 2}]}


def test_separator_in_its_own_tokens_and_no_arguments() -> None:
    name, arguments = stream(['{"function": {"_name": "get_weather"', " ", ",", ' "city"', ': "x"', " }", " }"])
    assert name == "get_weather" and json.loads(arguments) == {"city": "x"}
    name, arguments = stream(['{"function": {"_name": "ping"}', "}"])
    assert name == "ping" and json.loads(arguments) == {}


def test_name_is_known_only_when_its_string_is_complete() -> None:
    streamer = ToolCallStreamer()
    assert streamer.feed('{"function": {"_name": "get_wea') == ""
    assert streamer.name is None
    assert streamer.feed('ther", ') == "{"
    assert streamer.name == "get_weather"
    assert not streamer.is_no_tool
