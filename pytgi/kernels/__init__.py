"""Small compiled CPU kernels, built on first use with torch's C++ extension
loader and cached under TORCH_EXTENSIONS_DIR (~/.cache/torch_extensions).

`make install` builds them ahead of time (`python -m pytgi.kernels`) so no
server start pays the ~40 s compile. Where they cannot be built (no compiler,
or PYTGI_CPU_KERNELS=0) callers fall back to the plain torch path, which the
tests keep equivalent.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from functools import cache
from pathlib import Path
from types import ModuleType

from pytgi import envs

logger = logging.getLogger(__name__)

SOURCES = tuple(
    Path(__file__).with_name(name)
    for name in ("paged_decode.cpp", "small_batch_linear.cpp", "row_ops.cpp", "layer_stack.cpp", "prefill_attention.cpp")
)
HEADERS = (Path(__file__).with_name("bf16.h"),)
# -march=native: the kernel is built on the machine that runs it. The fast-math
# subset lets the compiler vectorize float reductions, and keeps inf/NaN semantics.
CFLAGS = (
    "-O3",
    "-march=native",
    "-fno-math-errno",
    "-fno-trapping-math",
    "-fassociative-math",
    "-fno-signed-zeros",
    "-fopenmp",
)
# libgomp's soname matches the copy torch ships, so the kernel joins torch's OpenMP pool.
LDFLAGS = ("-fopenmp",)

_lock = threading.Lock()


def _switched_on(name: str) -> bool:
    """An on/off environment switch that is on unless set to 0/false/no/off."""
    return (envs.get(name) or "1").lower() not in ("0", "false", "no", "off")


def cpu_kernels_enabled() -> bool:
    return _switched_on("PYTGI_CPU_KERNELS")


def fused_layers_enabled() -> bool:
    """Whether Llama-family decode steps run as one compiled call
    (models/fused_layers.py); off with PYTGI_FUSED_LAYERS=0, for A/B runs."""
    return _switched_on("PYTGI_FUSED_LAYERS")


def packed_weights_enabled() -> bool:
    """Whether bf16 linear layers use oneDNN-prepacked weights (layers/linear.py);
    off with PYTGI_PACKED_WEIGHTS=0, for A/B runs."""
    return _switched_on("PYTGI_PACKED_WEIGHTS")


def prefill_kernel_enabled() -> bool:
    """Whether bf16 prompt chunks take pytgi's prefill attention kernel
    (prefill_attention.cpp) rather than torch's SDPA; off with
    PYTGI_PREFILL_KERNEL=0, for A/B runs."""
    return _switched_on("PYTGI_PREFILL_KERNEL")


def build_id() -> str:
    """Changes with the source, the flags and the CPU (the build is -march=native)."""
    digest = hashlib.sha256(b"".join(source.read_bytes() for source in SOURCES + HEADERS))
    digest.update(" ".join(CFLAGS + LDFLAGS).encode())
    digest.update(_cpu_signature().encode())
    return digest.hexdigest()[:12]


def _cpu_signature() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


@cache
def _load() -> ModuleType | None:
    from torch.utils.cpp_extension import load

    try:
        return load(
            name=f"pytgi_cpu_kernels_{build_id()}",
            sources=[str(source) for source in SOURCES],
            extra_cflags=list(CFLAGS),
            extra_ldflags=list(LDFLAGS),
            verbose=False,
        )
    except Exception as error:  # no compiler, no ninja, a failed build: torch path instead
        logger.warning("CPU kernels unavailable, using the torch path: %s", error)
        return None


_loaded: ModuleType | None = None
_tried = False  # whether _load ran: a failed build is not retried on every layer call


def cpu_kernels() -> ModuleType | None:
    """The compiled module, or None where it cannot be used. Thread-safe; the
    first call may compile for ~40 s. Called per layer, so later calls take no lock."""
    global _loaded, _tried
    if _tried or not cpu_kernels_enabled():
        return _loaded if _tried else None
    with _lock:
        _loaded, _tried = _load(), True
        return _loaded
