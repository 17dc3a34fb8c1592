"""The scheduling state of one run that every parallel backend keeps the same way.

A :class:`~ftdag._plan.Plan` says *what* a run executes (values, remaining-dependency and
consumer counts, by node id).  A :class:`RunState` says *where the run stands*, in the
terms every backend uses (the sequential one too, for a run with a context), so that
features that change scheduling are written once.  Three shared pieces hang off it:

- the **ready order**, here: :class:`ReadyStack` (insertion order, then depth-first) for a
  plan where no task depends on another and none has a priority, else :class:`ReadyHeap`
  (priority, then critical path, then insertion: :func:`ftdag._plan.ready_order`);
- the **run context** (:class:`ftdag._context.RunContext`, on the backend's run as ``ctx``;
  None for a plain run): retries and their timers, keep-going, cancellation, the deadline,
  the store, ``current_task()``;
- **admission** (:class:`ftdag._admission.Admission`, as ``admission``; None unless a
  planned task has resources or access sets).

The fields:

``ready``           ready task ids that are not in flight, in a :class:`ReadyStack` or a
                    :class:`ReadyHeap` (the plan decides which): the order in which ready
                    tasks start is decided here, not in the backends.
``bound``           the in-flight bound, ``ExecutorConfig.in_flight_bound``.
``in_flight``       tasks handed to workers (queued there or running); at most ``bound``.
``pending``         planned tasks that have not finished successfully.
``stopped``         set on the first failure (or an abandoned run): nothing more starts.
``error``           the first failure, in the backend's own terms (threads: ``(task,
                    exception)``; processes: ``(task, status, payload)``).
``peak_in_flight``, ``peak_queue_len``  for :class:`~ftdag.RunStats`.

What each backend keeps to itself, on its subclass:

- threads (:mod:`ftdag._threads`): per-slot deques, the caller's bell, steals, ``done``,
  values being freed, solo links, whether slots queue tasks at all (``direct``);
- processes (:class:`ftdag._dispatch.Run`): the run id on the wire, function ids, chain
  links, the pickled store, which worker runs a timed task and until when.

Ordered and guarded runs (a priority or a cost; resources or access sets), and runs with a
heap order on one worker, take tasks *directly* (:func:`direct_order`): no task waits in a
worker's queue and nothing is linked, so each starts in ready order among the tasks ready
at that moment (exactly that order with one worker), and is admitted just before it runs.  Other runs let each worker queue
up to ``worker_queue_cap`` tasks (the in-flight bound), which keep their place when a better
task becomes ready, and let a finishing task's first dependent (and solo links) run next on
the same worker.

Both backends change this state only from one thread at a time (threads: under the pool's
lock; processes: the caller's thread), so nothing here locks.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence

from ._plan import Plan, _Template

__all__ = ["ReadyHeap", "ReadyStack", "RunState", "direct_order"]


class ReadyStack(list[int]):
    """Ready task ids; ``pop()`` returns the one to start next.

    The order is topological (ids are topological) for the initial tasks, then the order in
    which tasks became ready, those made ready by one finish in dependents order: a
    depth-first order that keeps a chain's inputs hot.  It is a list whose *end* is the next
    task, so ``pop()``, ``len()`` and ``clear()`` are the list's own; :meth:`push` is the one
    way tasks enter it.  :class:`ReadyHeap` has the same operations.
    """

    __slots__ = ()

    @classmethod
    def start(cls, initial: Iterable[int]) -> ReadyStack:
        """The stack of a run's initial tasks (topological order): the first is popped first."""
        return cls(reversed(initial))  # type: ignore[call-overload]

    def push(self, tasks: list[int]) -> None:
        """Add ``tasks``, made ready together; ``tasks[0]`` will be popped first."""
        self.extend(reversed(tasks))


class ReadyHeap(list[int]):
    """Ready task ids by rank (:func:`ftdag._plan.ready_order`: priority, then critical path,
    then insertion order): ``pop()`` returns the best.  Holds ranks, in a heap, so that each
    operation is O(log n) on ints; ``order`` turns a rank back into a task id.  Used by every
    plan with a priority or a dependency between planned tasks."""

    __slots__ = ("rank", "order")

    rank: Sequence[int]  # by task id: its place in order
    order: Sequence[int]  # task ids, best first

    @classmethod
    def start(cls, initial: Iterable[int], rank: Sequence[int], order: Sequence[int]) -> ReadyHeap:
        self = cls(rank[t] for t in initial)
        heapq.heapify(self)
        self.rank, self.order = rank, order
        return self

    def push(self, tasks: list[int]) -> None:
        rank = self.rank
        for t in tasks:
            heapq.heappush(self, rank[t])

    def pop(self) -> int:  # type: ignore[override]
        return self.order[heapq.heappop(self)]

    def peek(self) -> int:
        """The task :meth:`pop` would return."""
        return self.order[self[0]]


def direct_order(template: _Template, workers: int) -> bool:
    """Whether a run takes every task straight from ``ready``, in ready order, with nothing
    queued at the workers and no chain links: when a planned task has a priority or a cost
    (ordered) or resources or access sets (guarded), and when the order is a heap and there
    is one worker, so that a single worker starts tasks exactly in the ready order.  (The
    thread backend runs a plain run on one worker alone instead, in that same order:
    :meth:`ftdag._plan._Template.one_worker`.)"""
    return template.ordered or template.guarded or (template.heap and workers == 1)


class RunState:
    """One run's scheduling state shared by the parallel backends; see the module docstring."""

    __slots__ = ("plan", "values", "ready", "bound", "in_flight", "pending", "stopped", "error",
                 "peak_in_flight", "peak_queue_len")

    def __init__(self, plan: Plan, bound: int, ready: bool = True) -> None:
        """``ready=False``: ``ready`` starts empty (a thread run that starts alone, which keeps
        no ready set until it is shared: ftdag._alone)."""
        self.plan = plan
        self.values = plan.values  # by node id: a source's value, a finished task's result, or None
        template = plan.template
        if not ready:
            self.ready: ReadyStack | ReadyHeap = ReadyStack()
        elif template.heap:
            order, rank = template.ranks()
            self.ready = ReadyHeap.start(plan.initial, rank, order)
        else:
            self.ready = ReadyStack.start(plan.initial)
        self.bound = bound  # in_flight never exceeds it
        self.in_flight = 0  # tasks queued at or running on workers
        self.pending = len(plan.tasks)  # planned tasks not yet finished successfully
        self.stopped = False  # failed or abandoned: nothing more starts
        self.error: tuple | None = None  # the first failure, in the backend's terms
        self.peak_in_flight = 0
        self.peak_queue_len = 0

    def counters(self, workers: int, steals: int = 0) -> dict[str, int]:
        """The run's counters for :class:`~ftdag.RunStats`."""
        return {
            "workers": workers,
            "peak_in_flight": self.peak_in_flight,
            "peak_queue_len": self.peak_queue_len,
            "steals": steals,
        }
