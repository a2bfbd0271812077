import pytest
from live_server import running_server


@pytest.fixture(scope="session")
def demo_server(tmp_path_factory):
    """The real server on the bundled demo model, which every example talks to."""
    log = tmp_path_factory.mktemp("examples-server") / "server.log"
    with running_server(["--max-batch-total-tokens", "16384"], log) as server:
        yield server
