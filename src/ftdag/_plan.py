"""What one run executes, compiled to flat arrays indexed by node id.

Every backend runs a :class:`Plan`.  The parts that depend only on the graph and the set of
requested outputs (which tasks run, how many unfinished dependencies each has, how many
consumers each result has) are computed once and cached on the :class:`~ftdag.Dag`; a run
copies them, so repeated runs of the same request cost a few array copies.  A request of
every sink (the whole graph) starts from tables the Dag made when it was built
(``Dag._whole_plan``), so even its first run copies more than it computes.

Counting conventions, shared by all schedulers:

- ``remaining[i]``: the task dependencies of planned task ``i`` not yet finished, counted
  with multiplicity (a dependency listed twice counts twice, and ``Dag._dependents`` lists
  the dependent twice), plus its order-only predecessors (``Dag._after``).  Sources (and
  values loaded from a store) count as finished from the start.  A finished task counts
  down the nodes in ``Dag._next`` (its dependents, then its order-only followers).  Nodes
  outside the plan hold ``NOT_PLANNED`` (-1), so decrementing them never reaches 0 and they
  never become ready.
- ``consumers[i]``: planned dependents of ``i`` that have not finished (with multiplicity),
  plus 1 if ``i`` is a requested output.  When it drops to 0 the run forgets ``values[i]``,
  so an intermediate result is freed as soon as its last consumer has run.
"""

from __future__ import annotations

import heapq
import threading
from array import array
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any, NamedTuple

from ._arrays import INDEX
from .graph import Dag

_CACHE_SIZE = 64

NO_TASK = -1
"""Stands where a task id is expected and there is none: nothing to run next, no chain link,
no kept result.  Task ids are >= 0."""

NOT_PLANNED = -1
"""``remaining[i]`` of a node outside the plan: decrementing it never reaches 0, so it never
becomes ready."""


