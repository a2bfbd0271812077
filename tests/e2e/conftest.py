import pytest
from live_server import running_server


@pytest.fixture(scope="session")
def demo_server(tmp_path_factory):
    """The real server on the bundled demo model, shared by the e2e tests."""
    log = tmp_path_factory.mktemp("server") / "server.log"
    # float32: greedy tokens must not depend on the batch (bf16 rounding would make them),
    # and the server's start-up timing probe would otherwise pick the dtype by machine load.
    args = ["--max-batch-total-tokens", "32768", "--max-concurrent-requests", "64", "--dtype", "float32"]
    with running_server(args, log) as server:
        yield server
