"""The thread backend: worker threads sharing results by reference, the caller among them.

This is ftdag's scheduler for free-threaded CPython, where threads run Python in parallel.

Workers
-------
A run has ``max_workers`` *worker slots*.  Slots ``0 .. max_workers - 2`` are persistent
pool threads (``ftdag-worker-<slot>``), started on the first run and joined by ``close()``;
the last slot (``_caller_slot``) is the thread that called ``run()``, which runs tasks like
any worker until the run is over.  So at most ``max_workers`` tasks run at once, the
caller's included, and a small graph runs on the caller's thread with no wake-up latency.

A plain run starts *alone* (:mod:`ftdag._alone`): the caller runs its tasks one after
another in plan order and wakes no one, until they prove slow or the caller is stuck in a
task while another could run; then the run is *shared*, as the rest of this docstring
describes.  An idle pool thread, the lookout, watches for a stuck caller.

State
-----
Everything below is guarded by one lock, ``_lock``.  Idle pool threads sleep on ``_wake`` (a
condition over ``_lock``); ``_changed`` (another) is notified when a run ends or a slot goes
idle, for :meth:`ThreadPool.wait_for_state` (only while some thread waits there:
``_watchers``).  The caller never waits on ``_lock``: it sleeps on its run's ``bell``, a plain lock used as a binary semaphore, so that a signal that
interrupts its wait can never leave ``_lock`` half-released (see "Ctrl-C").  The state of a
run lives in a :class:`_Run`, so a worker still finishing a task of an abandoned run only
ever touches that run's counters, never the next run's.

The run's shared state (``ready``, ``in_flight``, ``pending``, ``stopped``, ``error``, the
bound) is a :class:`ftdag._runstate.RunState`; what follows is the thread backend's own.

``_Run.queues[w]``  slot ``w``'s deque of ready task ids.  It pops its own newest (right
                    end; its oldest when the ready order is a heap, ``fifo``); a slot with
                    nothing queued steals another's oldest (left end).  Empty in a
                    ``direct`` run (ordered or guarded, see :mod:`ftdag._runstate`): there
                    every task goes ``ready -> running``, taken by a free slot.
``_Run.ready``      (shared) ready task ids that are not in flight: they wait for room,
                    holding no inputs (their arguments are gathered only when they start).
``_Run.in_flight``  (shared) tasks in some ``queues[w]`` plus tasks running.
``_Run.caller_waiting``  the caller sleeps on ``bell``; whoever sets it back to False
                    releases ``bell`` once (:func:`_ring`), so no wake-up is lost or doubled.
``_Run.alone``      the caller runs the run alone (:mod:`ftdag._alone`, A1-A3), in plan
                    order, up to ``_Run.pos``: ``ready`` and ``queues`` stay empty, and
                    ``in_flight`` is 1, until :func:`ftdag._alone.share` makes them.  The
                    caller records its tasks holding the run's own ``_Run.gate``, not
                    ``_lock``; a share takes both (A1, A2).

Runs with a context (``_Run.ctx``, :mod:`ftdag._context`) call each task through
:func:`ftdag._attempt.run_attempt` (wrapped into ``_Run.fns``: the hot loop is the same),
link nothing, and consult the context in ``_finish_with_context`` (retry, keep going or stop)
and ``_poll`` (before a task is taken: the cancel token, the deadline, retries that are due).
Idle threads of such a run sleep at most until the next retry is due (:func:`_idle_wait`).
Guarded runs admit a task when a slot takes it (:func:`_admit_next`); a task that is not
admitted waits in ``admission.blocked``, outside ``ready`` and ``in_flight``, until a guarded
task ends and puts the blocked tasks back in ``ready``.

A task moves ``ready -> queues[w] -> running -> finished``, or ``ready -> running`` when a
slot with nothing queued takes it directly, or ``running -> running`` on the same thread:
the thread that finishes a task starts the first dependent it made ready itself, so a
chain never bounces between threads.

Invariants (each is kept under ``_lock`` by ``_dispatch``, ``_take``, ``_finish`` (inlined
for plain runs in ``_serve``'s critical section) and ``_stop``, the only code that changes run
state, except the solo links of I7 and a quick slot's own pops of I9):

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
    dependent of ``d`` has finished (requested outputs hold one extra count).  A value is
    never *freed* under ``_lock``: ``Plan.finish`` moves it to the thread's ``garbage`` list,
    emptied after the lock is released, so a slow ``__del__`` stalls no other worker and one
    that touches the executor cannot deadlock.
I6. After a failure or cancellation (``stopped``), no task starts: queues and ``ready`` are
    emptied, ``_take`` hands out nothing, and ``_finish`` makes nothing ready.  The run is
    ``done`` once ``in_flight`` is 0, i.e. every running task has returned.  (A thread in a
    solo chain, I7, reads ``stopped`` without the lock before each link, so it may start
    the one link it was about to start as the failure was recorded.)
I7. Solo links skip the lock.  ``solo[t] == u`` (defined, with the reason it is safe, by
    :func:`ftdag._plan.solo_links`) means that nothing but the thread that ran ``t`` can
    touch ``values[t]``, the values of ``t``'s inputs, ``remaining[u]`` or their
    consumer counts.  That thread stores ``t``'s result, drops its inputs and runs ``u`` at
    once: the task it was running is replaced by its dependent, so I1 and I2 are untouched,
    and the links it ran are subtracted from ``pending`` at its next ``_finish``.  A chain
    of N tasks costs one lock round-trip instead of N.
I8. In a guarded run, a task runs only while admitted: ``_admit_next`` admits it in the same
    critical section in which a slot takes it, and ``_finish_with_context`` releases it
    before anything else (ftdag._admission keeps A1-A3).  A task that was not admitted holds
    no slot and no in-flight count (I1), and is back in ``ready`` after the next release.
I9. A quick slot runs its own queue without the lock.  In a plain run, when the tasks a slot
    ran since its last critical section took under ``_QUICK_S`` each on average, and no
    other thread is idle, the slot takes its next task from ``queues[w]`` with the deque's
    own atomic pop, without ``_lock``, and records the tasks it finished (their results,
    counts and ready dependents) all at once at its next critical section, in the order they
    ran.  Thieves pop under the lock; every deque pop is atomic, so each queued task is taken
    by one thread (a pop that loses the race finds the deque empty and moves on); a task moving
    from the queue to running stays in ``in_flight``, so I1 and I2 are untouched; and
    nothing about a finished task is visible to other threads before its record, so I3 to
    I5 hold as written.  What it costs: a finished task's dependents become ready up to
    ``cap`` tasks later, only while tasks are quick and every other thread is busy; and, as
    in a solo chain, a slot may start the queued task it was about to take as the run stops
    (I6).  (So a task must not wait for a task that the graph does not order before it: a
    dependent of a task recorded late could be held back behind it.  Such a wait was never
    safe: with one worker it waits forever.)  A lock round-trip then serves up to
    ``cap + 1`` tasks, which keeps wide graphs of tiny tasks near the sequential cost.

Nothing polls but the lookout of an alone run (every ``_LOOKOUT_S``, without the lock,
while the caller ends tasks alone or is stuck while another task could run;
:mod:`ftdag._alone`).  A pool thread waits on ``_wake`` only after ``_take`` found nothing under the lock, and the caller sets
``caller_waiting`` in that same critical section; whoever adds work to a shared run notifies
both while still holding the lock, so no wake-up is lost.  The other timed waits are the
caller's when it is the main thread (below), and, in a run with a
context, a sleep until the next retry is due (in slices while a cancel token could fire:
cancelling only sets a flag, which an idle thread must wake to see; running tasks see it
when they finish).

Ctrl-C
------
Signals reach only the main thread.  When it is the caller (``_Run.on_main``), the Ctrl-C
guard (:mod:`ftdag._interrupts`, which finds the run through :meth:`ThreadPool.main_run`)
sets the run's ``stopped`` and ``interrupted`` before ``KeyboardInterrupt`` raises, and the
caller waits on ``bell`` in slices of ``_SIGNAL_SLICE_S`` (a SIGINT that lands just before
a lock wait does not interrupt it: CPython's locks have no self-pipe), and
``KeyboardInterrupt`` may surface anywhere in its loop, a task it is running included.  Then
the run is *abandoned*: ``stopped`` is set first (a plain store, before taking the lock),
then ``_stop`` empties the queues under the lock, and ``run()`` re-raises at once; tasks
running on pool threads finish on their own and touch only the abandoned run.  A transition
the interrupt cut short can leave that run's counters inconsistent, which is harmless:
nothing reads them again but threads finishing a task, and those see ``stopped``.  Because
the caller never waits on ``_lock`` through a ``Condition``, an interrupt cannot release
``_lock`` while a pool thread holds it.

Hot path
--------
Threads index by node id; they never hash keys.  They read the graph's edges, the plan's
counts and the solo links from flat ``array('i')`` tables (:mod:`ftdag._arrays`): reading
an element creates the int in the reading thread, so no thread touches reference counts of
ints another thread created (an atomic operation on free-threaded CPython), and nothing is
copied per thread.  In a plain run (no context, not direct) :meth:`ThreadPool._serve` does
``_finish``'s work for a task that succeeded inline, with the same transitions, and a thread
that dropped values frees them after the lock and reports that (``freeing``) at its next
critical section: one lock round-trip per task.

Runs
----
``run()`` callers are serialised by ``_run_lock`` (the rule is :class:`ftdag.Executor`'s).
A task that calls ``run()`` on its own executor runs nothing here, since waiting for the
pool from inside it could deadlock: ``run()`` sees that the calling thread is inside the
pool (:meth:`ThreadPool.inside`, the thread's ``pool``, read before ``_run_lock``) and
returns None, and the executor runs the plan inline on the sequential backend (a run with
a context asks ``inside()`` first, so that its callbacks hear of the backend that runs it).
``close()`` takes ``_run_lock`` too, so it waits for the run in progress; from a
task of this pool it only marks the pool closing, and the threads exit once the run is over.

A plain run that ended alone (never shared, not stopped) changed nothing of its
:class:`_Run` but what :meth:`_Run.load` sets, so ``run()`` keeps it as ``_spare``, after
:meth:`_Run.park` dropped its plan, and the next plain run reuses it: on free-threaded
CPython making and freeing a ``_Run`` costs about a tenth of a small graph's run.  It is
safe because nothing refers to a run that ended alone but the lookout, which may still hold
it between two looks without the lock: what the lookout reads there only decides whether it
keeps watching (:func:`ftdag._alone.could_share` finds no shape in a parked run), and it shares
a run only under the lock, when ``_progress``, which moves each time a run starts alone, is
what it saw.  ``_spare`` is read and written only under ``_run_lock``, and ``run()`` reads
nothing of a run it parked.
"""