class _Template:
    """The read-only part of a plan: what depends only on the graph and the requested outputs.

    Cached on the :class:`~ftdag.Dag` per set of outputs (:func:`_template`) and shared by
    every run of that request, on every thread; a :class:`Plan` copies the mutable counts.
    Everything per node is a flat ``array('i')`` (:mod:`ftdag._arrays`), so a cached plan
    costs a few bytes per node and is read by every worker thread without copying.

    What only the parallel backends use, the ready order, the solo links and the table of
    tasks free to start early, is computed on first use (:meth:`ranks`, :meth:`links`,
    :meth:`free_after`, :meth:`steps`): a sequential run of a new request does not pay for them.
    """

    __slots__ = ("dag", "outputs", "tasks", "initial", "executed", "remaining", "consumers", "scheduled", "ordered",
                 "guarded", "heap", "_rank", "_order", "_solo", "_free_after", "_parallel", "_steps", "_one", "_alone",
                 "_given", "_lock")

    def __init__(self, dag: Dag, output_ids: list[int], given: frozenset[int] = frozenset()) -> None:
        fns = dag._fns
        n = len(fns)
        start, dep_ids, after = dag._dep_start, dag._dep_ids, dag._after
        outputs = frozenset(output_ids)
        if not given and _every_sink(dag, outputs):
            # The whole graph is planned: no closure to walk, and the counts are the graph's own
            # (Dag._whole_plan), shared read-only (a Plan copies them).
            planned_count = n
            tasks = dag._tasks
            remaining = dag._indegree
            consumers = dag._outdegree[:]
            initial = dag._initial
        else:
            planned = dag._closure(output_ids, given)
            planned_count = len(planned)
            remaining = array(INDEX, [NOT_PLANNED]) * n
            consumers = array(INDEX, bytes(4 * n))
            task_list = []
            for i in planned:
                if fns[i] is None or i in given:
                    remaining[i] = 0
                    continue
                task_list.append(i)
                count = 0
                for d in dep_ids[start[i]:start[i + 1]]:
                    consumers[d] += 1
                    if fns[d] is not None and d not in given:
                        count += 1
                if after is not None:  # order-only predecessors count like dependencies, and pass no value
                    for d in after[i]:
                        if fns[d] is not None and d not in given:
                            count += 1
                remaining[i] = count
            tasks = array(INDEX, task_list)
            initial = tuple(t for t in task_list if not remaining[t])
        for i in output_ids:
            consumers[i] += 1
        self.dag = dag
        self.outputs = outputs
        self.tasks = tasks  # planned task ids, in topological order (an array)
        self.initial = initial  # tasks ready at the start, in topological order
        self.executed = planned_count  # planned nodes, sources included (RunStats.executed)
        self.remaining = remaining  # the counts a run starts from (module docstring)
        self.consumers = consumers  # the counts a run starts from (module docstring)
        options = dag._options
        ordered = guarded = scheduled = False
        if options is not None:
            for t in tasks:
                o = options[t]
                if o is not None:
                    scheduled = scheduled or o.scheduled
                    ordered = ordered or o.ordered
                    guarded = guarded or o.guarded
        # No run of this plan is plain (ftdag._context) if a planned task has retries or a
        # timeout (scheduled), a priority or cost (ordered), or resources or access sets (guarded).
        self.scheduled = scheduled or ordered or guarded
        self.ordered = ordered  # ready tasks start in exactly the order of ranks()
        self.guarded = guarded  # some tasks are admitted only when their resources and names are free
        # Whether ready tasks are taken by rank (ftdag._runstate.ReadyHeap), else in insertion
        # order, which is the same when no planned task depends on another and none has a priority.
        self.heap = ordered or len(self.initial) < len(tasks)
        self._rank: array | None = None
        self._order: array | None = None
        self._solo: array | None = None
        self._free_after: array | None = None
        self._steps: bytes | None = None  # solo links from a task to the next in order (steps())
        self._parallel = True  # (with _steps) not one chain
        self._one: tuple[array, bytes] | None = None  # one_worker()
        self._alone: AloneShape | None = None  # alone(), for the last worker count asked
        self._given = given
        self._lock = threading.Lock()

    def ranks(self) -> tuple[array, array]:
        """``(order, rank)`` of :func:`ready_order` for this plan, computed once."""
        if self._order is None:
            with self._lock:
                if self._order is None:
                    order, rank = ready_order(self.dag, self.tasks, self.remaining)
                    self._rank = rank
                    self._order = order
        return self._order, self._rank  # type: ignore[return-value]

    def links(self) -> array:
        """``solo`` of :func:`solo_links` for this plan (all ``NO_TASK`` when values were given:
        such runs have a context, which links nothing), computed once."""
        if self._solo is None:
            with self._lock:
                if self._solo is None:
                    self._solo = (
                        solo_links(self.dag, self.tasks, self.remaining, self.consumers, self.outputs)
                        if not self._given else array(INDEX, [NO_TASK]) * len(self.remaining)
                    )
        return self._solo

    def free_after(self) -> array:
        """``free_after`` of :func:`free_after` for this plan, computed once (by whoever asks
        first: the lookout of a run that goes through ``tasks`` in order, or its caller when
        its tasks are slow; not on a run's way in: :mod:`ftdag._alone`)."""
        if self._free_after is None:
            with self._lock:
                if self._free_after is None:
                    self._free_after = free_after(self.dag, self.tasks)
        return self._free_after

    def one_worker(self) -> tuple[array, bytes]:
        """``(order, steps)`` for a run on one worker that goes through ``order`` as
        :mod:`ftdag._alone` goes through ``tasks``, computed once: ``order`` is the tasks in
        exactly the order one worker starts them, taking the first ready task in the ready
        order (:meth:`ranks`) each time; ``steps[p]`` is 1 when ``order[p] -> order[p + 1]``
        is a solo link (:meth:`links`), else 0.  ``order`` is topological, like ``tasks``."""
        if self._one is None:
            ranked, rank = self.ranks()
            solo = self.links()
            with self._lock:
                if self._one is None:
                    nxt_start, nxt_ids = self.dag._next_start, self.dag._next_ids
                    remaining = self.remaining[:]
                    heap = [rank[t] for t in self.initial]
                    heapq.heapify(heap)
                    order = array(INDEX)
                    while heap:
                        t = ranked[heapq.heappop(heap)]
                        order.append(t)
                        for u in nxt_ids[nxt_start[t]:nxt_start[t + 1]]:
                            left = remaining[u] - 1
                            remaining[u] = left
                            if not left:  # (never for a node outside the plan: NOT_PLANNED)
                                heapq.heappush(heap, rank[u])
                    self._one = (order, _steps(solo, order))
        return self._one

    def steps(self) -> tuple[bytes, bool]:
        """``(steps, parallel)`` for a run that goes through ``tasks`` in order
        (:mod:`ftdag._alone`), computed once: ``steps[p]`` is 1 when ``tasks[p] -> tasks[p + 1]``
        is a solo link (:meth:`links`), else 0; ``parallel`` is False when every task but the
        last is so linked to the next (one chain: no task can ever run beside another)."""
        if self._steps is None:
            solo = self.links()
            with self._lock:
                if self._steps is None:
                    tasks = self.tasks
                    steps = _steps(solo, tasks)
                    self._parallel = steps.count(1) < len(tasks) - 1
                    self._steps = steps
        return self._steps, self._parallel

    def alone(self, workers: int) -> AloneShape:
        """What a plain thread run on ``workers`` slots reads of its request, which starts alone
        (:mod:`ftdag._alone`), as one :class:`AloneShape`.  Kept for the last ``workers`` asked,
        so that a run reads one field instead of asking four methods and the graph."""
        shape = self._alone
        if shape is None or shape.workers != workers:  # (two pools of other sizes may race here: either tuple is right)
            if workers == 1 and self.heap:
                order, steps = self.one_worker()
                parallel = False
            else:  # plan order: topological ids, ascending (what ftdag._alone.share counts on)
                order = self.tasks
                steps, parallel = self.steps()
            dag = self.dag
            shape = self._alone = AloneShape(
                workers, order, steps, parallel, self.links(), dag._fns, dag._dep_start, dag._dep_ids, self.heap,
            )
        return shape


