"""The thread backend's first mode: the caller runs a plain run alone, in plan order, while it can.

Handing a task to another thread costs a wake-up (a system call, then tens of microseconds
until the woken thread runs) and, on free-threaded CPython, every shared counter the two
threads then touch.  A task quicker than that gains nothing from another thread.  So a
plain run (no context, not direct: :mod:`ftdag._threads`) starts *alone*: the caller runs
the planned tasks one after another in plan order (``plan.tasks``, ascending ids, so each
task's dependencies have run before it), as the sequential backend does, waking no one.
The only state it keeps is its position ``run.pos``: ``plan.tasks[:pos]`` have finished,
their results stored and their inputs' consumer counts counted down; ``plan.tasks[pos]``
runs next, or is running.  The ready set and the remaining-dependency counts are not kept:
:func:`share` computes them when the run stops being alone.

What the caller reads of its request is one tuple, ``run.shape``
(:class:`ftdag._plan.AloneShape`, made once per request and worker count).  The caller goes
through ``shape.order``: ``plan.tasks``, except on one worker (``max_workers=1``: there is
no pool thread, so no task could ever run beside the caller's, ``shape.parallel`` is False,
and the run is never shared), where it is
``Plan.template.one_worker()``, the tasks in exactly the order one worker takes them from
the ready order (the order a direct run keeps: :func:`ftdag._runstate.direct_order`), at
the sequential backend's cost.  Below, ``plan.tasks`` stands for ``shape.order``.

It stops being alone (``run.alone = False``, for good) and becomes the shared run that the
rest of :mod:`ftdag._threads` describes when another task could run beside the caller's
(``Plan.template.free_after``: an O(1) test, on a table made once per plan by the first
that asks, the lookout or a caller with slow tasks) and either

- its tasks are slow: in two stretches in a row (``_WINDOW`` tasks or ``_WINDOW_S``,
  whichever ends first) even the quickest ``_TICK`` tasks in a row (the clock is read every
  ``_TICK`` tasks) took over ``_QUICK_S`` each on average.  Quick tasks with a pause among
  them (the machine did not run the caller for a millisecond) are not slow.  The caller sees
  this itself, between two tasks, and shares the run; or
- the caller is stuck: its position has not moved in ``_STUCK_LOOKS`` looks in a row,
  ``_LOOKOUT_S`` apart (about a millisecond: this machine does not run a thread for a few
  hundred microseconds now and then, and a wrong share costs a large run its fast path), of
  the *lookout*, one idle pool thread (``ThreadPool._lookout``) that watches.  The caller
  calls a lookout (one ``notify``) when an alone run of a plan that is not one chain starts
  and none is watching; the lookout looks every ``_LOOKOUT_S`` while runs make progress or
  the caller is stuck with a task it could run beside, and stands down otherwise.  It looks without the
  lock (``ThreadPool._look``), so the caller never waits for it, and takes the lock only to
  share.  A look that comes more than a period late (the whole process was paused) or after
  a garbage collection (which stops every thread, and may keep the caller busy longer) does
  not count.

Both ask more than once, so that a pause of the whole process (a garbage collection stops
every thread; the machine may not run it for a while) does not pass for slow tasks.  So a
task that could run waits about ``_STUCK_LOOKS * _LOOKOUT_S`` at most for a free slot while
the caller is stuck, and a graph of quick tasks runs on the caller at the sequential cost
plus one uncontended round-trip of the run's gate per task (none between the tasks of a solo
chain that follow each other in plan order).

The gate (``run.gate``, a lock of the run's own) is what keeps the caller's records and a
share apart, instead of ``_lock``: the caller takes it with the bound ``acquire`` and
``release`` of the lock, which cost half of a ``with`` statement on 3.13t's interpreter,
and a pool's ``_lock`` cannot be taken that way on the main thread: a Ctrl-C between the
two would leave it held, and the pool dead.  A gate left held that way belongs to a run
that the interrupt abandons (``ThreadPool.run``), which nothing shares or reuses.

Invariants.  Alone is a state of the shared model, not a second model: ``share`` turns it
into the shared model's fields, under ``_lock`` and the gate, and every other transition is
made under ``_lock``, so I1 to I8 of :mod:`ftdag._threads` hold as written once the run is
shared:

A1. While ``run.alone``, only the caller runs tasks of the run, in plan order:
    ``plan.tasks[:run.pos]`` have finished and are recorded, and no task is queued at a slot
    or run by a pool thread.  The caller records a task (its result, its inputs' consumer
    counts) and moves ``pos`` holding the gate, after checking ``alone``; it frees dropped
    values after the gate (I5).  Between two tasks of a solo chain (I7) that follow each other
    in plan order it does not take the gate: those tasks count as running until the chain ends.
A2. ``run.alone`` only goes from True to False, under ``_lock``: by :func:`share`, only when
    ``shape.parallel`` (the lookout, holding the gate too, which it only tries to take: a caller
    that holds it is recording, not stuck; it shares while the caller runs
    ``plan.tasks[pos]``; or the caller, between two tasks, which then runs
    ``plan.tasks[pos]`` as a shared task), or by the caller when its task failed or the run
    stopped, or when it ends the run (nothing more starts).  The caller sees a
    run shared by the lookout when its task (or solo chain) ends, and records it as a shared
    task (``ThreadPool._finish``).
A3. ``_lookout`` is ``NO_SLOT``, ``CALLED`` (notified, not yet claimed), or the slot of the
    one pool thread that watches; at most one thread watches.
"""

