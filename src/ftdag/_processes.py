"""The process backend: a persistent pool of worker processes, scheduled from the caller's thread.

This is ftdag's fallback for GIL builds, where threads cannot run Python code in parallel.
It has the thread backend's semantics (pruning, each node once, bounded in-flight tasks and
per-worker queues, fail fast, results released after their last consumer, the same stats),
but values cross to the workers by pickling, so only the parent holds the run's values.

Its parts, as in CPython's :mod:`concurrent.futures.process`:

:mod:`ftdag._processes`       :class:`ProcessPool`: the run loop, replies, failures, Ctrl-C.
:mod:`ftdag._dispatch`        which ready task goes to which worker; chain links; the messages.
:mod:`ftdag._workers`         the processes: start method, spawning, replacing, shutting down.
:mod:`ftdag._wire`            frames, messages, statuses and flags; the parent's end of a pipe.
:mod:`ftdag._functions`       task functions, pickled once per pool and sent once per worker.
:mod:`ftdag._failures`        the exception a failed run raises.
:mod:`ftdag._process_worker`  the worker's loop.

All scheduling happens in the thread that called ``run()``: it waits in the selector of
:mod:`ftdag._workers` for replies, room to write, and deaths.  There are no extra threads,
and the only lock, ``_run_lock``, serialises runs.

State
-----
``Worker.assigned``   the tasks sent to (or being sent to) the worker and not yet answered,
                      oldest first: the worker runs its tasks in this order, so
                      ``assigned[0]`` is the one it is running.
``Worker.keep_tail``  ``assigned[-1]`` if the worker was told to keep that task's result for a
                      chain link (:mod:`ftdag._dispatch`), else ``NO_TASK``.
``Pipe.outbuf``       bytes of messages not yet written to the worker's pipe (written with
                      ``MSG_DONTWAIT``, the rest when the selector says the pipe has room).
``Worker.known``      ids of the functions the worker has cached.
``Run.ready``         (shared, :class:`ftdag._runstate.RunState`) ready tasks that are not
                      assigned: they wait in the parent for room, holding no pickled inputs.
``Run.in_flight``     (shared) the sum of ``len(w.assigned)``: tasks queued in or running on
                      workers.
``Workers.cancel``    a shared ``RawValue('q')``: the id of the last cancelled run.

A task moves ``ready -> assigned -> answered``; the dispatch order and chain links are
described in :mod:`ftdag._dispatch`.

Invariants
----------
I1. ``in_flight <= bound = min(max_in_flight, workers * (cap + 1))``: dispatching assigns
    at most ``bound - in_flight`` tasks (links included); every reply (and a worker's death)
    gives its tasks back.
I2. ``len(w.assigned) <= cap + 1`` (one running, ``cap`` queued in the worker):
    dispatching assigns only below it, so at most ``cap`` tasks' inputs wait in a worker.
I3. Each planned task is sent at most once: it is assigned either from ``ready``, which it
    enters once (when its ``remaining`` count reaches 0) and leaves by a pop, or as a link,
    which needs ``remaining > 0`` and sets it to 0.
I4. A task starts only after all its dependencies finished: a ready task's ``remaining``
    reached 0 after each dependency's reply was stored in ``values``; a linked task's other
    dependencies had finished when it was linked, and its worker runs it after ``t``, whose
    failure (or cancellation) cancels the run before ``u`` would start.
I5. ``values[d]`` is dropped when ``consumers[d]`` reaches 0, i.e. when the last planned
    dependent of ``d`` has finished (requested outputs hold one extra count).
I6. Fail fast: after a failure the run is ``stopped``: ``ready`` is emptied, nothing more is
    dispatched, and the cancel flag is set (by the failing worker itself, and by the parent
    when it sees the failure), so no queued task starts: workers answer them ``SKIPPED``.
    The parent waits until every assigned task is answered, then raises.
I7. Nothing stale crosses runs: a run returns only when no worker holds one of its tasks
    (each was answered, or its worker was terminated and is replaced by the next run), and
    every message carries its run id, replies of another run being ignored.

Runs with a context
-------------------
A run with a :class:`~ftdag._context.RunContext` (retries, timeouts, keep-going, a cancel
token, a deadline, a store) links nothing, and its failures go to the context, which decides
(``_failed``: retry now or later, go on without the task, or stop); the worker does not set
the cancel flag itself then.  The loop waits in the selector at most until the next retry
is due, a timed attempt runs out, or the deadline (``_idle_wait``), and then ``_tick`` acts.
A task with a ``timeout`` is sent alone to a free worker (:mod:`ftdag._dispatch`); at its
deadline the worker is killed and replaced, and the attempt fails with
:class:`~ftdag.TaskTimeoutError`.  A cancel token writes the run's id into the shared cancel
flag at once (from any thread), so queued tasks are answered ``SKIPPED`` and
``current_task().cancelled`` turns true in the workers.  A store that pickles is sent to
each worker with the run's first message, and the worker saves each result before it
replies; a store of this process only (``process_local``) is saved to here.  An ordered or
guarded run sends a worker one task at a time, admitted when it is sent and released when
it is answered (I8 of :mod:`ftdag._threads`, kept the same way here).

Failures
--------
A task's exception, or a function, inputs or result that cannot cross between processes,
fails the run; :mod:`ftdag._failures` says what it raises.  A ``BaseException`` raised by a
task does not kill its worker.  A worker that dies (``os._exit``, a signal, the OOM killer)
fails the run with :class:`~ftdag.WorkerCrashedError` naming ``assigned[0]``; one that dies
idle in the middle of a run is replaced at once, unless it died while starting (before its
``HELLO``): a replacement would most likely die the same way, so the run goes on with the
other workers, and the next run tries again.  A worker that dies while starting with tasks
assigned gives ``WorkerCrashedError`` with ``during_startup`` set.  Ctrl-C in the parent (any
exception escaping the loop) stops the run, waits up to ``_INTERRUPT_GRACE`` seconds for
running tasks, terminates the workers still busy (they are replaced on next use), and
re-raises.

Stats: ``peak_in_flight`` is the most tasks assigned at once, ``peak_queue_len`` the most
tasks queued (assigned, not running) at one worker, and ``steals`` is always 0: a task's
inputs are sent with it, so the pool does not move queued tasks between workers.  So a
queued task can wait behind a long one while another worker idles: with tasks of very uneven
cost, ``worker_queue_cap=1`` or ``max_in_flight=max_workers`` keeps that wait short.
"""

