"""What the command line (:mod:`ftdag.cli`) runs: ``MODULE:NAME`` resolved to a :class:`~ftdag.Dag`,
and ``-o KEY`` strings resolved to keys of it.

Every bad input raises :class:`UsageError`, whose message is one line naming what is wrong;
the command line prints it as ``ftdag: error: ...`` and exits with status 2.

``MODULE`` is imported as ``python -m`` would import it: the current directory is put first
on ``sys.path`` if it is not there (a console script's ``sys.path`` starts with the script's
own directory instead).  ``NAME`` may be dotted (``module:obj.attr``) and must be, or give:

- a :class:`~ftdag.Dag`;
- a :class:`~ftdag.DagBuilder` (its ``build()`` is called);
- a :class:`~ftdag.Pipeline` (``build()`` is called with no sources);
- a callable that takes no arguments and returns one of the above (called once).

Keys on the command line are strings.  :func:`parse_outputs` tries each one as given; if the
graph has no such key, it tries :func:`ast.literal_eval` of it, so that ``-o 3`` requests the
int key ``3`` and ``-o "('sum', 'eu')"`` the tuple key.  A ``str`` key wins over a key the
string evaluates to (in a graph with both ``"3"`` and ``3``, ``-o 3`` is the string).
:func:`show_key` writes keys the same way: a ``str`` as it is, anything else as its ``repr``.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import os
import sys
import traceback
import types
from collections.abc import Hashable, Sequence
from typing import Any

from .errors import BuildError, UnknownKeyError
from .graph import Dag, DagBuilder

__all__ = ["UsageError", "find_module", "import_module", "load_dag", "parse_outputs", "show_key", "sinks"]


class UsageError(Exception):
    """Bad input on the command line: exit status 2, and the message on one line."""


def _where(exc: BaseException) -> str:
    """`` (file, line N)`` of the innermost frame of ``exc``'s traceback, or ``""``."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    last = frames[-1]
    return f" ({last.filename}, line {last.lineno})"


def _one_line(exc: BaseException) -> str:
    """``Type: message`` on one line (a multi-line message is joined with ``; ``)."""
    text = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _cwd_on_path() -> None:
    cwd = os.getcwd()
    if "" not in sys.path and cwd not in sys.path:
        sys.path.insert(0, cwd)


def find_module(name: str) -> None:
    """Check, importing nothing, that ``name`` is a module name whose top-level package (or
    module) exists: a :class:`UsageError` as :func:`import_module` would raise, if not.  (A
    missing submodule is only found out by importing its parents, which :func:`import_module`
    does.)"""
    if not name or not all(part.isidentifier() for part in name.split(".")):
        raise UsageError(f"{name!r} is not a module name (expected a dotted name such as pkg.module)")
    _cwd_on_path()
    top = name.partition(".")[0]
    try:
        found = importlib.util.find_spec(top) if top not in sys.modules else True
    except (ImportError, ValueError):
        found = None
    if found is None:
        raise UsageError(f"no module named {top!r} (from {os.getcwd()} and sys.path)")


def import_module(name: str) -> types.ModuleType:
    """Import ``name`` (current directory first on ``sys.path``).

    Raises :class:`UsageError` for a module that does not exist, and for any exception its
    import raised (naming the exception, and the file and line it came from).
    """
    if not name or not all(part.isidentifier() for part in name.split(".")):
        raise UsageError(f"{name!r} is not a module name (expected a dotted name such as pkg.module)")
    _cwd_on_path()
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            raise UsageError(f"no module named {exc.name!r} (from {os.getcwd()} and sys.path)") from None
        raise UsageError(f"importing module {name!r} failed: {_one_line(exc)}{_where(exc)}") from None
    except (Exception, SystemExit) as exc:
        raise UsageError(f"importing module {name!r} raised {_one_line(exc)}{_where(exc)}") from None


