"""Executor configuration: :class:`ExecutorConfig`, validated when it is made."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

__all__ = ["BACKENDS", "ON_ERROR", "Backend", "ExecutorConfig", "OnError", "available_cpus", "check_on_error"]

BACKENDS = ("auto", "threads", "processes", "sequential", "distributed")
Backend = Literal["auto", "threads", "processes", "sequential", "distributed"]
ADDRESS_SCHEMES = ("tcp", "tls", "inproc", "ucx", "ws", "wss")  # what distributed's comm registry knows
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
        GIL is off at the time of ``run()``, processes otherwise.  ``"distributed"``: a
        ``dask.distributed`` cluster (the ``ftdag[distributed]`` extra; :mod:`ftdag._distributed`).
    resources:
        Capacities of named resources, ``{"db": 2, "gpu": 1}``: tasks added with
        ``resources={"db": 1}`` hold those units while they run, so at most two such tasks
        use ``db`` at once.  A read-only mapping once the config is made.
    on_error:
        What a task that fails for good does to a run, unless ``run(on_error=...)`` says:
        ``"fail_fast"`` (raise :class:`~ftdag.TaskError`) or ``"keep_going"`` (run what does
        not depend on it, and report; see :meth:`ftdag.Executor.run`).
    address:
        ``backend="distributed"`` only: the scheduler to connect to, ``"tcp://host:port"``
        (or another scheme of ``distributed``: tls, inproc, ucx, ws, wss).  ``None`` (the
        default) starts an embedded local cluster of ``max_workers`` worker processes.

    ``max_workers`` and ``max_in_flight`` are ints once the config is made (``None`` asks
    for the default).
    """

    max_workers: int
    max_in_flight: int
    worker_queue_cap: int
    backend: Backend
    on_error: OnError
    resources: Mapping[str, int]
    address: str | None

    def __init__(
        self,
        max_workers: int | None = None,
        max_in_flight: int | None = None,
        worker_queue_cap: int = 2,
        backend: Backend = "auto",
        on_error: OnError = "fail_fast",
        resources: Mapping[str, int] | None = None,
        address: str | None = None,
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
        capacities = _check_resources(resources)
        _check_address(address, backend)
        for name, value in (
            ("max_workers", max_workers), ("max_in_flight", max_in_flight),
            ("worker_queue_cap", worker_queue_cap), ("backend", backend), ("on_error", on_error),
            ("resources", capacities), ("address", address),
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


def _check_address(address: object, backend: str) -> None:
    if address is None:
        return
    if not isinstance(address, str):
        raise TypeError(f"ExecutorConfig.address must be None or a str, got {type(address).__name__}: {address!r}")
    scheme, sep, rest = address.partition("://")
    if not sep or scheme not in ADDRESS_SCHEMES or not rest:
        raise ValueError(
            f"ExecutorConfig.address must be a scheduler address such as 'tcp://127.0.0.1:8786' (scheme "
            f"{', '.join(ADDRESS_SCHEMES)}), got {address!r}"
        )
    if backend != "distributed":
        raise ValueError(f"ExecutorConfig.address is only used by backend='distributed', got backend={backend!r}")


def check_on_error(what: str, value: object) -> None:
    if not isinstance(value, str) or value not in ON_ERROR:
        raise ValueError(f"{what} must be one of {', '.join(map(repr, ON_ERROR))}; got {value!r}")


class Capacities(Mapping[str, int]):
    """A read-only, hashable ``{resource name: capacity}`` (``ExecutorConfig.resources``)."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, int]) -> None:
        self._items = MappingProxyType(dict(sorted(items.items())))

    def __getitem__(self, name: str) -> int:
        return self._items[name]

    def __iter__(self):
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(tuple(self._items.items()))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and dict(self._items) == dict(other)

    def __repr__(self) -> str:
        return repr(dict(self._items))


def _check_resources(resources: object) -> Mapping[str, int]:
    if resources is None:
        return Capacities({})
    if not isinstance(resources, Mapping):
        raise TypeError(
            f"ExecutorConfig.resources must be a mapping of resource names to capacities, "
            f"got {type(resources).__name__}: {resources!r}"
        )
    for name, capacity in resources.items():
        if not isinstance(name, str):
            raise TypeError(f"ExecutorConfig.resources: resource names must be str, got {type(name).__name__}: {name!r}")
        if isinstance(capacity, bool) or not isinstance(capacity, int):
            raise TypeError(
                f"ExecutorConfig.resources[{name!r}] must be an int, got {type(capacity).__name__}: {capacity!r}"
            )
        if capacity < 1:
            raise ValueError(f"ExecutorConfig.resources[{name!r}] must be >= 1, got {capacity}")
    return Capacities(resources)
