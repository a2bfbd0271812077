"""`pytgi serve` as a child process, and the HTTP client the benchmarks drive it with.

The server runs exactly as a user starts it (same CLI, same flags), on 127.0.0.1
and a free port, with its log captured to a file kept next to the results. The
client timestamps every response and every streamed token with
`time.perf_counter()` in this process.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from pytgi import envs

LOG_DTYPE = re.compile(r"dtype (\w+) on (\w+)")
REQUEST_TIMEOUT_S = 1800.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """Owns one server child: started and health-checked (`GET /health`) on enter,
    stopped (SIGTERM, then SIGKILL) on exit, its log written to `log_path`.

    By default the child is `pytgi serve <flags>`; `command` replaces it with any
    server's command line, where `{port}` stands for the free port picked here
    (TGI, vLLM and llama.cpp servers all answer `/health`)."""

    def __init__(
        self, flags: Sequence[str], log_path: Path, num_threads: int, startup_timeout_s: float = 600.0,
        command: Sequence[str] | None = None,
    ) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        if command is not None:
            self.command = [part.replace("{port}", str(self.port)) for part in command]
        else:
            self.command = [sys.executable, "-m", "pytgi", "serve", "--hostname", "127.0.0.1",
                            "--port", str(self.port), *flags]
        self.log_path = log_path
        self._num_threads = num_threads
        self._startup_timeout_s = startup_timeout_s
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ServerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # The child inherits our environment; only its thread count is pinned, so
        # both sides of a comparison use the same number of cores on any machine.
        child_env = envs.child_environment(OMP_NUM_THREADS=str(self._num_threads))
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT, env=child_env)
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self._startup_timeout_s
        assert self._process is not None
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"{self.command[0]} exited with code {self._process.returncode} during start-up:\n{self.log_tail()}"
                )
            try:
                if httpx.get(f"{self.base_url}/health", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass  # not listening yet
            time.sleep(0.5)
        raise TimeoutError(f"{self.command[0]} not healthy after {self._startup_timeout_s} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.is_file() else ""

    def log_tail(self, num_lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-num_lines:])

    def info(self) -> dict[str, Any]:
        response = httpx.get(f"{self.base_url}/info", timeout=10.0)
        response.raise_for_status()
        data = response.json()
        return data if isinstance(data, dict) else {}

    def served_dtype(self) -> str | None:
        """TGI 3's /info has no dtype field, so the start-up log is the fallback."""
        info = self.info()
        for key in ("dtype", "model_dtype"):
            if isinstance(info.get(key), str):
                return str(info[key])
        match = LOG_DTYPE.search(self.log_text())
        return match.group(1) if match else None


# ---------------------------------------------------------------------------
# Client


def new_client(num_connections: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=num_connections, max_keepalive_connections=num_connections)
    return httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(REQUEST_TIMEOUT_S))


async def generate(client: httpx.AsyncClient, base_url: str, body: dict[str, Any]) -> int:
    """POST /generate; the number of tokens generated, from `details`."""
    response = await client.post(f"{base_url}/generate", json=body)
    if response.status_code != 200:
        raise RuntimeError(f"/generate answered {response.status_code}: {response.text[:500]}")
    return int(response.json()["details"]["generated_tokens"])


@dataclass(frozen=True, slots=True)
class BatchRun:
    wall_s: float
    generated_tokens: tuple[int, ...]

    @property
    def tokens_per_s(self) -> float:
        return sum(self.generated_tokens) / self.wall_s


async def generate_sequential(base_url: str, bodies: Sequence[dict[str, Any]]) -> BatchRun:
    async with new_client(2) as client:
        began = time.perf_counter()
        counts = [await generate(client, base_url, body) for body in bodies]
        return BatchRun(wall_s=time.perf_counter() - began, generated_tokens=tuple(counts))


async def generate_concurrent(base_url: str, bodies: Sequence[dict[str, Any]]) -> BatchRun:
    async with new_client(len(bodies) + 2) as client:
        began = time.perf_counter()
        counts = await asyncio.gather(*(generate(client, base_url, body) for body in bodies))
        return BatchRun(wall_s=time.perf_counter() - began, generated_tokens=tuple(counts))


@dataclass(slots=True)
class StreamTrace:
    """One /generate_stream request: when it was sent and when each token event arrived."""

    sent_s: float
    token_times_s: list[float] = field(default_factory=list)
    reported_tokens: int | None = None
    error: str | None = None

    @property
    def ttft_s(self) -> float | None:
        return self.token_times_s[0] - self.sent_s if self.token_times_s else None

    @property
    def inter_token_s(self) -> list[float]:
        times = self.token_times_s
        return [later - earlier for earlier, later in zip(times, times[1:], strict=False)]


async def generate_stream(client: httpx.AsyncClient, base_url: str, body: dict[str, Any]) -> StreamTrace:
    """POST /generate_stream and timestamp every SSE token event as it is read."""
    trace = StreamTrace(sent_s=time.perf_counter())
    async with client.stream("POST", f"{base_url}/generate_stream", json=body) as response:
        if response.status_code != 200:
            trace.error = f"HTTP {response.status_code}: {(await response.aread())[:500]!r}"
            return trace
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue  # blank separators and keep-alive comments
            event = json.loads(line[len("data:"):])
            if "error" in event:
                trace.error = str(event["error"])
                break
            trace.token_times_s.append(time.perf_counter())
            if event.get("details"):
                trace.reported_tokens = int(event["details"]["generated_tokens"])
    return trace


@dataclass(frozen=True, slots=True)
class StreamRun:
    began_s: float
    traces: tuple[StreamTrace, ...]

    @property
    def num_tokens(self) -> int:
        return sum(len(t.token_times_s) for t in self.traces)

    @property
    def wall_s(self) -> float:
        """First send to last token, as vLLM's benchmark measures duration."""
        last = max((t.token_times_s[-1] for t in self.traces if t.token_times_s), default=self.began_s)
        return last - self.began_s


async def generate_streams(base_url: str, bodies: Sequence[dict[str, Any]]) -> StreamRun:
    async with new_client(len(bodies) + 2) as client:
        began = time.perf_counter()
        traces = await asyncio.gather(*(generate_stream(client, base_url, body) for body in bodies))
        return StreamRun(began_s=began, traces=tuple(traces))