from __future__ import annotations

import gc
import threading
import time
from array import array
from collections import deque
from collections.abc import Callable, Sequence
from time import perf_counter
from typing import Any, NamedTuple

from . import _interrupts as interrupts
from ._admission import Admission
from ._alone import _LOOKOUT_S, _QUICK_S, _STUCK_LOOKS, CALLED, CTRL_C, NO_SLOT, could_share, run_alone, share
from ._arrays import INDEX
from ._attempt import SaveFailed, attempts
from ._context import CONTINUE, RETRY_NOW, STOP, RunContext, TaskContext, register_frame, thread_state
from ._plan import NO_TASK, AloneShape, Plan
from ._runstate import RunState, direct_order
from .config import ExecutorConfig
from .errors import _task_failed

_main_ident = interrupts.MAIN_IDENT  # signals reach this thread only
_get_ident = threading.get_ident
_sigint_handler, _GUARD = interrupts.handler, interrupts.GUARD
_SIGNAL_SLICE_S = 0.05  # the main thread's wait slice: how late a racing Ctrl-C may be seen


def current_pool() -> ThreadPool | None:
    """The pool whose task the calling thread is running (a pool thread, or a helping caller)."""
    return thread_state().pool


class PoolState(NamedTuple):
    """What :meth:`ThreadPool.state` reports.

    ``workers`` counts worker slots, the caller's included; ``idle`` the slots not running a
    task (pool threads asleep, and the caller while it waits or when no run is going on);
    ``running`` the tasks of the current run that are running.
    """

    workers: int
    idle: int
    in_flight: int
    running: int
    queued: tuple[int, ...]
    ready: int
    stopped: bool


