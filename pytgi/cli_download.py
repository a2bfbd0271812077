"""`pytgi download MODEL_ID`: fetch what serving a Hub model needs (configs,
tokenizer, safetensors) into the Hugging Face cache, so that a later
`pytgi serve --model-id MODEL_ID` starts without the network (HF_HUB_OFFLINE=1).

TGI ships the same step as `text-generation-server download-weights`. Prints
the local snapshot folder on stdout; huggingface_hub draws the progress bars on
stderr. Never imports torch: it runs on a machine that only prepares a cache.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence

from pytgi import __version__, envs
from pytgi.cli import add_flag
from pytgi.config import ModelConfig
from pytgi.weights.hub import ALLOW_PATTERNS, resolve_model_dir

# `serve` flags that say where a download comes from and goes to.
DOWNLOAD_FLAGS = ("revision", "huggingface_hub_cache")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pytgi download",
        description="Download a Hub model's serving files into the Hugging Face cache "
        f"({', '.join(ALLOW_PATTERNS)}).",
    )
    parser.add_argument("--version", action="version", version=f"pytgi {__version__}")
    parser.add_argument("model_id", help="Hub repo id, e.g. HuggingFaceTB/SmolLM2-135M-Instruct.")
    group = parser.add_argument_group("Hub", "The same flags and environment variables as `pytgi serve`.")
    for field in dataclasses.fields(ModelConfig):
        if field.name in DOWNLOAD_FLAGS:
            add_flag(group, field)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        folder = resolve_model_dir(args.model_id, args.revision, args.huggingface_hub_cache, envs.hf_token())
    except (OSError, ValueError) as error:
        # huggingface_hub's errors: unknown or gated repo, offline cache miss, bad revision.
        print(f"error: cannot download {args.model_id}: {error}", file=sys.stderr)
        return 1
    print(folder)
    return 0
