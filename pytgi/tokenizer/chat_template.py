"""Chat templates: find a model's Jinja template, compile it once in a sandbox, render
conversations with TGI's variables and a per-render time and size budget.

Templates come from model repositories, so they are untrusted code: they run in jinja2's
immutable sandbox, and every loop, call, attribute access and operator checks a deadline, so a
template whose cost explodes with the input ends with `ChatTemplateError` instead of holding a
worker thread. The environment matches what transformers gives templates (trim_blocks,
lstrip_blocks, loopcontrols, a non-escaping `tojson`, `raise_exception`, `strftime_now`), so
prompts equal `apply_chat_template`'s.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from jinja2 import TemplateError, TemplateSyntaxError, meta, nodes
from jinja2.ext import Extension, loopcontrols
from jinja2.parser import Parser
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from pytgi.errors import ChatTemplateError, ConfigError

DEFAULT_TIMEOUT_S = 1.0
DEFAULT_MAX_OUTPUT_CHARS = 4 * 1024 * 1024
# Exponent results above this many bits take long, uninterruptible C time to compute.
_MAX_POWER_BITS = 65_536
# Filters whose int arguments are output widths.
_WIDTH_FILTERS = frozenset({"center", "indent"})


@dataclass(slots=True)
class _Budget:
    """What one render may still spend; lives in a thread-local for the render's duration."""

    deadline: float
    timeout_s: float
    max_chars: int

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise ChatTemplateError(f"chat template rendering took longer than {self.timeout_s} s")

    def check_size(self, value: object) -> None:
        if isinstance(value, (str, list, tuple)) and len(value) > self.max_chars:
            raise ChatTemplateError(f"chat template built a value longer than {self.max_chars} items")


class _RaisedByTemplate(TemplateError):
    """`raise_exception(msg)` from the template; its message is shown to the user as is."""


def _raise_exception(message: str) -> None:
    raise _RaisedByTemplate(message)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | str | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    # jinja2's own filter HTML-escapes <, >, & and ' (bad for prompts) and takes only `indent`.
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


class _TemplateHooks(Extension):
    """Drops `{% generation %}` tags (they only mark assistant spans for training masks) and
    offers the loop guard that the compiled template calls around every `for` iterable."""

    tags = {"generation"}

    def parse(self, parser: Parser) -> nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        # Parsing the tags (rather than deleting their text) keeps their whitespace control;
        # a scope keeps `set` inside the block local, as transformers' macro-based tag does.
        return nodes.Scope(body, lineno=lineno)

    def guard_loop(self, iterable: Iterable[Any]) -> Iterator[Any]:
        environment = cast(_BudgetedSandbox, self.environment)
        for item in iterable:
            environment.check_time()
            yield item


