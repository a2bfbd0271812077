"""Keep torch's CPU work on one thread per process.

torch's CPU kernels run on OpenMP, and libgomp keeps a pool of worker threads
for every thread that has run a parallel region. Once a process holds more
OpenMP threads than CPUs (model loading on the main thread, steps on the engine
thread: two pools on a 2-core machine), libgomp cuts each idle worker's busy
wait from 300,000 spins to 100, so between two small ops every worker falls
asleep and must be woken by a futex call. A decode step runs hundreds of small
parallel regions; on this project's 2-core machine that cost about 9 ms per step
at batch 1 (docs/profile.md). A thread's pool goes when the thread ends, so
work done before the engine loop starts runs on a thread that then exits.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def run_on_passing_thread(work: Callable[[], T], name: str = "pytgi-load") -> T:
    """`work()` on a new thread that ends when it returns; its result, or its
    exception re-raised here."""
    outcome: list[T] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            outcome.append(work())
        except BaseException as error:  # re-raised on the caller's thread
            failure.append(error)

    thread = threading.Thread(target=target, name=name)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return outcome[0]
