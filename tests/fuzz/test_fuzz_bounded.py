"""A bounded schemathesis pass inside `make test` (`make fuzz` runs the long one)."""

from __future__ import annotations

import fuzz_server


def test_schemathesis_finds_no_failure_on_any_route() -> None:
    # Coverage and fuzzing phases over all 11 operations, 5 examples each per phase:
    # about a thousand requests (the coverage phase adds its own boundary cases).
    assert fuzz_server.main(["--max-examples", "5"]) == 0