class _BudgetedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox plus budget checks in every hook jinja2 routes through it."""

    # Intercepted so they can be checked before Python builds a huge string, list or number.
    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def __init__(self) -> None:
        super().__init__(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols, _TemplateHooks])
        self._local = threading.local()
        self.filters["tojson"] = _tojson
        self.filters = {name: self._budgeted(name, function) for name, function in self.filters.items()}
        self.globals["raise_exception"] = _raise_exception
        self.globals["strftime_now"] = _strftime_now

    def budget(self) -> _Budget | None:
        budget: _Budget | None = getattr(self._local, "budget", None)
        return budget

    def set_budget(self, budget: _Budget | None) -> None:
        self._local.budget = budget

    def check_time(self) -> None:
        budget = self.budget()
        if budget is not None:
            budget.check_time()

    def _check_call(self, args: Sequence[Any], kwargs: Mapping[str, Any], sized: bool) -> _Budget | None:
        budget = self.budget()
        if budget is None:
            return None
        budget.check_time()
        # Widths (str.center, str.ljust, the indent filter, ...) allocate before returning.
        for value in (*args, *kwargs.values()) if sized else ():
            if isinstance(value, int) and abs(value) > budget.max_chars:
                raise ChatTemplateError(f"chat template asked for a width over {budget.max_chars}")
        return budget

    def _budgeted(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        sized = name in _WIDTH_FILTERS

        # functools.wraps copies __dict__, so jinja2's pass_context/pass_eval_context marks survive.
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            budget = self._check_call(args, kwargs, sized)
            result = function(*args, **kwargs)
            if budget is not None:
                budget.check_size(result)
            return result

        return wrapper

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        budget = self._check_call(args, kwargs, isinstance(getattr(obj, "__self__", None), str))
        result = super().call(context, obj, *args, **kwargs)
        if budget is not None:
            budget.check_size(result)
        return result

    def getattr(self, obj: Any, attribute: str) -> Any:
        self.check_time()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        self.check_time()
        return super().getitem(obj, argument)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        budget = self.budget()
        if budget is not None:
            budget.check_time()
            _check_binop_cost(operator, left, right, budget.max_chars)
        result = super().call_binop(context, operator, left, right)
        if budget is not None:
            budget.check_size(result)
        return result


def _check_binop_cost(operator: str, left: Any, right: Any, max_chars: int) -> None:
    """Refuse `seq * n` and `a ** b` whose result would be too big to build."""
    if operator == "*":
        for sequence, count in ((left, right), (right, left)):
            repeats = isinstance(sequence, (str, list, tuple)) and isinstance(count, int)
            if repeats and len(sequence) * count > max_chars:
                raise ChatTemplateError(f"chat template built a value longer than {max_chars} items")
    both_ints = isinstance(left, int) and isinstance(right, int)
    if operator == "**" and both_ints and abs(left) > 1 and right * abs(left).bit_length() > _MAX_POWER_BITS:
        raise ChatTemplateError("chat template computed a number too large")


class ChatTemplate:
    """A compiled chat template. Built once at start (a broken template raises ConfigError
    then); `render` is thread-safe and raises ChatTemplateError for any failure while
    rendering, with the template's own message."""

    def __init__(
        self,
        source: str,
        *,
        bos_token: str | None = None,
        eos_token: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
    ) -> None:
        if timeout_s <= 0 or max_output_chars <= 0:
            raise ConfigError(f"chat template budget must be positive: {timeout_s=}, {max_output_chars=}")
        self.source = source
        self.bos_token = bos_token
        self.eos_token = eos_token
        self.timeout_s = timeout_s
        self.max_output_chars = max_output_chars
        self._env = _BudgetedSandbox()
        try:
            tree = self._env.parse(source)
            self.uses_tools = "tools" in meta.find_undeclared_variables(tree)
            _guard_loops(tree)
            self._template = self._env.from_string(tree)
        except TemplateSyntaxError as error:
            raise ConfigError(
                f"chat template does not compile: line {error.lineno}: {error.message}"
            ) from error

    @classmethod
    def from_model(
        cls,
        model_dir: Path,
        tokenizer_config: Mapping[str, Any],
        *,
        bos_token: str | None = None,
        eos_token: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> ChatTemplate | None:
        """The model's template, or None when it has none (see `find_template_source`)."""
        source = find_template_source(model_dir, tokenizer_config)
        if source is None:
            return None
        return cls(source, bos_token=bos_token, eos_token=eos_token, timeout_s=timeout_s)

    def render(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        add_generation_prompt: bool = True,
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> str:
        """The prompt for `messages`. When the last message is the assistant's, the prompt stops
        right after its content (right-trimmed), so the model continues that message."""
        last = messages[-1] if messages else None
        continue_final = last is not None and last.get("role") == "assistant"
        variables: dict[str, Any] = {
            "messages": list(messages),
            "add_generation_prompt": add_generation_prompt and not continue_final,
            # None rather than absent, as transformers and TGI pass it: `tools is not none` works.
            "tools": None if tools is None else list(tools),
        }
        # Absent rather than None (which jinja2 would print as "None"), as transformers does.
        for name, token in (("bos_token", self.bos_token), ("eos_token", self.eos_token)):
            if token is not None:
                variables[name] = token
        text = self._render_bounded(variables)
        if continue_final and last is not None and isinstance(last.get("content"), str):
            text = _cut_after(text, last["content"])
        return text

    def _render_bounded(self, variables: dict[str, Any]) -> str:
        budget = _Budget(time.monotonic() + self.timeout_s, self.timeout_s, self.max_output_chars)
        self._env.set_budget(budget)
        pieces: list[str] = []
        num_chars = 0
        try:
            for piece in self._template.generate(variables):
                num_chars += len(piece)
                if num_chars > self.max_output_chars:
                    raise ChatTemplateError(
                        f"chat template output is longer than {self.max_output_chars} chars"
                    )
                budget.check_time()
                pieces.append(piece)
        except ChatTemplateError:
            raise
        except RecursionError as error:
            raise ChatTemplateError("chat template recursion is too deep") from error
        # Whatever the template does wrong (undefined names, sandbox refusals, type errors)
        # is the template's failure on this input, reported with its own message.
        except Exception as error:
            raise ChatTemplateError(str(error) or type(error).__name__) from error
        finally:
            self._env.set_budget(None)
        return "".join(pieces)


def _guard_loops(tree: nodes.Template) -> None:
    """Wrap every `for` iterable in `_TemplateHooks.guard_loop`: loops run no other hook per
    iteration, so without it an empty nested loop could spin past the deadline."""
    guard = nodes.ExtensionAttribute(_TemplateHooks.identifier, "guard_loop")
    for loop in tree.find_all(nodes.For):
        loop.iter = nodes.Call(guard, [loop.iter], [], None, None, lineno=loop.lineno)


def _cut_after(text: str, content: str) -> str:
    """TGI's "continue final message": keep the text up to the content's last occurrence."""
    index = text.rfind(content)
    if index < 0:
        return text
    return text[: index + len(content)].rstrip()


def find_template_source(model_dir: Path, tokenizer_config: Mapping[str, Any]) -> str | None:
    """The template text, by precedence: `chat_template.json` (key "chat_template"), then
    `chat_template.jinja` (what transformers >= 4.43 writes on save), then the tokenizer
    config's "chat_template" (a string, or a list of {"name", "template"} using "default")."""
    json_file = model_dir / "chat_template.json"
    if json_file.is_file():
        try:
            data = json.loads(json_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ConfigError(f"cannot read {json_file}: {error}") from error
        if isinstance(data, dict) and data.get("chat_template") is not None:
            return _template_from_value(data["chat_template"], str(json_file))
    jinja_file = model_dir / "chat_template.jinja"
    if jinja_file.is_file():
        return jinja_file.read_text(encoding="utf-8")
    return _template_from_value(tokenizer_config.get("chat_template"), "tokenizer config")


def _template_from_value(value: object, origin: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list):
        for entry in value:
            if isinstance(entry, Mapping) and entry.get("name") == "default":
                template = entry.get("template")
                if isinstance(template, str):
                    return template
        # TGI serves no template when a named list has no "default" entry.
        return None
    raise ConfigError(
        f"chat_template in {origin} must be a string or a list of named templates, got {value!r}"
    )
