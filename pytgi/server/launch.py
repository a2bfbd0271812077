"""Run the app under uvicorn until SIGINT/SIGTERM.

uvicorn installs the signal handlers: on the first signal it stops accepting
connections and lets in-flight requests finish for up to `graceful_timeout_s`.
Just before that timeout, requests still running are ended by the app itself
(a stream gets an error event, a plain request a 503), so clients learn why;
uvicorn then cancels whatever is left.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator
from types import FrameType

import uvicorn
from fastapi import FastAPI

from pytgi.server.state import ServerState

GRACEFUL_TIMEOUT_S = 90  # TGI's --graceful-termination-timeout default
MAX_HEADER_BYTES = 64 * 1024  # request line + headers (nginx allows 4 x 8 KiB by default)


class _Server(uvicorn.Server):
    """uvicorn re-raises the signal that stopped it once shutdown is done, so a
    SIGTERM-ed server would die by that signal. For a server, a shutdown that
    drained cleanly is a success: exit status 0, as TGI's launcher gives.
    On the signal the app starts draining (no new work, /health 503)."""

    def __init__(self, config: uvicorn.Config, on_signal: Callable[[], None] | None) -> None:
        super().__init__(config)
        self._on_signal = on_signal

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._on_signal is not None:
            self._on_signal()
        super().handle_exit(sig, frame)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            yield
            captured = getattr(self, "_captured_signals", None)
            if isinstance(captured, list):
                captured.clear()


# Running requests are ended (with their error event) this long before uvicorn's
# graceful timeout cancels them, so the event still reaches the client.
TERMINATION_MARGIN_S = 1.0


def drain_callback(state: ServerState | None, graceful_timeout_s: float) -> Callable[[], None] | None:
    if state is None:
        return None
    grace_s = max(graceful_timeout_s - TERMINATION_MARGIN_S, graceful_timeout_s / 2)
    return lambda: state.limiter.begin_drain(grace_s)


def freeze_startup_heap() -> None:
    """Take what startup built (modules, the model, the app: ~1M objects) out of
    the garbage collector's full passes. A full pass over them held the GIL for
    ~190 ms on this project's 2-core machine (docs/profile.md, fifth pass), and
    the engine thread needs the GIL between two steps, so a pass that fell in a
    step stretched every stream's inter-token gap. Objects made while serving
    are still collected."""
    gc.collect()
    gc.freeze()


def serve(
    app: FastAPI,
    hostname: str,
    port: int,
    *,
    graceful_timeout_s: int = GRACEFUL_TIMEOUT_S,
    log_level: str = "info",
    access_log: bool = False,
) -> None:
    """Block serving `app` on `hostname:port` until SIGINT/SIGTERM (call from the main thread).

    Returns normally after SIGINT or SIGTERM, once in-flight requests have drained.
    """
    config = uvicorn.Config(
        app,
        host=hostname,
        port=port,
        log_level=log_level,
        access_log=access_log,
        timeout_graceful_shutdown=graceful_timeout_s,
        server_header=False,
        lifespan="on",
        # Keep the process's logging set-up (pytgi.logs: human or JSON lines).
        log_config=None,
        # httptools buffers request headers without limit (a 20 MB header was
        # accepted); h11 refuses a request line + headers above this with a 400.
        http="h11",
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
    )
    state = getattr(app.state, "pytgi", None)
    tracing = getattr(app.state, "tracing", None)
    freeze_startup_heap()
    try:
        _Server(config, drain_callback(state, graceful_timeout_s)).run()
    finally:
        if tracing is not None:
            tracing.shutdown()  # export the spans of the last requests before exit