class _Run(RunState):
    """One run's scheduling state: the shared :class:`~ftdag._runstate.RunState` plus what
    only the thread backend keeps; see the module docstring."""

    __slots__ = (
        "fns", "queues", "cap", "done", "freeing", "caller_waiting", "bell", "interrupted", "steals", "ctx",
        "solo", "plain", "fifo", "direct", "admission", "alone", "pos", "shape", "on_main", "gate",
    )

    shape: AloneShape | None  # a plain run: what it reads of its request (ftdag._alone); None otherwise, or parked
    # Set when a run with a context is made, and when a plain run is shared (ftdag._alone.share):
    fns: Sequence[Callable[..., Any] | None]  # by node id: a task's function (None for a source)
    solo: array  # by node id: the solo link (I7) a task starts, or NO_TASK (none in a run with a context)
    fifo: bool  # a slot runs its own queue oldest first: in ready order

    def __init__(
        self, plan: Plan, workers: int, cap: int, bound: int, ctx: RunContext | None = None,
        admission: Admission | None = None,
    ) -> None:
        self.ctx = ctx  # None for a plain run; else its policy and failure state (ftdag._context)
        self.admission = admission
        self.cap = cap  # I2
        self.pos = 0  # alone: order[:pos] have finished (ftdag._alone, A1)
        self.freeing = 0  # threads freeing values this run dropped (outside the lock, I5)
        self.interrupted = False  # Ctrl-C reached the caller (set by ftdag._interrupts)
        self.caller_waiting = False  # the caller sleeps on bell (module docstring)
        self.bell: threading.Lock | None = None  # made when the caller first waits; held unless rung
        self.steals = 0
        self.on_main = False  # driven by the main thread (set by its caller; ftdag._interrupts)
        if ctx is None:
            # A plain run (ThreadPool.run's callers give every ordered or guarded plan a
            # context): _serve finishes its successful tasks inline (module docstring "Hot
            # path"), and the caller runs it alone, in ``order``, until another task could run
            # beside its own and its tasks prove slow or it gets stuck (ftdag._alone, A1-A3);
            # meanwhile ``ready`` and ``queues`` stay empty, and ``pos`` says how far it got.
            # (On one worker ``order`` is one_worker()'s, the very order a direct run keeps,
            # at the sequential backend's cost, and it is never shared.)
            self.direct = False
            self.plain = True
            self.gate = threading.Lock()  # alone: held by the caller while it records a task (ftdag._alone, A1)
            self.queues: list[deque[int]] = []  # one per slot (I2), made by ftdag._alone.share
            RunState.__init__(self, plan, bound, False)  # (not super(): this is a per-run cost)
            self.load(plan, workers)
        else:
            # Ordered and guarded runs, and ranked runs on one slot, queue nothing at the slots:
            # every task is taken straight from ``ready`` by a free slot, so it starts in ready
            # order, and is admitted (``admission``, ftdag._admission) only when it is about to
            # run (see ftdag._runstate).  A run with a context links nothing (I7).
            template = plan.template
            self.direct = direct_order(template, workers)
            self.plain = self.alone = False
            self.shape = None
            self.fifo = template.heap
            self.solo = _no_links(len(plan.values))
            self.fns = attempts(ctx, plan, self.halted)  # each task's function in its attempt: context, timeout, store
            self.queues = [deque() for _ in range(workers)]
            RunState.__init__(self, plan, bound, True)
            self.done = not self.pending  # nothing more will happen: the caller may return

    def load(self, plan: Plan, workers: int) -> None:
        """Make this a plain run of ``plan`` that has not started: set every field that
        depends on the plan or that a plain run that ended alone changed (``__init__``, or
        ``ThreadPool.run`` reusing such a run: module docstring "Runs")."""
        self.plan = plan
        self.values = plan.values
        self.shape = plan.template.alone(workers)
        self.alone = True
        self.pos = self.in_flight = self.peak_in_flight = 0
        self.pending = n = len(plan.tasks)
        self.done = not n

    def park(self) -> None:
        """This plain run ended alone: drop what it holds of its plan (its results, the
        graph's functions and tables), so that the pool can keep it for the next plain run
        without keeping them alive.  Read without the lock afterwards only by a lookout that
        still holds it (ftdag._alone.could_share, which finds no shape)."""
        self.plan = self.values = self.shape = None  # type: ignore[assignment]

    def halted(self) -> bool:
        """Whether a task of this run should stop early (``current_task().cancelled``)."""
        return self.stopped or (self.ctx is not None and self.ctx.halted())


def _failure(run: _Run) -> BaseException:
    """The exception ``run()`` raises for ``run.error``; clears it.

    Built here, not in ``run()``, so that no frame on the raising path holds the task's
    exception in a local: its traceback holds the worker frames that hold the run's values,
    and a local would close a cycle that only the garbage collector could break.
    """
    task, exc = run.error  # type: ignore[misc]
    run.error = None
    if isinstance(exc, Exception):
        return _task_failed(run.plan.dag._keys[task], exc)
    return exc


