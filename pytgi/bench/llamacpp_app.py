"""llama-cpp-python's OpenAI server (`python -m llama_cpp.server`) plus the `GET /health`
that `pytgi bench` waits on (the package's server has none).

Runs inside `.venv-llamacpp`, by path (it imports nothing from pytgi):
`python pytgi/bench/llamacpp_app.py --model X.gguf --port P --n_threads 2 --n_ctx 4096`.
Flags are the package's `ModelSettings`/`ServerSettings` fields, as for its own CLI.
"""

from __future__ import annotations

import argparse

import uvicorn  # type: ignore[import-not-found,unused-ignore]
from llama_cpp.server.app import create_app  # type: ignore[import-not-found,unused-ignore]
from llama_cpp.server.cli import add_args_from_model, parse_model_from_args  # type: ignore[import-not-found,unused-ignore]
from llama_cpp.server.settings import (  # type: ignore[import-not-found,unused-ignore]
    ModelSettings,
    ServerSettings,
    Settings,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_args_from_model(parser, Settings)  # both groups' fields, as the package's own CLI
    args = parser.parse_args()
    server_settings = parse_model_from_args(ServerSettings, args)
    app = create_app(server_settings=server_settings,
                     model_settings=[parse_model_from_args(ModelSettings, args)])
    # The model is loaded by create_app, so answering here means ready to serve.
    app.add_api_route("/health", lambda: {"status": "ok"}, methods=["GET"])
    uvicorn.run(app, host=server_settings.host, port=server_settings.port)


if __name__ == "__main__":
    main()
