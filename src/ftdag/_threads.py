"""The thread backend: a persistent pool of worker threads sharing results by reference.

This is ftdag's scheduler for free-threaded CPython, where threads run Python in parallel.

State
-----
The pool owns ``max_workers`` threads, started on the first run and joined by ``close()``.
Everything below is guarded by one lock, ``_lock``; idle workers sleep on ``_wake`` and the
caller of ``run()`` sleeps on ``_changed`` (two conditions over that lock).  The state of a run
lives in a :class:`_Run`, so a worker still finishing a task of an abandoned run (Ctrl-C)
only ever touches that run's counters, never the next run's.

``_Run.queues[w]``  worker ``w``'s deque of ready task ids.  It pops its own newest
                    (right end); an idle worker steals another's oldest (left end).
``_Run.ready``      ready task ids that are not in flight: they wait for room, holding no
                    inputs (their arguments are gathered only when they start).
``_Run.in_flight``  tasks in some ``queues[w]`` plus tasks running.
``_Run.pending``    planned tasks that have not finished successfully.

A task moves ``ready -> queues[w] -> running -> finished``, or ``ready -> running`` when a
worker with nothing queued takes it directly, or ``running -> running`` on the same worker:
the worker that finishes a task starts the first dependent it made ready itself, so a
chain never bounces between threads.

Invariants (each is kept under ``_lock`` by ``_dispatch``, ``_take``, ``_finish`` and
``_stop``, the only code that changes run state):

I1. ``in_flight <= bound``, where ``bound = min(max_in_flight, workers * (cap + 1))``:
    ``_dispatch`` and ``_take`` add to it only below the bound; ``_finish`` replaces the
    finished task by its dependent one for one.
I2. ``len(queues[w]) <= cap``: ``_dispatch`` appends only below the cap (never
    ``deque(maxlen=...)``, which would silently drop tasks).
I3. Each planned task runs at most once: it enters ``ready`` exactly once, by the thread that
    drops its ``remaining`` count to 0 (counts only change under the lock), and leaves each
    structure by a pop.
I4. A task starts only after all its dependencies finished: ``remaining`` reaches 0 only
    after each dependency's ``_finish`` stored its value.
I5. ``values[d]`` is dropped when ``consumers[d]`` reaches 0, i.e. when the last planned
    dependent of ``d`` has finished (requested outputs hold one extra count).
I6. After a failure or cancellation (``stopped``), no task starts: queues and ``ready`` are
    emptied, ``_take`` hands out nothing, and ``_finish`` makes nothing ready.  The run is
    ``done`` once ``in_flight`` is 0, i.e. every running task has returned.  (A worker
    inside a private chain, I7, checks ``stopped`` without the lock before each link, so it
    may start the one link it was about to start as the failure was recorded.)
I7. Private chain links skip the lock.  ``template.solo[t] == u`` when ``u`` is the only planned
    consumer of ``t`` (one edge; ``t`` is not an output), ``t`` is ``u``'s only task
    dependency, and ``t`` is the only consumer of each of its task inputs.  Then nothing but
    the worker that ran ``t`` can ever touch ``values[t]``, ``values`` of ``t``'s inputs,
    ``remaining[u]`` or ``consumers`` of those nodes, so it stores ``t``'s result, drops its
    inputs and runs ``u`` at once: the task it was running is replaced by its dependent,
    so I1 and I2 are untouched, and the links it ran are subtracted from ``pending`` at its
    next ``_finish``.  It reads ``stopped`` (without the lock) before each link, so a
    failure elsewhere stops a chain within one link.  A chain of N tasks costs one lock
    round-trip instead of N.

No code polls or sleeps: a worker waits on ``_wake`` only after ``_take`` found nothing under
the lock, and whoever adds work notifies while still holding it, so no wake-up is lost.
(The one timed wait is the main thread's wait for the end of a run, so that a Ctrl-C that
races with it still interrupts it promptly; it re-checks ``done`` and waits again.)

Hot path
--------
Workers index lists by node id; they never hash keys.  Each worker reads the graph's id
structure (``deps``, ``dependents``, ``solo``) from its own copy (:class:`_Graph`), because
on free-threaded CPython touching tuples and ints that another thread created costs an
atomic reference-count operation each time.

Runs
----
``run()`` callers are serialised by ``_run_lock``: a second thread's run waits for the first
and then runs normally.  A task that calls ``run()`` on its own executor is run inline on
its worker by the sequential backend (see :class:`ftdag.Executor`), never through this pool,
which would deadlock once every worker waited for itself.
"""

