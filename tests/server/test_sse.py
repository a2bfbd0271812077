"""SseResponse: a client that goes away ends the stream at once, whatever the
event loop was doing when it went."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from starlette.types import Message

from pytgi.server.sse import SseResponse

NUM_EVENTS = 500


class GoneClient:
    """An ASGI client that disconnects after `after_chunks` body chunks. Like
    uvicorn's, its `send` returns quietly once the client is gone."""

    def __init__(self, after_chunks: int, delay_ticks: int) -> None:
        self.after_chunks = after_chunks
        self.delay_ticks = delay_ticks  # loop iterations between that send and the hang-up
        self.num_chunks = 0
        self.gone = asyncio.Event()
        self.hang_up: asyncio.Task[None] | None = None

    async def receive(self) -> Message:
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.body" and not self.gone.is_set():
            self.num_chunks += 1
            if self.num_chunks == self.after_chunks:
                self.hang_up = asyncio.ensure_future(self._hang_up())

    async def _hang_up(self) -> None:
        for _ in range(self.delay_ticks):
            await asyncio.sleep(0)
        self.gone.set()


async def counting_events(produced: list[int], closed: list[bool]) -> AsyncGenerator[bytes, None]:
    try:
        for i in range(NUM_EVENTS):
            await asyncio.sleep(0)  # a token arrives: the loop runs other tasks
            produced.append(i)
            yield b"data: {}\n\n"
    except (asyncio.CancelledError, GeneratorExit):
        closed.append(True)
        raise


async def one_stream(after_chunks: int, delay_ticks: int) -> tuple[int, bool]:
    produced: list[int] = []
    closed: list[bool] = []
    client = GoneClient(after_chunks, delay_ticks)
    response = SseResponse(counting_events(produced, closed))
    await response({"type": "http"}, client.receive, client.send)
    return len(produced), bool(closed)


def test_a_disconnect_closes_the_events_whenever_it_lands() -> None:
    # The hang-up lands at each point of the send loop in turn. On some, the
    # cancellation of the sending task races a send that has just completed:
    # asyncio.wait_for then returns the send's result and drops the cancel, and
    # since a send to a gone client returns quietly the stream used to run on to
    # its end (the request was never aborted, the drop never counted).
    async def all_streams() -> list[tuple[int, bool]]:
        return [await one_stream(after, ticks) for after in range(1, 4) for ticks in range(12)]

    for num_produced, closed in asyncio.run(all_streams()):
        assert closed, "the events generator was never closed"
        assert num_produced < NUM_EVENTS
