"""Exceptions raised by ftdag.

Build-time errors are :class:`BuildError` (a :class:`ValueError`) and are raised by
:class:`~ftdag.DagBuilder` before anything runs.  Run-time errors say which node failed.
Every message names the keys involved, and every exception survives
``pickle.loads(pickle.dumps(exc))`` with its attributes (the process backend sends them
between processes, and users log or ship them).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

__all__ = [
    "AccessError",
    "BuildError",
    "CycleError",
    "DuplicateKeyError",
    "EmptyGraphError",
    "MissingDependencyError",
    "OrderError",
    "ResourceError",
    "RunCancelledError",
    "RunFailedError",
    "RunTimeoutError",
    "SerializationError",
    "TaskError",
    "TaskTimeoutError",
    "UnknownKeyError",
    "UnknownOutputError",
    "WorkerCrashedError",
]


class BuildError(ValueError):
    """The graph being built is invalid."""


class DuplicateKeyError(BuildError):
    """A key was added twice.  ``.key`` is the key.

    ``detail``, when given, replaces the message's generic explanation (a
    :class:`~ftdag.Pipeline` says which functions or sources share the name).
    """

    def __init__(self, key: Hashable, detail: str | None = None) -> None:
        self.key = key
        self.detail = detail
        explanation = "a node with this key was already added" if detail is None else detail
        super().__init__(f"duplicate key {key!r}: {explanation}")

    def __reduce__(self):
        return (type(self), (self.key, self.detail))


class MissingDependencyError(BuildError):
    """A task depends on keys that were never added.

    ``.task`` is the task's key and ``.missing`` the list of unknown dependency keys.
    ``detail``, when given, is appended to the message (a :class:`~ftdag.Pipeline` names the
    function and its parameters).
    """

    def __init__(self, task: Hashable, missing: Sequence[Hashable], detail: str | None = None) -> None:
        self.task = task
        self.missing = list(missing)
        self.detail = detail
        names = ", ".join(repr(k) for k in self.missing)
        message = f"task {task!r} depends on unknown key(s): {names}"
        super().__init__(message if detail is None else f"{message}: {detail}")

    def __reduce__(self):
        return (type(self), (self.task, self.missing, self.detail))


class CycleError(BuildError):
    """The graph has a cycle.

    ``.cycle`` lists the keys along one cycle, each a dependency of the next, with the first
    key repeated at the end (as :class:`graphlib.CycleError` does); a task that depends on
    itself is the cycle ``[key, key]``.  Order-only edges (``after``, ``before``, barriers,
    ``creates`` and ``consumes``) count as dependencies here: a key in ``.cycle`` may simply
    have to run before the next.
    """

    def __init__(self, cycle: Sequence[Hashable]) -> None:
        self.cycle = list(cycle)
        path = " -> ".join(repr(k) for k in self.cycle)
        super().__init__(f"dependency cycle: {path}")

    def __reduce__(self):
        return (type(self), (self.cycle,))


class AccessError(BuildError):
    """The tasks' access sets (``creates``, ``consumes``, ``reads``, ``writes``) contradict each other.

    ``.name`` is the shared-state name and ``.tasks`` the keys involved; ``.kind`` says how:

    - ``"create"``: ``.tasks`` all create ``.name`` (a name has at most one creator);
    - ``"consume"``: ``.tasks`` all consume ``.name`` (a name has at most one consumer);
    - ``"read"`` or ``"write"``: ``.tasks`` is ``(user, consumer)``: ``user`` reads (or
      writes) ``.name``, so it must run before ``consumer``, which consumes it, but the
      graph makes it run after (``consumer`` precedes it through data or order edges).
    """

    def __init__(self, name: str, tasks: Sequence[Hashable], kind: str) -> None:
        self.name = name
        self.tasks = tuple(tasks)
        self.kind = kind
        if kind in ("create", "consume"):
            names = [repr(k) for k in self.tasks]
            who = ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else "".join(names)
            both = "both" if len(names) == 2 else "all"
            message = f"tasks {who} {both} {kind} {name!r}: a name may have at most one task that {kind}s it"
        else:
            user, consumer = self.tasks
            message = (
                f"task {user!r} {kind}s {name!r}, so it must run before task {consumer!r}, which consumes "
                f"{name!r}, but the graph makes it run after {consumer!r} (through data or order edges)"
            )
        super().__init__(message)

    def __reduce__(self):
        return (type(self), (self.name, self.tasks, self.kind))


class OrderError(BuildError):
    """Task ``.task`` names source ``.source`` in its ``.argument`` (``"after"`` or ``"before"``).

    Sources are values, available from the start: nothing runs before or after them.  To use
    a source's value, list it in the task's dependencies.
    """

    def __init__(self, task: Hashable, source: Hashable, argument: str) -> None:
        self.task = task
        self.source = source
        self.argument = argument
        super().__init__(
            f"task {task!r} names source {source!r} in {argument}=: sources are values, not run, so no task "
            "can be ordered before or after one (to use its value, list it in the task's dependencies)"
        )

    def __reduce__(self):
        return (type(self), (self.task, self.source, self.argument))


class EmptyGraphError(BuildError):
    """``build()`` was called on a builder with no nodes."""

    def __init__(self) -> None:
        super().__init__("cannot build an empty graph: add at least one source or task")

    def __reduce__(self):
        return (type(self), ())


class UnknownKeyError(KeyError):
    """Keys that are not nodes of the graph.  ``.keys`` lists them.

    Raised wherever a key is looked up: by :meth:`~ftdag.Executor.run` and
    :meth:`~ftdag.Dag.ancestors` for requested outputs (before anything runs), and by
    :meth:`~ftdag.Dag.dependencies`, :meth:`~ftdag.Dag.dependents` and
    :meth:`~ftdag.Dag.is_source`.  ``.what`` says what the keys were given as
    (``"requested output"`` or ``"key"``).
    """

    def __init__(self, keys: Sequence[Hashable], what: str = "key") -> None:
        self.keys = list(keys)
        self.what = what
        super().__init__(*self.keys)

    def __str__(self) -> str:
        names = ", ".join(repr(k) for k in self.keys)
        text = f"{self.what}(s) not in the graph: {names}"
        tuples = [k for k in self.keys if isinstance(k, tuple)]
        if tuples:
            text += f" (a tuple is one key: to request several keys, pass a list, e.g. {list(tuples[0])!r})"
        return text

    def __reduce__(self):
        return (type(self), (self.keys, self.what))


UnknownOutputError = UnknownKeyError
"""The name :class:`UnknownKeyError` had when only requested outputs raised it."""


class TaskError(Exception):
    """A task failed for good.  ``.key`` names it; ``__cause__`` is the task's own exception
    (of its last attempt); ``.attempts`` says how many times it ran (1 without retries)."""

    attempts: int = 1

    def __init__(self, key: Hashable, message: str | None = None) -> None:
        self.key = key
        super().__init__(message or f"task {key!r} failed")

    def __reduce__(self):  # keep .key across pickling (the process backend sends these)
        return (_rebuild, (type(self), self._args(), self.attempts))

    def _args(self) -> tuple:
        return (self.key, self.args[0] if self.args else None)


def _rebuild(cls: type[TaskError], args: tuple, attempts: int) -> TaskError:
    err = cls(*args)
    err.attempts = attempts
    return err


class SerializationError(TaskError):
    """A task's function, inputs or result could not be pickled or unpickled.

    Only the process backend pickles, so this says that the task itself may well be fine:
    what it takes or returns cannot cross to or from a worker process.  ``.key`` names the
    task, ``.what`` is ``"function"``, ``"inputs"`` or ``"result"``; ``__cause__`` is the
    pickling error.
    """

    def __init__(self, key: Hashable, message: str | None = None, what: str = "inputs") -> None:
        self.what = what
        super().__init__(key, message)

    def _args(self) -> tuple:
        return (self.key, self.args[0] if self.args else None, self.what)


def _task_failed(key: Hashable, exc: BaseException, attempts: int = 1) -> TaskError:
    """The :class:`TaskError` for task ``key`` raising ``exc`` (chained as its cause)."""
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    err = TaskError(key, f"task {key!r} failed{tries}: {type(exc).__name__}: {exc}")
    err.__cause__ = exc
    err.attempts = attempts
    return err


class TaskTimeoutError(TimeoutError):
    """One attempt of task ``.key`` ran longer than its ``timeout`` (``.timeout`` seconds).

    It is what the attempt failed with: retried if the task's ``retry_on`` covers it, and
    otherwise the ``__cause__`` of the task's :class:`TaskError`.  On threads the attempt's
    call is abandoned, not stopped: it runs on until it returns (see ``current_task()``).
    """

    def __init__(self, key: Hashable, timeout: float) -> None:
        self.key = key
        self.timeout = timeout
        super().__init__(f"task {key!r} timed out after {timeout:g} s")

    def __reduce__(self):
        return (type(self), (self.key, self.timeout))


class RunCancelledError(Exception):
    """The run was cancelled (``run(..., cancel=token)``): nothing new started after that.

    ``.result`` is a :class:`~ftdag.RunResult` of what completed: the requested outputs
    that were computed, its ``failed`` and ``skipped`` reports, and its stats.
    """

    def __init__(self, message: str = "the run was cancelled", result: Any = None) -> None:
        self.result = result
        super().__init__(message)

    def __reduce__(self):
        return (type(self), (self.args[0], self.result))


class RunTimeoutError(RunCancelledError, TimeoutError):
    """The run reached its deadline (``run(..., timeout=seconds)``); ``.result`` as for
    :class:`RunCancelledError`."""


class RunFailedError(ExceptionGroup):
    """Tasks of a keep-going run failed: raised by :meth:`~ftdag.RunResult.raise_for_failures`.

    Its ``exceptions`` are the :class:`TaskError` s, in the order the tasks failed; ``.result``
    is the partial :class:`~ftdag.RunResult`.
    """

    result: Any

    def __new__(cls, message: str, exceptions: Sequence[Exception], result: Any = None) -> RunFailedError:
        self = super().__new__(cls, message, exceptions)
        self.result = result
        return self

    def __init__(self, message: str, exceptions: Sequence[Exception], result: Any = None) -> None:
        super().__init__(message, exceptions)

    def derive(self, excs: Sequence[Exception]) -> RunFailedError:  # type: ignore[override]
        return RunFailedError(self.message, excs, self.result)

    def __reduce__(self):
        return (type(self), (self.message, list(self.exceptions), self.result))


class WorkerCrashedError(TaskError):
    """A worker process died while running the task ``.key`` (``.exitcode`` says how).

    ``.during_startup`` is true when the worker died before it finished starting, i.e. before
    it could run anything: ``.key`` is then the first task it was given.  The usual cause is a
    main module that runs ftdag at import time, which worker processes re-import.
    """

    def __init__(self, key: Hashable, exitcode: int | None = None, during_startup: bool = False) -> None:
        self.exitcode = exitcode
        self.during_startup = during_startup
        how = f"exit code {exitcode}" if exitcode is not None and exitcode >= 0 else (
            f"signal {-exitcode}" if exitcode is not None else "unknown cause"
        )
        if during_startup:
            message = (
                f"worker process for task {key!r} died while starting ({how}). The usual cause: the "
                "script runs ftdag at import time without an `if __name__ == \"__main__\":` guard; worker "
                "processes re-import the main module. Put the code that builds and runs the graph under "
                "that guard."
            )
        else:
            message = f"worker process died ({how}) while running task {key!r}"
        super().__init__(key, message)

    def _args(self) -> tuple:
        return (self.key, self.exitcode, self.during_startup)


class ResourceError(ValueError):
    """A planned task asks for a resource the executor does not declare, or for more units
    than its capacity, so it could never run: ``run()`` raises this before anything runs.

    ``.task`` is the task's key, ``.resource`` the resource's name, ``.requested`` the units
    it asks for and ``.capacity`` the executor's capacity (None if it is not declared in
    ``ExecutorConfig(resources=...)``).
    """

    def __init__(self, task: Hashable, resource: str, requested: int, capacity: int | None) -> None:
        self.task, self.resource, self.requested, self.capacity = task, resource, requested, capacity
        if capacity is None:
            message = (
                f"task {task!r} needs resource {resource!r}, which this executor does not declare: "
                f"add it to ExecutorConfig(resources={{{resource!r}: ...}})"
            )
        else:
            message = (
                f"task {task!r} needs {requested} units of resource {resource!r}, more than its "
                f"capacity of {capacity}: it could never run"
            )
        super().__init__(message)

    def __reduce__(self):
        return (type(self), (self.task, self.resource, self.requested, self.capacity))
