"""The distributed backend: a plan's tasks as futures on a ``dask.distributed`` cluster.

``ExecutorConfig(backend="distributed")`` runs graphs on a cluster of the optional
``distributed`` package (``pip install "ftdag[distributed]"``).  Importing ftdag never
imports it: :class:`DistributedPool` does, when the executor first needs it.

The cluster
-----------
- ``address=None`` (the default): the pool starts an embedded ``distributed.LocalCluster``
  on its first run, bound to 127.0.0.1, without a dashboard (the scheduler's small HTTP
  server listens on a free port of 127.0.0.1), with ``max_workers`` worker processes of one
  thread each, and closes it (and its client) on ``close()``.  Its workers
  are spawned from this interpreter with its ``sys.path``.
- ``address="tcp://host:port"``: the pool connects a client of its own to that scheduler on
  its first run, and closes only that client.
- ``Executor(config, client=c)``: the pool uses the ``distributed.Client`` it is given and
  never closes it (nor its cluster).

Functions and values travel to the workers by pickling (``distributed`` falls back to
cloudpickle, so lambdas and closures work): the modules they live in, and ftdag itself,
must be importable on the workers.

A run
-----
Before anything is submitted the run checks that the plan uses only what this backend
supports (:func:`check_supported`).  Then, in the plan's topological order, each planned
task is submitted once with ``client.submit(fn, *inputs, key=..., pure=False)``, its inputs
being the futures of the tasks it depends on and the values of its sources, and dask
resolves the dependencies.  Sources that are not small scalars (``None``, ``bool``,
numbers, and ``str``/``bytes`` up to :data:`INLINE_BYTES`) are scattered to the cluster
first, in one call, so that a value many tasks use crosses the network once; scalars go
inline in the tasks.  A task with order-only predecessors (``after``, ``before``,
``creates``/``consumes``, barriers) also waits for a tiny marker task of each one
(:func:`_settled`, run where that predecessor's result lives), so that no result travels
only to be ordered after.  A ``priority`` becomes dask's ``priority``.

The pool holds the future of every planned task and learns of each completion from a
done-callback.  It keeps the plan's counts as the other backends do: a task's future is
dropped as soon as its last consumer has finished, so dask frees an intermediate result as
soon as nothing needs it, and the requested outputs are gathered at the end (an output is
fetched when it completes if the run streams its outputs, as :meth:`Executor.as_completed`
does).

A failed future is blamed on the task that actually failed (:meth:`_Run.culprit`): dask
errs every dependent of a failed task with the same exception.  Fail fast: the first
failure cancels every future not yet finished and raises :class:`~ftdag.TaskError` with
the remote exception (its own type, with its remote traceback) as ``__cause__``; a worker
that died while running the task (dask's ``KilledWorker``, after its retries on other
workers) gives :class:`~ftdag.WorkerCrashedError`.  **Unlike the other backends, tasks
already running are not waited for**: dask cannot stop them, so they finish on their
workers and their results are dropped.  The same holds for Ctrl-C and for a run stopped by
its cancel token or deadline.

Runs with a context (:mod:`ftdag._context`)
-------------------------------------------
Supported: ``on_error="keep_going"`` and ``max_failures`` (dask skips the dependents of a
failed task itself; the run reports them as skipped), ``cancel`` and ``timeout`` (nothing
more starts: every unfinished future is cancelled), streaming outputs
(:meth:`~ftdag.Executor.as_completed`, ``submit``, ``run_async``), task ``priority`` and
order-only edges.  Not supported, each a :class:`NotImplementedError` naming it before
anything is submitted: task ``retries``, ``timeout``, ``cost``, ``resources``, ``reads`` and
``writes``, and the run options ``store`` and ``callbacks`` (a run with callbacks has
already reported ``on_run_start``; it reports the error to ``on_run_end``).
``max_in_flight`` and ``worker_queue_cap`` do not apply: dask schedules.

Workers and the GIL
-------------------
On a free-threaded build the embedded cluster's workers run with dask's statistical
profiler off (``distributed.worker.profile.enabled``): it samples the frames of other
threads, which is not safe there (earlier measurements on 3.13t crashed runs).  So does its
scheduler, in this process: a dask server starts the profiler on its event loop too.  At each
run the pool asks the scheduler for its workers (``stats.workers`` is their total thread
count) and probes each worker it has not seen before, once (:func:`_probe`): whether it is
a free-threaded build, whether its GIL is enabled, and whether its profiler is on.  A
free-threaded worker with the GIL enabled (an extension module re-enabled it) or with the
profiler on gets a :class:`RuntimeWarning` naming the workers and the fix, once per pool;
the run goes on (its tasks are correct, only slower or at risk).  :attr:`DistributedPool.reports`
keeps what each worker answered.
"""

