"""Function pipelines: a graph declared by decorating functions whose parameters name their inputs.

::

    pipe = ftdag.Pipeline()

    @pipe.task
    def parsed(raw_text): ...

    @pipe.task(retries=2)                  # any option of DagBuilder.add_task
    def counts(parsed, min_len=3): ...

    dag = pipe.build(raw_text="...")       # keyword sources; a Dag like any other

The rules:

- A task's key is its function's ``__name__``, or the ``name=`` given to :meth:`Pipeline.task`
  (a ``str``; a name that is not an identifier can be requested as an output, but no
  parameter can name it).  A callable without a usable ``__name__`` (a lambda, a
  ``functools.partial``, most callable instances) needs ``name=``.
- Each parameter names a dependency (the node of its own name, or the one ``renames=``
  maps it to), passed by keyword (a keyword dependency of
  :meth:`~ftdag.DagBuilder.add_task`, so the task runs as any positional task does).  A
  parameter with a default is a dependency when a node of its name exists (a task of the
  pipeline or a source given to :meth:`Pipeline.build`), and is left to its default
  otherwise; one without a default must name a node, else ``build()`` raises
  :class:`~ftdag.MissingDependencyError` naming the function and the parameters.
  Keyword-only parameters are fine.  ``*args`` and ``**kwargs`` cannot name a node, and
  positional-only parameters cannot be passed by keyword: all three are a ``TypeError`` when
  the function is decorated.  A parameter named like its own task is a cycle
  (:class:`~ftdag.CycleError` at ``build()``), default or not.
- The parameters are those :func:`inspect.signature` reports, so any callable it can read
  works: a bound method, a callable instance, a function wrapped with
  :func:`functools.wraps` (its wrapped function's parameters), a ``functools.partial`` (the
  parameters it leaves open; a keyword it binds is a parameter with a default, so a node of
  that name overrides it, as a call could).
- Decorating returns the function itself, unchanged, so it can still be called (and
  tested) on its own.  Two functions with one name in a pipeline are a
  :class:`~ftdag.DuplicateKeyError` when the second is decorated, naming both; options are
  validated then too (errors name the task and the option).
- :meth:`Pipeline.build` may be called any number of times, with different sources: each
  call snapshots the functions decorated so far and the sources given, and returns a new
  :class:`~ftdag.Dag`.  A source named like a task is a :class:`~ftdag.DuplicateKeyError`.
  Builds reuse the adapters of keyword tasks (:mod:`ftdag._keywords`), so an executor's
  worker processes receive each function once, however many graphs a pipeline builds.

Tasks run on every backend; on worker processes the functions must be importable or
picklable with cloudpickle, as any task's function.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, overload

from ._keywords import KeywordCalls
from ._options import TaskOptions, task_options
from .errors import DuplicateKeyError, MissingDependencyError
from .graph import Dag, DagBuilder

__all__ = ["Pipeline"]

F = TypeVar("F", bound=Callable[..., Any])

OPTIONS = frozenset(field.name for field in dataclasses.fields(TaskOptions))
"""The keyword options :meth:`Pipeline.task` passes on to :meth:`~ftdag.DagBuilder.add_task`."""

_KINDS: dict[object, str] = {
    inspect.Parameter.VAR_POSITIONAL: "a *args parameter",
    inspect.Parameter.VAR_KEYWORD: "a **kwargs parameter",
    inspect.Parameter.POSITIONAL_ONLY: "a positional-only parameter",
}


def _describe(fn: object) -> str:
    """``module.qualname`` of a function, else its ``repr``."""
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if isinstance(module, str) and isinstance(qualname, str):
        return f"{module}.{qualname}"
    return repr(fn)


@dataclasses.dataclass(frozen=True, slots=True)
class _Task:
    """A decorated function: its key, its parameters as ``(name, has a default)``, its options."""

    name: str
    fn: Callable[..., Any]
    params: tuple[tuple[str, bool], ...]
    options: Mapping[str, Any]
    renames: Mapping[str, str]  # parameter -> the node it names, where that is not the parameter's own name


class Pipeline:
    """Tasks declared as functions whose parameters name their dependencies (module docstring).

    ``in`` and :meth:`names` report the tasks decorated so far; ``len()`` counts them.
    Decorating and building may happen from several threads.
    """

    __slots__ = ("_tasks", "_calls")

    def __init__(self) -> None:
        self._tasks: dict[str, _Task] = {}  # by name, in decoration order
        self._calls = KeywordCalls()  # keyword tasks' adapters, shared by every build

    @overload
    def task(
        self, fn: F, /, *, name: str | None = None, renames: Mapping[str, str] | None = None, **options: Any,
    ) -> F: ...

    @overload
    def task(
        self, fn: None = None, /, *, name: str | None = None, renames: Mapping[str, str] | None = None,
        **options: Any,
    ) -> Callable[[F], F]: ...

    def task(
        self, fn: Any = None, /, *, name: str | None = None, renames: Mapping[str, str] | None = None,
        **options: Any,
    ) -> Any:
        """Add ``fn`` as the task ``name`` (default: ``fn.__name__``) and return ``fn`` itself.

        Used bare (``@pipe.task``), with options (``@pipe.task(retries=2, name="x")``), or
        called (``pipe.task(existing_function, name="x")``).  ``options`` are the keyword
        options of :meth:`~ftdag.DagBuilder.add_task` (:data:`OPTIONS`).  ``renames`` maps
        parameters to the nodes they name when that is not their own name (as pipefunc's
        ``renames`` do), so one function can serve many tasks:
        ``pipe.task(count, name="count/a", renames={"words": "words/a"})``.

        Raises ``TypeError`` for an unreadable signature, a ``*args``, ``**kwargs`` or
        positional-only parameter, a missing or invalid name, or an unknown option;
        ``TypeError``/``ValueError`` for an invalid option value; and
        :class:`~ftdag.DuplicateKeyError` when the pipeline already has a task of that name.
        """
        if fn is None:
            return lambda f: self._add(f, name, options, renames)
        return self._add(fn, name, options, renames)

    def _add(self, fn: Any, name: str | None, options: dict[str, Any], renames: Mapping[str, str] | None) -> Any:
        if not callable(fn):
            raise TypeError(f"Pipeline.task() takes a callable, got {type(fn).__name__}: {fn!r}")
        what = _describe(fn)
        if name is None:
            name = getattr(fn, "__name__", None)
            if not isinstance(name, str) or not name.isidentifier():
                raise TypeError(f"function {what} has no usable __name__ ({name!r}): pass name= to Pipeline.task()")
        elif not isinstance(name, str) or not name:
            raise TypeError(
                f"name= of function {what} must be a non-empty str, got {type(name).__name__}: {name!r}"
            )
        unknown = sorted(set(options) - OPTIONS)
        if unknown:
            raise TypeError(
                f"Pipeline.task() got unknown option(s) {', '.join(map(repr, unknown))} for function {what} "
                f"(the options are those of DagBuilder.add_task: {', '.join(sorted(OPTIONS))})"
            )
        task_options(name, **options)  # validate now: errors name the task and the option
        try:
            signature = inspect.signature(fn)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"cannot read the parameters of function {what}: {exc}") from exc
        params = []
        for p in signature.parameters.values():
            kind = _KINDS.get(p.kind)
            if kind is not None:
                raise TypeError(
                    f"parameter {p.name!r} of function {what} is {kind}: in a pipeline each parameter names "
                    "one dependency and is passed by keyword"
                )
            params.append((p.name, p.default is not inspect.Parameter.empty))
        renames = dict(renames or {})
        for param, node in renames.items():
            if param not in signature.parameters:
                raise TypeError(f"renames= of function {what} names {param!r}, which is not one of its parameters")
            if not isinstance(node, str) or not node:
                raise TypeError(f"renames= of function {what} must map {param!r} to a node name (a non-empty str), "
                                f"got {type(node).__name__}: {node!r}")
        task = _Task(name, fn, tuple(params), dict(options), renames)
        found = self._tasks.setdefault(name, task)  # (atomic: two threads cannot both add a name)
        if found is not task:
            if found.fn is fn:
                raise DuplicateKeyError(name, f"function {what} was already added to this pipeline as {name!r}")
            raise DuplicateKeyError(
                name,
                f"the pipeline's task {name!r} is function {_describe(found.fn)} already, so function {what} "
                "cannot be added under that name (pass name= to Pipeline.task() to rename it)",
            )
        return fn

    def build(self, /, **sources: Any) -> Dag:
        """A :class:`~ftdag.Dag` of the tasks decorated so far and ``sources`` (name -> value).

        Raises :class:`~ftdag.DuplicateKeyError` for a source named like a task,
        :class:`~ftdag.MissingDependencyError` for a parameter without a default that names
        no node, and whatever :meth:`ftdag.DagBuilder.build` raises (a
        :class:`~ftdag.CycleError`, an :class:`~ftdag.EmptyGraphError`, ...).
        """
        tasks = dict(self._tasks)  # a snapshot (one atomic copy)
        for source in sources:
            if source in tasks:
                raise DuplicateKeyError(
                    source,
                    f"build() was given a source named like the pipeline's task of function "
                    f"{_describe(tasks[source].fn)}",
                )
        builder = DagBuilder()
        for source, value in sources.items():
            builder.add_source(source, value)
        for task in tasks.values():
            used = []
            nodes = []
            missing = []
            for param, has_default in task.params:
                node = task.renames.get(param, param)
                if node in tasks or node in sources:
                    used.append(param)
                    nodes.append(node)
                elif not has_default:
                    missing.append(node)
            if missing:
                raise MissingDependencyError(task.name, missing, _missing_detail(task, missing, tasks, sources))
            names = tuple(used)
            fn = self._calls.get(task.fn, names) if names else task.fn
            builder.add_task(task.name, tuple(nodes), fn, **task.options)
        return builder.build()

    def names(self) -> list[str]:
        """The tasks' names, in the order their functions were decorated (a new list)."""
        return list(self._tasks)

    def __contains__(self, name: object) -> bool:
        try:
            return name in self._tasks
        except TypeError:
            return False

    def __len__(self) -> int:
        return len(self._tasks)

    def __repr__(self) -> str:
        return f"<Pipeline: {len(self._tasks)} tasks>"


def _missing_detail(task: _Task, missing: list[str], tasks: Mapping[str, _Task], sources: Mapping[str, Any]) -> str:
    """Why ``missing`` parameters of ``task`` are errors, with close names as suggestions."""
    params = ", ".join(repr(p) for p in missing)
    plural = "s" if len(missing) > 1 else ""
    verb = "have" if len(missing) > 1 else "has"
    detail = (
        f"parameter{plural} {params} of function {_describe(task.fn)} {verb} no default, and no task of the "
        "pipeline or source given to build() has that name"
    )
    known = [*tasks, *sources]
    hints = [f"{p!r} -> {close[0]!r}" for p in missing if (close := difflib.get_close_matches(p, known, n=1))]
    if hints:
        detail += f" (did you mean: {', '.join(hints)}?)"
    return detail
