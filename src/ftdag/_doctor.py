"""``ftdag doctor``: is this interpreter set up to run ftdag graphs free-threaded?

It reports, one line each, tagged ``ok``, ``info``, ``n/a`` or ``PROBLEM`` (a problem is
followed by a ``fix:`` line):

- the interpreter (path and version) and whether it is a free-threaded build
  (``sysconfig.get_config_var("Py_GIL_DISABLED")``);
- whether the GIL is on now (``sys._is_gil_enabled()``): on a free-threaded build it is a
  problem if the GIL is already on at startup (``PYTHON_GIL=1``, ``-X gil=1``, or an extension
  that ``site`` imported);
- whether imports write ``.pyc`` files (``sys.dont_write_bytecode``, which
  ``PYTHONDONTWRITEBYTECODE`` sets), for the check below;
- for each ``MODULE`` named (or ``MODULE:NAME``, a graph: its module, then each module that
  defines one of its task functions):

  - **the GIL**: whether importing it (and, for a graph, building it) turned the GIL on.  On
    3.13t, loading an extension module that has not declared free-threading support
    (``Py_mod_gil``) turns the GIL on for good, with a ``RuntimeWarning`` naming the
    extension, which this check records to name it too.  Once the GIL is on, later imports
    cannot be told apart: those modules are reported ``n/a``, to be checked alone;
  - **code constants**: whether the constants of the code compiled from the module's source
    file are immortal.  On 3.13t, code loaded from a ``.pyc`` (or run as ``__main__``) has
    immortal constants, but code compiled from source at import (no up-to-date ``.pyc``:
    every import under ``PYTHONDONTWRITEBYTECODE=1``) keeps ordinary reference counts on
    them, because the import system compiles with ``compile()``, which turns their
    immortalisation off (CPython gh-118527); threads running the same function then contend
    on those counts.  The check looks at the constants CPython would make immortal (ints,
    floats, complex numbers, bytes, and tuples and frozensets of constants, such as the
    keyword-name tuples of calls; ``str`` constants are immortal either way, and so are small
    ints and ``None``) in every function defined in the module's file (module level, class
    bodies, ``functools.partial`` and decorated functions unwrapped, nested functions and
    lambdas), and in the graph's task functions.  An object is immortal when
    ``sys._is_immortal`` says so (3.14), or when its reference count is at least 2**29 (the
    count CPython 3.13 reports for immortal objects: 2**32 - 1 on 64-bit builds, 2**30 - 1
    on 32-bit ones).  A module compiled by this very import, which wrote its ``.pyc``, is
    not a problem: later imports load the ``.pyc``.

On a GIL build neither module check applies (``n/a``).  The exit status is 1 when a problem
was found, else 0, so that the command can gate CI; a module that cannot be imported, or a
graph that cannot be loaded, is bad input (:class:`~ftdag._target.UsageError`, status 2).
"""

from __future__ import annotations

import _imp
import functools
import importlib.util
import os
import re
import sys
import sysconfig
import types
import warnings
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TextIO

from ._keywords import KeywordCall
from ._target import UsageError, find_module, import_module, load_dag

__all__ = ["doctor"]

FREE_THREADED_BUILD = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))

_IMMORTAL_REFCOUNT = 1 << 29
_CANDIDATE_TYPES = (int, float, complex, bytes, tuple, frozenset)
_GIL_WARNING = re.compile(r"has been enabled to load module '([^']+)'")


def _gil_enabled() -> bool:
    is_enabled = getattr(sys, "_is_gil_enabled", None)
    return True if is_enabled is None else bool(is_enabled())


def _gil_forced_off() -> bool:
    """Whether ``PYTHON_GIL=0`` or ``-X gil=0`` keeps the GIL off whatever is imported."""
    return os.environ.get("PYTHON_GIL") == "0" or sys._xoptions.get("gil") == "0"


def _is_immortal(obj: object) -> bool:
    is_immortal = getattr(sys, "_is_immortal", None)
    if is_immortal is not None:  # 3.14
        return bool(is_immortal(obj))
    return sys.getrefcount(obj) >= _IMMORTAL_REFCOUNT


