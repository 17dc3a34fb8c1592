"""Dispatching in the process backend: which tasks go to which worker, and the messages.

:class:`Run` is one run's scheduling state (the fields are described in the State section of
:mod:`ftdag._processes`, which also states the invariants I1-I7 that this module keeps).
The pool dispatches after a run starts and after each reply that made tasks ready or freed
a slot, in three phases:

1. :func:`assign_ready` fills free slots with ready tasks: the least-loaded worker first,
   ties going to the worker whose reply freed the slot (``prefer``), so that in steady state
   the slot is refilled at once and an idle worker never waits.
2. :func:`add_links` uses what room is left for *chain links*: a dependent ``u`` whose only
   unfinished dependency is ``t = assigned[-1]`` of a worker that keeps ``t``'s result is
   assigned right behind ``t`` on that worker, which passes the result on without a round
   trip through the parent (and without pickling it at all when ``u`` is its only
   consumer).  ``u`` never enters ``ready``: its ``remaining`` count is set to 0 when it is
   linked, and ``t``'s reply takes it below 0.  A worker keeps at most one result, dropped
   when its next task starts (or by the run-over message at the end of the run), so a chain
   runs at the speed of one worker, not of pipe round trips.
3. :func:`encode_tasks` pickles every chosen task's inputs, for every worker, before
   :func:`send_batch` sends anything: an input that does not pickle (:class:`Unsendable`)
   fails the run before any of these tasks is sent.

A run with a context (:mod:`ftdag._context`) links nothing, and its items carry the attempt
number and the fingerprint to save the result under.  A task with a ``timeout`` is sent
only to a worker with nothing assigned, and nothing is sent behind it until it is answered
(:func:`assign_ready` with ``timed``): then the moment it was sent is the moment it started,
give or take the unpickling of its inputs, and its worker can be killed at the deadline
without losing another task.
"""

from __future__ import annotations

import pickle
import time

from ._admission import Admission
from ._context import RunContext
from ._plan import NO_TASK, Plan
from ._runstate import RunState, direct_order
from ._wire import KEEP, PROTOCOL, SEND
from ._wire import batch as batch_message
from ._workers import Worker

__all__ = ["Run", "Unsendable", "add_links", "assign_ready", "encode_tasks", "send_batch"]

# Links are looked for among the dependents of each task that finishes, so the search must
# stay O(1) per task:
LINK_MAX_FANOUT = 8  # a task with more dependents links none of them: scanning them all on
#                      every reply would not be O(1), and a wide fan-out is better spread over
#                      the workers through `ready` anyway
LINK_MAX_REMAINING = 4  # a dependent still waiting for more results is not examined, so that
#                         `deps[u].count(t)`, linear in u's fan-in, runs only near the end of a
#                         wide fan-in instead of once per input (quadratic)


class Run(RunState):
    """One run's scheduling state: the shared :class:`~ftdag._runstate.RunState` plus what only
    the process backend keeps; see the State section of :mod:`ftdag._processes`."""

    __slots__ = (
        "run_id", "keys", "deps", "dependents", "remaining", "consumers", "fid_of", "fn_data", "links", "ctx",
        "store_blob", "timeouts", "direct", "admission",
    )

    def __init__(
        self, plan: Plan, run_id: int, fid_of: list[int], fn_data: dict[int, bytes], bound: int,
        ctx: RunContext | None = None, store_blob: bytes | None = None, admission: Admission | None = None,
        workers: int = 2,
    ) -> None:
        super().__init__(plan, bound)  # ready, in_flight (the sum of len(w.assigned)), pending, stopped, ...
        dag = plan.dag
        self.run_id = run_id  # > every earlier run's: tags its messages, and cancels it in the shared flag
        # The graph's rows; ``dependents`` are what a finished task counts down (Dag._next).
        self.keys, self.deps, self.dependents = dag._keys, dag._deps, dag._next
        self.remaining, self.consumers = plan.remaining, plan.consumers
        self.fid_of = fid_of  # node id -> id of its function (for planned tasks)
        self.fn_data = fn_data  # function id -> the pickled function
        self.links: dict[int, int] = {}  # task -> the task it is linked behind, until sent
        self.ctx = ctx  # None for a plain run; else its policy and failure state (ftdag._context)
        self.store_blob = store_blob  # the pickled store, sent with the run's first message to each worker
        # task -> its timeout, for the planned tasks that have one (a run with a context only)
        self.timeouts: dict[int, float] = {}
        # Ordered and guarded runs send a worker one task at a time, when it is free, and never
        # link: tasks then start in ready order, and are admitted (``admission``,
        # ftdag._admission) only when they are about to run.
        self.direct = direct_order(plan.template, workers)
        self.admission = admission
        if ctx is not None:
            for t in plan.tasks:
                timeout = ctx.timeout_of(t)
                if timeout is not None:
                    self.timeouts[t] = timeout
        # error (shared) is (task, status, payload), the first failure


