"""The servers `pytgi bench` drives: an endpoint already running at a URL, or a
server it starts itself and stops at the end.

Every kind is a `ServerLauncher`; adding a baseline (transformers, llama.cpp) means
one more class with `start()`/`stop()`/`url`/`pids`, registered in `LAUNCHERS`.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from pytgi.bench.llamacpp_server import LlamaCppNativeServer, LlamaCppServer
from pytgi.bench.server_process import ServerProcess

PROC = Path("/proc")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "0.0.0.0", "::1", "[::1]")
TCP_LISTEN = "0A"


class ServerLauncher(Protocol):
    """One side of a comparison. `start()` is called once before the first run and
    returns when the server answers; `stop()` once at the end (also after a failure,
    and after a failed `start()`). `url` is valid after `start()`. `pids` are the
    processes whose CPU is the measurement's own (not "foreign"), possibly empty."""

    name: str

    @property
    def url(self) -> str: ...

    @property
    def pids(self) -> tuple[int, ...]: ...

    def describe(self) -> dict[str, object]: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


class ExternalServer:
    """A server someone else runs. Nothing to start or stop; when it listens on this
    machine its process is found by its port, so its CPU is not counted as foreign."""

    def __init__(self, name: str, url: str, server_pid: int | None = None) -> None:
        self.name = name
        self._url = url.rstrip("/")
        self._pids: tuple[int, ...] = (server_pid,) if server_pid else ()

    @property
    def url(self) -> str:
        return self._url

    @property
    def pids(self) -> tuple[int, ...]:
        return self._pids

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "kind": "url", "url": self._url, "server_pids": list(self._pids)}

    def start(self) -> None:
        if not self._pids:
            parts = urlsplit(self._url)
            if parts.hostname in LOOPBACK_HOSTS and parts.port is not None:
                pid = listening_pid(parts.port)
                self._pids = (pid,) if pid is not None else ()

    def stop(self) -> None:
        pass


class CommandServer:
    """A server this process starts from a command line (`{port}` is replaced by a
    free port) and stops at the end; its log goes to `log_path`. A command that starts
    with `pytgi serve` runs this checkout's `pytgi serve` with the rest as flags."""

    def __init__(self, name: str, command: str, log_path: Path, num_threads: int) -> None:
        self.name = name
        self.command = command
        argv = shlex.split(command)
        if argv[:2] == ["pytgi", "serve"]:
            self._process = ServerProcess(argv[2:], log_path, num_threads)
        else:
            self._process = ServerProcess([], log_path, num_threads, command=argv)

    @property
    def url(self) -> str:
        return self._process.base_url

    @property
    def pids(self) -> tuple[int, ...]:
        return ()  # our own child: already inside this process tree

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "kind": "command", "url": self.url, "command": self.command,
                "argv": self._process.command[1:] if self._process.command[0] == sys.executable
                else self._process.command, "log": str(self._process.log_path)}

    def start(self) -> None:
        self._process.__enter__()

    def stop(self) -> None:
        self._process.stop()


@dataclass(frozen=True, slots=True)
class EndpointSpec:
    """What the command line asked for: a kind from `LAUNCHERS` and its argument."""

    name: str
    kind: str
    target: str


LauncherFactory = Callable[[EndpointSpec, Path, int], ServerLauncher]
LAUNCHERS: dict[str, LauncherFactory] = {
    "url": lambda spec, log_dir, threads: ExternalServer(spec.name, spec.target),
    "command": lambda spec, log_dir, threads: CommandServer(
        spec.name, spec.target, log_dir / f"server-{spec.name}.log", threads),
    # `--compare-cmd llamacpp [--model-dir D] [--dtype T]`, as below; needs `make llama-cpp`.
    "llamacpp": lambda spec, log_dir, threads: LlamaCppServer(spec.name, spec.target, log_dir, threads),
    # `--compare-cmd "llama-server [--parallel N] ..."`: llama.cpp's C++ server; needs `make llama-server`.
    "llama-server": lambda spec, log_dir, threads: LlamaCppNativeServer(spec.name, spec.target, log_dir, threads),
}


# Baselines `pytgi bench` starts on the target's own model files: `--compare-cmd NAME [flags]`
# with NAME a key below (pytgi/bench/transformers_server.py; flags go to that server).
TRANSFORMERS_MODES = {"transformers-generate": "generate", "transformers-static": "static",
                      "transformers-generate-batch": "generate_batch"}