from __future__ import annotations

import itertools
import pickle
import threading
import time

from . import _functions
from ._admission import Admission
from ._context import CONTINUE, RETRY_NOW, STOP, RunContext
from ._dispatch import Run, Unsendable, add_links, assign_ready, encode_tasks, send_batch
from ._failures import remote_exception, run_error
from ._functions import FunctionCache
from ._plan import NO_TASK, Plan
from ._wire import (
    CRASHED,
    OK,
    READABLE,
    SKIPPED,
    UNLOADABLE,
    UNSAVED,
    UNSENDABLE,
    WRITABLE,
    loads,
    run_over,
)
from ._workers import Worker, Workers
from .config import ExecutorConfig
from .errors import SerializationError, TaskError, TaskTimeoutError, _task_failed

__all__ = ["ProcessPool"]

_INTERRUPT_GRACE = 1.0  # seconds running tasks get to finish after Ctrl-C before termination
_CANCEL_SLICE_S = 0.05  # while a retry waits and a cancel token could fire: the longest select
_TIMED_OUT = -4  # a failure the parent records: the attempt of a timed task ran out of time


class ProcessPool:
    """``max_workers`` persistent worker processes that execute plans; see the module docstring."""

    def __init__(self, config: ExecutorConfig) -> None:
        self.workers = config.max_workers  # how many worker processes (reported in the stats)
        self._slots = config.worker_queue_cap + 1  # tasks a worker may hold: one running, cap queued (I2)
        self._bound = config.in_flight_bound  # tasks assigned at once, over all workers (I1)
        self._run_lock = threading.Lock()  # serialises runs, close() and the whole state below
        self._closed = False  # set by close(): no more runs
        self._workers = Workers(self.workers)  # the processes, started on the first run
        self._functions = FunctionCache()  # the pickled task functions
        self._run_ids = itertools.count(1)  # each run's id, increasing (see Run.run_id)

    # -- the caller's side ----------------------------------------------------------------------

    def run(self, plan: Plan, ctx: RunContext | None = None, admission: Admission | None = None) -> dict[str, int]:
        """Execute ``plan``; raise :class:`~ftdag.TaskError` (or a task's ``BaseException``).
        With ``ctx``, failures are the context's to report (:mod:`ftdag._context`); only a
        ``BaseException`` is raised here."""
        with self._run_lock:
            if self._closed:
                raise RuntimeError("this executor is closed")
            self._workers.forget_functions(self._functions.collected())
            fid_of, fn_data = self._functions.lookup(plan)  # may raise, before anything runs
            run = Run(
                plan, next(self._run_ids), fid_of, fn_data, self._bound, ctx, _store_blob(ctx), admission, self.workers,
            )
            if run.pending:
                if ctx is not None:
                    run_id, workers = run.run_id, self._workers
                    ctx.watch(lambda: workers.cancel_run(run_id))  # a store to shared memory: safe anywhere
                try:
                    self._start_workers()
                    self._dispatch(run, None)
                    self._loop(run)
                except BaseException:
                    self._abort(run)
                    raise
                finally:
                    self._release_kept(run)
                    if ctx is not None:
                        ctx.unwatch()
                        ctx.drop_timers()
        if run.error is not None:
            raise run_error(run.error, run.keys, _functions.cloudpickle_available())
        return run.counters(self.workers)

    def close(self) -> None:
        """Shut the workers down (after the current run, if any).  Idempotent."""
        with self._run_lock:
            self._closed = True
            self._workers.close()

    def pids(self) -> list[int]:
        """Process ids of the live workers (for tests and diagnostics)."""
        return self._workers.pids()

    # -- workers --------------------------------------------------------------------------------

    def _start_workers(self) -> None:
        """Before a run: notice the workers that died since the last one, and start the missing."""
        if self._workers.selector is not None:
            self._handle(None, self._workers.selector.select(0))
        self._workers.fill()

    def _release_kept(self, run: Run) -> None:
        """After a run: workers whose last task's result was kept for a link drop it."""
        for w in self._workers.all:
            if w.keep_tail != NO_TASK:
                w.keep_tail = NO_TASK
                if not w.dead:
                    w.pipe.send(run_over(run.run_id))

    # -- the scheduling loop --------------------------------------------------------------------

    def _loop(self, run: Run) -> None:
        selector = self._workers.selector
        assert selector is not None  # made by _start_workers
        select = selector.select
        ctx = run.ctx
        if ctx is None:
            while run.in_flight:
                self._handle(run, select())
            return
        while run.in_flight or (ctx.timers and not run.stopped):
            self._handle(run, select(self._idle_wait(run, ctx)))
            self._tick(run, ctx)

    def _idle_wait(self, run: Run, ctx: RunContext) -> float | None:
        """How long the loop may wait in the selector: until a retry is due, a timed attempt
        runs out or the run's deadline passes (None: until something happens)."""
        due = ctx.next_due()
        if due is not None and ctx.cancel is not None:
            due = min(due, time.monotonic() + _CANCEL_SLICE_S)
        if ctx.deadline is not None and not run.stopped and (due is None or ctx.deadline < due):
            due = ctx.deadline  # so that running tasks see current_task().cancelled at the deadline
        for w in self._workers.all:
            if w.timed != NO_TASK and not w.dead and (due is None or w.deadline < due):
                due = w.deadline
        return None if due is None else max(0.0, due - time.monotonic())

    def _tick(self, run: Run, ctx: RunContext) -> None:
        """A run with a context, after each wait: time out attempts, release due retries, stop
        if cancelled or past the deadline."""
        now = time.monotonic()
        for w in self._workers.all:
            if w.timed != NO_TASK and not w.dead and w.deadline <= now:
                task = w.timed
                self._workers.kill(w)  # the attempt cannot be stopped otherwise
                w.assigned.clear()
                w.timed = NO_TASK
                run.in_flight -= 1
                if run.admission is not None:
                    self._release(run, run.admission, task)
                self._failed(run, task, _TIMED_OUT, run.timeouts[task], w.index, run.timeouts[task])
                if not run.stopped:
                    self._workers.replace(w)
        if run.stopped:
            return
        if ctx.halted():
            self._stop(run)
            return
        if ctx.timers:
            due = ctx.release_due(now)
            if due:
                run.ready.push(due)
        if run.ready:
            self._dispatch(run, None)

    def _handle(self, run: Run | None, events: list) -> None:
        """Act on selector events: replies to read, buffered messages to write, deaths."""
        for key, _ in events:
            w, what = key.data
            if w.dead:
                continue  # an event about a worker discarded earlier in this batch
            if what == READABLE:
                if self._receive(run, w) < 0:
                    self._exited(run, w)
            elif what == WRITABLE:
                w.pipe.flush()
            else:
                self._exited(run, w)

    def _receive(self, run: Run | None, w: Worker) -> int:
        """Read what the worker's pipe holds, without blocking; handle every complete reply.

        Returns 1 if something was read, 0 if nothing was there, -1 at the end of the pipe.
        ``w.reading`` stays set if this is interrupted.
        """
        w.reading = True
        try:
            frames = w.pipe.receive()
        except BlockingIOError:
            w.reading = False
            return 0
        if frames is None:
            return -1
        if frames and not w.started:
            w.started = True
            del frames[0]  # HELLO, the first frame a worker sends
        for data in frames:
            self._reply(run, w, data)
        w.reading = False
        return 1

    def _reply(self, run: Run | None, w: Worker, data: bytes) -> None:
        """Handle one reply: store a result and dispatch what it made ready, or record a failure."""
        elapsed = 0.0  # (seconds the attempt took, reported by tasks of runs with a context)
        try:
            message = loads(data)
            if len(message) == 4:
                run_id, task, status, payload = message
            else:
                run_id, task, status, payload, elapsed = message
            message = None
        except Exception as exc:  # a result that does not unpickle here; replies come in order
            if run is None or not w.assigned:
                return
            run_id, task, status, payload = run.run_id, w.assigned[0], UNLOADABLE, exc
        if run is None or run_id != run.run_id:
            return  # not this run's (cannot happen while I7 holds; ignored all the same)
        assigned = w.assigned
        if assigned and assigned[0] == task:
            assigned.popleft()
        else:
            try:
                assigned.remove(task)
            except ValueError:
                return
        run.in_flight -= 1
        if w.timed == task:
            w.timed = NO_TASK
        if run.admission is not None:
            self._release(run, run.admission, task)
        if run.ctx is not None:
            if status == OK:
                self._succeeded(run, run.ctx, w, task, payload, elapsed)
            elif status != SKIPPED:
                self._failed(run, task, status, payload, w.index, elapsed)
            return
        if status == OK:
            if run.stopped:
                return
            made = run.plan.finish(task, payload)
            run.pending -= 1
            ready = run.ready
            if made:
                ready.push(made)
            if ready or w.keep_tail != NO_TASK:  # (the second: a chain link may now fit behind it)
                self._dispatch(run, w)
        elif status != SKIPPED:
            self._fail(run, task, status, payload)

    def _dispatch(self, run: Run, prefer: Worker | None) -> None:
        """Assign ready tasks, then chain links, while I1 and I2 allow; one message per worker.

        ``prefer``: the worker whose reply freed a slot.  The phases are in :mod:`ftdag._dispatch`.
        """
        if run.stopped or run.in_flight >= run.bound:
            return
        ctx = run.ctx
        if ctx is not None and ctx.halted():
            self._stop(run)
            return
        if run.ready:
            batches, room = assign_ready(run, self._workers.all, prefer, self._slots)
        else:  # (a chain's case, after each reply: only a link may fit)
            batches, room = {}, run.bound - run.in_flight
        if room > 0 and ctx is None and not run.direct:
            add_links(run, batches, prefer, room, self._slots)
        try:
            messages = [(w, batch, *encode_tasks(run, w, batch)) for w, batch in batches.items() if batch]
        except Unsendable as exc:
            self._fail(run, exc.task, UNSENDABLE, (exc.dep, exc.cause))
            return
        for w, batch, items, defs in messages:
            send_batch(run, w, batch, items, defs)
        if run.in_flight > run.peak_in_flight:
            run.peak_in_flight = run.in_flight

    # -- failures -------------------------------------------------------------------------------

    def _exited(self, run: Run | None, w: Worker) -> None:
        """A worker's process ended (or its pipe closed): fail the task it was running.

        Replaced at once if it died idle mid-run, after it had started (see Failures above).
        """
        if w.dead:
            return
        w.dead = True  # dispatching skips it from now on
        while self._receive(run, w) > 0:  # replies it sent before it died count (its HELLO too)
            pass
        w.reading = False
        self._workers.bury(w)
        lost = w.assigned
        if lost and run is not None:
            run.in_flight -= len(lost)
            if run.ctx is not None:  # the running task crashed; the queued ones go back to ready
                w.timed = NO_TASK
                task, queued = lost[0], list(lost)[1:]
                lost.clear()
                if run.admission is not None:
                    self._release(run, run.admission, task)
                if queued and not run.stopped:
                    run.ready.push(queued)
                self._failed(run, task, CRASHED, (w.proc.exitcode, not w.started), w.index, 0.0)
            else:
                self._fail(run, lost[0], CRASHED, (w.proc.exitcode, not w.started))
            lost.clear()
        if run is not None and not run.stopped and w.started:
            self._workers.replace(w)
            if run.ready:
                self._dispatch(run, None)

    def _release(self, run: Run, admission: Admission, task: int) -> None:
        """A guarded task ended (however): give back what it held; the blocked tasks may fit now."""
        if admission.guards(task):
            admission.release(task)
            if admission.blocked:
                if not run.stopped:
                    run.ready.push(admission.blocked)
                admission.blocked.clear()

    def _succeeded(self, run: Run, ctx: RunContext, w: Worker, task: int, result: object, elapsed: float) -> None:
        """A run with a context: ``task`` returned ``result`` (reported even if the run stopped)."""
        fingerprints = ctx.fingerprints
        if fingerprints is not None and run.store_blob is None and fingerprints[task] is not None:
            try:  # a store of this process only (MemoryStore): the parent saves
                ctx.store.save(fingerprints[task], result, run.keys[task])
            except SerializationError as err:
                _report(ctx, run.keys[task], w.index, elapsed, err)
                self._settle(run, ctx, task, ctx.failure(run.plan, task, err.__cause__ or err, err, retryable=False))
                return
        _report(ctx, run.keys[task], w.index, elapsed, None)
        made = run.plan.finish(task, result)
        ctx.succeeded(run.plan, task)
        run.pending -= 1
        if made and not run.stopped:
            run.ready.push(made)
        if run.ready:
            self._dispatch(run, w)

    def _failed(self, run: Run, task: int, status: int, payload: object, worker: int, elapsed: float) -> None:
        """A run with a context: an attempt of ``task`` (on ``worker``) failed; its context
        decides what follows."""
        ctx = run.ctx
        assert ctx is not None
        key = run.keys[task]
        if status == _TIMED_OUT:
            exc: BaseException = TaskTimeoutError(key, payload)  # type: ignore[arg-type]
            _report(ctx, key, worker, elapsed, exc)
            self._settle(run, ctx, task, ctx.failure(run.plan, task, exc))
            return
        if status == UNSAVED:  # the result could not be saved (SerializationError, or the store's error)
            cause = remote_exception(payload)  # type: ignore[arg-type]
            error = cause if isinstance(cause, TaskError) else _task_failed(key, cause)
            _report(ctx, key, worker, elapsed, error)
            self._settle(run, ctx, task, ctx.failure(run.plan, task, cause, error, retryable=False))
            return
        err = run_error((task, status, payload), run.keys, _functions.cloudpickle_available())
        _report(ctx, key, worker, elapsed, err.__cause__ if type(err) is TaskError else err)
        if not isinstance(err, Exception):  # SystemExit, KeyboardInterrupt from a task: stop, re-raise
            if run.error is None:
                run.error = (task, status, payload)
            ctx.failure(run.plan, task, err)
            self._stop(run)
            return
        if type(err) is TaskError:  # the task raised: its own exception decides on retrying
            action = ctx.failure(run.plan, task, err.__cause__)  # type: ignore[arg-type]
        else:  # it could not cross between processes (never retried), or its worker died
            action = ctx.failure(run.plan, task, err, err, retryable=status == CRASHED)  # type: ignore[arg-type]
        self._settle(run, ctx, task, action)

    def _settle(self, run: Run, ctx: RunContext, task: int, action: int) -> None:
        if action == STOP:
            self._stop(run)
            return
        if action == RETRY_NOW:
            run.ready.push([task])
        elif action == CONTINUE:
            run.pending -= ctx.settled
        if run.ready:
            self._dispatch(run, None)

    def _fail(self, run: Run, task: int, status: int, payload: object) -> None:
        if run.error is None:
            run.error = (task, status, payload)
        self._stop(run)

    def _stop(self, run: Run) -> None:
        """Fail fast: dispatch nothing more, and let no queued task of this run start."""
        if run.stopped:
            return
        run.stopped = True
        run.ready.clear()
        if run.ctx is not None:
            run.ctx.drop_timers()
        if run.admission is not None:
            run.admission.blocked.clear()
        self._workers.cancel_run(run.run_id)

    def _abort(self, run: Run) -> None:
        """Ctrl-C (or any exception) in the loop: stop, give running tasks a grace period, kill."""
        self._stop(run)
        selector = self._workers.selector
        if selector is None:
            return
        workers = self._workers.all
        # A worker interrupted mid-read or with a half-written message has lost the framing.
        for w in workers:
            if not w.dead and (w.reading or w.pipe.outbuf):
                self._workers.kill(w)
        deadline = time.monotonic() + _INTERRUPT_GRACE
        try:
            while any(w.assigned for w in workers if not w.dead):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._handle(run, selector.select(left))
        except BaseException:  # a second Ctrl-C: stop waiting
            pass
        for w in workers:
            if not w.dead and (w.assigned or w.pipe.outbuf or w.reading):
                self._workers.kill(w)
            w.assigned.clear()


def _store_blob(ctx: RunContext | None) -> bytes | None:
    """The run's store, pickled for the workers, or None when the parent saves (no store, or
    one that lives in this process only, such as :class:`~ftdag.MemoryStore`)."""
    if ctx is None or ctx.store is None or ctx.fingerprints is None or getattr(ctx.store, "process_local", False):
        return None
    try:
        return pickle.dumps(ctx.store, pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise TypeError(
            f"the store {ctx.store!r} cannot be pickled, so worker processes cannot save to it: "
            "use a store that pickles (DirectoryStore, SQLiteStore) or backend='threads'"
        ) from exc


def _report(ctx: RunContext, key: object, worker: int, elapsed: float, error: BaseException | None) -> None:
    """Both task events of an attempt, which the parent learns of from its reply (ftdag.callbacks)."""
    callbacks = ctx.callbacks
    if callbacks is not None:
        callbacks.task_start(key, worker)
        callbacks.task_end(key, worker, elapsed, error)
