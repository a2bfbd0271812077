import threading

import pytest

from pytgi.engine.threads import run_on_passing_thread


def test_returns_the_result_from_a_thread_that_has_ended():
    seen: list[threading.Thread] = []

    def work():
        seen.append(threading.current_thread())
        return 42

    assert run_on_passing_thread(work) == 42
    assert seen[0] is not threading.main_thread()
    assert not seen[0].is_alive()


def test_reraises_the_work_s_exception_on_the_caller():
    def work():
        raise ValueError("bad config")

    with pytest.raises(ValueError, match="bad config"):
        run_on_passing_thread(work)
