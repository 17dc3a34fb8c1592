"""The :class:`Executor`: runs a :class:`~ftdag.Dag` for requested outputs on a chosen backend."""

from __future__ import annotations

import dataclasses
import logging
import sys
import sysconfig
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from . import _sequential
from ._context import CancelToken
from ._plan import Plan
from ._policy import RunPolicy, policy_from_options, run_policy, with_progress
from ._runner import run_with_context
from ._threads import ThreadPool
from .callbacks import Callback, check_callbacks
from .config import ExecutorConfig, OnError
from .graph import Dag
from .results import RunResult, RunStats

if TYPE_CHECKING:
    from ._distributed import DistributedPool
    from ._processes import ProcessPool
    from ._streams import Submitter

__all__ = ["Executor"]

_FREE_THREADED_BUILD = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
_log = logging.getLogger("ftdag")  # debug records of runs, failures and retries; silent unless configured


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

    def __init__(
        self, config: ExecutorConfig | None = None, *, callbacks: Sequence[Callback] | None = None,
        client: Any = None, **options: Any,
    ) -> None:
        """``Executor(ExecutorConfig(...))``, or the config's fields as keywords:
        ``Executor(max_workers=4, backend="threads")``, as ``concurrent.futures`` users expect.
        ``callbacks``: :class:`~ftdag.Callback` s that see every run of this executor.
        ``client``: with ``backend="distributed"``, a ``distributed.Client`` to run on (never
        closed by the executor) instead of ``address`` or an embedded cluster."""
        self._callbacks = check_callbacks(callbacks, "Executor(callbacks=...)")
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
        if client is not None:
            from ._distributed import check_client

            check_client(client)
            if config.backend != "distributed" or config.address is not None:
                raise ValueError("Executor(client=...) needs backend='distributed' and no ExecutorConfig.address")
        self.config = config
        self._client = client
        self._lock = threading.Lock()  # guards pool creation and _closed
        self._closed = False
        self._threads: ThreadPool | None = None
        self._processes: ProcessPool | None = None  # imported on first use
        self._distributed: DistributedPool | None = None  # imported on first use
        self._submitter: Submitter | None = None  # runs submit()ted runs; made on first use
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
        """Shut down the worker pools (waiting for running tasks).  Idempotent.

        Submitted runs (:meth:`submit`) that have not started are cancelled; the one in
        progress is waited for.
        """
        with self._lock:
            submitter = self._submitter
        if submitter is not None:
            submitter.close()
        with self._lock:
            self._closed = True
            pools = [p for p in (self._threads, self._processes, self._distributed) if p is not None]
        for pool in pools:
            pool.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def run(
        self,
        dag: Dag,
        outputs: Iterable[Hashable] | Hashable,
        *,
        on_error: OnError | None = None,
        max_failures: int | None = None,
        cancel: CancelToken | None = None,
        timeout: float | None = None,
        store: Any = None,
        callbacks: Sequence[Callback] | None = None,
        progress: bool = False,
    ) -> RunResult:
        """Execute the ancestors of ``outputs`` in ``dag``, each once, and return the outputs.

        ``outputs`` is a list (or another iterable) of keys, or one key: a ``tuple`` is always
        one key, as in dask, and so are ``str``, ``bytes`` and any non-iterable.  Unknown keys
        raise :class:`~ftdag.UnknownKeyError` before anything runs.  The executor stays usable
        whatever happens.

        Failures (a task fails *for good* once its retries, if any, are spent):

        - ``on_error="fail_fast"`` (the default, or ``ExecutorConfig.on_error``): the first
          task that fails for good stops the run: no further task starts, running ones are
          waited for, and :class:`~ftdag.TaskError` is raised with the task's exception as
          ``__cause__`` (a ``BaseException`` such as ``KeyboardInterrupt`` is re-raised as it
          is, in every mode).
        - ``on_error="keep_going"``: every planned task that does not depend on a failed one
          still runs; the run returns normally, reporting ``result.failed`` and
          ``result.skipped`` (see :class:`~ftdag.RunResult`).  ``max_failures=N`` stops it
          (nothing new starts; the rest is reported as skipped) once N tasks failed.
        - ``cancel``: a :class:`~ftdag.CancelToken`; once it is cancelled nothing new starts,
          running tasks are waited for, and :class:`~ftdag.RunCancelledError` is raised, its
          ``.result`` holding what completed.  ``timeout``: seconds; at the deadline the same
          happens, with :class:`~ftdag.RunTimeoutError`.
        - ``store``: a result store (:mod:`ftdag.store`): results are saved as tasks succeed,
          and a later run loads what is stored instead of computing it.
        - ``callbacks``: :class:`~ftdag.Callback` s that see this run (after the executor's own);
          ``progress=True`` adds a :class:`~ftdag.ProgressBar`.
        """
        self._check(dag)
        policy = run_policy(
            self.config.on_error if on_error is None else on_error, max_failures, cancel, timeout, store,
            with_progress(self._callbacks + check_callbacks(callbacks), progress),
        )
        return self._execute(dag, outputs, policy)

    def run_sequential(self, dag: Dag, outputs: Iterable[Hashable] | Hashable, **run_options: Any) -> RunResult:
        """Like :meth:`run` (and with its keyword options), but always on the calling thread,
        whatever the backend."""
        self._check(dag)
        return self._execute(dag, outputs, self._policy_of(run_options), backend="sequential")

    def as_completed(
        self, dag: Dag, outputs: Iterable[Hashable] | Hashable, **run_options: Any,
    ) -> Iterator[tuple[Hashable, Any]]:
        """Run like :meth:`run` (same keyword options), yielding ``(key, value)`` for each
        requested output as soon as it is ready, in completion order, while the run goes on.

        Once an output is yielded the run keeps no reference to it (tasks that still need it
        keep theirs until they have run), so a consumer that processes and drops each result
        keeps memory flat.  A failure raises from the iterator as :meth:`run` would.  Leaving
        the loop early (``break``, an exception) cancels the rest of the run, waits for the
        running tasks, and leaves the executor usable.
        """
        from . import _streams

        return _streams.as_completed(self, dag, outputs, run_options)

    def submit(self, dag: Dag, outputs: Iterable[Hashable] | Hashable, **run_options: Any) -> Future[RunResult]:
        """Start :meth:`run` (same keyword options) and return a
        :class:`concurrent.futures.Future` of its :class:`~ftdag.RunResult` at once.

        Submitted runs run one after the other, in submission order, on a thread of the
        executor; ``future.cancel()`` before its run starts removes it; ``future.result()``
        raises as :meth:`run` would.  Invalid options raise here, not in the future.
        """
        with self._lock:
            if self._closed:
                raise RuntimeError("this executor is closed")
            if self._submitter is None:
                from ._streams import Submitter

                self._submitter = Submitter(self)
            submitter = self._submitter
        return submitter.submit(dag, outputs, run_options)

    async def run_async(self, dag: Dag, outputs: Iterable[Hashable] | Hashable, **run_options: Any) -> RunResult:
        """Await :meth:`run` (same keyword options) without blocking the event loop.

        Cancelling the awaiting task cancels the run (nothing new starts; running tasks finish,
        and are waited for) and raises :class:`asyncio.CancelledError` in it.
        """
        from . import _streams

        return await _streams.run_async(self, dag, outputs, run_options)

    def _policy_of(self, run_options: Mapping[str, Any]) -> RunPolicy | None:
        """The validated policy of :meth:`run`'s keyword options given as a mapping."""
        return policy_from_options(run_options, self.config.on_error, self._callbacks)

    def _execute(
        self, dag: Dag, outputs: Iterable[Hashable] | Hashable, policy: RunPolicy | None,
        emit: Callable[[Hashable, Any], None] | None = None, backend: str | None = None,
    ) -> RunResult:
        """Run with a validated policy; ``emit(key, value)`` is called for each requested output
        as soon as it is ready (ftdag._streams).  A plain run (no policy, no task with options
        that the schedulers must see, nothing streamed) takes the backends' plain paths."""
        if backend is None:
            backend = self._choose_backend()
        plan = Plan(dag, outputs)
        start = time.perf_counter()
        debug = _log.isEnabledFor(logging.DEBUG)
        if debug:
            _log.debug("run of %d planned nodes on %s starts", plan.executed, backend)
        try:
            if policy is None and not plan.scheduled and emit is None:
                counters = None
                if backend != "sequential":
                    pool = self._threads if backend == "threads" and self._threads is not None else self._pool(backend)
                    counters = pool.run(plan)  # (made once: a closed pool refuses to run)
                if counters is None:  # sequential, or a run from a task of the thread pool (ThreadPool.run)
                    backend = "sequential"
                    counters = _sequential.run_plan(plan)
                result = self._result(plan, backend, start, counters)
            else:
                if backend == "threads" and self._threads is not None and self._threads.inside():
                    backend = "sequential"  # (ThreadPool.run)
                result = run_with_context(self, plan, policy or RunPolicy(self.config.on_error), backend, start, emit)
        except BaseException as exc:
            if debug:
                _log.debug("run on %s ended with %s: %s", backend, type(exc).__name__, exc)
            raise
        if debug:
            _log.debug("run on %s ended: %s", backend, result.stats)
        return result

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
            if backend == "distributed":
                if self._distributed is None:
                    from ._distributed import DistributedPool

                    self._distributed = DistributedPool(self.config, self._client)
                    self._finalize()
                return self._distributed
            if self._processes is None:
                from ._processes import ProcessPool

                self._processes = ProcessPool(self.config)
                self._finalize()
            return self._processes

    def _finalize(self) -> None:
        """Shut the pools down if the executor is garbage-collected without close()."""
        if self._finalizer is not None:
            self._finalizer.detach()
        pools = [p for p in (self._threads, self._processes, self._distributed) if p is not None]
        self._finalizer = weakref.finalize(self, _close_all, pools)


def _close_all(pools: list) -> None:
    for pool in pools:
        pool.close()