from __future__ import annotations

from collections import deque
from time import perf_counter
from typing import TYPE_CHECKING, Any

from ._context import TaskContext, register_frame
from ._plan import NO_TASK
from ._runstate import ReadyHeap, ReadyStack

if TYPE_CHECKING:
    from ._threads import ThreadPool, _Run

NO_SLOT = -1  # ThreadPool._lookout: no thread watches the run
CALLED = -2  # ThreadPool._lookout: a pool thread was notified to watch, and none has claimed it yet
_QUICK_S = 20e-6  # tasks quicker than this on average (over _TICK of them here; a critical section in I9) are quick
_LOOKOUT_S = 250e-6  # the lookout's period
_STUCK_LOOKS = 4  # looks in a row without progress that make the caller stuck
_WINDOW = 64  # a stretch ends after this many tasks, or _WINDOW_S: then the caller asks if they were slow
_WINDOW_S = 200e-6
_TICK = 8  # tasks between two reads of the clock (at least: a solo chain may pass more)
_NEVER = float("inf")
CTRL_C = (KeyboardInterrupt,)  # what abandons a run when a task on the main thread raises it


def call_lookout(pool: ThreadPool) -> None:
    """An alone run that could use a second thread starts: make sure a pool thread watches
    (A3).  With ``_lock`` held."""
    if pool._lookout == NO_SLOT and pool._idle:
        pool._lookout = CALLED
        pool._wake.notify()


def could_share(run: _Run) -> bool:
    """Whether another task could run beside ``plan.tasks[run.pos]`` (see the module docstring)."""
    shape = run.shape  # (None when the run ended and was parked: a lookout may still hold it, ftdag._threads "Runs")
    if shape is None or not shape.parallel:
        return False
    pos = run.pos
    plan = run.plan
    if plan is None:  # (parked since)
        return False
    tasks = plan.tasks
    return pos < len(tasks) and plan.template.free_after()[pos] < tasks[pos]


def share(pool: ThreadPool, run: _Run, w: int) -> None:
    """End ``run``'s alone state (A2): compute the shared model's state at ``run.pos``, with
    ``plan.tasks[pos]`` running on the caller, and dispatch the ready tasks from slot ``w``
    (its own queue first: the lookout's, when the caller is stuck; idle pool threads are
    woken for the rest).  With ``_lock`` held.

    The caller kept no ``remaining`` counts while alone.  Before half the tasks have run,
    this counts down, for each finished task, its dependents' (the plan's counts are those of
    the start); after, it counts each unfinished task's unfinished dependencies afresh.  So
    it costs O(edges) of the smaller part, once.
    """
    run.alone = False
    shape = run.shape
    assert shape is not None  # (a run that is alone holds its shape)
    run.fns, run.solo, run.fifo = shape.fns, shape.solo, shape.heap  # (what the shared model reads: ftdag._threads)
    plan = run.plan
    dag = plan.dag
    tasks, remaining = plan.tasks, plan.remaining
    pos = run.pos
    current = tasks[pos]  # running on the caller (or about to be): not ready, not finished
    if pos < len(tasks) - pos:
        nxt_start, nxt_ids = dag._next_start, dag._next_ids
        ready = [t for t in plan.initial if t > current]
        for t in tasks[:pos]:
            for u in nxt_ids[nxt_start[t]:nxt_start[t + 1]]:
                left = remaining[u] - 1
                remaining[u] = left
                if not left and u > current:  # (u < current has finished already)
                    ready.append(u)
    else:  # a task is unfinished exactly when its id is current's or larger (ids ascend in tasks)
        fns, start, dep_ids, after = dag._fns, dag._dep_start, dag._dep_ids, dag._after
        ready = []
        for u in tasks[pos + 1:]:
            left = 0
            for d in dep_ids[start[u]:start[u + 1]]:  # (with repeats, as remaining counts them)
                if d >= current and fns[d] is not None:
                    left += 1
            if after is not None:
                for d in after[u]:
                    if d >= current and fns[d] is not None:
                        left += 1
            remaining[u] = left
            if not left:
                ready.append(u)
    run.pending = len(tasks) - pos
    run.in_flight = 1
    run.queues = [deque() for _ in range(pool.workers)]
    template = plan.template
    if template.heap:
        order, rank = template.ranks()
        run.ready = ReadyHeap.start(ready, rank, order)
    else:
        ready.sort()
        run.ready = ReadyStack.start(ready)
    pool._dispatch(run, w)