class AloneShape(NamedTuple):
    """:meth:`_Template.alone`: a plain thread run's view of its request.  A run holds it
    while alone and unpacks it in one step (ftdag._alone.run_alone); one that is shared
    copies ``fns``, ``solo`` and ``heap`` to its own fields (ftdag._alone.share)."""

    workers: int  # the slots it was made for
    order: Sequence[int]  # the tasks in the order the caller runs them: plan order, except on one worker (one_worker)
    steps: bytes  # 1 where order[p] -> order[p + 1] is a solo link (I7)
    parallel: bool  # another task could ever run beside the caller's (False on one worker)
    solo: array  # links(): by id, the solo link each task starts, or NO_TASK
    fns: Sequence[Callable[..., Any] | None]  # the graph's functions by id (None for a source)
    start: array  # the graph's dependency tables (Dag._dep_start, Dag._dep_ids)
    dep_ids: array
    heap: bool  # the template's: ready tasks are taken in ready order, so a slot runs its queue oldest first


def _steps(solo: array, order: array) -> bytes:
    """``steps[p]`` = 1 when ``order[p] -> order[p + 1]`` is a solo link (``solo``, by id), else 0."""
    return bytes(map(int.__eq__, map(solo.__getitem__, order[:-1]), order[1:])) + b"\0"


def _every_sink(dag: Dag, outputs: frozenset[int]) -> bool:
    """Whether ``outputs`` holds every sink of ``dag`` (a node nothing runs after), so that a
    plan for them is the whole graph: every node is an ancestor of some sink."""
    return all(map(outputs.__contains__, dag._sinks))


def ready_order(dag: Dag, tasks: Sequence[int], remaining: array) -> tuple[array, array]:
    """The order in which ready tasks start, as dask orders them: higher ``priority`` first,
    then the longer *critical path* (the largest sum of ``cost`` along a path from the task to
    the end of the plan, its own cost included), then the smaller id (insertion order).

    Returns ``(order, rank)``: the planned tasks in that order, and each task's place in it
    by id (-1 outside the plan).
    """
    options, start, nxt = dag._options, dag._next_start, dag._next_ids
    n = len(remaining)
    # path[u] stays 0 for a node outside the plan, so taking the max over every dependent
    # (data or order) is the max over the planned ones; every planned path is > 0.
    path: list[float] = [0] * n
    get = path.__getitem__
    if options is None:
        for t in reversed(tasks):  # ids are topological: a task's dependents come first here
            path[t] = max(map(get, nxt[start[t]:start[t + 1]]), default=0) + 1
    else:
        for t in reversed(tasks):
            o = options[t]
            path[t] = max(map(get, nxt[start[t]:start[t + 1]]), default=0) + (1.0 if o is None else o.cost)
    if options is not None and any(o is not None and o.priority for o in options):
        priority = [0] * n
        for t in tasks:
            o = options[t]
            if o is not None:
                priority[t] = o.priority
        order_list = sorted(tasks, key=lambda t: (-priority[t], -path[t], t))
    else:  # tasks ascend, and a stable sort keeps ties in that order even when reversed
        order_list = sorted(tasks, key=get, reverse=True)
    order = array(INDEX, order_list)
    rank = array(INDEX, [-1]) * n
    for place, t in enumerate(order_list):
        rank[t] = place
    return order, rank


