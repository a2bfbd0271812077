"""A server process's RSS, open file descriptors and threads, read from /proc (Linux)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Sample:
    t_s: float
    rss_mb: float
    num_fds: int
    num_threads: int


class ProcessProbe:
    def __init__(self, pid: int) -> None:
        self.proc = Path("/proc") / str(pid)

    def sample(self, t_s: float) -> Sample:
        status = dict(
            line.split(":", 1) for line in (self.proc / "status").read_text().splitlines() if ":" in line
        )
        rss_kb = float(status["VmRSS"].split()[0])
        return Sample(
            t_s=round(t_s, 1),
            rss_mb=round(rss_kb / 1024, 2),
            num_fds=len(os.listdir(self.proc / "fd")),
            num_threads=int(status["Threads"]),
        )


def slope_mb_per_min(samples: list[Sample]) -> float | None:
    """Least-squares slope of RSS over time; None with fewer than 3 samples."""
    if len(samples) < 3:
        return None
    n = len(samples)
    mean_t = sum(s.t_s for s in samples) / n
    mean_r = sum(s.rss_mb for s in samples) / n
    var = sum((s.t_s - mean_t) ** 2 for s in samples)
    if var == 0:
        return None
    cov = sum((s.t_s - mean_t) * (s.rss_mb - mean_r) for s in samples)
    return round(cov / var * 60.0, 3)
