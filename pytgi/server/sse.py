"""Server-sent events and client disconnects.

A disconnect is the cancellation signal for a request, streamed or not:
- `SseResponse` watches for `http.disconnect` while streaming and then closes
  its event generator at once, whose `finally` closes the engine iterator (which
  aborts the request) and releases the concurrency permit;
- `run_unless_disconnected` does the same for a non-streamed generation.
Starlette's `StreamingResponse` only cancels its send loop and leaves the
generator to the garbage collector, so the abort could come late.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeVar

from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from pytgi.errors import ShuttingDownError
from pytgi.server.responses import json_bytes

T = TypeVar("T")
logger = logging.getLogger(__name__)

# A stream whose client accepts no bytes for this long is dropped (its request aborted).
SEND_TIMEOUT_S = 60.0
KEEPALIVE_EVENT = b":\n\n"  # an SSE comment: clients skip it, proxies see traffic
# Set explicitly: Starlette would append "; charset=utf-8" to a text/* media type.
SSE_HEADERS = {"content-type": "text/event-stream", "cache-control": "no-cache", "x-accel-buffering": "no"}


def sse_data(payload: Any) -> bytes:
    """One event: a single `data:` line of compact JSON and a blank line (no event/id fields)."""
    return b"data: " + json_bytes(payload) + b"\n\n"


class ClientDisconnected(Exception):
    """The client went away before the answer was ready."""


async def close_iterator(iterator: AsyncIterator[Any]) -> None:
    """Close an async iterator if it can be closed (engine iterators abort on close)."""
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()


# How often a quiet stream looks at the shutdown deadline.
DEADLINE_POLL_S = 0.5


async def with_keepalive(
    source: AsyncIterator[T], interval_s: float, deadline: Callable[[], float | None] | None = None
) -> AsyncGenerator[T | None, None]:
    """Yield `source`'s items, and None after each `interval_s` of silence.

    `deadline()` is a monotonic time (or None) past which the server is shutting
    down: then this raises ShuttingDownError, so the route ends the request with
    its error event before the server cancels what is left.

    The pending `__anext__` runs as its own task and survives a timeout: cancelling
    it would throw into the engine iterator and abort the request.
    """
    pending: asyncio.Future[T] | None = None
    quiet_since = time.monotonic()
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(source.__anext__())
            done, _ = await asyncio.wait({pending}, timeout=min(interval_s, DEADLINE_POLL_S))
            end = deadline() if deadline is not None else None
            if end is not None and time.monotonic() >= end:
                raise ShuttingDownError()
            if not done:
                if time.monotonic() - quiet_since >= interval_s:
                    quiet_since = time.monotonic()
                    yield None
                continue
            finished, pending = pending, None
            try:
                item = finished.result()
            except StopAsyncIteration:
                return
            quiet_since = time.monotonic()
            yield item
    finally:
        if pending is not None:
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)


async def wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def run_unless_disconnected(receive: Receive, work: Awaitable[T]) -> T:
    """Await `work`; if the client disconnects first, cancel it and raise ClientDisconnected.

    Call only after the request body has been read: from then on `receive` yields
    nothing but `http.disconnect`.
    """
    work_task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(wait_for_disconnect(receive))
    try:
        await asyncio.wait({work_task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if work_task.done():
            return work_task.result()
        raise ClientDisconnected()
    finally:
        for task in (watcher, work_task):
            task.cancel()
        await asyncio.gather(watcher, work_task, return_exceptions=True)


class SseResponse(Response):
    """`text/event-stream` response over an async generator of encoded events."""

    def __init__(self, events: AsyncIterator[bytes], headers: Mapping[str, str] | None = None) -> None:
        self.events = events
        self.status_code = 200
        self.background = None
        self.init_headers({**SSE_HEADERS, **(headers or {})})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gone = asyncio.Event()
        sender = asyncio.ensure_future(self._send_events(send, send_timeout_s(scope), gone))
        watcher = asyncio.ensure_future(wait_for_disconnect(receive))
        try:
            await asyncio.wait({sender, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if watcher.done():
                gone.set()
        finally:
            for task in (watcher, sender):
                task.cancel()
            await asyncio.gather(watcher, sender, return_exceptions=True)
            # The generator may be parked at a `yield` (cancelled mid-send): close it now.
            await close_iterator(self.events)
        failure = sender.exception() if sender.done() and not sender.cancelled() else None
        if isinstance(failure, asyncio.TimeoutError):
            logger.warning("dropped a stream whose client read nothing for %.0f s", send_timeout_s(scope))
        # Failing to write to a gone client is expected; anything else is a bug to surface.
        elif failure is not None and not isinstance(failure, OSError):
            raise failure

    async def _send_events(self, send: Send, timeout_s: float, gone: asyncio.Event) -> None:
        # uvicorn's `send` waits while the socket buffer is full: a client that
        # stops reading would hold its request (permit, queued tokens) forever.
        # After `timeout_s` without progress the stream ends and the request is aborted.
        # The cancel that follows a disconnect is lost when it lands just as a send
        # completes (wait_for then returns the send's result), and uvicorn's `send`
        # to a gone client returns quietly: so each send also looks at `gone`.
        async def send_while_connected(message: Message) -> bool:
            await asyncio.wait_for(send(message), timeout_s)
            return not gone.is_set()

        start = {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        if not await send_while_connected(start):
            return
        async for chunk in self.events:
            if not await send_while_connected({"type": "http.response.body", "body": chunk, "more_body": True}):
                return
        await send_while_connected({"type": "http.response.body", "body": b"", "more_body": False})


def send_timeout_s(scope: Scope) -> float:
    """The app's `sse_send_timeout_s` (set by build_app), else SEND_TIMEOUT_S."""
    state = getattr(scope.get("app"), "state", None)
    return float(getattr(state, "sse_send_timeout_s", SEND_TIMEOUT_S))