def _ring(run: _Run) -> None:
    """Wake the caller if it sleeps on ``run.bell`` (with ``_lock`` held)."""
    if run.caller_waiting:
        run.caller_waiting = False
        run.bell.release()  # type: ignore[union-attr]  # made before caller_waiting was set


class ThreadPool:
    """``max_workers`` worker slots, the caller's included, that execute plans; see the module docstring."""

    def __init__(self, config: ExecutorConfig) -> None:
        self.workers = config.max_workers  # worker slots; the last one is the caller's
        self._caller_slot = self.workers - 1
        self._cap = config.worker_queue_cap
        self._bound = config.in_flight_bound
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)  # idle pool threads wait here
        self._changed = threading.Condition(self._lock)  # a run ended or a slot went idle
        self._watchers = 0  # threads in wait_for_state: _changed is notified only if there are any
        self._started = False  # every pool thread was started (until one is found missing)
        self._run_lock = threading.Lock()  # serialises run() and close()
        self._run: _Run | None = None  # the run in progress, if any
        self._spare: _Run | None = None  # the last plain run, if it ended alone: the next plain run reuses it ("Runs")
        self._idle = 0  # pool threads asleep on _wake
        self._closing = False
        self._crash: BaseException | None = None  # an error in the scheduler itself
        self._lookout = NO_SLOT  # the pool thread watching an alone run, if any (ftdag._alone, A3)
        self._progress = 0  # runs started alone: with run.pos, how the lookout sees the caller move on
        # Slot w's thread, recorded before it is started, so that an interruption between two
        # starts leaves nothing unknown: _start_threads replaces what is not running on the next
        # run, and a replaced thread that started after all exits at once (_work).
        self._threads: list[threading.Thread | None] = [None] * self._caller_slot
        interrupts.watch(self)  # so that Ctrl-C stops the runs the main thread drives here

    # -- the caller's side ----------------------------------------------------------------------

    def run(
        self, plan: Plan, ctx: RunContext | None = None, admission: Admission | None = None,
    ) -> dict[str, int] | None:
        """Execute ``plan``, the calling thread helping; raise :class:`~ftdag.TaskError` (or a
        task's ``BaseException``).  With ``ctx``, failures are the context's to report
        (:mod:`ftdag._context`); only a ``BaseException`` is raised here.

        Returns the run's counters, or None, running nothing, when the caller is inside this
        pool (:meth:`inside`: a task of this pool runs a graph on the pool's executor): it would
        wait for the pool, which waits for it, so the caller runs the plan inline instead (on
        the sequential backend: :meth:`ftdag.Executor.run`).
        """
        state = thread_state()
        outer = state.pool
        if outer is self:  # inside()
            return None
        with self._run_lock:
            state.pool = self  # from here on, close() or run() on this thread cannot wait for us
            if ctx is not None:  # the slot that the context's callbacks name for the caller's tasks
                outer_slot = state.slot
                state.slot = self._caller_slot
            try:
                if self._closing or self._crash is not None or not self._started:
                    self._prepare()
                run = self._spare
                if run is not None and ctx is None:  # the last plain run, which ended alone ("Runs")
                    self._spare = None
                    run.load(plan, self.workers)
                else:
                    run = _Run(plan, self.workers, self._cap, self._bound, ctx, admission)
                if not run.done:  # the caller drives it; anything that escapes (Ctrl-C) abandons it
                    main = run.on_main = _get_ident() == _main_ident
                    if main and _sigint_handler() is not _GUARD:
                        interrupts.arm()  # (the guard finds the run through main_run())
                    try:
                        if run.alone:  # it starts alone (ftdag._alone); it comes to _drive only if shared
                            task, over = run_alone(self, run, main)
                        else:
                            task, over = self._start(run)
                        if not over:
                            self._drive(run, main, task)
                        if run.interrupted:  # a Ctrl-C that a finalizer swallowed
                            raise KeyboardInterrupt
                    except BaseException:
                        run.stopped = True  # first, without the lock: no thread starts a task of it now
                        with self._lock:
                            self._stop(run)
                            self._end(run)
                        raise
                if run.plain and not run.queues and not run.stopped:  # it ended alone, and well: keep it ("Runs")
                    counters = run.counters(self.workers)
                    run.park()
                    self._spare, run = run, None  # (from here on, the next run's)
            finally:
                state.pool = outer
                if ctx is not None:
                    state.slot = outer_slot
        if self._crash is not None:
            self._check_crash()
        if run is None:
            return counters
        if run.error is not None:
            raise _failure(run)
        if ctx is not None:
            ctx.drop_timers()
        return run.counters(self.workers, run.steals)

    def inside(self) -> bool:
        """Whether the calling thread runs a task of this pool (a pool thread, or a caller
        while its run is in progress): :meth:`run` runs nothing there (it returns None)."""
        return thread_state().pool is self

    def _prepare(self) -> None:
        """Before a run: refuse it if the pool is closed or crashed; start the pool threads
        if they are not all running."""
        if self._closing:
            raise RuntimeError("this executor is closed")
        if self._crash is not None:
            self._check_crash()
        if not self._started:
            self._start_threads()

    def _start(self, run: _Run) -> tuple[int, bool]:
        """Start ``run``, which is not alone: publish it and take a task for the caller
        (waking pool threads for the rest).  Returns ``(task, over)`` as
        :func:`ftdag._alone.run_alone` does."""
        with self._lock:
            old, self._run = self._run, run  # an abandoned run is freed below, not under the lock
            if self._crash is not None:  # a thread crashed since run() looked: start nothing
                self._stop(run)
            task = self._take(run, self._caller_slot)  # (it dispatches what it leaves ready, waking pool threads for it)
            over = task == NO_TASK and self._caller_idle(run)
        del old
        return task, over

    def _drive(self, run: _Run, main: bool, task: int) -> None:
        """The caller's loop: run ``task`` (if not ``NO_TASK``), then tasks it takes as slot
        ``_caller_slot``, sleeping on its bell while there is none, until ``run`` is over."""
        lock, c = self._lock, self._caller_slot
        over = False
        garbage: list[Any] = []
        ctrl_c = CTRL_C if main else ()  # what abandons the run when a task raises it
        slice_s = _SIGNAL_SLICE_S if main else -1
        while not over:
            if run.interrupted:
                raise KeyboardInterrupt  # the handler stopped the run; a finalizer swallowed the raise
            if task != NO_TASK:
                over = self._serve(c, run, task, garbage, ctrl_c, True)
                task = NO_TASK
                continue
            bell = run.bell
            wait = slice_s if run.ctx is None else _idle_wait(run.ctx, slice_s)
            got = bell.acquire(True, wait)  # type: ignore[union-attr]  # made by _caller_idle
            with lock:
                if run.caller_waiting:  # not rung: the slice ran out
                    run.caller_waiting = False
                elif not got:  # rung after the slice ran out: take the ring back
                    bell.acquire(False)  # type: ignore[union-attr]
                task = self._take(run, c)
                over = task == NO_TASK and self._caller_idle(run)

    def _caller_idle(self, run: _Run) -> bool:
        """The caller found nothing to take: end the run if it is over (True), else mark the
        caller waiting on its bell (False).  With ``_lock`` held."""
        if run.done or self._crash is not None:
            if not run.done:
                self._stop(run)  # a pool thread crashed: nothing more of this run may start
            self._end(run)
            return True
        if run.bell is None:
            run.bell = threading.Lock()
            run.bell.acquire()
        run.caller_waiting = True
        if self._watchers:
            self._changed.notify_all()  # the caller's slot is idle
        return False

    def main_run(self) -> _Run | None:
        """The run in progress that the main thread drives, if any (for the Ctrl-C guard,
        :mod:`ftdag._interrupts`, on the main thread)."""
        run = self._run
        return run if run is not None and run.on_main else None

    def _end(self, run: _Run) -> None:
        """``run`` is over or abandoned: unpublish it.  With ``_lock`` held."""
        if self._run is run:
            self._run = None
        if self._watchers:
            self._changed.notify_all()
        if self._closing:  # closed by a task: the threads may exit now
            self._wake.notify_all()

    def close(self) -> None:
        """Wait for the run in progress, then let the pool threads exit and join them.  Idempotent.

        From a task of this pool (which the run in progress waits for) it only marks the pool
        closing; its threads exit once that run is over.
        """
        if self.inside():
            with self._lock:
                self._closing = True
                self._wake.notify_all()
            return
        with self._run_lock:
            with self._lock:
                self._closing = True
                self._wake.notify_all()
            threads = [t for t in self._threads if t is not None and t.ident is not None]
        for t in threads:
            t.join()
        interrupts.release()  # the Ctrl-C guard runs left installed (on the main thread, between runs)

    def state(self) -> PoolState:
        """A consistent snapshot of the pool and its current run (for tests and diagnostics)."""
        with self._lock:
            return self._state()

    def wait_for_state(self, predicate: Callable[[PoolState], bool], timeout: float) -> PoolState:
        """Block until ``predicate(state)`` holds; raise :class:`TimeoutError` with the last state.

        For tests and diagnostics, from a thread that is not the caller of a run.
        """
        with self._lock:
            self._watchers += 1
            try:
                if not self._changed.wait_for(lambda: predicate(self._state()), timeout):
                    raise TimeoutError(f"pool did not reach the expected state in {timeout}s: {self._state()}")
                return self._state()
            finally:
                self._watchers -= 1

    def _state(self) -> PoolState:
        run = self._run
        if run is None:
            return PoolState(self.workers, self._idle + 1, 0, 0, (0,) * self.workers, 0, False)
        queued = tuple(len(q) for q in run.queues) if run.queues else (0,) * self.workers  # (none while alone)
        idle = self._idle + (1 if run.caller_waiting else 0)
        return PoolState(
            self.workers, idle, run.in_flight, run.in_flight - sum(queued), queued, len(run.ready), run.stopped
        )

    def _start_threads(self) -> None:
        """Start the pool threads that are not running: all of them on the first run, and any
        whose start an interruption cut short since."""
        threads = self._threads
        with self._lock:
            missing = [w for w, t in enumerate(threads) if t is None or not t.is_alive()]
            new = [threading.Thread(target=self._work, args=(w,), name=f"ftdag-worker-{w}", daemon=True) for w in missing]
            for w, t in zip(missing, new, strict=True):
                threads[w] = t
        for t in new:
            t.start()
        self._started = True  # not reached if a start was interrupted: the next run looks again

    def _check_crash(self) -> None:
        if self._crash is not None:
            raise RuntimeError("an ftdag worker thread crashed; this executor cannot run on threads") from self._crash

    # -- the pool threads' side -----------------------------------------------------------------

    def _work(self, w: int) -> None:
        with self._lock:
            if self._threads[w] is not threading.current_thread():
                return  # replaced by _start_threads before it got here: slot w is the other's
        try:
            self._work_loop(w)
        except BaseException as exc:
            # A bug in the scheduler, not in a task (those are caught in _serve): stop the run
            # and fail it and every later one, instead of letting them wait forever.
            with self._lock:
                self._crash = exc
                run = self._run
                if run is not None:
                    self._stop(run)
                    _ring(run)
                self._changed.notify_all()
            raise

    def _work_loop(self, w: int) -> None:
        state = thread_state()
        state.pool = self
        state.slot = w  # the worker that callbacks name (ftdag.callbacks)
        garbage: list[Any] = []
        while True:
            with self._lock:
                run, task = self._next(w)
            if run is None:
                return
            self._serve(w, run, task, garbage, (), False)
            run = None  # hold nothing of a finished run while idle

    def _next(self, w: int) -> tuple[_Run | None, int]:
        """Pool thread ``w``'s next task, sleeping until there is one; ``(None, NO_TASK)`` to exit."""
        seen = (-1, -1)  # as the lookout: the caller's progress (runs started, position) last seen
        while True:
            run = self._run
            if self._lookout in (NO_SLOT, CALLED) and (run.alone if run is not None else not self._closing):
                mark = (self._progress, -1 if run is None else run.pos)
                if mark != seen or (run is not None and could_share(run)):  # something to watch (A3)
                    run = None
                    seen = self._look(w, mark)
                    continue
            if self._lookout == CALLED:
                self._lookout = NO_SLOT  # nothing to watch: the next alone run calls again (A3)
            if run is not None and not run.alone:
                task = self._take(run, w)
                if task != NO_TASK:
                    return run, task
                wait = _idle_wait(run.ctx, -1) if run.ctx is not None else None  # a retry may be due later
            elif run is None and self._closing:
                return None, NO_TASK
            else:
                wait = None
            run = None  # hold nothing of a run while asleep: it may end meanwhile
            self._idle += 1
            if self._watchers:
                self._changed.notify_all()
            self._wake.wait(None if wait is None or wait < 0 else wait)
            self._idle -= 1

    def _look(self, w: int, seen: tuple[int, int]) -> tuple[int, int]:
        """Watch as the lookout (ftdag._alone, A3): look at the caller's progress every
        ``_LOOKOUT_S``, *without* the lock (a look under it would make the caller wait for
        it, and sleep, every time they met), while runs make progress or the caller runs
        alone a task that another could run beside; share its run when it is stuck for
        ``_STUCK_LOOKS`` looks in a row (A2).  Returns the progress last seen.  Called with
        ``_lock`` held, which it releases while it watches; counted idle meanwhile.
        """
        self._lookout = w
        self._idle += 1
        if self._watchers:
            self._changed.notify_all()
        lock = self._lock
        lock.release()
        stuck = 0  # looks in a row that found no progress
        share_it = False
        seen_collections = _collections()
        try:
            due = perf_counter() + _LOOKOUT_S
            while True:
                time.sleep(_LOOKOUT_S)
                run = self._run
                mark = (self._progress, -1 if run is None else run.pos)
                collections = _collections()
                now = perf_counter()  # (after the look: a pause of the process during it makes it late)
                if (run is not None and not run.alone) or (run is None and self._closing):
                    break  # (shared, or a run that needs no lookout: work to take; or closed)
                if mark != seen:  # the caller started a run or ended a task since the last look
                    seen, stuck = mark, 0
                elif run is None or not could_share(run):
                    break  # nothing moved, nothing to watch: stand down
                elif now - due > _LOOKOUT_S or collections != seen_collections:
                    stuck = 0  # the whole process was paused (this look came late) or collected garbage
                else:
                    stuck += 1
                    if stuck >= _STUCK_LOOKS:
                        share_it = True
                        break
                run = None
                due = now + _LOOKOUT_S
                seen_collections = collections
        finally:
            lock.acquire()
            self._idle -= 1
            self._lookout = NO_SLOT
        run = self._run
        if share_it and run is not None and run.alone and run.gate.acquire(False):  # (else the caller records: not stuck)
            try:
                if (self._progress, run.pos) == seen and could_share(run):
                    share(self, run, w)  # (A2), its ready tasks to this slot first
            finally:
                run.gate.release()
        return seen

    def _serve(
        self, w: int, run: _Run, task: int, garbage: list[Any], ctrl_c: tuple[type[BaseException], ...], caller: bool,
    ) -> bool:
        """Run ``task`` on this thread, then whatever ``_finish`` and ``_take`` hand slot ``w``
        next, until there is nothing; every reference to the run dies with this frame.

        ``ctrl_c`` is what a task may raise to abandon the run (``KeyboardInterrupt`` when this
        is the caller on the main thread, else nothing).  For the ``caller``, when nothing is
        left its idle step (:meth:`_caller_idle`) is taken in the same critical section, and
        its answer, whether the run is over, is returned.

        In a plain run, a task that succeeded is finished here, inline: the same transitions as
        ``_finish`` (``Plan.finish``, then its first ready dependent runs next on this thread in
        the task's place, the others go to ``ready``), without the calls, which cost more than
        the work on free-threaded CPython.  Values dropped meanwhile are freed after the lock,
        and the ``freeing`` count they hold is given back at the next critical section.
        """
        lock = self._lock
        fns, values, solo, plain = run.fns, run.values, run.solo, run.plain
        dag = run.plan.dag
        start, dep_ids, nxt_start, nxt_ids = dag._dep_start, dag._dep_ids, dag._next_start, dag._next_ids
        consumers, remaining, ready, own = run.plan.consumers, run.plan.remaining, run.ready, run.queues[w]
        take_own = own.popleft if run.fifo else own.pop
        no_task = NO_TASK
        freed = False  # garbage was freed after the last critical section: freeing is one too high
        done: list[int] = []  # plain runs: tasks that succeeded since the last critical section
        results: list[Any] = []  # and their results
        solos = 0  # solo links run since the last critical section (I7)
        quick = False  # the tasks of the last stretch were quick: run own queued tasks without the lock (I9)
        began = perf_counter()  # when the last critical section began (one clock read per section)
        while True:
            error = None
            while True:
                a = start[task]
                b = start[task + 1]
                try:
                    # One dependency is the common case (chains, maps): no argument list, no slice.
                    if b - a == 1:
                        one = dep_ids[a]
                        result = fns[task](values[one])  # type: ignore[misc]
                    else:
                        one = no_task
                        result = fns[task](*[values[d] for d in dep_ids[a:b]])  # type: ignore[misc]
                except ctrl_c:
                    raise  # Ctrl-C in a task the main thread runs: abandon the run (module docstring)
                except BaseException as exc:  # even SystemExit must not kill the worker
                    error, result = exc, None
                    break
                nxt = solo[task]
                if nxt == no_task or run.stopped:
                    break
                # A solo link (I7): nobody else reads or writes these slots or counts.
                values[task] = result
                if one != no_task:
                    if fns[one] is not None:
                        values[one] = None
                else:
                    for d in dep_ids[a:b]:
                        if fns[d] is not None:
                            values[d] = None
                solos += 1
                task = nxt
            if plain and error is None:
                done.append(task)
                results.append(result)
                result = None
                if quick and own and not self._idle and not run.stopped:  # I9: the next task it holds
                    try:
                        task = take_own()
                    except IndexError:  # stolen meanwhile (thieves hold the lock, this side does not)
                        pass
                    else:
                        continue
            over = False
            with lock:
                if freed:
                    run.freeing -= 1
                    freed = False
                if done:
                    # _finish inline for the tasks in done (the docstring): Plan.finish each, with the
                    # dropped values to garbage (I5); the first dependent made ready runs next here.
                    n = len(done)
                    now = perf_counter()
                    quick = now - began < _QUICK_S * (n + solos)
                    began = now
                    run.in_flight -= n
                    made = no_task
                    if run.stopped:
                        garbage.extend(results)  # results nobody will read: freed after the lock too
                    else:
                        more = None
                        for t, r in zip(done, results):
                            values[t] = r
                            for d in dep_ids[start[t]:start[t + 1]]:
                                left = consumers[d] - 1
                                consumers[d] = left
                                if not left:
                                    garbage.append(values[d])
                                    values[d] = None
                            for u in nxt_ids[nxt_start[t]:nxt_start[t + 1]]:
                                left = remaining[u] - 1
                                remaining[u] = left
                                if not left:
                                    if made == no_task:
                                        made = u
                                    elif more is None:
                                        more = [u]
                                    else:
                                        more.append(u)
                        r = None
                        run.pending -= n + solos
                        if error is not None and made != no_task:  # task failed: nothing runs next here
                            more = [made] if more is None else [made, *more]
                            made = no_task
                        if more is not None:
                            ready.push(more)
                    done.clear()
                    results.clear()
                    solos = 0
                    if garbage:
                        run.freeing += 1
                    if made != no_task:
                        run.in_flight += 1
                        task = made  # runs next here, in a finished task's place (I1)
                        if ready and run.in_flight < run.bound:  # (else _dispatch would move nothing)
                            self._dispatch(run, w)
                    elif error is None:
                        self._check_done(run)
                        task = no_task
                if error is not None or not plain:
                    quick = False
                    task = self._finish(run, w, task, result, error, solos, garbage)
                    solos = 0
                if task == no_task:
                    task = self._take(run, w)
                if task == no_task and caller and not garbage:
                    over = self._caller_idle(run)
            result = error = None
            if garbage:  # freed here, outside the lock (I5); the run is not done before that
                garbage.clear()
                if task != no_task:
                    freed = True  # given back at the next critical section
                else:
                    with lock:
                        run.freeing -= 1
                        self._check_done(run)
                        if caller:
                            over = self._caller_idle(run)
            if task == no_task:
                return over

    # -- transitions (all called with _lock held) -----------------------------------------------

    def _dispatch(self, run: _Run, w: int) -> None:
        """Move ready tasks into slot queues while I1 and I2 allow.

        Slot ``w`` (the one that made them ready, or the caller starting the run) fills its
        own queue first, since it is awake and its caches hold their inputs; the rest go
        round-robin, and idle pool threads (and the caller, if it sleeps) are woken to take
        or steal them.
        """
        if run.direct:  # nothing is queued at the slots: wake free ones to take from ready
            if self._idle:
                self._wake.notify(len(run.ready))
            if run.caller_waiting:
                _ring(run)
            return
        ready, queues, cap = run.ready, run.queues, run.cap
        room = run.bound - run.in_flight
        pushed = 0
        q = queues[w]
        while ready and pushed < room and len(q) < cap:
            q.append(ready.pop())
            pushed += 1
        n = len(queues)
        i = w + 1 if w < n - 1 else 0
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
            if run.caller_waiting:
                _ring(run)

    def _take(self, run: _Run, w: int) -> int:
        """The next task for slot ``w``: its own newest, another's oldest, or a ready one.

        Taking a task out of a queue makes room in it, so ready tasks are dispatched again:
        the queues stay as full as I1 and I2 allow.
        """
        if run.ctx is not None:
            self._poll(run)
        if run.stopped:
            return NO_TASK
        queues = run.queues
        if queues[w]:
            task = queues[w].popleft() if run.fifo else queues[w].pop()
        else:
            n = len(queues)
            for k in range(1, n):
                q = queues[(w + k) % n]
                if q:
                    try:
                        task = q.popleft()
                    except IndexError:  # its slot took the last one meanwhile, without the lock (I9)
                        continue
                    run.steals += 1
                    break
            else:
                if not run.ready or run.in_flight >= run.bound:
                    return NO_TASK
                if run.admission is None:
                    task = run.ready.pop()
                else:
                    task = _admit_next(run, run.admission)
                    if task == NO_TASK:
                        return NO_TASK
                run.in_flight += 1
                if run.in_flight > run.peak_in_flight:
                    run.peak_in_flight = run.in_flight
        if run.ready:
            self._dispatch(run, w)
        return task

    def _finish(
        self, run: _Run, w: int, task: int, result: object, error: BaseException | None, solos: int,
        garbage: list[Any],
    ) -> int:
        """Record that ``task`` ended (after ``solos`` solo links, I7); return a dependent for
        slot ``w`` to run next, or ``NO_TASK``.  Dropped values go to ``garbage`` (I5)."""
        run.in_flight -= 1
        if solos:
            run.pending -= solos
        if run.ctx is not None:
            return self._finish_with_context(run, w, task, result, error, garbage)
        if error is not None:
            if run.error is None:
                run.error = (task, error)
            self._stop(run)
        elif not run.stopped:
            made = run.plan.finish(task, result, garbage)
            run.pending -= 1
            if garbage:
                run.freeing += 1
            if made:
                if run.direct:  # the slot takes the best ready task next, not necessarily these
                    run.ready.push(made)
                    made = []
                else:
                    run.in_flight += 1  # made[0] runs next on this thread, in task's place
                    if len(made) > 1:
                        run.ready.push(made[1:])
            if run.ready:
                self._dispatch(run, w)
            if made:
                return made[0]
        else:
            garbage.append(result)  # a result nobody will read: freed after the lock too
            run.freeing += 1
        self._check_done(run)
        return NO_TASK

    def _finish_with_context(
        self, run: _Run, w: int, task: int, result: object, error: BaseException | None, garbage: list[Any],
    ) -> int:
        """:meth:`_finish` for a run with a context: its failure policy decides (ftdag._context)."""
        ctx = run.ctx
        assert ctx is not None
        made: list[int] = []
        admission = run.admission
        if admission is not None and admission.guards(task):
            admission.release(task)
            if admission.blocked:  # they may fit now: back among the ready, in ready order
                if not run.stopped:
                    run.ready.push(admission.blocked)
                admission.blocked.clear()
        if error is not None:
            if isinstance(error, SaveFailed):
                action = ctx.failure(run.plan, task, error.error.__cause__ or error.error, error.error, False, garbage)
            else:
                action = ctx.failure(run.plan, task, error, None, True, garbage)
            if action == STOP:
                if not isinstance(error, Exception) and run.error is None:
                    run.error = (task, error)  # a BaseException: run() re-raises it as it is
                self._stop(run)
            elif action == RETRY_NOW:
                run.ready.push([task])
            elif action == CONTINUE:
                run.pending -= ctx.settled
            else:  # RETRY_LATER: wake a sleeper, so that one waits for the retry's time
                if self._idle:
                    self._wake.notify()
                _ring(run)
        else:  # it completed, even if the run was stopped meanwhile (its result is reported)
            made = run.plan.finish(task, result, garbage)
            ctx.succeeded(run.plan, task)
            run.pending -= 1
            if run.stopped or ctx.halted():
                self._stop(run)
                made = []
            elif run.direct:  # the slot takes the best ready task next, not necessarily these
                run.ready.push(made)
                made = []
            elif made:
                run.in_flight += 1  # made[0] runs next on this thread, in task's place
                if len(made) > 1:
                    run.ready.push(made[1:])
        if garbage:
            run.freeing += 1
        if run.ready:
            self._dispatch(run, w)
        if made:
            return made[0]
        self._check_done(run)
        return NO_TASK

    def _poll(self, run: _Run) -> None:
        """A run with a context, before a task is taken: stop it if it is cancelled or past
        its deadline, and make the retries that are due ready."""
        ctx = run.ctx
        assert ctx is not None
        if run.stopped:
            return
        if ctx.halted():
            self._stop(run)
            self._check_done(run)
            return
        due = ctx.next_due()
        if due is not None:
            tasks = ctx.release_due(time.monotonic())
            if tasks:
                run.ready.push(tasks)

    def _check_done(self, run: _Run) -> None:
        """Mark ``run`` done once nothing runs, nothing is left to start, and every dropped
        value was freed (so that finalizers have run when ``run()`` returns)."""
        if not run.in_flight and not run.freeing and (run.stopped or not run.pending) and not run.done:
            run.done = True
            if self._watchers:
                self._changed.notify_all()
            if run.caller_waiting:
                _ring(run)

    def _stop(self, run: _Run) -> None:
        """Fail fast: drop every queued and ready task so that nothing more starts."""
        run.stopped = True
        for q in run.queues:
            run.in_flight -= len(q)
            q.clear()
        run.ready.clear()
        if run.ctx is not None:
            run.ctx.drop_timers()
        if run.admission is not None:
            run.admission.blocked.clear()


