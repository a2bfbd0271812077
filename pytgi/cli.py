"""`pytgi serve` (alias `text-generation-launcher`): flags are generated from
the config dataclasses, so names, defaults and help never drift. Each flag
also reads its upper-case environment variable, as TGI's launcher does; an
explicit flag wins over the environment."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Sequence
from typing import Any

from pytgi import __version__, envs, logs
from pytgi.config import SECTIONS, EngineConfig
from pytgi.errors import ConfigError

logger = logging.getLogger("pytgi")

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


def parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in TRUE_WORDS:
        return True
    if lowered in FALSE_WORDS:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def base_type(annotation: str) -> type:
    """'int | None' -> int, 'tuple[str, ...]' -> tuple. Config annotations are strings (postponed)."""
    name = annotation.replace(" | None", "").strip()
    if name.startswith("tuple["):
        return tuple
    if name.startswith("Literal") or name == "DType":
        return str
    return {"int": int, "float": float, "str": str, "bool": bool}[name]


class AppendOverDefault(argparse.Action):
    """A repeatable flag whose first use replaces the default (from the
    environment) instead of appending to it."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        current = getattr(namespace, self.dest)
        items = current if isinstance(current, list) else []
        items.append(values)
        setattr(namespace, self.dest, items)


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    for section_name, section in SECTIONS:
        group = parser.add_argument_group(section_name)
        for field in dataclasses.fields(section):
            add_flag(group, field)


def add_flag(group: argparse._ArgumentGroup, field: dataclasses.Field[Any]) -> None:
    kind = base_type(str(field.type))
    meta = field.metadata
    names = ["--" + field.name.replace("_", "-")]
    if "short" in meta:
        names.insert(0, str(meta["short"]))
    env_name = field.name.upper()
    env_value = envs.get(env_name)
    default_text = "" if field.default is None else f" (default: {field.default})"
    help_text = f"{meta.get('help', '')}{default_text} [env: {env_name}]"
    if kind is tuple:
        # Repeatable flag; the environment variable holds a comma-separated list.
        default = tuple(v.strip() for v in env_value.split(",") if v.strip()) if env_value else field.default
        group.add_argument(*names, dest=field.name, action=AppendOverDefault, default=default, help=help_text)
        return
    if kind is bool:
        default = parse_bool(env_value) if env_value is not None else field.default
        group.add_argument(*names, dest=field.name, type=parse_bool, nargs="?", const=True,
                           default=default, metavar="BOOL", help=help_text)
        return
    default = kind(env_value) if env_value is not None else field.default
    group.add_argument(*names, dest=field.name, type=kind, default=default, help=help_text,
                       choices=meta.get("choices"))


def config_from_args(args: argparse.Namespace) -> EngineConfig:
    sections = {
        name: section(**{f.name: arg_value(args, f.name) for f in dataclasses.fields(section)})
        for name, section in SECTIONS
    }
    return EngineConfig(**sections)


def arg_value(args: argparse.Namespace, name: str) -> object:
    value = getattr(args, name)
    return tuple(value) if isinstance(value, list) else value


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="pytgi: Text Generation Inference in Python.")
    parser.add_argument("--version", action="version", version=f"pytgi {__version__}")
    return parser


def log_compatibility_flags(config: EngineConfig) -> None:
    """TGI flags that pytgi accepts but that change nothing here say so at start."""
    defaults = EngineConfig()
    if config.scheduler.waiting_served_ratio != defaults.scheduler.waiting_served_ratio:
        logger.warning("--waiting-served-ratio has no effect: pytgi always batches with chunked prefill")
    if config.scheduler.max_waiting_tokens != defaults.scheduler.max_waiting_tokens:
        logger.warning("--max-waiting-tokens has no effect: pytgi always batches with chunked prefill")


def serve(config: EngineConfig) -> None:
    from pytgi.engine.async_engine import AsyncEngine
    from pytgi.engine.builder import build_engine
    from pytgi.server.app import build_app
    from pytgi.server.launch import serve as serve_http
    from pytgi.server.tracing import start_tracing

    log_compatibility_flags(config)
    built = build_engine(config)
    engine = AsyncEngine(
        built.engine,
        built.input_processor,
        built.tokenizer,
        built.model_info,
        built.limits,
        num_validation_workers=config.server.validation_workers,
    )
    engine.start()
    host, port = config.server.hostname, config.server.port
    logger.info("serving %s on http://%s:%d (API docs at /docs)", built.model_info.model_id, host, port)
    try:
        server = config.server
        app = build_app(
            engine,
            version=__version__,
            compute_type=envs.compute_type(),
            payload_limit=server.payload_limit,
            api_key=server.api_key,
            cors_allow_origins=server.cors_allow_origin,
            validation_workers=server.validation_workers,
            tracing=start_tracing(server.otlp_endpoint, server.otlp_service_name),
        )
        serve_http(app, host, port, graceful_timeout_s=server.graceful_termination_timeout)
    finally:
        engine.shutdown()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = "pytgi"
    if argv and argv[0] == "serve":
        argv = argv[1:]
        prog = "pytgi serve"
    parser = build_parser(prog)
    add_config_flags(parser)
    args = parser.parse_args(argv)
    logs.configure(json_output=args.json_output)
    try:
        config = config_from_args(args)
        if config.server.env:
            for key, value in logs.runtime_report().items():
                logger.info("env %s: %s", key, value)
        serve(config)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