class _Report:
    """The lines printed so far, and how many problems they hold."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.problems = 0

    def line(self, tag: str, text: str, fix: str | None = None) -> None:
        if tag == "PROBLEM":
            self.problems += 1
        print(f"{tag:<7} {text}", file=self.out)
        if fix is not None:
            print(f"{'':<7} fix: {fix}", file=self.out)
        self.out.flush()


def doctor(targets: Sequence[str], out: TextIO) -> int:
    """Check the interpreter and each of ``targets`` (``MODULE`` or ``MODULE:NAME``), print
    the report to ``out``, and return the exit status: 1 if a problem was found, else 0."""
    # A module that does not exist is bad input: say so before reporting (importing nothing,
    # so that the GIL is as the interpreter started).
    for target in targets:
        module_name, sep, name = target.partition(":")
        if sep and not name:
            raise UsageError(f"expected MODULE or MODULE:NAME, got {target!r}")
        find_module(module_name)
    report = _Report(out)
    _interpreter(report)
    gil_at_start = gil_was_on = _gil_enabled()
    for target in targets:
        gil_was_on = _check_target(report, target, gil_was_on, gil_at_start)
    if report.problems:
        report.line("PROBLEM", f"{report.problems} problem{'s' if report.problems > 1 else ''} found")
        return 1
    report.line("ok", "no problems found")
    return 0


def _interpreter(report: _Report) -> None:
    version = sys.version.replace("\n", " ")
    report.line("info", f"interpreter {sys.executable}: {sys.implementation.name} {version}")
    flag = sysconfig.get_config_var("Py_GIL_DISABLED")
    if not FREE_THREADED_BUILD:
        report.line("info", f"not a free-threaded build (Py_GIL_DISABLED = {flag!r}): the GIL is always on; "
                            "ftdag's auto backend uses worker processes, and the checks of modules do not apply")
        return
    report.line("ok", f"free-threaded build (Py_GIL_DISABLED = {flag!r})")
    setting = os.environ.get("PYTHON_GIL")
    x_gil = sys._xoptions.get("gil")
    if _gil_enabled():
        cause = []
        if setting is not None:
            cause.append(f"PYTHON_GIL={setting}")
        if x_gil is not None:
            cause.append(f"-X gil={x_gil}")
        because = f" ({', '.join(cause)})" if cause else " (at startup: an extension module that site or a .pth file imported)"
        report.line(
            "PROBLEM", f"the GIL is on{because}: threads do not run Python code in parallel, and ftdag's auto "
                       "backend uses worker processes",
            "unset PYTHON_GIL and -X gil" if cause else "find the extension with `python -X importtime -c pass` "
                                                          "and use a build of it that supports free-threading",
        )
    else:
        forced = " (PYTHON_GIL=0 or -X gil=0: imports cannot turn it on)" if _gil_forced_off() else ""
        report.line("ok", f"the GIL is off{forced}")
    if sys.dont_write_bytecode:
        report.line("info", "imports write no .pyc files (PYTHONDONTWRITEBYTECODE is set, or -B): a module without "
                            "an up-to-date .pyc is compiled at every import, with mortal code constants")
    else:
        report.line("info", "imports write .pyc files: a module compiled at its first import is loaded from its "
                            ".pyc afterwards")


# -- one target -----------------------------------------------------------------------------------


def _check_target(report: _Report, target: str, gil_was_on: bool, gil_at_start: bool) -> bool:
    """Import ``target`` (building its graph if it names one) and report on it and on the
    modules of its task functions; return whether the GIL is on afterwards."""
    module_name, _, name = target.partition(":")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        pyc_before = _pyc_state(module_name)  # imports the parent packages, if any
        if name:
            dag = load_dag(target)
            module = sys.modules[module_name]
        else:
            module = import_module(module_name)
            dag = None
    gil_now = _gil_enabled()
    extensions = []
    for w in caught:
        found = _GIL_WARNING.search(str(w.message))
        if found:
            extensions.append(found.group(1))
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno, w.file, w.line)
    what = f"building {target} (and importing {module_name})" if name else "importing it"
    label = f"module {module_name}"
    if not FREE_THREADED_BUILD:
        report.line("n/a", f"{label}: the GIL check (not a free-threaded build)")
    elif _gil_forced_off():
        report.line("n/a", f"{label}: the GIL check (PYTHON_GIL=0 or -X gil=0 keeps the GIL off whatever is "
                           "imported; check without it)")
    elif gil_was_on:
        why = "the GIL was on from the start" if gil_at_start else (
            f"an earlier module turned the GIL on; check this one alone: ftdag doctor {target}")
        report.line("n/a", f"{label}: the GIL check ({why})")
    elif gil_now:
        named = ", ".join(repr(e) for e in extensions) or "an extension module"
        report.line(
            "PROBLEM", f"{label}: {what} turned the GIL on: extension {named} has not declared that it can run "
                       "without the GIL; threads no longer run Python code in parallel, and ftdag's auto backend "
                       "uses worker processes",
            "use a build of that extension that supports free-threading (a cp313t wheel), or keep the GIL off "
            "at your own risk with PYTHON_GIL=0 (or -X gil=0)",
        )
    else:
        report.line("ok", f"{label}: {what} left the GIL off")

    modules: dict[str, list[types.FunctionType]] = {module_name: []}
    if dag is not None:
        for fn in (f for f in dag._fns if f is not None):
            for func in _functions(fn):
                if func.__module__ in sys.modules:
                    modules.setdefault(func.__module__, []).append(func)
    for mod_name, task_functions in modules.items():
        mod = module if mod_name == module_name else sys.modules[mod_name]
        before = pyc_before if mod_name == module_name else None
        _check_constants(report, mod, task_functions, before)
    return gil_now


# -- code constants -------------------------------------------------------------------------------


def _source_file(module: types.ModuleType) -> str | None:
    spec = getattr(module, "__spec__", None)
    origin = getattr(spec, "origin", None) or getattr(module, "__file__", None)
    if isinstance(origin, str) and origin.endswith(".py") and os.path.isfile(origin):
        return origin
    return None


def _pyc_state(module_name: str) -> bool | None:
    """Whether ``module_name`` has an up-to-date ``.pyc`` now (None: cannot tell), found
    without importing it (its parent packages are imported)."""
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError, AttributeError):
        return None
    origin = getattr(spec, "origin", None)
    if not isinstance(origin, str) or not origin.endswith(".py"):
        return None
    return _pyc_up_to_date(origin)


def _pyc_up_to_date(source: str) -> bool:
    """Whether the ``.pyc`` the import system would load for ``source`` exists and is valid
    for it (the checks of ``SourceLoader.get_code``: magic number, then the source's mtime
    and size, or its hash for a checked hash-based ``.pyc``)."""
    try:
        cached = importlib.util.cache_from_source(source)
        with open(cached, "rb") as f:
            header = f.read(16)
        st = os.stat(source)
    except (OSError, NotImplementedError, ValueError):
        return False
    if len(header) < 16 or header[:4] != importlib.util.MAGIC_NUMBER:
        return False
    flags = int.from_bytes(header[4:8], "little")
    if flags & 0b1:  # hash-based
        check_source = bool(flags & 0b10)
        mode = _imp.check_hash_based_pycs
        if mode == "never" or (mode == "default" and not check_source):
            return True
        try:
            with open(source, "rb") as f:
                return importlib.util.source_hash(f.read()) == header[8:16]
        except OSError:
            return False
    mtime = int.from_bytes(header[8:12], "little")
    size = int.from_bytes(header[12:16], "little")
    return mtime == (int(st.st_mtime) & 0xFFFFFFFF) and size == (st.st_size & 0xFFFFFFFF)


def _functions(obj: Any, depth: int = 0) -> Iterator[types.FunctionType]:
    """The Python functions behind a callable: itself, what it wraps (``__wrapped__``,
    ``functools.partial``, a bound method, a keyword-task adapter), or a callable
    instance's ``__call__``; static and class methods and properties unwrapped."""
    if depth > 20:
        return
    if isinstance(obj, (staticmethod, classmethod)):
        yield from _functions(obj.__func__, depth + 1)
    elif isinstance(obj, property):
        for f in (obj.fget, obj.fset, obj.fdel):
            if f is not None:
                yield from _functions(f, depth + 1)
    elif isinstance(obj, KeywordCall):
        yield from _functions(obj.fn, depth + 1)
    elif isinstance(obj, functools.partial):
        yield from _functions(obj.func, depth + 1)
    elif isinstance(obj, types.MethodType):
        yield from _functions(obj.__func__, depth + 1)
    elif isinstance(obj, types.FunctionType):
        yield obj
        wrapped = getattr(obj, "__wrapped__", None)
        if wrapped is not None:
            yield from _functions(wrapped, depth + 1)
    elif callable(obj) and not isinstance(obj, type):
        call = type(obj).__call__  # callable() said its type has one
        if isinstance(call, types.FunctionType):
            yield call


