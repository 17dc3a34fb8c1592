"""Executor configuration: :class:`ExecutorConfig`, validated when it is made."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

__all__ = ["BACKENDS", "ON_ERROR", "Backend", "ExecutorConfig", "OnError", "available_cpus", "check_on_error"]

BACKENDS = ("auto", "threads", "processes", "sequential")
Backend = Literal["auto", "threads", "processes", "sequential"]
ON_ERROR = ("fail_fast", "keep_going")
OnError = Literal["fail_fast", "keep_going"]


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask), at least 1."""
    if hasattr(os, "process_cpu_count"):  # 3.13+
        return os.process_cpu_count() or 1
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


@dataclass(frozen=True, init=False)
class ExecutorConfig:
    """How an :class:`~ftdag.Executor` runs graphs.

    max_workers:
        Worker slots: at most this many tasks run at once.  On threads the thread that
        called ``run()`` is one of them (the pool starts ``max_workers - 1`` threads); on
        processes it is the number of worker processes.  Default: :func:`available_cpus`.
    max_in_flight:
        Upper bound on tasks queued for or running in workers at any moment; ready tasks
        beyond it wait, holding no inputs.  Default: ``2 * max_workers``.  The effective
        bound is ``min(max_in_flight, max_workers * (worker_queue_cap + 1))``.
    worker_queue_cap:
        Capacity of each worker's queue of ready tasks (besides the one it runs).
    backend:
        ``"threads"``, ``"processes"``, ``"sequential"``, or ``"auto"``: threads when the
        GIL is off at the time of ``run()``, processes otherwise.
    on_error:
        What a task that fails for good does to a run, unless ``run(on_error=...)`` says:
        ``"fail_fast"`` (raise :class:`~ftdag.TaskError`) or ``"keep_going"`` (run what does
        not depend on it, and report; see :meth:`ftdag.Executor.run`).

    ``max_workers`` and ``max_in_flight`` are ints once the config is made (``None`` asks
    for the default).
    """

    max_workers: int
    max_in_flight: int
    worker_queue_cap: int
    backend: Backend
    on_error: OnError

    def __init__(
        self,
        max_workers: int | None = None,
        max_in_flight: int | None = None,
        worker_queue_cap: int = 2,
        backend: Backend = "auto",
        on_error: OnError = "fail_fast",
    ) -> None:
        if max_workers is None:
            max_workers = available_cpus()
        _check_count("max_workers", max_workers)
        if max_in_flight is None:
            max_in_flight = 2 * max_workers
        _check_count("max_in_flight", max_in_flight)
        _check_count("worker_queue_cap", worker_queue_cap)
        if not isinstance(backend, str):
            raise TypeError(f"ExecutorConfig.backend must be a str, got {type(backend).__name__}: {backend!r}")
        if backend not in BACKENDS:
            raise ValueError(f"ExecutorConfig.backend must be one of {', '.join(map(repr, BACKENDS))}; got {backend!r}")
        check_on_error("ExecutorConfig.on_error", on_error)
        for name, value in (
            ("max_workers", max_workers), ("max_in_flight", max_in_flight),
            ("worker_queue_cap", worker_queue_cap), ("backend", backend), ("on_error", on_error),
        ):
            object.__setattr__(self, name, value)

    @property
    def in_flight_bound(self) -> int:
        """The bound the schedulers actually keep: what ``max_in_flight`` allows and the queues can hold."""
        return min(self.max_in_flight, self.max_workers * (self.worker_queue_cap + 1))


def _check_count(field: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"ExecutorConfig.{field} must be an int, got {type(value).__name__}: {value!r}")
    if value < 1:
        raise ValueError(f"ExecutorConfig.{field} must be >= 1, got {value}")


def check_on_error(what: str, value: object) -> None:
    if not isinstance(value, str) or value not in ON_ERROR:
        raise ValueError(f"{what} must be one of {', '.join(map(repr, ON_ERROR))}; got {value!r}")