def run_alone(pool: ThreadPool, run: _Run, main: bool) -> tuple[int, bool]:
    """The caller starts ``run`` (publishes it as ``pool._run``, calls a lookout if the run
    could use one), then runs ``plan.tasks`` in order while the run is alone.  ``main``: the
    caller is the main thread (so a ``KeyboardInterrupt`` in a task abandons the run).

    Returns what the caller's loop (``ThreadPool._drive``) needs next: ``(task, over)`` where
    ``task`` is a task to run shared (``_serve``), or ``NO_TASK`` with ``over`` telling if the
    run is over (as ``_caller_idle`` decides; the caller waits on its bell if not).

    Values dropped under the gate (or the lock) are freed after it without counting them in
    ``freeing`` (I5): only the caller waits for the run to be done, and it frees them before
    it looks.
    The loop does what every task needs and nothing else (this interpreter does not
    specialise bytecode on free-threaded builds: every operation counts); the rest is in
    :func:`_leave` and behind the clock, read every ``_TICK`` tasks.
    """
    lock = pool._lock
    enter, leave = run.gate.acquire, run.gate.release
    _, tasks, steps, parallel, _, fns, start, dep_ids, _ = run.shape  # type: ignore[misc]
    with lock:
        old, pool._run = pool._run, run  # an abandoned run is freed below, not under the lock
        crashed = pool._crash is not None  # a thread crashed since run() looked: start nothing
        if crashed:
            run.alone = False
            pool._caller_idle(run)  # (it stops and ends the run)
        else:
            pool._progress += 1  # a lookout measures the time the caller is stuck from here
            run.in_flight = run.peak_in_flight = 1
            if parallel:
                call_lookout(pool)
    del old  # (the run it replaced, freed here, outside the lock)
    if crashed:
        return NO_TASK, True
    ctrl_c = CTRL_C if main else ()  # what abandons the run when a task raises it
    garbage: list[Any] = []  # values dropped under the gate beyond a task's first (dead), freed after it (I5)
    values, consumers = run.values, run.plan.consumers
    n = len(tasks)
    no_task = NO_TASK
    pos = run.pos
    began = last = perf_counter()  # when the current stretch began, and when the clock was last read
    first = read = pos  # the position where the current stretch began, and where the clock was last read
    due = min(pos + _TICK, n)  # the position at which the clock is read next, or the run ends
    dead = None  # the value dropped under the gate, freed after it (I5); more go to garbage
    fastest = _NEVER  # the quickest time per task between two reads of the clock in this stretch
    slow = False  # the last stretch's tasks were slow
    over = False
    while True:
        p = pos  # the position of task
        task = tasks[p]
        while True:  # the task, then the solo links (I7) that come next in plan order
            a = start[task]
            b = start[task + 1]
            try:
                if b - a == 1:
                    one = dep_ids[a]
                    result = fns[task](values[one])  # type: ignore[misc]
                else:
                    one = no_task
                    ds = dep_ids[a:b]  # (its inputs, read again to record it)
                    result = fns[task](*[values[d] for d in ds])  # type: ignore[misc]
            except ctrl_c:
                raise  # Ctrl-C in a task on the main thread: abandon the run (ftdag._threads)
            except BaseException as exc:  # even SystemExit: the run fails with it
                result = None
                with lock:
                    task, over = _leave(pool, run, task, None, exc, p - pos, garbage)
                return _after(pool, run, task, over, garbage) if garbage else (task, over)
            if not steps[p] or run.stopped:
                break
            values[task] = result  # a solo link: nobody else reads or writes these (I7)
            if one != no_task:
                if fns[one] is not None:
                    values[one] = None
            else:
                for d in ds:
                    if fns[d] is not None:
                        values[d] = None
            p += 1
            task = tasks[p]
        enter()  # the run's gate: the lookout shares only holding it (A1, A2)
        if not run.alone or run.stopped:
            leave()
            with lock:
                task, over = _leave(pool, run, task, result, None, p - pos, garbage)
            break
        values[task] = result  # record it (A1)
        if one != no_task:
            left = consumers[one] - 1
            consumers[one] = left
            if not left:
                dead = values[one]
                values[one] = None
        else:
            for d in ds:
                left = consumers[d] - 1
                consumers[d] = left
                if not left:
                    if dead is None:
                        dead = values[d]
                    else:
                        garbage.append(values[d])
                    values[d] = None
        pos = p + 1  # (past the solo links run since)
        run.pos = pos
        leave()
        dead = None  # freed here, outside the gate (I5): a store, cheaper than a list's calls
        if garbage:
            garbage.clear()
        if pos >= due:  # the run is over, or read the clock: are the tasks slow?
            if pos == n:  # done, as _check_done and _caller_idle would find
                with lock:
                    run.alone = False
                    run.pending = run.in_flight = 0
                    run.done = over = True
                    pool._end(run)
                task = no_task
                break
            due = min(pos + _TICK, n)
            now = perf_counter()
            per = (now - last) / (pos - read)
            if per < fastest:
                fastest = per
            last, read = now, pos
            if pos - first >= _WINDOW or now - began >= _WINDOW_S:  # a stretch ends
                if fastest <= _QUICK_S:
                    slow = False
                elif not slow:
                    slow = True
                elif could_share(run):  # two slow stretches in a row, and another task could run
                    with lock:
                        if run.alone and not run.stopped:
                            share(pool, run, pool._caller_slot)  # (A2)
                            return tasks[pos], False  # it runs next here, as a shared task
                    # (Else shared by the lookout meanwhile, with tasks[pos] the caller's, or stopped:
                    # the loop runs it and _leave records it.)
                began, first, fastest = now, pos, _NEVER
    result = None
    if garbage:
        return _after(pool, run, task, over, garbage)
    return task, over


