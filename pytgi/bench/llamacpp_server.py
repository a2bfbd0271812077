"""The llama.cpp baselines of `pytgi bench`: the benchmarked checkpoint converted to GGUF
(`gguf_export.py`) and served from `.venv-llamacpp`, driven with `--api openai`.

`llamacpp` is llama-cpp-python's OpenAI server (`make llama-cpp`). It handles one request
at a time (no parallel slots: concurrent requests queue), does not honour `ignore_eos` (a
request may stop at EOS: "got < asked") and sends no `usage` chunk (tokens are counted
per streamed chunk, one token each).

`llama-server` is llama.cpp's own C++ server (`make llama-server`): `--parallel N` slots
(default 32) decoded together with continuous batching, as llama.cpp users serve.
"""

from __future__ import annotations

import hashlib
import shlex
import subprocess
from pathlib import Path

from pytgi.bench.server_process import ServerProcess
from pytgi.demo import DEMO_MODEL_DIR

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_DIR = REPO_ROOT / ".venv-llamacpp"
EXPORT_SCRIPT = Path(__file__).resolve().parent / "gguf_export.py"
APP_SCRIPT = Path(__file__).resolve().parent / "llamacpp_app.py"
DTYPES = {"float32": "f32", "float16": "f16", "bfloat16": "bf16"}  # pytgi --dtype -> GGUF
DEFAULT_CONTEXT = 4096


DEFAULT_SLOTS = 32
SLOT_CONTEXT = 1024  # tokens of context per llama-server slot


def parse_target(target: str) -> tuple[Path, str]:
    """The baseline's flags (`--model-dir D --dtype float32|float16|bfloat16`, as
    `endpoints.baseline_flags` fills them in from the target) -> (folder, GGUF dtype)."""
    argv = shlex.split(target)
    flags = {argv[i]: argv[i + 1] for i in range(0, len(argv) - 1, 2)}
    unknown = set(flags) - {"--model-dir", "--dtype"}
    if unknown or len(argv) % 2:
        raise ValueError(f"llamacpp flags {target!r}: only --model-dir DIR and --dtype DTYPE")
    dtype = flags.get("--dtype", "float32")
    if dtype not in DTYPES:
        raise ValueError(f"llamacpp --dtype {dtype!r}: one of {', '.join(DTYPES)}")
    return Path(flags.get("--model-dir", str(DEMO_MODEL_DIR))), DTYPES[dtype]


def gguf_path(model_dir: Path, dtype: str, cache_dir: Path) -> Path:
    """Where the export of `model_dir` is cached: keyed by the folder and its weights'
    sizes and times, so a rebuilt checkpoint gets a fresh file."""
    key = hashlib.sha256(str(model_dir.resolve()).encode())
    for weights in sorted(model_dir.glob("*.safetensors")):
        stat = weights.stat()
        key.update(f"{weights.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return cache_dir / f"{model_dir.name}-{key.hexdigest()[:12]}-{dtype}.gguf"


class LlamaCppServer:
    """A `ServerLauncher`: exports the GGUF (once per checkpoint and dtype), then runs
    the server on a free port with `num_threads` threads."""

    def __init__(self, name: str, target: str, log_dir: Path, num_threads: int,
                 venv_dir: Path = VENV_DIR, context_size: int = DEFAULT_CONTEXT) -> None:
        self.name = name
        self.model_dir, self.dtype = parse_target(target)
        self.python = venv_dir / "bin" / "python"
        # Beside the results (bench-results/gguf/), shared by every run that benchmarks the model.
        self.gguf = gguf_path(self.model_dir, self.dtype, log_dir.parent / "gguf")
        self._log_dir = log_dir
        self._process = ServerProcess([], log_dir / f"server-{name}.log", num_threads, command=[
            str(self.python), str(APP_SCRIPT), "--model", str(self.gguf), "--host", "127.0.0.1",
            "--port", "{port}", "--n_threads", str(num_threads), "--n_threads_batch", str(num_threads),
            "--n_ctx", str(context_size), "--model_alias", self.model_dir.name,
            # By default a new request cuts the one streaming (it answers [DONE] early): requests must queue.
            "--interrupt_requests", "False"])

    @property
    def url(self) -> str:
        return self._process.base_url

    @property
    def pids(self) -> tuple[int, ...]:
        return ()  # our own child: inside this process tree

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "kind": "llamacpp", "url": self.url, "model_dir": str(self.model_dir),
                "gguf": str(self.gguf), "dtype": self.dtype, "argv": self._process.command,
                "log": str(self._process.log_path)}

    def start(self) -> None:
        if not (self.python.parents[1] / ".built").exists():
            raise FileNotFoundError(f"{self.python.parents[1]} not built: build the llama.cpp baseline with `make llama-cpp`")
        if not self.gguf.exists():
            self.export()
        self._process.__enter__()

    def export(self) -> None:
        self._log_dir.mkdir(parents=True, exist_ok=True)
        log = self._log_dir / f"gguf-export-{self.name}.log"
        with log.open("wb") as handle:
            done = subprocess.run([str(self.python), str(EXPORT_SCRIPT), str(self.model_dir), str(self.gguf),
                                   "--dtype", self.dtype], stdout=handle, stderr=subprocess.STDOUT, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"GGUF export failed (exit {done.returncode}); see {log}")

    def stop(self) -> None:
        self._process.stop()


def split_parallel(target: str) -> tuple[str, int]:
    """`--parallel N` out of a llama-server target; the rest as `parse_target` takes it."""
    argv = shlex.split(target)
    slots = DEFAULT_SLOTS
    if "--parallel" in argv:
        at = argv.index("--parallel")
        if at + 1 >= len(argv) or not argv[at + 1].isdigit() or int(argv[at + 1]) < 1:
            raise ValueError(f"llama-server flags {target!r}: --parallel takes a positive number")
        slots = int(argv[at + 1])
        del argv[at : at + 2]
    return shlex.join(argv), slots


class LlamaCppNativeServer(LlamaCppServer):
    """llama.cpp's C++ `llama-server` on the same GGUF, with `--parallel` slots."""

    def __init__(self, name: str, target: str, log_dir: Path, num_threads: int, venv_dir: Path = VENV_DIR) -> None:
        rest, self.slots = split_parallel(target)
        super().__init__(name, rest, log_dir, num_threads, venv_dir)
        self.binary = venv_dir / "bin" / "llama-server"
        self._process = ServerProcess([], log_dir / f"server-{name}.log", num_threads, command=[
            str(self.binary), "--model", str(self.gguf), "--host", "127.0.0.1", "--port", "{port}",
            "--threads", str(num_threads), "--threads-batch", str(num_threads),
            "--ctx-size", str(SLOT_CONTEXT * self.slots), "--parallel", str(self.slots),
            "--alias", self.model_dir.name, "--no-webui"])

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "kind": "llama-server", "slots": self.slots}

    def start(self) -> None:
        if not self.binary.exists():
            raise FileNotFoundError(f"{self.binary} not built: build it with `make llama-server`")
        super().start()
