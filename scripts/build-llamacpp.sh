#!/usr/bin/env bash
# Builds the llama.cpp baseline for `pytgi bench` into its own venv (.venv-llamacpp):
# llama-cpp-python[server] compiled from its source distribution (the vendored llama.cpp,
# CPU only, tuned for this CPU), plus the `gguf` package the GGUF export needs.
# Kept apart from .venv so the baseline's dependencies never touch pytgi's.
# About 8 minutes on 2 cores.
set -euo pipefail

VENV="${LLAMACPP_VENV:-.venv-llamacpp}"
PYTHON="${PYTHON:-python3}"
VERSION="${LLAMACPP_VERSION:-0.3.36}"

# A compiler and cmake: apt when there is no compiler (we may be root in a container);
# cmake from PyPI's wheel when the system has none.
if ! command -v g++ >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -q && apt-get install -y -q build-essential
    else
        echo "build-llamacpp: no C++ compiler (install build-essential)" >&2
        exit 1
    fi
fi

"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
if ! command -v cmake >/dev/null 2>&1; then
    "$VENV/bin/python" -m pip install -q cmake
    export PATH="$PWD/$VENV/bin:$PATH"
fi

# CPU only and -march=native: the baseline should be as fast as llama.cpp gets here.
# The web UI and tools are not built (the UI would be downloaded).
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=ON -DGGML_CUDA=OFF -DGGML_BLAS=OFF -DGGML_VULKAN=OFF -DGGML_METAL=OFF -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF}"
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"

"$VENV/bin/python" -m pip install --no-binary llama-cpp-python \
    "llama-cpp-python[server]==$VERSION" "gguf==${GGUF_VERSION:-0.19.0}"
"$VENV/bin/python" -c "import llama_cpp, gguf; print('llama-cpp-python', llama_cpp.__version__)"
touch "$VENV/.built"  # what pytgi checks: the venv alone may be a half-finished build
