"""The :class:`Executor`: runs a :class:`~ftdag.Dag` for requested outputs on a chosen backend."""

from __future__ import annotations

import dataclasses
import sys
import sysconfig
import threading
import time
import warnings
import weakref
from collections.abc import Hashable, Iterable
from typing import TYPE_CHECKING, Any

from . import _sequential
from ._plan import Plan
from ._threads import ThreadPool, current_pool
from .config import ExecutorConfig
from .graph import Dag
from .results import RunResult, RunStats

if TYPE_CHECKING:
    from ._processes import ProcessPool

__all__ = ["Executor"]

_FREE_THREADED_BUILD = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def gil_enabled() -> bool:
    """Whether the GIL is on right now (an extension module can turn it back on at import)."""
    is_enabled = getattr(sys, "_is_gil_enabled", None)
    return True if is_enabled is None else is_enabled()


class Executor:
    """Runs graphs; owns the worker pools, which it starts on first use and reuses.

    Use it as a context manager, or call :meth:`close`.  Running on a closed executor raises
    :class:`RuntimeError`.

    Concurrency: any number of threads may call :meth:`run` on one executor; parallel runs are
    serialised (each waits for the one before it, then runs normally).  A task that calls
    :meth:`run` on the executor that is running it gets its graph run inline, sequentially,
    on its own worker thread (``stats.backend == "sequential"``), since waiting for the pool
    from inside the pool could deadlock.
    """

    def __init__(self, config: ExecutorConfig | None = None, **options: Any) -> None:
        """``Executor(ExecutorConfig(...))``, or the config's fields as keywords:
        ``Executor(max_workers=4, backend="threads")``, as ``concurrent.futures`` users expect."""
        if options:
            if config is not None:
                raise TypeError(
                    f"pass either an ExecutorConfig or its fields as keywords, not both "
                    f"(got config={config!r} and {', '.join(sorted(options))})"
                )
            fields = {f.name for f in dataclasses.fields(ExecutorConfig)}
            unknown = sorted(set(options) - fields)
            if unknown:
                raise TypeError(
                    f"Executor() got unexpected keyword argument(s) {', '.join(map(repr, unknown))}; "
                    f"the configuration fields are {', '.join(sorted(fields))}"
                )
            config = ExecutorConfig(**options)
        elif config is None:
            config = ExecutorConfig()
        elif not isinstance(config, ExecutorConfig):
            raise TypeError(f"config must be an ExecutorConfig, got {type(config).__name__}: {config!r}")
        self.config = config
        self._lock = threading.Lock()  # guards pool creation and _closed
        self._closed = False
        self._threads: ThreadPool | None = None
        self._processes: ProcessPool | None = None  # imported on first use
        self._warned_gil = False
        self._finalizer: weakref.finalize | None = None

    def __enter__(self) -> Executor:
        if self._closed:
            raise RuntimeError("this executor is closed: make a new one to use it in a with block")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __reduce__(self):
        raise TypeError("an Executor cannot be pickled: tasks that run in worker processes cannot use it")

    def close(self) -> None:
        """Shut down the worker pools (waiting for running tasks).  Idempotent."""
        with self._lock:
            self._closed = True
            pools = [p for p in (self._threads, self._processes) if p is not None]
        for pool in pools:
            pool.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def run(self, dag: Dag, outputs: Iterable[Hashable] | Hashable) -> RunResult:
        """Execute the ancestors of ``outputs`` in ``dag``, each once, and return the outputs.

        ``outputs`` is a list (or another iterable) of keys, or one key: a ``tuple`` is always
        one key, as in dask, and so are ``str``, ``bytes`` and any non-iterable.  Unknown keys
        raise :class:`~ftdag.UnknownKeyError` before anything runs.  A task that raises stops
        the run: no further task starts, running ones are waited for, and
        :class:`~ftdag.TaskError` is raised with the task's exception as ``__cause__`` (a
        ``BaseException`` such as ``KeyboardInterrupt`` is re-raised as it is).  The executor
        stays usable.
        """
        self._check(dag)
        backend = self._choose_backend()
        if backend == "threads" and self._threads is not None and current_pool() is self._threads:
            backend = "sequential"  # a nested run from one of our own workers: run it inline
        plan = Plan(dag, outputs)
        start = time.perf_counter()
        if backend == "sequential":
            counters = _sequential.run_plan(plan)
        else:
            counters = self._pool(backend).run(plan)
        return self._result(plan, backend, start, counters)

    def run_sequential(self, dag: Dag, outputs: Iterable[Hashable] | Hashable) -> RunResult:
        """Like :meth:`run`, but always on the calling thread, whatever the backend."""
        self._check(dag)
        plan = Plan(dag, outputs)
        start = time.perf_counter()
        return self._result(plan, "sequential", start, _sequential.run_plan(plan))

    # -- internals ------------------------------------------------------------------------------

    def _check(self, dag: Dag) -> None:
        if self._closed:
            raise RuntimeError("this executor is closed")
        if not isinstance(dag, Dag):
            raise TypeError(f"dag must be an ftdag.Dag (from DagBuilder.build()), got {type(dag).__name__}")

    @staticmethod
    def _result(plan: Plan, backend: str, start: float, counters: dict[str, int]) -> RunResult:
        wall = time.perf_counter() - start
        stats = RunStats(
            executed=plan.executed,
            pruned=len(plan.dag) - plan.executed,
            backend=backend,
            wall_s=wall,
            **counters,
        )
        return RunResult(plan.results(), stats)

    def _choose_backend(self) -> str:
        backend = self.config.backend
        if backend != "auto":
            return backend
        if not gil_enabled():
            return "threads"
        if _FREE_THREADED_BUILD and not self._warned_gil:
            self._warned_gil = True
            warnings.warn(
                "the GIL was re-enabled at run time (probably by importing an extension module that "
                "does not declare free-threading support), so threads cannot run Python code in "
                "parallel; ftdag uses worker processes instead. Run with PYTHON_GIL=0 (or -X gil=0) "
                "to keep the GIL off.",
                RuntimeWarning,
                stacklevel=3,
            )
        return "processes"

    def _pool(self, backend: str):
        with self._lock:
            if self._closed:
                raise RuntimeError("this executor is closed")
            if backend == "threads":
                if self._threads is None:
                    self._threads = ThreadPool(self.config)
                    self._finalize()
                return self._threads
            if self._processes is None:
                from ._processes import ProcessPool

                self._processes = ProcessPool(self.config)
                self._finalize()
            return self._processes

    def _finalize(self) -> None:
        """Shut the pools down if the executor is garbage-collected without close()."""
        if self._finalizer is not None:
            self._finalizer.detach()
        pools = [p for p in (self._threads, self._processes) if p is not None]
        self._finalizer = weakref.finalize(self, _close_all, pools)


def _close_all(pools: list) -> None:
    for pool in pools:
        pool.close()
