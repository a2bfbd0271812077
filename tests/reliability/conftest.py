from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from live_server import LiveServer, running_server
from reliability_support import reference_tokens

# Small limits, so that the token-count refusals need only short prompts.
MAX_INPUT_TOKENS = 400
MAX_TOTAL_TOKENS = 512


@dataclass(frozen=True)
class ServedDemo:
    """The real `pytgi serve` on the demo model, and its greedy answer to the reference request."""

    server: LiveServer
    reference: tuple[int, ...]

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="session")
def served_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedDemo]:
    log = tmp_path_factory.mktemp("reliability") / "server.log"
    args = [
        "--max-input-tokens", str(MAX_INPUT_TOKENS),
        "--max-total-tokens", str(MAX_TOTAL_TOKENS),
        "--max-batch-total-tokens", "4096",
        "--max-concurrent-requests", "32",
    ]
    with running_server(args, log) as server:
        yield ServedDemo(server, reference_tokens(server.url))