class Unsendable(Exception):
    """Task ``task``'s inputs do not pickle; ``dep`` is the node whose value does not, if one alone."""

    def __init__(self, task: int, dep: int | None, cause: Exception) -> None:
        super().__init__(task, dep, cause)
        self.task, self.dep, self.cause = task, dep, cause


def assign_ready(run: Run, workers: list[Worker], prefer: Worker | None, slots: int) -> tuple[dict[Worker, list[int]], int]:
    """Phase 1: pop ready tasks into per-worker batches, while I1 and I2 allow.

    Returns the batches and how many more tasks I1 allows (the room left for links).
    """
    ready = run.ready
    room = run.bound - run.in_flight
    batches: dict[Worker, list[int]] = {}
    if run.direct:
        return _assign_direct(run, workers, room), 0
    if run.timeouts:
        return _assign_with_timeouts(run, workers, slots, room), 0
    for _ in range(min(room, len(ready))):
        best, best_load = None, slots
        if prefer is not None and not prefer.dead:
            load = len(prefer.assigned) + len(batches.get(prefer, ()))
            if load < best_load:
                best, best_load = prefer, load
        for w in workers:
            if not w.dead:
                load = len(w.assigned) + len(batches.get(w, ()))
                if load < best_load:
                    best, best_load = w, load
        if best is None:
            break
        batches.setdefault(best, []).append(ready.pop())
        room -= 1
    return batches, room


def _assign_direct(run: Run, workers: list[Worker], room: int) -> dict[Worker, list[int]]:
    """:func:`assign_ready` for an ordered or guarded run: the best admitted ready task to each
    worker with nothing assigned (module docstring); the ones not admitted wait, holding
    nothing, in ``admission.blocked``."""
    ready, admission = run.ready, run.admission
    batches: dict[Worker, list[int]] = {}
    for w in workers:
        if not ready or room <= 0:
            break
        if w.dead or w.assigned:
            continue
        task = NO_TASK
        while ready:
            t = ready.pop()
            if admission is None or admission.admit(t):
                task = t
                break
            admission.blocked.append(t)
        if task == NO_TASK:
            break
        batches[w] = [task]
        room -= 1
    return batches


def _assign_with_timeouts(run: Run, workers: list[Worker], slots: int, room: int) -> dict[Worker, list[int]]:
    """:func:`assign_ready` for a run with timed tasks: a timed task goes to a worker with
    nothing assigned and blocks it; other tasks go where no timed task is (module docstring)."""
    ready, timeouts = run.ready, run.timeouts
    batches: dict[Worker, list[int]] = {}
    held: list[int] = []  # timed tasks with no idle worker for them: back to ready, in order
    while ready and room > 0:
        task = ready.pop()
        timed = task in timeouts
        best, best_load = None, slots
        for w in workers:
            if w.dead or w.timed != NO_TASK:
                continue
            batch = batches.get(w, ())
            if batch and batch[-1] in timeouts:
                continue
            load = len(w.assigned) + len(batch)
            if timed and load:
                continue
            if load < best_load:
                best, best_load = w, load
        if best is None:
            if not timed:
                ready.push([task])
                break
            held.append(task)
            continue
        batches.setdefault(best, []).append(task)
        room -= 1
    if held:
        ready.push(held)
    return batches


def add_links(run: Run, batches: dict[Worker, list[int]], prefer: Worker | None, room: int, slots: int) -> None:
    """Phase 2: behind the last task of each batch (or the task ``prefer`` keeps), chain links."""
    if prefer is not None and not prefer.dead and prefer not in batches:
        batches[prefer] = []
    links, remaining = run.links, run.remaining
    for w, batch in batches.items():
        while room > 0 and len(w.assigned) + len(batch) < slots:
            if batch:
                tail = batch[-1]
            elif w.keep_tail != NO_TASK and w.assigned and w.assigned[-1] == w.keep_tail:
                tail = w.keep_tail
            else:
                break
            u = linkable(run, tail)
            if u == NO_TASK:
                break
            remaining[u] = 0  # never made ready: tail's reply takes it below 0
            links[u] = tail
            batch.append(u)
            room -= 1


