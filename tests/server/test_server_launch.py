"""launch.serve: a real process, stopped by a signal."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx

SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path[:0] = [{server_tests!r}]
    from fake_engine import FakeEngine
    from pytgi.server.app import build_app
    from pytgi.server.launch import serve
    serve(build_app(FakeEngine()), "127.0.0.1", {port}, graceful_timeout_s=2, log_level="warning")
    print("served", flush=True)
    """
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(port: int) -> subprocess.Popen[str]:
    script = SCRIPT.format(server_tests=str(Path(__file__).parent), port=port)
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError("server did not start")


def test_sigint_shuts_down_gracefully() -> None:
    port = free_port()
    process = start_server(port)
    response = httpx.post(f"http://127.0.0.1:{port}/generate", json={"inputs": "Hi"}, timeout=5)
    assert response.status_code == 200
    process.send_signal(signal.SIGINT)
    stdout, _ = process.communicate(timeout=20)
    assert process.returncode == 0
    assert "served" in stdout


def test_sigterm_stops_the_server() -> None:
    process = start_server(free_port())
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=20)
    assert process.returncode == 0  # a clean drain is a clean exit


def test_startup_objects_leave_the_collectors_full_passes() -> None:
    import gc

    from pytgi.server.launch import freeze_startup_heap

    survivor = [object()]
    try:
        freeze_startup_heap()
        assert gc.get_freeze_count() > 0
        assert not any(item is survivor for item in gc.get_objects())  # frozen objects are not tracked
    finally:
        gc.unfreeze()
