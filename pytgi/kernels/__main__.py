"""`python -m pytgi.kernels`: build (or find cached) the CPU kernels and say which."""

from __future__ import annotations

import sys
import time

from pytgi.kernels import build_id, cpu_kernels, cpu_kernels_enabled


def main() -> int:
    if not cpu_kernels_enabled():
        print("CPU kernels disabled (PYTGI_CPU_KERNELS=0)")
        return 0
    start = time.perf_counter()
    module = cpu_kernels()
    elapsed = time.perf_counter() - start
    if module is None:
        print("CPU kernels could not be built; pytgi uses the torch path", file=sys.stderr)
        return 1
    print(f"CPU kernels ready (build {build_id()}, {elapsed:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