def linkable(run: Run, t: int) -> int:
    """A planned dependent of ``t`` whose only unfinished dependency is ``t``, or NO_TASK."""
    dependents = run.dependents[t]
    if len(dependents) > LINK_MAX_FANOUT:
        return NO_TASK
    remaining, deps = run.remaining, run.deps
    for u in dependents:
        r = remaining[u]
        if 0 < r <= LINK_MAX_REMAINING and deps[u].count(t) == r:
            return u
    return NO_TASK


def encode_tasks(run: Run, w: Worker, batch: list[int]) -> tuple[list[tuple], list[tuple[int, bytes]]]:
    """Phase 3: the task items of ``batch`` for ``w``, and the functions ``w`` lacks for them.

    Consumes the batch's entries in ``run.links``; raises :class:`Unsendable`.
    """
    values, deps, consumers, links, fid_of = run.values, run.deps, run.consumers, run.links, run.fid_of
    keys, ctx = run.keys, run.ctx
    dumps = pickle.dumps
    items: list[tuple] = []
    defs: list[tuple[int, bytes]] = []
    known, new = w.known, set()
    last = len(batch) - 1
    for k, t in enumerate(batch):
        ds = deps[t]
        link = links.pop(t, NO_TASK)
        positions: tuple[int, ...]
        try:
            if link == NO_TASK:
                blob = dumps([values[d] for d in ds], PROTOCOL)
                positions = ()
            else:
                blob = dumps([None if d == link else values[d] for d in ds], PROTOCOL)
                positions = tuple(i for i, d in enumerate(ds) if d == link)
        except Exception as exc:
            raise Unsendable(t, *_culprit(run, t, link, exc)) from exc
        # Flags (inline: this runs once per task): keep the result for the task linked right
        # behind (sending it too if someone else needs it), or, for the last task, keep it if a
        # link may follow in a later message.
        flags = SEND
        if k < last:
            nxt = batch[k + 1]
            if links.get(nxt) == t:
                flags = KEEP if consumers[t] == deps[nxt].count(t) else KEEP | SEND
        elif linkable(run, t) != NO_TASK:
            flags = SEND | KEEP
        fid = fid_of[t]
        if ctx is None:
            items.append((t, fid, blob, flags, link, positions, keys[t], None))
        else:
            fingerprints = ctx.fingerprints
            fingerprint = None if fingerprints is None or run.store_blob is None else fingerprints[t]
            items.append((t, fid, blob, SEND, link, positions, keys[t], (ctx.attempt(t), fingerprint)))
        if fid not in known and fid not in new:
            new.add(fid)
            defs.append((fid, run.fn_data[fid]))
    return items, defs


def _culprit(run: Run, task: int, link: int, exc: Exception) -> tuple[int | None, Exception]:
    """Which dependency of ``task`` does not pickle (None if none alone), with its error."""
    for d in run.deps[task]:
        if d == link:
            continue
        try:
            pickle.dumps(run.values[d], PROTOCOL)
        except Exception as e:
            return d, e
    return None, exc


def send_batch(run: Run, w: Worker, batch: list[int], items: list[tuple], defs: list[tuple[int, bytes]]) -> None:
    """Assign ``batch`` to ``w`` and send it the message (see :mod:`ftdag._wire`)."""
    forget = w.forget
    if forget:
        w.forget = []
    store = None
    if run.store_blob is not None and w.store_run != run.run_id:
        store, w.store_run = run.store_blob, run.run_id
    data = batch_message(run.run_id, defs, forget, items, store)
    if run.timeouts and batch[0] in run.timeouts:  # alone on the worker (_assign_with_timeouts)
        w.timed = batch[0]
        w.deadline = time.monotonic() + run.timeouts[batch[0]]
    if defs:
        w.known.update(fid for fid, _ in defs)
    w.assigned.extend(batch)
    w.keep_tail = batch[-1] if items[-1][3] & KEEP else NO_TASK
    run.in_flight += len(batch)
    queued = len(w.assigned) - 1
    if queued > run.peak_queue_len:
        run.peak_queue_len = queued
    w.pipe.send(data)
