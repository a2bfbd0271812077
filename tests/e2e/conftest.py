import pytest
from live_server import LiveServer


@pytest.fixture(scope="session")
def demo_server(tmp_path_factory):
    """The real server on the bundled demo model, shared by the e2e tests."""
    log = tmp_path_factory.mktemp("server") / "server.log"
    # float32: greedy tokens must not depend on the batch (bf16 rounding would make them),
    # and the server's start-up timing probe would otherwise pick the dtype by machine load.
    server = LiveServer(
        ["--max-batch-total-tokens", "32768", "--max-concurrent-requests", "64", "--dtype", "float32"], log
    )
    try:
        server.wait_healthy()
    except Exception:
        server.stop()
        print(log.read_text())
        raise
    yield server
    assert server.stop() == 0, log.read_text()[-5000:]
