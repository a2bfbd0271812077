"""Fuzz the live server with schemathesis, from its own /api-doc/openapi.json.

Starts `pytgi serve` on the demo model (a small token budget keeps random
`max_new_tokens` cheap), runs schemathesis on every operation, prints its
summary and exits with its status: any 5xx, any answer that breaks the
documented schema (status code, content type, body) fails the run.

    python tests/fuzz/fuzz_server.py --max-examples 100     # `make fuzz`
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from live_server import LiveServer  # noqa: E402

CONFIG_FILE = Path(__file__).with_name("schemathesis.toml")
SERVER_ARGS = ("--max-total-tokens", "256", "--max-input-tokens", "192", "--max-batch-total-tokens", "16384")

def run_schemathesis(url: str, max_examples: int, seed: int) -> int:
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(CONFIG_FILE),
        "--no-color",
        "run",
        f"{url}/api-doc/openapi.json",
        "--max-examples",
        str(max_examples),
        "--seed",
        str(seed),
        # One worker: hypothesis' source inspection is not thread-safe on Python 3.11.
        "--workers",
        "1",
        "--continue-on-failure",
        "--request-timeout",
        "60",
    ]
    return subprocess.call(command)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-examples", type=int, default=100, help="examples per operation and phase")
    parser.add_argument("--seed", type=int, default=0, help="schemathesis seed (runs are reproducible)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "server.log"
        server = LiveServer(SERVER_ARGS, log)
        try:
            server.wait_healthy()
            status = run_schemathesis(server.url, args.max_examples, args.seed)
        finally:
            exit_code = server.stop()
        if exit_code != 0 or status != 0:
            print(log.read_text()[-5000:])
        if exit_code != 0:
            print(f"server exited with {exit_code}")
            return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
