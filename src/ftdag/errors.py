"""Exceptions raised by ftdag.

Build-time errors are :class:`BuildError` (a :class:`ValueError`) and are raised by
:class:`~ftdag.DagBuilder` before anything runs.  Run-time errors say which node failed.
Every message names the keys involved.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

__all__ = [
    "BuildError",
    "CycleError",
    "DuplicateKeyError",
    "EmptyGraphError",
    "MissingDependencyError",
    "TaskError",
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


class MissingDependencyError(BuildError):
    """A task depends on keys that were never added.

    ``.task`` is the task's key and ``.missing`` the list of unknown dependency keys.
    """

    def __init__(self, task: Hashable, missing: Sequence[Hashable]) -> None:
        self.task = task
        self.missing = list(missing)
        names = ", ".join(repr(k) for k in self.missing)
        super().__init__(f"task {task!r} depends on unknown key(s): {names}")


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


class EmptyGraphError(BuildError):
    """``build()`` was called on a builder with no nodes."""

    def __init__(self) -> None:
        super().__init__("cannot build an empty graph: add at least one source or task")


class UnknownOutputError(KeyError):
    """Requested outputs that are not in the graph.  ``.keys`` lists them."""

    def __init__(self, keys: Sequence[Hashable]) -> None:
        self.keys = list(keys)
        super().__init__(*self.keys)

    def __str__(self) -> str:
        names = ", ".join(repr(k) for k in self.keys)
        return f"requested output(s) not in the graph: {names}"


class TaskError(Exception):
    """A task raised.  ``.key`` names it; ``__cause__`` is the task's own exception."""

    def __init__(self, key: Hashable, message: str | None = None) -> None:
        self.key = key
        super().__init__(message or f"task {key!r} failed")

    def __reduce__(self):  # keep .key across pickling (the process backend sends these)
        return (type(self), (self.key, self.args[0] if self.args else None))


def _task_failed(key: Hashable, exc: BaseException) -> TaskError:
    """The :class:`TaskError` for task ``key`` raising ``exc`` (chained as its cause)."""
    err = TaskError(key, f"task {key!r} failed: {type(exc).__name__}: {exc}")
    err.__cause__ = exc
    return err


class WorkerCrashedError(TaskError):
    """A worker process died while running the task ``.key`` (``.exitcode`` says how)."""

    def __init__(self, key: Hashable, exitcode: int | None = None) -> None:
        self.exitcode = exitcode
        how = f"exit code {exitcode}" if exitcode is not None and exitcode >= 0 else (
            f"signal {-exitcode}" if exitcode is not None else "unknown cause"
        )
        super().__init__(key, f"worker process died ({how}) while running task {key!r}")

    def __reduce__(self):
        return (type(self), (self.key, self.exitcode))