def _module_functions(module: types.ModuleType) -> Iterator[types.FunctionType]:
    """The functions reachable from ``module``'s namespace: its own, and those of the
    classes it defines (nested classes too)."""
    classes: list[type] = []
    for value in list(vars(module).values()):
        if isinstance(value, type):
            if getattr(value, "__module__", None) == module.__name__:
                classes.append(value)
        else:
            yield from _functions(value)
    seen: set[int] = set()
    while classes:
        cls = classes.pop()
        if id(cls) in seen:
            continue
        seen.add(id(cls))
        for value in list(vars(cls).values()):
            if isinstance(value, type):
                if getattr(value, "__module__", None) == module.__name__:
                    classes.append(value)
            else:
                yield from _functions(value)


def _codes(code: types.CodeType) -> Iterator[types.CodeType]:
    """``code`` and the code objects nested in it (inner functions, lambdas, comprehensions)."""
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _codes(const)


def _always_immortal(const: object) -> bool:
    """Whether ``const`` is immortal however its code was made: a small int (-5 to 256) or
    the empty tuple, both statically allocated."""
    return const == () or (type(const) is int and -5 <= const <= 256)


def _mortal_constants(code: types.CodeType) -> list[object]:
    """The constants of ``code`` (not nested ones) that a ``.pyc`` load would have made
    immortal but are not."""
    return [c for c in code.co_consts if type(c) in _CANDIDATE_TYPES and not _is_immortal(c)]


