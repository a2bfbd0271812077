"""Documents from the docstrings of the standard library: every importable public
module (minus the ones with side effects on import), its public classes and
functions, and the methods of those classes."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import io
import os
import pkgutil
import re
import sys
import warnings
from collections.abc import Iterator
from types import ModuleType

from pytgi.demo.documents import MIN_DOCSTRING_CHARS, Document, DocumentKind, split_paragraphs

# Modules that do something when imported (open a browser, print, need a display) or that drag
# in large non-documentation trees (test suites, lib2to3's grammar cache writes, setuptools'
# distutils shim, which would make the corpus depend on the installed setuptools).
EXCLUDED_MODULES = frozenset(
    {
        "antigravity",
        "this",
        "idlelib",
        "tkinter",
        "turtle",
        "turtledemo",
        "test",
        "lib2to3",
        "distutils",
        "pydoc_data",
    }
)
# A module path containing one of these segments is a test suite or a script entry point.
EXCLUDED_SEGMENTS = frozenset({"test", "tests", "idle_test", "__main__"})
# Packages whose submodules are generated boilerplate (hundreds of codec tables).
NO_SUBMODULES = frozenset({"encodings"})




def stdlib_module_names() -> list[str]:
    """Public stdlib modules and their submodules, found without importing them, sorted."""
    names: list[str] = []
    for top in sorted(sys.stdlib_module_names):
        if _is_excluded(top):
            continue
        names.append(top)
        spec = importlib.util.find_spec(top)
        if top not in NO_SUBMODULES and spec is not None and spec.submodule_search_locations:
            names.extend(_submodule_names(top, list(spec.submodule_search_locations)))
    return sorted(names)


def _is_excluded(name: str) -> bool:
    segments = name.split(".")
    return (
        segments[0] in EXCLUDED_MODULES
        or any(segment.startswith("_") for segment in segments)
        or any(segment in EXCLUDED_SEGMENTS for segment in segments)
    )


def _submodule_names(package: str, search_paths: list[str]) -> Iterator[str]:
    for info in pkgutil.iter_modules(search_paths):
        name = f"{package}.{info.name}"
        if _is_excluded(name):
            continue
        yield name
        if info.ispkg:
            finder_path = getattr(info.module_finder, "path", None)
            if isinstance(finder_path, str):
                yield from _submodule_names(name, [os.path.join(finder_path, info.name)])


def import_quietly(name: str) -> ModuleType | None:
    """Import a module with its output and warnings swallowed; None if it cannot be imported here."""
    with (
        warnings.catch_warnings(),
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
    ):
        warnings.simplefilter("ignore")
        try:
            return importlib.import_module(name)
        except (Exception, SystemExit):  # platform-only modules, missing C extensions
            return None


def stdlib_documents() -> list[Document]:
    seen_ids: set[int] = set()  # objects re-exported by several modules are documented once
    documents: list[Document] = []
    for name in stdlib_module_names():
        module = import_quietly(name)
        if module is not None:
            documents.extend(module_documents(module, seen_ids))
    return documents


def module_documents(module: ModuleType, seen_ids: set[int]) -> list[Document]:
    """The module's docstring, then its public classes (with methods) and functions, by name."""
    module_name = module.__name__
    documents = _docstring_documents("module", module_name, module_name, module)
    for attr_name in sorted(vars(module)):
        value = vars(module)[attr_name]
        if attr_name.startswith("_") or id(value) in seen_ids or not _defined_in(module, attr_name, value):
            continue
        seen_ids.add(id(value))
        qualified = _qualified(module_name, attr_name)
        if inspect.isclass(value):
            documents.extend(_docstring_documents("class", qualified, qualified, value))
            documents.extend(_method_documents(qualified, value))
        elif inspect.isroutine(value):
            documents.extend(
                _docstring_documents("function", qualified, qualified + _signature(value), value)
            )
    return documents


def _defined_in(module: ModuleType, attr_name: str, value: object) -> bool:
    # Names imported from elsewhere belong to their own module; public names listed in __all__
    # that come from a private C accelerator (io.StringIO lives in _io) belong here.
    owner = getattr(value, "__module__", None)
    if owner == module.__name__:
        return True
    exported = attr_name in getattr(module, "__all__", ())
    return exported and isinstance(owner, str) and owner.split(".")[-1].startswith("_")


def _method_documents(class_name: str, cls: type) -> list[Document]:
    documents = []
    for attr_name in sorted(vars(cls)):
        if attr_name.startswith("_"):
            continue
        try:
            value = getattr(cls, attr_name)
        except Exception:  # descriptors that refuse class access
            continue
        if inspect.isroutine(value):
            qualified = f"{class_name}.{attr_name}"
            documents.extend(
                _docstring_documents("function", qualified, qualified + _signature(value), value)
            )
    return documents


def _docstring_documents(kind: DocumentKind, qualified: str, title: str, obj: object) -> list[Document]:
    doc = getattr(obj, "__doc__", None)
    if not isinstance(doc, str) or len(doc.strip()) < MIN_DOCSTRING_CHARS:
        return []
    paragraphs = tuple(split_paragraphs(inspect.cleandoc(doc)))
    subject = f"the `{qualified}` module" if kind == "module" else f"`{qualified}`"
    return [Document(f"py:{qualified}", kind, subject, title, paragraphs)] if paragraphs else []


def _qualified(module_name: str, attr_name: str) -> str:
    # Builtins are spelled as users write them: str.split, not builtins.str.split.
    return attr_name if module_name == "builtins" else f"{module_name}.{attr_name}"


class _Elided:
    """Stands in for a default value whose repr is not a plain literal."""

    def __repr__(self) -> str:
        return "..."


def _signature(obj: object) -> str:
    """The signature with non-literal defaults shown as ``...``.

    Default reprs can hold the environment (cgi.parse(environ=os.environ)), file system paths or
    memory addresses: none of that belongs in training data, and it would differ machine to machine.
    """
    try:
        signature = inspect.signature(obj)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return ""
    parameters = [
        parameter
        if parameter.default is inspect.Parameter.empty or _is_plain_literal(parameter.default)
        else parameter.replace(default=_Elided())
        for parameter in signature.parameters.values()
    ]
    return re.sub(r" at 0x[0-9a-fA-F]+", "", str(signature.replace(parameters=parameters)))


def _is_plain_literal(value: object) -> bool:
    if value is None or isinstance(value, (bool, int, float)):
        return True
    return isinstance(value, (str, bytes)) and len(value) <= 40 and "/" not in str(value)