def free_after(dag: Dag, tasks: Sequence[int]) -> array:
    """``free_after[p]``: the smallest, over the planned tasks after position ``p`` of
    ``tasks``, of the id of a task's last task dependency (data or order; -1 for none);
    ``len(dag)`` for the last position.

    A task's dependencies come before it in ``tasks`` (ids are topological, and ``tasks``
    ascends), so when ``tasks[:p]`` have finished and ``tasks[p]`` runs, some other task is
    ready exactly when ``free_after[p] < tasks[p]``: a test in O(1) of whether a run that
    goes through ``tasks`` in order, one at a time, could use a second thread there
    (:mod:`ftdag._alone`).
    """
    nxt_start, nxt_ids = dag._next_start, dag._next_ids
    last = array(INDEX, [-1]) * len(dag._fns)  # by node id: its last task dependency
    for t in tasks:  # ascending: the last t that counts u down is u's last dependency
        for u in nxt_ids[nxt_start[t]:nxt_start[t + 1]]:
            last[u] = t
    table = array(INDEX, bytes(4 * len(tasks)))
    low = len(last)
    for p in range(len(tasks) - 1, -1, -1):
        table[p] = low
        m = last[tasks[p]]
        if m < low:
            low = m
    return table


def solo_links(
    dag: Dag, tasks: Sequence[int], remaining: array, consumers: array, outputs: frozenset[int]
) -> array:
    """``solo[t] = u`` where ``t -> u`` is a *solo link*, else ``NO_TASK``.

    This is the one definition of a solo link.  ``t -> u`` is one when ``u`` is ``t``'s only
    planned consumer (a single edge, and ``t`` is not an output, and has no order-only
    followers), ``t`` is ``u``'s only task dependency (a single edge, and ``u`` has no
    order-only predecessors), and ``t`` is the only consumer of each of its own task inputs.
    Then nothing but the thread that ran ``t`` can ever touch ``values[t]``, the values of
    ``t``'s inputs, ``remaining[u]`` or the consumer counts of those nodes, so it may store
    ``t``'s result, drop its inputs and run ``u`` without touching any shared count (the
    thread backend's invariant I7).
    """
    fns, followers = dag._fns, dag._followers
    start, dep_ids, out_start, out_ids = dag._dep_start, dag._dep_ids, dag._out_start, dag._out_ids
    solo = array(INDEX, [NO_TASK]) * len(fns)
    # (Plain loops, no generators: a new request's first run pays this once per task.)
    for t in tasks:
        if consumers[t] != 1 or t in outputs or (followers is not None and followers[t]):
            continue  # (a task with order-only followers must count them down: no link)
        a = out_start[t]
        u = out_ids[a]
        if out_start[t + 1] - a > 1:  # dependents outside the plan too: find the planned consumer
            for u in out_ids[a:out_start[t + 1]]:
                if remaining[u] >= 0:
                    break
        if remaining[u] != 1:
            continue
        for d in dep_ids[start[t]:start[t + 1]]:
            if consumers[d] != 1 and fns[d] is not None:
                break
        else:
            solo[t] = u
    return solo


