"""Admission of guarded tasks: resource units and shared or exclusive access to named state.

A task added with ``resources={"db": 1}`` holds one unit of ``db`` while it runs; the
executor's capacities come from ``ExecutorConfig(resources={"db": 2})``.  A task added with
``reads={"x"}`` or ``writes={"x"}`` accesses the named state ``x``: a writer of ``x`` never
runs at the same time as any other task that reads or writes ``x``; readers of ``x`` run
together.  No order between them is implied (the graph's order edges say that).

The schedulers ask :meth:`Admission.admit` when a guarded task is about to be handed to a
worker, under their run state (threads: the pool's lock; processes: the caller's thread),
and call :meth:`Admission.release` when it ends, however it ends.  ``admit`` is
all-or-nothing: either every unit and every access is taken, or nothing is.  A task that is
not admitted goes to :attr:`Admission.blocked` and holds nothing, no worker and no in-flight
slot either; every release puts the blocked tasks back among the ready ones (the scheduler
does that), so the next dispatch looks at them again, in ready order.

Invariants, for every name ``x`` and resource ``r`` at every moment:

A1. ``writers[x]`` is 0 or 1, and ``writers[x] == 1`` implies ``readers[x] == 0``.
A2. ``0 <= free[r] <= capacity[r]``: the units held by admitted tasks never exceed the capacity.
A3. A task is admitted at most once before it is released.

:func:`check_capacities` is the check made before a run starts: every resource a planned
task asks for is declared, with at least the units it asks for; otherwise no guarded task
could ever run and the run would never end.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

from .errors import ResourceError

__all__ = ["Admission", "check_capacities"]


class Admission:
    """What the running tasks of one run hold; see the module docstring."""

    __slots__ = ("resources", "access", "free", "readers", "writers", "blocked")

    def __init__(
        self,
        resources: Sequence[tuple[tuple[str, int], ...] | None] | None,
        access: Sequence[tuple[frozenset[str], frozenset[str]] | None] | None,
        capacities: Mapping[str, int],
    ) -> None:
        self.resources = resources  # by task id: (name, units) pairs, or None
        self.access = access  # by task id: (reads, writes), or None
        self.free = dict(capacities)  # units of each resource not held (A2)
        self.readers: dict[str, int] = {}  # name -> running readers (A1)
        self.writers: dict[str, int] = {}  # name -> running writers, 0 or 1 (A1)
        self.blocked: list[int] = []  # ready tasks that were not admitted, until a release

    def admit(self, task: int) -> bool:
        """Take everything ``task`` needs and return True, or take nothing and return False."""
        needs = self.resources[task] if self.resources is not None else None
        acc = self.access[task] if self.access is not None else None
        free, readers, writers = self.free, self.readers, self.writers
        if needs:
            for name, units in needs:
                if free.get(name, 0) < units:
                    return False
        if acc is not None:
            reads, writes = acc
            for name in writes:
                if writers.get(name) or readers.get(name):
                    return False
            for name in reads:
                if writers.get(name) and name not in writes:
                    return False
        if needs:
            for name, units in needs:
                free[name] -= units
        if acc is not None:
            reads, writes = acc
            for name in writes:
                writers[name] = 1
            for name in reads:
                if name not in writes:
                    readers[name] = readers.get(name, 0) + 1
        return True

    def release(self, task: int) -> None:
        """``task`` (admitted before) ended: give back what it held."""
        needs = self.resources[task] if self.resources is not None else None
        if needs:
            for name, units in needs:
                self.free[name] += units
        acc = self.access[task] if self.access is not None else None
        if acc is not None:
            reads, writes = acc
            for name in writes:
                self.writers[name] = 0
            for name in reads:
                if name not in writes:
                    self.readers[name] -= 1

    def guards(self, task: int) -> bool:
        """Whether ``task`` is admitted and released at all (it has resources or access sets)."""
        return bool(
            (self.resources is not None and self.resources[task])
            or (self.access is not None and self.access[task] is not None)
        )


def check_capacities(
    tasks: Sequence[int], keys: Sequence[Hashable],
    resources: Sequence[tuple[tuple[str, int], ...] | None] | None, capacities: Mapping[str, int],
) -> None:
    """Raise :class:`~ftdag.ResourceError` for the first planned task that asks for a resource
    the executor does not declare, or for more units than its capacity."""
    if resources is None:
        return
    for t in tasks:
        for name, units in resources[t] or ():
            capacity = capacities.get(name)
            if capacity is None or units > capacity:
                raise ResourceError(keys[t], name, units, capacity)
