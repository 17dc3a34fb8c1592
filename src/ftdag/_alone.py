"""The thread backend's first mode: the caller runs a plain run alone while its tasks are quick.

Handing a task to another thread costs a wake-up (a system call, then tens of microseconds
until the woken thread runs) and, on free-threaded CPython, every shared counter the two
threads then touch.  A task quicker than that gains nothing from another thread.  So a
plain run (no context, not direct: :mod:`ftdag._threads`) starts *alone*: the caller takes
ready tasks straight from ``run.ready`` and runs them one after another, waking no one, as
the sequential backend would; a 3-task graph then costs little more than a sequential run.

It stops being alone (``run.alone = False``, for good) and becomes the shared run that the
rest of :mod:`ftdag._threads` describes, the tasks still ready being dispatched to the
slots, when either

- its tasks are slow: tasks wait in ``ready`` and, in two stretches in a row (from
  ``_TICK`` up to ``_WINDOW`` tasks, or ``_WINDOW_S``, each), the tasks took over
  ``_QUICK_S`` each on average.  The caller sees this itself, at a task's end (it reads the
  clock every ``_TICK`` tasks ended while others wait); or
- the caller is stuck: tasks wait in ``ready`` and the caller has not ended a task in two
  looks, ``_LOOKOUT_S`` apart, of the *lookout*: one idle pool thread
  (``ThreadPool._lookout``) that watches.  The caller calls a lookout (one ``notify``)
  when it leaves tasks in ``ready`` and none is watching; the lookout wakes every
  ``_LOOKOUT_S`` while the caller keeps ending tasks alone or is stuck with tasks ready,
  and stands down otherwise.

Both ask twice, so that a pause of the whole process (a garbage collection stops every
thread; the machine may not run it for a while) does not pass for slow tasks.  So a ready
task waits about ``2 * _LOOKOUT_S`` at most for a free slot while the caller is stuck, and
a graph of quick tasks runs on the caller at about the sequential cost plus one
uncontended lock round-trip per task.

Invariants.  Alone is a state of the shared model, not a second model: every transition
is made under ``_lock`` with the same fields (``ready``, ``in_flight`` (1 while the caller
runs a task), ``pending``, the plan's counts), so I1 to I8 of :mod:`ftdag._threads` hold
as written, and sharing the run only changes who takes tasks next:

A1. While ``run.alone``, only the caller takes tasks, and only from ``ready``: no task is
    queued at a slot and no pool thread runs a task of the run.
A2. ``run.alone`` only goes from True to False, under ``_lock``: by :func:`share`, which puts
    ``ready`` in ready order and dispatches it in the same critical section (the lookout,
    or the caller when tasks are slow), or by the caller when its task failed or the run
    stopped (nothing more starts, so nothing is dispatched).  The caller sees a run shared
    by the lookout at the end of its current task, and records that task as shared
    (``ThreadPool._finish``).
A3. ``_lookout`` is ``NO_SLOT``, ``CALLED`` (notified, not yet claimed), or the slot of the
    one pool thread that watches; at most one thread watches.
"""

from __future__ import annotations

from time import perf_counter
from typing import TYPE_CHECKING, Any

from ._context import TaskContext, register_frame
from ._plan import NO_TASK
from ._runstate import ReadyHeap

if TYPE_CHECKING:
    from ._threads import ThreadPool, _Run

NO_SLOT = -1  # ThreadPool._lookout: no thread watches the run
CALLED = -2  # ThreadPool._lookout: a pool thread was notified to watch, and none has claimed it yet
_QUICK_S = 20e-6  # tasks quicker than this, on average over a stretch, are quick (also I9)
_LOOKOUT_S = 100e-6  # how long the caller may be stuck in a task while tasks wait in ready
_WINDOW = 64  # a stretch ends after this many tasks, or _WINDOW_S: then the caller asks if they were slow
_WINDOW_S = 200e-6
_TICK = 8  # tasks ended with others waiting between two reads of the clock


def call_lookout(pool: ThreadPool, run: _Run) -> None:
    """Tasks wait in ``run.ready`` of an alone run: make sure a pool thread watches (A3).
    With ``_lock`` held."""
    if pool._lookout == NO_SLOT and pool._idle:
        pool._lookout = CALLED
        pool._wake.notify()


def share(pool: ThreadPool, run: _Run, w: int) -> None:
    """End ``run``'s alone state (A2): its ready tasks in ready order, dispatched from slot
    ``w`` (its own queue first: the lookout's, when the caller is stuck; idle pool threads
    are woken for the rest).  With ``_lock`` held."""
    run.alone = False
    template = run.plan.template
    if template.heap:
        order, rank = template.ranks()
        run.ready = ReadyHeap.start(run.ready, rank, order)
    pool._dispatch(run, w)


