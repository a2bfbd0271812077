#!/usr/bin/env bash
# Builds llama.cpp's own C++ server (llama-server: parallel slots, continuous batching)
# from the llama.cpp that the llama-cpp-python source distribution of `make llama-cpp`
# vendors, into .venv-llamacpp/bin/llama-server (static: no shared libraries to find).
# The Python server of that package runs one request at a time; this one is the
# baseline for concurrent streams. About 6 minutes on 2 cores.
set -euo pipefail

VENV="${LLAMACPP_VENV:-.venv-llamacpp}"
VERSION="${LLAMACPP_VERSION:-0.3.36}"
SRC="$VENV/src"

if [ ! -f "$VENV/.built" ]; then
    echo "build-llama-server: $VENV is not built; run \`make llama-cpp\` first" >&2
    exit 1
fi
CMAKE="$(command -v cmake || echo "$VENV/bin/cmake")"
mkdir -p "$SRC"
if [ ! -d "$SRC/llama_cpp_python-$VERSION" ]; then
    "$VENV/bin/python" -m pip download -q --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d "$SRC"
    tar -xzf "$SRC/llama_cpp_python-$VERSION.tar.gz" -C "$SRC"
fi
"$CMAKE" -S "$SRC/llama_cpp_python-$VERSION/vendor/llama.cpp" -B "$SRC/build" \
    -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=ON -DGGML_CUDA=OFF \
    -DGGML_BLAS=OFF -DGGML_VULKAN=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON
"$CMAKE" --build "$SRC/build" --target llama-server -j "$(nproc)"
cp "$SRC/build/bin/llama-server" "$VENV/bin/llama-server"
"$VENV/bin/llama-server" --version
