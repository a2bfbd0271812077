"""Helpers shared by server tests: app construction, a live uvicorn server, SSE parsing."""

from __future__ import annotations

import json
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from fake_engine import FakeEngine
from fastapi import FastAPI

with warnings.catch_warnings():
    # Starlette would rather use httpx2; httpx works the same for these tests.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from pytgi.server.app import build_app


def make_app(engine: FakeEngine | None = None, **kwargs: Any) -> tuple[FastAPI, FakeEngine]:
    engine = engine or FakeEngine()
    return build_app(engine, version="9.9.9-test", **kwargs), engine


def make_client(engine: FakeEngine | None = None, **kwargs: Any) -> tuple[TestClient, FakeEngine]:
    app, engine = make_app(engine, **kwargs)
    return TestClient(app), engine


def sse_events(body: str) -> list[Any]:
    """Parse an SSE body the way clients do: keep `data:` lines, skip the rest."""
    events = []
    for line in body.split("\n"):
        if line.startswith("data:"):
            events.append(json.loads(line[len("data:") :]))
    return events


@contextmanager
def live_server(app: FastAPI) -> Iterator[str]:
    """A real uvicorn server on 127.0.0.1 with an ephemeral port, in a background thread."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, timeout_s=10)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def wait_until(condition: Callable[[], Any], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.005)