def transformers_launcher(mode: str) -> LauncherFactory:
    def factory(spec: EndpointSpec, log_dir: Path, threads: int) -> ServerLauncher:
        command = (f"{shlex.quote(sys.executable)} -m pytgi.bench.transformers_server --mode {mode} "
                   f"--port {{port}} --threads {threads} {spec.target}")
        return CommandServer(spec.name, command, log_dir / f"server-{spec.name}.log", threads)

    return factory


LAUNCHERS.update({name: transformers_launcher(mode) for name, mode in TRANSFORMERS_MODES.items()})


def baseline_flags(cmd: str | None, flags: str) -> str:
    """A started baseline serves the files (and dtype) of the target `pytgi serve`
    command (`--model-id`, `--dtype`), else the demo model, unless its flags say."""
    argv = shlex.split(cmd or "pytgi serve")
    given = shlex.split(flags)
    found = {name: argv[i + 1] for i, name in enumerate(argv[:-1]) if name in ("--model-id", "--dtype")}
    if "--model-dir" not in given:
        from pytgi.demo import DEMO_MODEL_DIR

        given += ["--model-dir", found.get("--model-id", str(DEMO_MODEL_DIR))]
    if "--dtype" not in given and found.get("--dtype") in ("float32", "bfloat16"):
        given += ["--dtype", found["--dtype"]]
    return shlex.join(given)


def make_launcher(spec: EndpointSpec, log_dir: Path, num_threads: int) -> ServerLauncher:
    if spec.kind not in LAUNCHERS:
        raise ValueError(f"unknown server kind {spec.kind!r}; supported: {', '.join(LAUNCHERS)}")
    return LAUNCHERS[spec.kind](spec, log_dir, num_threads)


# ---------------------------------------------------------------------------
# Which local process listens on a TCP port: /proc/net/tcp{,6} give the socket's
# inode, and the process holding `socket:[inode]` among its fds is the server.


def listening_inodes(table: str, port: int) -> set[str]:
    """Inodes of LISTEN sockets on `port` in one /proc/net/tcp-format table."""
    found = set()
    for line in table.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 9 and fields[3] == TCP_LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
            found.add(fields[9])
    return found


def listening_pid(port: int) -> int | None:
    inodes: set[str] = set()
    for name in ("tcp", "tcp6"):
        try:
            inodes |= listening_inodes((PROC / "net" / name).read_text(), port)
        except OSError:
            continue
    targets = {f"socket:[{inode}]" for inode in inodes}
    return pid_holding(targets) if targets else None


def pid_holding(targets: set[str]) -> int | None:
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                if fd.readlink().as_posix() in targets:
                    return int(entry.name)
        except OSError:
            continue  # not ours to read, or gone
    return None


def is_baseline_name(name: str) -> bool:
    """A `--compare-cmd` that names a baseline this tool starts itself."""
    return name in TRANSFORMERS_MODES or name in ("llamacpp", "llama-server")


def unreachable_commands(cmd: str | None, compare_cmds: Sequence[str]) -> list[str]:
    """Server command lines the bench could not reach: neither `pytgi serve` (given
    its port here) nor a baseline name, and without `{port}` for the free port it picks."""
    commands = [cmd] if cmd else []
    commands += [c for c in compare_cmds if not is_baseline_name(c.strip().partition(" ")[0])]
    return [c for c in commands if shlex.split(c)[:2] != ["pytgi", "serve"] and "{port}" not in c]


def endpoint_specs(url: str | None, cmd: str | None, compare_urls: Sequence[str],
                   compare_cmds: Sequence[str]) -> list[EndpointSpec]:
    """The target first (named A), then the baselines (B, C, ...) in flag order."""
    specs = [EndpointSpec("A", "url", url) if url else EndpointSpec("A", "command", cmd or "pytgi serve")]
    baselines = [("url", u) for u in compare_urls]
    for command in compare_cmds:
        name, _, flags = command.strip().partition(" ")
        baselines.append((name, baseline_flags(cmd, flags)) if is_baseline_name(name)
                         else ("command", command))
    for index, (kind, target) in enumerate(baselines):
        specs.append(EndpointSpec(chr(ord("B") + index), kind, target))
    return specs