from __future__ import annotations

import pickle
import threading
from collections import deque
from collections.abc import Callable
from typing import NamedTuple

from ._plan import Plan
from .config import ExecutorConfig
from .errors import _task_failed

_local = threading.local()
_SIGNAL_SLICE_S = 0.05
_GRAPHS_KEPT = 4


def current_pool() -> ThreadPool | None:
    """The pool whose worker is the calling thread, if any."""
    return getattr(_local, "pool", None)


class PoolState(NamedTuple):
    """What :meth:`ThreadPool.state` reports (``running`` counts tasks of the current run)."""

    workers: int
    idle: int
    in_flight: int
    running: int
    queued: tuple[int, ...]
    ready: int
    stopped: bool


class _Run:
    """One run's scheduling state; see the module docstring."""

    __slots__ = (
        "plan", "fns", "values",
        "queues", "ready", "cap", "bound", "in_flight", "pending",
        "stopped", "done", "error", "peak_in_flight", "peak_queue_len", "steals",
    )

    def __init__(self, plan: Plan, workers: int, cap: int, bound: int) -> None:
        self.plan, self.fns, self.values = plan, plan.dag._fns, plan.values
        self.queues = [deque() for _ in range(workers)]
        self.ready = list(reversed(plan.initial))  # popped from the end: topological order first
        self.cap = cap
        self.bound = bound
        self.in_flight = 0
        self.pending = len(plan.tasks)
        self.stopped = False
        self.done = not self.pending
        self.error: tuple[int, BaseException] | None = None
        self.peak_in_flight = self.peak_queue_len = self.steals = 0


class _Graph:
    """A worker's own copy of a plan's read-only id structure: ``deps``, ``dependents``, ``solo``.

    On free-threaded CPython a reference-count change on an object that another thread
    created is an atomic operation.  The id tuples and ints of a graph are created by the
    thread that built it, and reading them from a worker made a chain of no-op tasks ~45%
    slower than the same loop on the builder's thread (measured on 3.13t).  So each worker
    unpickles its own copy, owning every tuple and int in it, once per plan template, and
    keeps the last few (``_GRAPHS_KEPT``).  Functions are shared as they are: calling one
    from another thread showed no such cost.
    """

    __slots__ = ("template", "deps", "dependents", "solo")

    def __init__(self, plan: Plan) -> None:
        self.template = plan.template
        ids = (plan.dag._deps, plan.dag._dependents, plan.template.solo)
        self.deps, self.dependents, self.solo = pickle.loads(pickle.dumps(ids, pickle.HIGHEST_PROTOCOL))