class Plan:
    """The mutable state of one run: values, remaining-dependency and consumer counts."""

    __slots__ = (
        "dag", "template", "outputs", "tasks", "initial", "executed", "values", "remaining", "consumers", "scheduled",
        "given",
    )  # (the ready order and the flags ordered/guarded are the template's)

    def __init__(
        self, dag: Dag, outputs: Iterable[Hashable] | Hashable, given: dict[int, object] | None = None,
    ) -> None:
        """The plan of a run of ``dag`` for ``outputs``.  ``given``: values for some nodes (loaded
        from a store), which the run treats as sources: their ancestors that nothing else
        needs are not planned.  Such plans are not cached."""
        output_ids = dag._output_ids(outputs) if not isinstance(outputs, _OutputIds) else list(outputs)
        template = _template(dag, output_ids) if not given else _Template(dag, output_ids, frozenset(given))
        self.dag = dag
        self.template = template  # shared, read-only; also identifies the (dag, outputs) pair
        self.outputs = output_ids
        self.tasks = template.tasks
        self.initial = template.initial
        self.executed = template.executed
        self.scheduled = template.scheduled  # a planned task has retries or a timeout
        self.given = frozenset(given) if given else _NOTHING  # nodes whose values were given (loaded)
        self.values = list(dag._values)
        if given:
            for i, value in given.items():
                self.values[i] = value
        self.remaining = template.remaining[:]  # (array slices copy)
        self.consumers = template.consumers[:]

    def finish(self, task: int, result: object, garbage: list[object] | None = None) -> list[int]:
        """Record that ``task`` returned ``result``; return the dependents it made ready, in order.

        Drops every input whose last consumer ``task`` was; with ``garbage``, the dropped values
        are moved there instead of being freed here, so that a caller holding a lock can free
        them (and run their finalizers) after releasing it.  Not thread-safe: the thread
        backend calls it under its lock.
        """
        dag = self.dag
        start, nxt_start = dag._dep_start, dag._next_start
        values, consumers = self.values, self.consumers
        values[task] = result
        for d in dag._dep_ids[start[task]:start[task + 1]]:
            left = consumers[d] - 1
            consumers[d] = left
            if not left:
                if garbage is not None:
                    garbage.append(values[d])
                values[d] = None
        remaining = self.remaining
        made = []
        for u in dag._next_ids[nxt_start[task]:nxt_start[task + 1]]:
            left = remaining[u] - 1
            remaining[u] = left
            if not left:
                made.append(u)
        return made

    def skip_after(self, task: int, garbage: list[object] | None = None) -> list[int]:
        """``task`` failed for good: no planned task that depends on it, directly or not (by
        data or order edges), will run.  Returns those tasks (not yet skipped), marks them
        ``NOT_PLANNED`` so they never become ready, and drops the inputs that only they and
        ``task`` still needed (into ``garbage`` if given).  Not thread-safe, like :meth:`finish`."""
        dag = self.dag
        start, dep_ids, nxt_start, nxt_ids = dag._dep_start, dag._dep_ids, dag._next_start, dag._next_ids
        values, consumers, remaining = self.values, self.consumers, self.remaining
        skipped = []
        stack = [task]
        remaining[task] = NOT_PLANNED
        while stack:
            t = stack.pop()
            for d in dep_ids[start[t]:start[t + 1]]:
                left = consumers[d] - 1
                consumers[d] = left
                if not left:
                    if garbage is not None:
                        garbage.append(values[d])
                    values[d] = None
            for u in nxt_ids[nxt_start[t]:nxt_start[t + 1]]:
                if remaining[u] > 0:  # planned, waiting: now it never will run
                    remaining[u] = NOT_PLANNED
                    skipped.append(u)
                    stack.append(u)
        return skipped

    def results(self) -> dict[Hashable, object]:
        keys, values = self.dag._keys, self.values
        return {keys[i]: values[i] for i in self.outputs}


_NOTHING: frozenset[int] = frozenset()


class _OutputIds(list[int]):
    """Output ids already resolved by an earlier plan (no key look-up again)."""

    __slots__ = ()


def with_given(plan: Plan, given: dict[int, object]) -> Plan:
    """``plan``'s request again, with ``given`` values (see :class:`Plan`)."""
    return Plan(plan.dag, _OutputIds(plan.outputs), given)


def _template(dag: Dag, output_ids: list[int]) -> _Template:
    cache_key = frozenset(output_ids)
    template = dag._plans.get(cache_key)
    if template is None:
        template = _Template(dag, output_ids)
        with dag._plans_lock:
            if len(dag._plans) >= _CACHE_SIZE:
                del dag._plans[next(iter(dag._plans))]
            dag._plans[cache_key] = template
    return template
