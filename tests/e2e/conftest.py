import pytest
from live_server import LiveServer


@pytest.fixture(scope="session")
def demo_server(tmp_path_factory):
    """The real server on the bundled demo model, shared by the e2e tests."""
    log = tmp_path_factory.mktemp("server") / "server.log"
    server = LiveServer(["--max-batch-total-tokens", "32768", "--max-concurrent-requests", "64"], log)
    try:
        server.wait_healthy()
    except Exception:
        server.stop()
        print(log.read_text())
        raise
    yield server
    assert server.stop() == 0, log.read_text()[-5000:]