def _collections() -> int:
    """How many garbage collections of the youngest generation this process made (each
    stops every thread; the one that runs it may take milliseconds more)."""
    return gc.get_stats()[0]["collections"]


def _no_links(n: int) -> array:
    """A solo table with no link."""
    return array(INDEX, [NO_TASK]) * n


def _admit_next(run: _Run, admission: Admission) -> int:
    """The best ready task that ``admission`` admits, or ``NO_TASK``; the ones it does not
    admit wait in ``admission.blocked``, holding nothing, until a guarded task ends."""
    ready, blocked = run.ready, admission.blocked
    while ready:
        task = ready.pop()
        if admission.admit(task):
            return task
        blocked.append(task)
    return NO_TASK


def _idle_wait(ctx: RunContext, slice_s: float) -> float:
    """How long an idle thread of a run with a context may sleep: until the next retry is due
    (or the deadline, if sooner), and in slices while a cancel token could fire; ``slice_s``
    if that is shorter, -1 for as long as it takes."""
    due = ctx.next_due()
    if due is None:
        return slice_s
    if ctx.deadline is not None and ctx.deadline < due:
        due = ctx.deadline
    wait = max(0.0, due - time.monotonic())
    if ctx.cancel is not None:
        wait = min(wait, _SIGNAL_SLICE_S)
    return wait if slice_s < 0 else min(wait, slice_s)


def _read_frame(frame: Any) -> TaskContext:
    """current_task() in a task of a plain run: the task is ``task`` of :meth:`ThreadPool._serve`."""
    run = frame.f_locals["run"]
    return TaskContext(run.plan.dag._keys[frame.f_locals["task"]], 1, run.halted)


register_frame(ThreadPool._serve.__code__, _read_frame)
