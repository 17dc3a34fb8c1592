"""Seeing a run: :class:`Callback`, the events a run reports, and how they are delivered.

Pass callbacks to :meth:`ftdag.Executor.run` (``callbacks=[...]``), or to the executor
(``Executor(config, callbacks=[...])``) for every run.  A run reports, in this order:

``on_run_start(info)``                        once, before any task starts (:class:`RunInfo`);
``on_task_start(key, worker)``                before each attempt of a task;
``on_task_end(key, worker, elapsed_s, error)`` after it (``error``: None, or the exception);
``on_run_end(result, error)``                 once, when the run is over: its
                                              :class:`~ftdag.RunResult` (the partial one of
                                              a failed or cancelled run, if any) and the
                                              exception ``run()`` raises, or None.

For each attempt, ``on_task_start`` comes before ``on_task_end``, each once; a retried task
reports each attempt.  Tasks loaded from a store report no events.

Where the events run:

- threads: task events on the worker thread that ran the task (``worker`` is its slot,
  0 .. max_workers - 1), so callbacks must be thread-safe (ftdag's own are);
- processes: in the parent, when it learns of the event (the task's reply), with the index
  of the worker process and the elapsed time measured in the worker; both task events of an
  attempt are then reported together;
- sequential: on the calling thread, ``worker`` 0.

An exception raised by a callback is reported as a :class:`CallbackWarning` naming the
callback and the event, and does not break the run.  A run with no callbacks takes the same
code paths as before callbacks existed.

ftdag's own callbacks: :class:`~ftdag.ProgressBar` (:mod:`ftdag.progress`) and
:class:`~ftdag.Trace` (:mod:`ftdag.trace`).
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Callback", "CallbackWarning", "RunInfo"]


class CallbackWarning(RuntimeWarning):
    """A callback raised; the run went on."""


@dataclass(frozen=True)
class RunInfo:
    """What ``on_run_start`` gets: the planned keys (tasks and sources a run executes, in a
    topological order), their count, the backend that runs them, its workers, and ``tasks``,
    how many planned tasks will run (and so report events: sources and tasks loaded from a
    store do not)."""

    keys: tuple[Hashable, ...]
    count: int
    backend: str
    workers: int
    tasks: int = 0


class Callback:
    """Base class of run callbacks: every method does nothing; override what you need."""

    def on_run_start(self, info: RunInfo) -> None:
        pass

    def on_task_start(self, key: Hashable, worker: int) -> None:
        pass

    def on_task_end(self, key: Hashable, worker: int, elapsed_s: float, error: BaseException | None) -> None:
        pass

    def on_run_end(self, result: Any, error: BaseException | None) -> None:
        pass


class Callbacks:
    """Several callbacks as one, each call guarded (see the module docstring)."""

    __slots__ = ("all",)

    def __init__(self, callbacks: Sequence[Callback]) -> None:
        self.all = tuple(callbacks)

    def _guarded(self, event: str, *args: Any) -> None:
        for cb in self.all:
            try:
                getattr(cb, event)(*args)
            except Exception as exc:
                warnings.warn(
                    f"callback {cb!r} raised in {event}: {type(exc).__name__}: {exc} (the run goes on)",
                    CallbackWarning,
                    stacklevel=2,
                )

    def run_start(self, info: RunInfo) -> None:
        self._guarded("on_run_start", info)

    def task_start(self, key: Hashable, worker: int) -> None:
        self._guarded("on_task_start", key, worker)

    def task_end(self, key: Hashable, worker: int, elapsed_s: float, error: BaseException | None) -> None:
        self._guarded("on_task_end", key, worker, elapsed_s, error)

    def run_end(self, result: Any, error: BaseException | None) -> None:
        self._guarded("on_run_end", result, error)


def check_callbacks(callbacks: object, what: str = "callbacks") -> tuple[Callback, ...]:
    """``callbacks`` as a tuple, each checked to have the four methods (a :class:`Callback`
    or any object with them); a clear ``TypeError`` otherwise."""
    if callbacks is None:
        return ()
    if isinstance(callbacks, Callback) or not isinstance(callbacks, (list, tuple)):
        raise TypeError(f"{what} must be a list or tuple of callbacks, got {type(callbacks).__name__}: {callbacks!r}")
    for cb in callbacks:
        missing = [m for m in ("on_run_start", "on_task_start", "on_task_end", "on_run_end")
                   if not callable(getattr(cb, m, None))]
        if missing:
            raise TypeError(
                f"{what}: {cb!r} is not a callback (subclass ftdag.Callback); it lacks {', '.join(missing)}"
            )
    return tuple(callbacks)