def run_alone(
    pool: ThreadPool, run: _Run, task: int, garbage: list[Any], ctrl_c: tuple[type[BaseException], ...],
) -> tuple[int, bool]:
    """The caller runs ``task``, then a ready task, and so on, while ``run`` is alone.

    Returns what the caller's loop (``ThreadPool._drive``) needs next: ``(task, over)`` where
    ``task`` is a task to run shared (``_serve``), or ``NO_TASK`` with ``over`` telling if the
    run is over (as ``_caller_idle`` decides; the caller waits on its bell if not).

    While alone, ``ready`` is a plain stack (the order in which one thread runs tasks does not
    change when the run ends), and values dropped under the lock are freed after it without
    counting them in ``freeing`` (I5): only the caller waits for the run to be done, and it
    frees them before it looks.
    """
    lock = pool._lock
    c = pool._caller_slot
    fns, values, solo = run.fns, run.values, run.solo
    dag = run.plan.dag
    start, dep_ids, nxt_start, nxt_ids = dag._dep_start, dag._dep_ids, dag._next_start, dag._next_ids
    consumers, remaining, ready = run.plan.consumers, run.plan.remaining, run.ready
    push, pop = ready.append, ready.pop  # a ReadyStack while alone
    no_task = NO_TASK
    began = perf_counter()  # when the current stretch began
    count = 0  # tasks run in the current stretch
    slow = False  # the last stretch's tasks were slow
    tick = 0  # tasks ended with tasks waiting since the clock was last read
    over = False
    while True:
        error = None
        solos = 0
        while True:  # the task, then its solo links (I7), as in ThreadPool._serve
            a = start[task]
            b = start[task + 1]
            try:
                if b - a == 1:
                    one = dep_ids[a]
                    result = fns[task](values[one])  # type: ignore[misc]
                else:
                    one = no_task
                    result = fns[task](*[values[d] for d in dep_ids[a:b]])  # type: ignore[misc]
            except ctrl_c:
                raise  # Ctrl-C in a task on the main thread: abandon the run (ftdag._threads)
            except BaseException as exc:  # even SystemExit: the run fails with it
                error, result = exc, None
                break
            nxt = solo[task]
            if nxt == no_task or run.stopped:
                break
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
        count += 1 + solos
        with lock:
            pool._progress += 1
            if error is None and run.alone and not run.stopped:
                # ThreadPool._finish's transitions for a task that succeeded, inline; its first
                # dependent made ready runs next (depth first), in its place: in_flight stays 1.
                values[task] = result
                if one != no_task:
                    left = consumers[one] - 1
                    consumers[one] = left
                    if not left:
                        garbage.append(values[one])
                        values[one] = None
                else:
                    for d in dep_ids[a:b]:
                        left = consumers[d] - 1
                        consumers[d] = left
                        if not left:
                            garbage.append(values[d])
                            values[d] = None
                for u in reversed(nxt_ids[nxt_start[task]:nxt_start[task + 1]]):  # the first made pops first
                    left = remaining[u] - 1
                    remaining[u] = left
                    if not left:
                        push(u)
                run.pending -= 1 + solos
                if ready:
                    task = pop()
                    if ready:  # tasks wait: ask if they should be shared
                        tick += 1
                        if tick >= _TICK:  # (the clock is read every _TICK tasks)
                            tick = 0
                            now = perf_counter()
                            if count >= _WINDOW or now - began >= _WINDOW_S:  # a stretch ends
                                if now - began <= _QUICK_S * count:
                                    slow = False
                                elif slow:  # two slow stretches in a row (one may be a pause): share (A2)
                                    share(pool, run, c)
                                else:
                                    slow = True
                                began, count = now, 0
                        if run.alone and pool._lookout == NO_SLOT and pool._idle:
                            call_lookout(pool, run)
                else:
                    task = no_task
                    run.in_flight = 0
                    pool._check_done(run)
            else:
                # Failed, stopped, or shared meanwhile (A2): the shared model's _finish does the rest
                # (a failure or a stop starts nothing more: nothing to dispatch).
                run.alone = False
                task = pool._finish(run, c, task, result, error, solos, garbage)
                if task == no_task:
                    task = pool._take(run, c)
                if garbage:
                    run.freeing -= 1  # _finish counted them; this thread frees them before it looks (above)
            result = None
            if task == no_task and not garbage:
                over = pool._caller_idle(run)
        if garbage:  # freed here, outside the lock (I5)
            garbage.clear()
            if task == no_task:
                with lock:
                    pool._check_done(run)
                    over = pool._caller_idle(run)
        if task == no_task or not run.alone:
            return task, over


def _read_frame(frame: Any) -> TaskContext:
    """current_task() in a task the caller runs alone: ``task`` of :func:`run_alone`."""
    run = frame.f_locals["run"]
    return TaskContext(run.plan.dag._keys[frame.f_locals["task"]], 1, run.halted)


register_frame(run_alone.__code__, _read_frame)
