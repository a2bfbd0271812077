"""Run the app under uvicorn until SIGINT/SIGTERM.

uvicorn installs the signal handlers: on the first signal it stops accepting
connections and lets in-flight requests finish for up to
`graceful_timeout_s`, then cancels what is left (streams see a disconnect, so
their engine requests are aborted).
"""

from __future__ import annotations

import contextlib

import uvicorn
from fastapi import FastAPI

GRACEFUL_TIMEOUT_S = 90  # TGI's --graceful-termination-timeout default


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

    Returns normally after SIGINT; after SIGTERM uvicorn re-raises the signal, so the
    process ends with the conventional SIGTERM status.
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
    )
    # uvicorn re-raises a captured SIGINT after its graceful shutdown; by then the shutdown is done.
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.Server(config).run()
