import pytest
from live_server import LiveServer


@pytest.fixture(scope="session")
def demo_server(tmp_path_factory):
    """The real server on the bundled demo model, which every example talks to."""
    log = tmp_path_factory.mktemp("examples-server") / "server.log"
    server = LiveServer(["--max-batch-total-tokens", "16384"], log)
    try:
        server.wait_healthy()
    except Exception:
        server.stop()
        print(log.read_text())
        raise
    yield server
    assert server.stop() == 0, log.read_text()[-5000:]