from __future__ import annotations

import functools
import importlib
import queue
import sys
import sysconfig
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Hashable
from typing import Any, NamedTuple

from ._admission import Admission
from ._context import CONTINUE, DONE, FAILED, SKIPPED, STOP, RunContext
from ._plan import Plan
from .config import ExecutorConfig
from .errors import SerializationError, TaskError, WorkerCrashedError, _task_failed

__all__ = ["DistributedPool", "WorkerReport", "check_client", "import_distributed"]

FREE_THREADED_BUILD = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
PROFILER_OFF = {"distributed.worker.profile.enabled": False}
"""The dask setting the embedded cluster's workers get on a free-threaded build."""

LOCAL_HTTP = {"dashboard_address": "127.0.0.1:0"}
"""The embedded scheduler's small HTTP server (health, metrics; no dashboard) on a free local
port: dask's default, 8787, would clash with any other cluster on the machine."""

INLINE_BYTES = 1024
"""A ``str`` or ``bytes`` source at most this long goes inline in its tasks; longer ones are scattered."""

_SLICE_S = 0.05  # how long the main thread blocks at a time, so that Ctrl-C is seen
_main_ident = threading.main_thread().ident
_WAKE = -1  # put in a run's queue to make it look at its context (cancel token, deadline)
_INLINE_TYPES = (type(None), bool, int, float, complex)


def import_distributed() -> Any:
    """The ``distributed`` module, or an :class:`ImportError` naming the extra that installs it."""
    try:
        distributed = importlib.import_module("distributed")  # (no static import: mypy runs without it)
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.partition(".")[0] != "distributed":
            raise
        raise ImportError(
            "ExecutorConfig(backend='distributed') needs the 'distributed' package, which is not "
            "installed: pip install 'ftdag[distributed]'"
        ) from exc
    return distributed


def check_client(client: object) -> None:
    """``Executor(client=...)`` must be a ``distributed.Client`` (checked without importing
    ``distributed``: a Client can only exist if it is imported)."""
    module = sys.modules.get("distributed")
    if module is None or not isinstance(client, module.Client):
        raise TypeError(f"client must be a distributed.Client, got {type(client).__name__}: {client!r}")


class WorkerReport(NamedTuple):
    """What :func:`_probe` found on a worker."""

    free_threaded: bool  # the worker's interpreter is a free-threaded build
    gil_enabled: bool  # its GIL is enabled now
    profiler: bool  # dask's statistical profiler is on there


def _probe() -> WorkerReport:
    """Runs on each worker (``client.run``): see :class:`WorkerReport`."""
    dask = importlib.import_module("dask")
    is_enabled = getattr(sys, "_is_gil_enabled", None)
    return WorkerReport(
        bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
        True if is_enabled is None else bool(is_enabled()),
        bool(dask.config.get("distributed.worker.profile.enabled")),
    )


def _settled(value: object) -> None:
    """The marker of an order-only predecessor: done once that predecessor is (its value stays put)."""
    return None


class _Ordered:
    """A task function with order-only predecessors: ``_Ordered(fn, n)(*args)`` is
    ``fn(*args[:n])``, the arguments after the first ``n`` being the predecessors' markers."""

    __slots__ = ("fn", "n", "__name__")

    def __init__(self, fn: Callable[..., Any], n: int) -> None:
        self.fn = fn
        self.n = n
        self.__name__ = getattr(fn, "__name__", None) or type(fn).__name__

    def __call__(self, *args: Any) -> Any:
        return self.fn(*args[: self.n])

    def __reduce__(self) -> tuple[type[_Ordered], tuple[Callable[..., Any], int]]:
        return (_Ordered, (self.fn, self.n))


