"""The :class:`Executor`: runs a :class:`~ftdag.Dag` for requested outputs on a chosen backend."""

from __future__ import annotations

import dataclasses
import sys
import sysconfig
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Hashable, Iterable, Iterator
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from . import _sequential
from ._admission import Admission, check_capacities
from ._context import CancelToken, RunContext
from ._plan import Plan
from ._threads import ThreadPool, current_pool
from .config import ExecutorConfig, OnError, check_on_error
from .errors import RunCancelledError, RunTimeoutError
from .graph import Dag
from .results import RunResult, RunStats

if TYPE_CHECKING:
    from ._processes import ProcessPool
    from ._streams import Submitter

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
            pools = [p for p in (self._threads, self._processes) if p is not None]
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
        """
        self._check(dag)
        ctx_args = _policy(self.config.on_error if on_error is None else on_error, max_failures, cancel, timeout, store)
        return self._execute(dag, outputs, ctx_args)

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

    def _policy_of(self, options: dict[str, Any], cancel: CancelToken | None) -> dict[str, Any] | None:
        """The validated policy of :meth:`run`'s keyword options given as a dict (see :func:`_policy`)."""
        unknown = sorted(set(options) - _RUN_OPTIONS)
        if unknown:
            raise TypeError(
                f"unexpected keyword argument(s) {', '.join(map(repr, unknown))}; the run options are "
                f"{', '.join(sorted(_RUN_OPTIONS | {'cancel'}))}"
            )
        on_error = options.get("on_error")
        return _policy(
            self.config.on_error if on_error is None else on_error, options.get("max_failures"), cancel,
            options.get("timeout"), options.get("store"),
        )

    def _execute(
        self, dag: Dag, outputs: Iterable[Hashable] | Hashable, ctx_args: dict[str, Any] | None,
        emit: Callable[[Hashable, Any], None] | None = None,
    ) -> RunResult:
        """:meth:`run` with a validated policy (``_policy``); ``emit(key, value)`` is called for
        each requested output as soon as it is ready (ftdag._streams), which needs a context."""
        backend = self._choose_backend()
        if backend == "threads" and self._threads is not None and current_pool() is self._threads:
            backend = "sequential"  # a nested run from one of our own workers: run it inline
        plan = Plan(dag, outputs)
        start = time.perf_counter()
        if ctx_args is None and not plan.scheduled and emit is None:
            if backend == "sequential":
                counters = _sequential.run_plan(plan)
            else:
                counters = self._pool(backend).run(plan)
            return self._result(plan, backend, start, counters)
        admission = self._admission(plan)  # may raise, before anything runs
        ctx = RunContext(plan, **(ctx_args or _DEFAULT_POLICY))
        if ctx.store is not None:
            from . import _resume

            plan = _resume.prepare(plan, ctx, ctx.store)
        if emit is not None:
            ctx.stream(plan, emit)
        if backend == "sequential":  # one task at a time: nothing to admit
            counters = _sequential.run_plan(plan, ctx)
        else:
            counters = self._pool(backend).run(plan, ctx, admission)
        return self._outcome(plan, ctx, backend, start, counters)

    def run_sequential(self, dag: Dag, outputs: Iterable[Hashable] | Hashable, **policy: Any) -> RunResult:
        """Like :meth:`run` (and with its keyword arguments), but always on the calling thread,
        whatever the backend."""
        self._check(dag)
        plan = Plan(dag, outputs)
        start = time.perf_counter()
        ctx_args = _policy(
            policy.pop("on_error", None) or self.config.on_error, policy.pop("max_failures", None),
            policy.pop("cancel", None), policy.pop("timeout", None), policy.pop("store", None),
        )
        if policy:
            raise TypeError(f"run_sequential() got unexpected keyword argument(s) {', '.join(map(repr, policy))}")
        if ctx_args is None and not plan.scheduled:
            return self._result(plan, "sequential", start, _sequential.run_plan(plan))
        self._admission(plan)  # checks the capacities
        ctx = RunContext(plan, **(ctx_args or _DEFAULT_POLICY))
        if ctx.store is not None:
            from . import _resume

            plan = _resume.prepare(plan, ctx, ctx.store)
        return self._outcome(plan, ctx, "sequential", start, _sequential.run_plan(plan, ctx))

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

    def _admission(self, plan: Plan) -> Admission | None:
        """The admission state of a guarded plan's run (ftdag._admission), after checking that
        every resource its tasks ask for is declared with enough units; None if not guarded."""
        if not plan.template.guarded:
            return None
        dag = plan.dag
        check_capacities(plan.tasks, dag._keys, dag._resources, self.config.resources)
        return Admission(dag._resources, dag._access, self.config.resources)

    @classmethod
    def _outcome(cls, plan: Plan, ctx: RunContext, backend: str, start: float, counters: dict[str, int]) -> RunResult:
        """The result of a run with a context, or the exception it ends with."""
        wall = time.perf_counter() - start
        if ctx.reason == "failed" and ctx.on_error == "fail_fast":
            raise ctx.first_error()
        outputs, failed, skipped = ctx.report(plan)
        stats = RunStats(
            executed=plan.executed,
            pruned=len(plan.dag) - plan.executed,
            backend=backend,
            wall_s=wall,
            **counters,
            **ctx.counters(),
            failed=len(failed or ()),
            skipped=len(skipped),
        )
        result = RunResult(outputs, stats, failed, skipped)
        if ctx.reason == "cancelled":
            raise RunCancelledError("the run was cancelled (its CancelToken was cancelled)", result)
        if ctx.reason == "timeout":
            raise RunTimeoutError("the run reached its timeout", result)
        return result

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


