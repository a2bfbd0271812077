"""Typed errors. They carry no HTTP codes: server/errors.py maps them once."""

from __future__ import annotations


class PytgiError(Exception):
    """Base of every error pytgi raises on purpose."""


class ValidationError(PytgiError):
    """The request is invalid. The message is TGI's template, without the prefix."""


class OverloadedError(PytgiError):
    """No concurrency slot is free."""


class ShuttingDownError(PytgiError):
    """The server is draining before exit and takes no new work."""


class GenerationError(PytgiError):
    """The model step failed for this request."""


class IncompleteGenerationError(PytgiError):
    """The engine stopped a request without a final token."""


class ChatTemplateError(PytgiError):
    """The chat template failed on this request; the message is the template's own."""


class ToolError(PytgiError):
    """Tools were asked for in a way that cannot work, or the model's tool call did not parse."""


class ConfigError(PytgiError):
    """Invalid start-up configuration. The message names the field and the value."""


class UnsupportedArchitectureError(ConfigError):
    """The model's architecture is not one pytgi implements."""