def check_supported(plan: Plan, ctx: RunContext | None) -> None:
    """Raise :class:`NotImplementedError` naming the first task option or run option of this
    run that the distributed backend does not support (module docstring).  (A run with
    admission has a task with resources, reads or writes: refused here.)"""
    dag = plan.dag
    options = dag._options
    if options is not None:
        for t in plan.tasks:
            o = options[t]
            if o is None:
                continue
            unsupported = [name for name, used in (
                ("retries", o.retries > 0), ("timeout", o.timeout is not None), ("cost", o.cost != 1.0),
                ("resources", bool(o.resources)), ("reads", bool(o.reads)), ("writes", bool(o.writes)),
            ) if used]
            if unsupported:
                raise NotImplementedError(
                    f"task {dag._keys[t]!r} uses {', '.join(unsupported)}, which the distributed backend does not "
                    "support (it supports priority and order-only edges); run this graph on backend='threads', "
                    "'processes' or 'sequential'"
                )
    if ctx is not None:
        for name, used in (("store", ctx.store is not None), ("callbacks", ctx.callbacks is not None)):
            if used:
                raise NotImplementedError(
                    f"the distributed backend does not support the run option {name}= (it supports on_error, "
                    "max_failures, cancel and timeout); use backend='threads', 'processes' or 'sequential'"
                )


class DistributedPool:
    """Runs plans on a ``dask.distributed`` cluster; see the module docstring.

    ``client``: a ``distributed.Client`` to use (never closed here); else the pool connects to
    ``config.address`` or starts an embedded cluster, on its first run.
    """

    def __init__(self, config: ExecutorConfig, client: Any = None) -> None:
        self._distributed = import_distributed()
        self._config = config
        self._lock = threading.Lock()  # serialises runs and close()
        self._closed = False
        self.client: Any = client  # set on the first run unless given
        self._owns_client = client is None
        self.cluster: Any = None  # the embedded LocalCluster, if the pool started one
        self.reports: dict[str, WorkerReport | BaseException] = {}  # by worker address: what _probe found
        self._warned: set[str] = set()  # the warnings given (once per pool each)

    # -- the caller's side ----------------------------------------------------------------------

    def run(self, plan: Plan, ctx: RunContext | None = None, admission: Admission | None = None) -> dict[str, int]:
        """Execute ``plan``; raise :class:`~ftdag.TaskError` on the first failure (plain runs).
        With ``ctx``, failures are the context's to report; only a ``BaseException`` is raised."""
        with self._lock:
            if self._closed:
                raise RuntimeError("this executor is closed")
            check_supported(plan, ctx)
            client = self._connect()
            nthreads = client.nthreads()
            self._probe(client, nthreads)
            if plan.tasks:
                _Run(self._distributed, client, plan, ctx).execute()
        return {"workers": sum(nthreads.values())}

    def close(self) -> None:
        """Close the client and the embedded cluster if the pool made them (after the current
        run, if any).  Idempotent."""
        with self._lock:
            self._closed = True
            client, cluster = self.client, self.cluster
            self.cluster = None
            if self._owns_client:
                self.client = None
        try:
            if self._owns_client and client is not None:
                client.close()
        finally:
            if cluster is not None:
                cluster.close()

    def pids(self) -> list[int]:
        """Process ids of the embedded cluster's live workers (for tests and diagnostics)."""
        cluster = self.cluster
        if cluster is None:
            return []
        return [pid for pid in (getattr(w, "pid", None) for w in list(cluster.workers.values())) if pid]

    # -- the cluster ----------------------------------------------------------------------------

    def _connect(self) -> Any:
        """The client, made on first use: connected to ``config.address``, or to an embedded cluster."""
        if self.client is not None:
            return self.client
        distributed = self._distributed
        if self._config.address is not None:
            self.client = distributed.Client(self._config.address, set_as_default=False)
            return self.client
        # On a free-threaded build the profiler is off in the workers (config=) and in this
        # process too, where the embedded scheduler would otherwise start one on its event loop.
        with importlib.import_module("dask").config.set(PROFILER_OFF if FREE_THREADED_BUILD else {}):
            cluster = distributed.LocalCluster(
                n_workers=self._config.max_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                dashboard_address=None, scheduler_kwargs=LOCAL_HTTP,
                config=PROFILER_OFF if FREE_THREADED_BUILD else None,
            )
        try:
            self.client = distributed.Client(cluster, set_as_default=False)
        except BaseException:
            cluster.close()
            raise
        self.cluster = cluster
        return self.client

    def _probe(self, client: Any, nthreads: dict[str, int]) -> None:
        """Probe the workers not seen before (module docstring: Workers and the GIL)."""
        new = [w for w in nthreads if w not in self.reports]
        if not new:
            return
        self.reports.update(client.run(_probe, workers=new, on_error="return"))
        problems = {
            "gil": "run with the GIL enabled (probably re-enabled by an extension module), so their threads do not "
                   "run Python code in parallel; start them with PYTHON_GIL=0",
            "profiler": "run dask's statistical profiler, which samples other threads' frames and is not safe on a "
                        "free-threaded build; set distributed.worker.profile.enabled: false for them",
            "probe": "could not be checked (can they import ftdag?)",
        }
        found: dict[str, list[str]] = {}
        for address in new:
            report = self.reports.get(address)
            if not isinstance(report, WorkerReport):
                found.setdefault("probe", []).append(f"{address} ({type(report).__name__}: {report})")
                continue
            if report.free_threaded and report.gil_enabled:
                found.setdefault("gil", []).append(address)
            if report.free_threaded and report.profiler:
                found.setdefault("profiler", []).append(address)
        for problem, addresses in found.items():
            if problem not in self._warned:
                self._warned.add(problem)
                warnings.warn(
                    f"free-threaded dask worker(s) {', '.join(addresses)} {problems[problem]}" if problem != "probe"
                    else f"dask worker(s) {', '.join(addresses)} {problems[problem]}",
                    RuntimeWarning, stacklevel=5,
                )