_RUN_OPTIONS = frozenset({"on_error", "max_failures", "timeout", "store"})  # and cancel

_DEFAULT_POLICY: dict[str, Any] = {
    "on_error": "fail_fast", "max_failures": None, "cancel": None, "timeout": None, "store": None,
}


def _policy(
    on_error: str, max_failures: int | None, cancel: CancelToken | None, timeout: float | None, store: Any,
) -> dict[str, Any] | None:
    """The validated run policy, or None for a plain fail-fast run (module ftdag._context)."""
    if on_error == "fail_fast" and max_failures is None and cancel is None and timeout is None and store is None:
        return None  # (the common case, checked first: every run pays for this function)
    check_on_error("on_error", on_error)
    if max_failures is not None:
        if isinstance(max_failures, bool) or not isinstance(max_failures, int):
            raise TypeError(f"max_failures must be None or an int, got {type(max_failures).__name__}: {max_failures!r}")
        if max_failures < 1:
            raise ValueError(f"max_failures must be >= 1, got {max_failures}")
        if on_error != "keep_going":
            raise ValueError(f"max_failures={max_failures} needs on_error='keep_going' (fail_fast stops at the first failure)")
    if cancel is not None and not isinstance(cancel, CancelToken):
        raise TypeError(f"cancel must be an ftdag.CancelToken, got {type(cancel).__name__}: {cancel!r}")
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise TypeError(f"timeout must be None or a number of seconds, got {type(timeout).__name__}: {timeout!r}")
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
    if store is not None:
        missing = [m for m in ("load", "save", "delete", "clear", "__len__") if not callable(getattr(store, m, None))]
        if missing:
            raise TypeError(
                f"store must be a result store (ftdag.MemoryStore, DirectoryStore, SQLiteStore, or an object with "
                f"load, save, delete, clear and __len__); {type(store).__name__} lacks {', '.join(missing)}"
            )
    if on_error == "fail_fast" and max_failures is None and cancel is None and timeout is None and store is None:
        return None
    return {"on_error": on_error, "max_failures": max_failures, "cancel": cancel, "timeout": timeout, "store": store}


def _close_all(pools: list) -> None:
    for pool in pools:
        pool.close()