def _as_dag(obj: Any, spec: str, called: bool) -> Dag | None:
    """``obj`` as a Dag if it is one, a DagBuilder or a Pipeline (built); None otherwise."""
    from .pipeline import Pipeline

    if isinstance(obj, Dag):
        return obj
    if isinstance(obj, (DagBuilder, Pipeline)):
        what = f"{spec}().build()" if called else f"{spec}.build()"
        try:
            return obj.build()
        except BuildError as exc:
            raise UsageError(f"{what} failed: {_one_line(exc)}") from None
        except Exception as exc:
            raise UsageError(f"{what} raised {_one_line(exc)}{_where(exc)}") from None
    return None


_EXPECTED = "a Dag, a DagBuilder, a Pipeline, or a function of no arguments returning one"


def load_dag(spec: str) -> Dag:
    """The graph ``spec`` (``MODULE:NAME``) names; see the module docstring.

    Raises :class:`UsageError` naming what is wrong: a spec without ``:``, a module that
    cannot be imported, a missing attribute, an object of the wrong type, a function that
    needs arguments, raises, or returns the wrong type, or a graph that does not build.
    """
    module_name, sep, name = spec.partition(":")
    if not sep or not module_name or not name:
        raise UsageError(f"expected MODULE:NAME (such as mypkg.pipeline:dag), got {spec!r}")
    if not all(part.isidentifier() for part in name.split(".")):
        raise UsageError(f"{name!r} in {spec!r} is not a name (expected NAME or NAME.ATTR)")
    obj: Any = import_module(module_name)
    path = module_name
    for part in name.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise UsageError(f"{path!r} has no attribute {part!r} (in {spec!r})") from None
        except Exception as exc:
            raise UsageError(f"getting {part!r} from {path!r} raised {_one_line(exc)}{_where(exc)}") from None
        path = f"{path}.{part}" if path != module_name else f"{module_name}:{part}"
    dag = _as_dag(obj, spec, called=False)
    if dag is not None:
        return dag
    if not callable(obj) or isinstance(obj, type):
        raise UsageError(f"{spec} is {_a(obj)}, not {_EXPECTED}")
    try:
        inspect.signature(obj).bind()
    except TypeError:
        raise UsageError(f"{spec} is a function that takes arguments: it must take none and return a Dag") from None
    except ValueError:
        pass  # no signature to read (some builtins): just call it
    try:
        made = obj()
    except (Exception, SystemExit) as exc:
        raise UsageError(f"calling {spec}() raised {_one_line(exc)}{_where(exc)}") from None
    dag = _as_dag(made, spec, called=True)
    if dag is None:
        raise UsageError(f"{spec}() returned {_a(made)}, not a Dag, a DagBuilder or a Pipeline")
    return dag


def _a(obj: object) -> str:
    """``"a list"``, ``"an int"``: the article and the type's name, for messages."""
    name = type(obj).__name__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def parse_outputs(dag: Dag, texts: Sequence[str]) -> list[Hashable]:
    """The keys ``texts`` name, deduplicated in order (see the module docstring for the rule).

    Raises :class:`UsageError` with :class:`~ftdag.UnknownKeyError`'s message listing every
    string that names no key.
    """
    keys: dict[Hashable, None] = {}
    unknown: list[str] = []
    for text in texts:
        if text in dag:
            keys[text] = None
            continue
        try:
            value = ast.literal_eval(text)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            unknown.append(text)
            continue
        if value in dag:  # Dag.__contains__ is False for an unhashable value
            keys[value] = None
        else:
            unknown.append(text)
    if unknown:
        raise UsageError(f"{UnknownKeyError(unknown, 'requested output')} (`ftdag graph` lists the keys)")
    return list(keys)


def sinks(dag: Dag) -> list[Hashable]:
    """The keys no other node depends on (on their values), in topological order."""
    return [k for k in dag if not dag.dependents(k)]


def show_key(key: Hashable) -> str:
    """A key as the command line writes it: a ``str`` as it is, anything else as its ``repr``
    (which ``-o`` reads back with :func:`ast.literal_eval` for literals)."""
    return key if isinstance(key, str) else repr(key)
