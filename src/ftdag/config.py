"""Executor configuration: :class:`ExecutorConfig`, validated when it is made."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

__all__ = ["BACKENDS", "ExecutorConfig", "available_cpus"]

BACKENDS = ("auto", "threads", "processes", "sequential")
Backend = Literal["auto", "threads", "processes", "sequential"]


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask), at least 1."""
    if hasattr(os, "process_cpu_count"):  # 3.13+
        return os.process_cpu_count() or 1
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


@dataclass(frozen=True)
class ExecutorConfig:
    """How an :class:`~ftdag.Executor` runs graphs.

    max_workers:
        Worker threads or processes.  Default: :func:`available_cpus`.
    max_in_flight:
        Upper bound on tasks queued for or running in workers at any moment; ready tasks
        beyond it wait, holding no inputs.  Default: ``2 * max_workers``.  The effective
        bound is ``min(max_in_flight, max_workers * (worker_queue_cap + 1))``.
    worker_queue_cap:
        Capacity of each worker's queue of ready tasks (besides the one it runs).
    backend:
        ``"threads"``, ``"processes"``, ``"sequential"``, or ``"auto"``: threads when the
        GIL is off at the time of ``run()``, processes otherwise.
    """

    max_workers: int | None = None
    max_in_flight: int | None = None
    worker_queue_cap: int = 2
    backend: Backend = "auto"

    def __post_init__(self) -> None:
        if self.max_workers is None:
            object.__setattr__(self, "max_workers", available_cpus())
        _check_count("max_workers", self.max_workers)
        if self.max_in_flight is None:
            object.__setattr__(self, "max_in_flight", 2 * self.max_workers)
        _check_count("max_in_flight", self.max_in_flight)
        _check_count("worker_queue_cap", self.worker_queue_cap)
        if not isinstance(self.backend, str):
            raise TypeError(f"ExecutorConfig.backend must be a str, got {type(self.backend).__name__}: {self.backend!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"ExecutorConfig.backend must be one of {', '.join(map(repr, BACKENDS))}; got {self.backend!r}")

    @property
    def in_flight_bound(self) -> int:
        """The bound the schedulers actually keep: what ``max_in_flight`` allows and the queues can hold."""
        return min(self.max_in_flight, self.max_workers * (self.worker_queue_cap + 1))


def _check_count(field: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"ExecutorConfig.{field} must be an int, got {type(value).__name__}: {value!r}")
    if value < 1:
        raise ValueError(f"ExecutorConfig.{field} must be >= 1, got {value}")