def _check_constants(
    report: _Report, module: types.ModuleType, task_functions: Iterable[types.FunctionType], pyc_before: bool | None,
) -> None:
    label = f"module {module.__name__}"
    if not FREE_THREADED_BUILD:
        report.line("n/a", f"{label}: the code-constants check (not a free-threaded build)")
        return
    source = _source_file(module)
    if source is None:
        report.line("n/a", f"{label}: the code-constants check (not loaded from a .py file)")
        return
    real = os.path.realpath(source)
    codes: dict[int, types.CodeType] = {}
    functions = 0
    for fn in [*_module_functions(module), *task_functions]:
        code = fn.__code__
        if id(code) in codes or os.path.realpath(code.co_filename) != real:
            continue
        functions += 1
        for c in _codes(code):
            codes.setdefault(id(c), c)
    candidates = mortal = 0
    affected: dict[str, None] = {}
    examples: list[object] = []
    for code in codes.values():
        candidates += sum(type(c) in _CANDIDATE_TYPES and not _always_immortal(c) for c in code.co_consts)
        found = _mortal_constants(code)
        if found:
            mortal += len(found)
            affected[code.co_qualname if hasattr(code, "co_qualname") else code.co_name] = None
            examples.extend(found[: max(0, 3 - len(examples))])
    pyc_now = _pyc_up_to_date(source)
    counted = f"{functions} function{'s' if functions != 1 else ''}"
    if not mortal:
        if candidates:
            how = "loaded from a .pyc" if pyc_now else "loaded before this check"
            report.line("ok", f"{label}: code constants immortal ({counted}; {how})")
        else:
            how = "loaded from a .pyc" if pyc_now else "no up-to-date .pyc, which would matter for other constants"
            report.line("ok", f"{label}: no code constants that could be mortal ({counted}; {how})")
        return
    names = list(affected)
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    if pyc_before is False and pyc_now:
        report.line("ok", f"{label}: compiled from source by this import, which wrote its .pyc: later imports load "
                          f"it, with immortal constants ({mortal} mortal constants here, in {shown})")
        return
    cause = "compiled from source at import"
    if not pyc_now:
        cause += " (no up-to-date .pyc" + (": PYTHONDONTWRITEBYTECODE is set)" if sys.dont_write_bytecode else ")")
    report.line(
        "PROBLEM",
        f"{label}: {mortal} code constant{'s' if mortal != 1 else ''} not immortal, in {shown} "
        f"({', '.join(_short(e) for e in examples)}); {cause}: threads running these functions contend on "
        "their reference counts, and can run slower than one thread",
        f"compile it to a .pyc: {sys.executable} -m compileall -q {source} "
        "(or import it after .pyc files exist, without PYTHONDONTWRITEBYTECODE; or run it as the __main__ script)",
    )


def _short(obj: object) -> str:
    text = repr(obj)
    return text if len(text) <= 40 else text[:37] + "..."