class ThreadPool:
    """``max_workers`` persistent threads that execute plans; see the module docstring."""

    def __init__(self, config: ExecutorConfig) -> None:
        self.workers = config.max_workers
        self._cap = config.worker_queue_cap
        self._bound = config.in_flight_bound
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        # Notified when a run is done or a worker goes idle: the caller of run() waits here,
        # and so do tests (wait_for_state) that need the pool to settle.
        self._changed = threading.Condition(self._lock)
        self._run_lock = threading.Lock()
        self._run: _Run | None = None
        self._idle = 0
        self._closing = False
        self._crash: BaseException | None = None  # an error in the scheduler itself
        self._threads: list[threading.Thread] = []
        self._graphs: list[list[_Graph]] = [[] for _ in range(self.workers)]  # worker w's own

    # -- the caller's side ----------------------------------------------------------------------

    def run(self, plan: Plan) -> dict[str, int]:
        """Execute ``plan``; raise :class:`~ftdag.TaskError` (or a task's ``BaseException``)."""
        with self._run_lock:
            if self._closing:
                raise RuntimeError("this executor is closed")
            self._check_crash()
            if not self._threads:
                self._start()
            run = _Run(plan, self.workers, self._cap, self._bound)
            with self._lock:
                try:
                    if not run.done:
                        self._run = run
                        self._dispatch(run, -1)
                        # The main thread waits in slices: a SIGINT that lands just before it
                        # blocks would not interrupt the lock wait (CPython's locks have no
                        # self-pipe), and Ctrl-C must stop a run promptly.  Other threads
                        # cannot receive signals and wait for the notification alone.
                        slice_s = _SIGNAL_SLICE_S if threading.current_thread() is threading.main_thread() else None
                        while not run.done and self._crash is None:
                            self._changed.wait(slice_s)
                except BaseException:
                    # Ctrl-C in the caller: start nothing more.  Running tasks finish on their
                    # own; their workers then find no current run and go idle.
                    self._stop(run)
                    raise
                finally:
                    self._run = None
        self._check_crash()
        if run.error is not None:
            task, exc = run.error
            if isinstance(exc, Exception):
                raise _task_failed(plan.dag._keys[task], exc) from exc
            raise exc
        return {
            "workers": self.workers,
            "peak_in_flight": run.peak_in_flight,
            "peak_queue_len": run.peak_queue_len,
            "steals": run.steals,
        }

    def close(self) -> None:
        """Let the workers finish what is queued, then join them.  Idempotent."""
        with self._lock:
            self._closing = True
            self._wake.notify_all()
        me = threading.current_thread()
        for t in self._threads:
            if t is not me:
                t.join()

    def state(self) -> PoolState:
        """A consistent snapshot of the pool and its current run (for tests and diagnostics)."""
        with self._lock:
            return self._state()

    def wait_for_state(self, predicate: Callable[[PoolState], bool], timeout: float) -> PoolState:
        """Block until ``predicate(state)`` holds; raise :class:`TimeoutError` with the last state."""
        with self._lock:
            if not self._changed.wait_for(lambda: predicate(self._state()), timeout):
                raise TimeoutError(f"pool did not reach the expected state in {timeout}s: {self._state()}")
            return self._state()

    def _state(self) -> PoolState:
        run = self._run
        if run is None:
            return PoolState(self.workers, self._idle, 0, 0, (0,) * self.workers, 0, False)
        queued = tuple(len(q) for q in run.queues)
        return PoolState(
            self.workers, self._idle, run.in_flight, run.in_flight - sum(queued), queued, len(run.ready), run.stopped
        )

    def _start(self) -> None:
        for w in range(self.workers):
            t = threading.Thread(target=self._work, args=(w,), name=f"ftdag-worker-{w}", daemon=True)
            t.start()
            self._threads.append(t)

    # -- the workers' side ----------------------------------------------------------------------

    def _check_crash(self) -> None:
        if self._crash is not None:
            raise RuntimeError("an ftdag worker thread crashed; this executor cannot run on threads") from self._crash

    def _work(self, w: int) -> None:
        try:
            self._work_loop(w)
        except BaseException as exc:
            # A bug in the scheduler, not in a task (those are caught below): fail the
            # caller's run and every later one instead of letting them wait forever.
            with self._lock:
                self._crash = exc
                self._changed.notify_all()
            raise

    def _work_loop(self, w: int) -> None:
        _local.pool = self
        lock, wake = self._lock, self._wake
        run: _Run | None = None
        graph: _Graph | None = None
        task = private = -1
        result = error = None
        while True:
            with lock:
                if task >= 0:
                    task = self._finish(run, graph, w, task, result, error, private)
                    result = error = None
                while task < 0:
                    run = self._run
                    if run is not None:
                        task = self._take(run, w)
                        if task >= 0:
                            break
                    if self._closing:
                        return
                    run = None  # do not keep a finished run's values alive while idle
                    self._idle += 1
                    self._changed.notify_all()
                    wake.wait()
                    self._idle -= 1
            if graph is None or graph.template is not run.plan.template:
                graph = self._graph(w, run)
            fns, deps, solo, values = run.fns, graph.deps, graph.solo, run.values
            private = 0
            while True:
                ds = deps[task]
                try:
                    # One dependency is the common case (chains, maps); skip the argument list.
                    result = fns[task](values[ds[0]]) if len(ds) == 1 else fns[task](*[values[d] for d in ds])
                except BaseException as exc:  # even SystemExit must not kill the worker
                    error = exc
                    break
                nxt = solo[task]
                if nxt < 0 or run.stopped:
                    break
                # A private chain link (I7): nobody else reads or writes these slots or counts.
                values[task] = result
                for d in ds:
                    if fns[d] is not None:
                        values[d] = None
                private += 1
                task = nxt

    def _graph(self, w: int, run: _Run) -> _Graph:
        """Worker ``w``'s own copy of ``run``'s id structure (only worker ``w`` touches ``_graphs[w]``)."""
        kept = self._graphs[w]
        for graph in kept:
            if graph.template is run.plan.template:
                return graph
        graph = _Graph(run.plan)
        kept.insert(0, graph)
        del kept[_GRAPHS_KEPT:]
        return graph

    # -- transitions (all called with _lock held) -----------------------------------------------

    def _dispatch(self, run: _Run, w: int) -> None:
        """Move ready tasks into worker queues while I1 and I2 allow.

        Worker ``w`` (the one that made them ready) fills its own queue first, since its
        caches hold their inputs; the rest go round-robin, and idle workers are woken to take
        or steal them.  ``w == -1`` (the caller starting a run) spreads them from worker 0.
        """
        ready, queues, cap = run.ready, run.queues, run.cap
        room = run.bound - run.in_flight
        pushed = 0
        if w >= 0:
            q = queues[w]
            while ready and pushed < room and len(q) < cap:
                q.append(ready.pop())
                pushed += 1
        n = len(queues)
        i = w + 1 if 0 <= w < n - 1 else 0
        full = 0
        while ready and pushed < room and full < n:
            q = queues[i]
            if len(q) < cap:
                q.append(ready.pop())
                pushed += 1
                full = 0
            else:
                full += 1
            i = i + 1 if i + 1 < n else 0
        if pushed:
            longest = max(map(len, queues))
            if longest > run.peak_queue_len:
                run.peak_queue_len = longest
            run.in_flight += pushed
            if run.in_flight > run.peak_in_flight:
                run.peak_in_flight = run.in_flight
            if self._idle:
                self._wake.notify(pushed)

    def _take(self, run: _Run, w: int) -> int:
        """The next task for worker ``w``: its own newest, another's oldest, or a ready one.

        Taking a task out of a queue makes room in it, so ready tasks are dispatched again:
        the queues stay as full as I1 and I2 allow.
        """
        if run.stopped:
            return -1
        queues = run.queues
        if queues[w]:
            task = queues[w].pop()
        else:
            n = len(queues)
            for k in range(1, n):
                q = queues[(w + k) % n]
                if q:
                    run.steals += 1
                    task = q.popleft()
                    break
            else:
                if not run.ready or run.in_flight >= run.bound:
                    return -1
                run.in_flight += 1
                if run.in_flight > run.peak_in_flight:
                    run.peak_in_flight = run.in_flight
                task = run.ready.pop()
        if run.ready:
            self._dispatch(run, w)
        return task

    def _finish(
        self, run: _Run, graph: _Graph, w: int, task: int, result: object, error: BaseException | None, private: int
    ) -> int:
        """Record that ``task`` ended (after ``private`` chain links, I7); return a dependent
        for worker ``w`` to run next, or -1."""
        run.in_flight -= 1
        run.pending -= private
        if error is not None:
            if run.error is None:
                run.error = (task, error)
            self._stop(run)
        elif not run.stopped:
            made = run.plan.finish(task, result, graph.deps[task], graph.dependents[task])
            run.pending -= 1
            if made:
                run.in_flight += 1  # made[0] runs next on this worker, in task's place
                if len(made) > 1:
                    run.ready.extend(made[:0:-1])  # popped from the end: made[1] first
            if run.ready:
                self._dispatch(run, w)
            if made:
                return made[0]
        if not run.in_flight and (run.stopped or not run.pending):
            run.done = True
            self._changed.notify_all()
        return -1

    def _stop(self, run: _Run) -> None:
        """Fail fast: drop every queued and ready task so that nothing more starts."""
        if run.stopped:
            return
        run.stopped = True
        for q in run.queues:
            run.in_flight -= len(q)
            q.clear()
        run.ready.clear()