def _after(pool: ThreadPool, run: _Run, task: int, over: bool, garbage: list[Any]) -> tuple[int, bool]:
    """:func:`run_alone`'s answer once it stops, when it dropped values: free them (outside
    the lock, I5), then, if that was all that kept the run from being over, let the caller
    see it is."""
    garbage.clear()
    if over or task != NO_TASK:
        return task, over
    with pool._lock:
        pool._check_done(run)
        return task, pool._caller_idle(run)


def _leave(
    pool: ThreadPool, run: _Run, task: int, result: object, error: BaseException | None, solos: int,
    garbage: list[Any],
) -> tuple[int, bool]:
    """The caller's ``task`` (after ``solos`` solo links) ended and it cannot go on alone: the
    task failed or the run stopped while alone, or the lookout shared the run while it ran
    (A2).  Returns ``(task, over)`` as :func:`run_alone` does.  With ``_lock`` held."""
    if run.alone:  # failed or stopped while alone (A2): nothing else runs, nothing more starts
        run.alone = False
        if error is not None:
            if run.error is None:
                run.error = (task, error)
            pool._stop(run)
        else:
            garbage.append(result)  # a result nobody will read
        run.in_flight = 0
        pool._check_done(run)
        return NO_TASK, pool._caller_idle(run)
    # Shared by the lookout while it ran (A2): the shared model's _finish records it.
    c = pool._caller_slot
    task = pool._finish(run, c, task, result, error, solos, garbage)
    if task == NO_TASK:
        task = pool._take(run, c)
    if garbage:
        run.freeing -= 1  # _finish counted them; the caller frees them before it looks (run_alone)
        return task, False
    return task, task == NO_TASK and pool._caller_idle(run)


def _read_frame(frame: Any) -> TaskContext:
    """current_task() in a task the caller runs alone: ``task`` of :func:`run_alone`."""
    run = frame.f_locals["run"]
    return TaskContext(run.plan.dag._keys[frame.f_locals["task"]], 1, run.halted)


register_frame(run_alone.__code__, _read_frame)
