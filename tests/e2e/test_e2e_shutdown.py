"""SIGTERM with a stream running: the stream finishes, the process exits 0."""

from __future__ import annotations

import json
import signal
import threading
import time

import httpx
from live_server import LiveServer


def test_sigterm_drains_running_streams_and_exits_zero(tmp_path):
    server = LiveServer(["--max-batch-total-tokens", "8192", "-g", "30"], tmp_path / "server.log")
    server.wait_healthy()
    events: list[dict] = []

    def stream() -> None:
        body = {"inputs": "The list type", "parameters": {"max_new_tokens": 200, "ignore_eos": True}}
        with httpx.stream("POST", f"{server.url}/generate_stream", json=body, timeout=60.0) as response:
            for line in response.iter_lines():
                if line.startswith("data:"):
                    events.append(json.loads(line[len("data:"):]))

    reader = threading.Thread(target=stream)
    reader.start()
    deadline = time.monotonic() + 30
    while not events and time.monotonic() < deadline:
        time.sleep(0.01)
    server.process.send_signal(signal.SIGTERM)
    reader.join(timeout=60)
    assert server.process.wait(timeout=60) == 0
    assert len(events) == 200 and events[-1]["generated_text"] is not None