class _Run:
    """One run's futures and counts (module docstring: A run)."""

    def __init__(self, distributed: Any, client: Any, plan: Plan, ctx: RunContext | None) -> None:
        self.distributed = distributed
        self.client = client
        self.plan = plan
        self.ctx = ctx
        n = len(plan.values)
        self.futures: list[Any] = [None] * n  # by task id: its future until it settled and nothing needs it
        self.status = ctx.status if ctx is not None else bytearray(n)  # 0, DONE, FAILED or SKIPPED
        self.is_output = bytearray(n)
        for i in plan.outputs:
            self.is_output[i] = 1
        self.queue: queue.SimpleQueue[int] = queue.SimpleQueue()  # completed task ids, and _WAKE
        self.left = len(plan.tasks)  # planned tasks not settled
        self.stopped = False  # nothing more is taken from the queue
        self.cancelled = False  # the unsettled futures were cancelled

    # -- the whole run --------------------------------------------------------------------------

    def execute(self) -> None:
        ctx = self.ctx
        if ctx is not None:
            put = self.queue.put
            ctx.watch(lambda: put(_WAKE))  # SimpleQueue.put is reentrant: safe from a signal handler
        try:
            self.submit()
            self.wait()
            self.gather()
        except BaseException:
            self.cancel()
            raise
        finally:
            if ctx is not None:
                ctx.unwatch()
            self.futures = []

    def submit(self) -> None:
        """Submit every planned task, in topological order (module docstring)."""
        plan, client = self.plan, self.client
        dag = plan.dag
        fns, deps, after, keys, options = dag._fns, dag._deps, dag._after, dag._keys, dag._options
        futures, values = self.futures, plan.values
        token = uuid.uuid4().hex
        inputs = self.scatter()
        markers: dict[int, Any] = {}
        done = functools.partial(_done, self.queue.put)
        for t in plan.tasks:
            args = [futures[d] if fns[d] is not None else inputs.get(d, values[d]) for d in deps[t]]
            fn = fns[t]
            preds = after[t] if after is not None else ()
            if preds:
                for p in preds:
                    if p not in markers:
                        markers[p] = client.submit(_settled, futures[p], key=(f"ftdag-after-{token}", p), pure=False)
                    args.append(markers[p])
                fn = _Ordered(fn, len(deps[t]))
            o = options[t] if options is not None else None
            extra = {"priority": o.priority} if o is not None and o.priority else {}
            try:
                future = client.submit(fn, *args, key=(f"{_name(fn)}-{token}", t), pure=False, **extra)
            except Exception as exc:
                raise self._unsendable(keys[t], fn, exc) from exc
            futures[t] = future
            future.add_done_callback(functools.partial(done, t))

    def scatter(self) -> dict[int, Any]:
        """Scatter the planned sources that are not small scalars; their futures by id."""
        plan = self.plan
        dag = plan.dag
        fns, deps, values = dag._fns, dag._deps, plan.values
        big = []
        seen = set()
        for t in plan.tasks:
            for d in deps[t]:
                if fns[d] is None and d not in seen:
                    seen.add(d)
                    if not _inline(values[d]):
                        big.append(d)
        if not big:
            return {}
        try:
            futures = self.client.scatter([values[d] for d in big], hash=False)
        except Exception:
            dumps = importlib.import_module("distributed.protocol.pickle").dumps
            for d in big:
                try:
                    dumps(values[d])
                except Exception as error:
                    raise SerializationError(
                        dag._keys[d], f"the value of source {dag._keys[d]!r} cannot be sent to the cluster: "
                        f"{type(error).__name__}: {error}", "inputs",
                    ) from error
            raise
        return dict(zip(big, futures))

    def wait(self) -> None:
        """Take completions until every planned task is settled or the run stops."""
        ctx, get = self.ctx, self.queue.get
        main = threading.get_ident() == _main_ident
        while self.left and not self.stopped:
            timeout = _SLICE_S if main else None
            if ctx is not None and ctx.deadline is not None:
                left = max(0.0, ctx.deadline - time.monotonic())
                timeout = left if timeout is None else min(timeout, left)
            try:
                t = get(timeout=timeout)
            except queue.Empty:
                t = _WAKE
            if t != _WAKE and not self.status[t]:
                self.completed(t)
            if ctx is not None and not self.stopped and ctx.halted():
                self.stop()

    def gather(self) -> None:
        """Fetch the requested outputs that completed and were not fetched yet into the plan."""
        plan, futures, status = self.plan, self.futures, self.status
        fns = plan.dag._fns
        wanted = [i for i in plan.outputs if fns[i] is not None and status[i] == DONE and futures[i] is not None]
        for i, value in zip(wanted, self.fetch(wanted)):
            plan.values[i] = value

    def fetch(self, ids: list[int]) -> list[Any]:
        """The results of the finished tasks ``ids``; a :class:`~ftdag.SerializationError`
        naming the first that cannot be fetched."""
        if not ids:
            return []
        futures = self.futures
        try:
            return self.client.gather([futures[i] for i in ids])
        except Exception:
            if len(ids) == 1:
                raise self._unfetchable(ids[0]) from None
        return [self.fetch([i])[0] for i in ids]  # find the one that fails

    # -- completions ------------------------------------------------------------------------------

    def completed(self, t: int) -> None:
        """Task ``t``'s future is done (finished, erred, or cancelled by someone else)."""
        future = self.futures[t]
        if future.status == "finished":
            self.succeeded(t)
        else:
            self.failed(self.culprit(t))

    def succeeded(self, t: int) -> None:
        plan, ctx = self.plan, self.ctx
        self.status[t] = DONE
        self.left -= 1
        value = None
        if ctx is not None and ctx.emit is not None and self.is_output[t]:
            value = self.fetch([t])[0]  # the consumer gets it now
        plan.finish(t, value)
        value = None
        if ctx is not None:
            ctx.succeeded(plan, t)
        self.release(t)

    def culprit(self, t: int) -> int:
        """The task whose own failure made ``t``'s future err: ``t``, unless a task it waits
        for (by data or order) has not finished, which dask then erred first."""
        dag = self.plan.dag
        fns, deps, after = dag._fns, dag._deps, dag._after
        futures, status = self.futures, self.status
        while True:
            waits = [d for d in deps[t] if fns[d] is not None] + (list(after[t]) if after is not None else [])
            for d in waits:
                if status[d] != DONE and (futures[d] is None or futures[d].status != "finished"):
                    t = d
                    break
            else:
                return t

    def failed(self, t: int) -> None:
        """Task ``t`` failed (it is the culprit): fail fast, or report it and go on (keep-going)."""
        plan, ctx = self.plan, self.ctx
        key = plan.dag._keys[t]
        exc, error = self.exception_of(t)
        if ctx is None:
            self.stop()
            if not isinstance(exc, Exception):
                raise exc
            raise error
        action = ctx.failure(plan, t, exc, error)
        if action == STOP:
            self.stop()
            if not isinstance(exc, Exception):
                raise exc
        elif action == CONTINUE:
            self.left -= ctx.settled
            self.futures[t] = None
            self.release_skipped(t)
        else:  # (retries are refused before the run: check_supported)
            raise AssertionError(f"unexpected action {action} for task {key!r}")

    def exception_of(self, t: int) -> tuple[BaseException, TaskError]:
        """Failed task ``t``'s exception (with its remote traceback) and the TaskError it gives."""
        killed_worker = self.distributed.scheduler.KilledWorker
        future = self.futures[t]
        key = self.plan.dag._keys[t]
        exc = future.exception()  # (waits until the future settled; None if it was cancelled)
        if exc is not None:
            tb = future.traceback()
            if tb is not None:
                exc = exc.with_traceback(tb)
            if isinstance(exc, killed_worker):
                crashed = WorkerCrashedError(key)
                crashed.__cause__ = exc
                return exc, crashed
        else:
            exc = RuntimeError(
                f"the future of task {key!r} was {future.status} by the cluster, not by this run (did the "
                "scheduler go away, or did another client cancel it?)"
            )
        return exc, _task_failed(key, exc)

    # -- releasing futures ------------------------------------------------------------------------

    def release(self, t: int) -> None:
        """Drop the futures of ``t``'s inputs (and of ``t``) that no planned task needs any more."""
        consumers, futures = self.plan.consumers, self.futures
        for d in self.plan.dag._deps[t]:
            if not consumers[d]:
                futures[d] = None
        if not consumers[t]:
            futures[t] = None

    def release_skipped(self, t: int) -> None:
        """After keep-going skipped ``t``'s descendants: drop the futures nothing needs now."""
        nxt, status = self.plan.dag._next, self.status
        stack, seen = [t], {t}
        while stack:
            u = stack.pop()
            self.release(u)
            if status[u] == SKIPPED:
                self.futures[u] = None
            for v in nxt[u]:
                if v not in seen and status[v] == SKIPPED:
                    seen.add(v)
                    stack.append(v)

    def stop(self) -> None:
        """Nothing more starts: cancel every future that has not settled."""
        self.stopped = True
        self.cancel()

    def cancel(self) -> None:
        """Cancel every future that has not settled (once: a stopped run that then raises
        is not cancelled twice)."""
        if self.cancelled:
            return
        self.cancelled = True
        status = self.status
        pending = [f for i, f in enumerate(self.futures) if f is not None and status[i] not in (DONE, FAILED)]
        if pending:
            try:
                self.client.cancel(pending)
            except Exception:
                pass  # (a lost scheduler: nothing to cancel there)

    # -- errors -----------------------------------------------------------------------------------

    def _unsendable(self, key: Hashable, fn: Callable[..., Any], exc: Exception) -> SerializationError:
        """The error of a task that ``client.submit`` could not pickle: its function or its inputs."""
        try:
            importlib.import_module("distributed.protocol.pickle").dumps(fn)
        except Exception:
            what = "function"
        else:
            what = "inputs"
        return SerializationError(
            key, f"task {key!r}: its {what} cannot be sent to the cluster: {type(exc).__name__}: {exc}", what,
        )

    def _unfetchable(self, t: int) -> SerializationError:
        key = self.plan.dag._keys[t]
        try:
            self.futures[t].result()
        except Exception as exc:
            error = SerializationError(
                key, f"the result of task {key!r} cannot be fetched from the cluster: {type(exc).__name__}: {exc}",
                "result",
            )
            error.__cause__ = exc
            return error
        return SerializationError(key, f"the result of task {key!r} cannot be fetched from the cluster", "result")


def _done(put: Callable[[int], None], t: int, future: object) -> None:
    """A future's done-callback (on a thread of ``distributed``): hand its task id to the run."""
    put(t)


def _inline(value: object) -> bool:
    """Whether a source value goes inline in its tasks instead of being scattered."""
    if isinstance(value, _INLINE_TYPES):
        return True
    return isinstance(value, (str, bytes)) and len(value) <= INLINE_BYTES


def _name(fn: Callable[..., Any]) -> str:
    """The name dask shows for a task of ``fn`` (its keys are grouped by it)."""
    name = getattr(fn, "__name__", None) or type(fn).__name__
    return name.replace("-", "_") or "task"
