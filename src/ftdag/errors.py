"""Exceptions raised by ftdag.

Build-time errors are :class:`BuildError` (a :class:`ValueError`) and are raised by
:class:`~ftdag.DagBuilder` before anything runs.  Run-time errors say which node failed.
Every message names the keys involved, and every exception survives
``pickle.loads(pickle.dumps(exc))`` with its attributes (the process backend sends them
between processes, and users log or ship them).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

__all__ = [
    "BuildError",
    "CycleError",
    "DuplicateKeyError",
    "EmptyGraphError",
    "MissingDependencyError",
    "SerializationError",
    "TaskError",
    "UnknownKeyError",
    "UnknownOutputError",
    "WorkerCrashedError",
]


class BuildError(ValueError):
    """The graph being built is invalid."""


class DuplicateKeyError(BuildError):
    """A key was added twice.  ``.key`` is the key."""

    def __init__(self, key: Hashable) -> None:
        self.key = key
        super().__init__(f"duplicate key {key!r}: a node with this key was already added")

    def __reduce__(self):
        return (type(self), (self.key,))


class MissingDependencyError(BuildError):
    """A task depends on keys that were never added.

    ``.task`` is the task's key and ``.missing`` the list of unknown dependency keys.
    """

    def __init__(self, task: Hashable, missing: Sequence[Hashable]) -> None:
        self.task = task
        self.missing = list(missing)
        names = ", ".join(repr(k) for k in self.missing)
        super().__init__(f"task {task!r} depends on unknown key(s): {names}")

    def __reduce__(self):
        return (type(self), (self.task, self.missing))


class CycleError(BuildError):
    """The graph has a cycle.

    ``.cycle`` lists the keys along one cycle, each a dependency of the next, with the first
    key repeated at the end (as :class:`graphlib.CycleError` does); a task that depends on
    itself is the cycle ``[key, key]``.
    """

    def __init__(self, cycle: Sequence[Hashable]) -> None:
        self.cycle = list(cycle)
        path = " -> ".join(repr(k) for k in self.cycle)
        super().__init__(f"dependency cycle: {path}")

    def __reduce__(self):
        return (type(self), (self.cycle,))


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
    """A task raised.  ``.key`` names it; ``__cause__`` is the task's own exception."""

    def __init__(self, key: Hashable, message: str | None = None) -> None:
        self.key = key
        super().__init__(message or f"task {key!r} failed")

    def __reduce__(self):  # keep .key across pickling (the process backend sends these)
        return (type(self), (self.key, self.args[0] if self.args else None))


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

    def __reduce__(self):
        return (type(self), (self.key, self.args[0] if self.args else None, self.what))


def _task_failed(key: Hashable, exc: BaseException) -> TaskError:
    """The :class:`TaskError` for task ``key`` raising ``exc`` (chained as its cause)."""
    err = TaskError(key, f"task {key!r} failed: {type(exc).__name__}: {exc}")
    err.__cause__ = exc
    return err


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

    def __reduce__(self):
        return (type(self), (self.key, self.exitcode, self.during_startup))
