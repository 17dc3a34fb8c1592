"""Scheduling constraints on the graph side: order-only edges, their validation, a static schedule.

``DagBuilder.build()`` compiles the constraints of :mod:`ftdag._options` into *order edges*
``u -> v`` ("``u`` finishes before ``v`` starts"; no value is passed):

- ``after=[u]`` on ``v``, and ``before=[v]`` on ``u``;
- **access sets**: the task that *creates* a name runs before every task that reads, writes
  or consumes it; the task that *consumes* a name runs after every task that reads or writes
  it.  A name has at most one creator and one consumer (else :class:`~ftdag.AccessError`).
  Readers and writers of a name get no order between them: they only must not overlap,
  which the scheduler enforces when it dispatches them.  A task's own access sets never
  order it against itself;
- **barriers** (:meth:`~ftdag.DagBuilder.add_barrier`): every task added before a barrier
  runs before every task added after it.  Sources take no part: they are values, available
  from the start.

Every edge, data or order, pulls its source into a run's plan: a task that must run after
another makes that other run too (as in dagga: "runs before" means it runs).

**Barrier reduction.**  The tasks between two consecutive barriers form a *group*.  Rather
than an edge from every task of one group to every task of the next, :func:`order_edges`
adds one from each *sink* of a group (a task with no data or order successor inside the
group) to each *source* of the next non-empty group (a task with no predecessor inside it).
That is enough: every task of a group reaches one of its sinks, every task of the next group
is reached from one of its sources, and groups chain through the barriers in between, so
every task before a barrier is an ancestor of every task after it (and is pulled into a plan
by each of them).  The worst case, two wide groups of independent tasks, is still
``|sinks| * |sources|`` edges.

Order edges that duplicate a data dependency are dropped (the data edge already orders and
pulls); :class:`~ftdag.Dag` keeps the rest by node id (``Dag._after``, ``Dag._followers``).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, NamedTuple

from ._options import TaskOptions
from .errors import AccessError, OrderError

if TYPE_CHECKING:
    from .graph import Dag

__all__ = ["Order", "access_cycle", "batches", "order_edges"]


class Order(NamedTuple):
    """The order edges of a graph being built, by insertion index (see :func:`order_edges`)."""

    preds: list[tuple[int, ...]] | None
    """By node, its order-only predecessors, ascending, none of them a data dependency of the
    node; ``None`` when no node has any."""
    consumed: list[tuple[int, int, str]]
    """``(user, consumer, name)`` for every edge that consuming ``name`` implies (kept even when
    a data edge duplicates it): such an edge on a cycle is an :class:`~ftdag.AccessError`."""


def order_edges(
    keys: Sequence[Hashable],
    deps_of: Sequence[tuple[int, ...]],
    is_source: Sequence[bool],
    options: Sequence[TaskOptions | None],
    barriers: Sequence[int],
) -> Order | None:
    """The order edges implied by ``options`` and ``barriers`` (module docstring).

    Nodes are given by insertion index: ``keys``, their data dependencies ``deps_of``, whether
    each is a source, each task's options (``None`` for defaults), and ``barriers``, for each
    :meth:`~ftdag.DagBuilder.add_barrier` call, how many nodes had been added before it.  Keys
    named by ``after`` and ``before`` must exist (the caller checks).  Returns ``None`` when
    nothing orders anything.  Raises :class:`~ftdag.OrderError` for ``after``/``before``
    naming a source, :class:`~ftdag.AccessError` for two creators or two consumers of a name.
    """
    preds: dict[int, set[int]] = {}  # node -> its order predecessors

    def edge(u: int, v: int) -> None:
        preds.setdefault(v, set()).add(u)

    index: dict[Hashable, int] | None = None
    creators: dict[str, list[int]] = {}
    consumers: dict[str, list[int]] = {}
    users: dict[str, list[int]] = {}  # readers and writers
    for i, o in enumerate(options):
        if o is None:
            continue
        if o.after or o.before:
            if index is None:
                index = {k: j for j, k in enumerate(keys)}
            for argument, named in (("after", o.after), ("before", o.before)):
                for k in named:
                    j = index[k]
                    if is_source[j]:
                        raise OrderError(keys[i], k, argument)
                    if argument == "after":
                        edge(j, i)
                    else:
                        edge(i, j)
        for name in o.creates:
            creators.setdefault(name, []).append(i)
        for name in o.consumes:
            consumers.setdefault(name, []).append(i)
        for name in o.reads | o.writes:
            users.setdefault(name, []).append(i)
    for table, kind in ((creators, "create"), (consumers, "consume")):
        for name, tasks in table.items():
            if len(tasks) > 1:
                raise AccessError(name, [keys[t] for t in tasks], kind)
    for name, (creator,) in creators.items():
        for v in users.get(name, []) + consumers.get(name, []):
            if v != creator:
                edge(creator, v)
    consumed = []
    for name, (consumer,) in consumers.items():
        for u in users.get(name, ()):
            if u != consumer:
                edge(u, consumer)
                consumed.append((u, consumer, name))
    if barriers:
        _barrier_edges(deps_of, is_source, barriers, preds, edge)

    if not preds and not consumed:
        return None
    rows: list[tuple[int, ...]] = [()] * len(keys)
    found = False
    for v, us in preds.items():
        row = tuple(sorted(us.difference(deps_of[v])))
        if row:
            rows[v] = row
            found = True
    return Order(rows if found else None, consumed)


def _barrier_edges(deps_of, is_source, barriers, preds, edge) -> None:
    """Add the reduced barrier edges (module docstring) to ``preds`` through ``edge``."""
    n = len(deps_of)
    group = [0] * n  # how many barriers precede each node
    b = 0
    for i in range(n):
        while b < len(barriers) and barriers[b] <= i:
            b += 1
        group[i] = b
    has_pred = bytearray(n)  # inside its own group
    has_succ = bytearray(n)
    for v in range(n):
        if is_source[v]:
            continue
        g = group[v]
        for p in (*deps_of[v], *preds.get(v, ())):
            if group[p] == g and not is_source[p]:
                has_succ[p] = 1
                has_pred[v] = 1
    sinks: dict[int, list[int]] = {}  # by group, in insertion order
    starts: dict[int, list[int]] = {}
    for i in range(n):
        if not is_source[i]:
            if not has_succ[i]:
                sinks.setdefault(group[i], []).append(i)
            if not has_pred[i]:
                starts.setdefault(group[i], []).append(i)
    # The groups that hold tasks, ascending.  (A group whose tasks all lie on cycles has no sink
    # or no source: it gets fewer edges, and build() reports the cycle anyway.)
    groups = sorted({group[i] for i in range(n) if not is_source[i]})
    for before, after in zip(groups, groups[1:]):
        for u in sinks.get(before, ()):
            for v in starts.get(after, ()):
                edge(u, v)


def access_cycle(
    keys: Sequence[Hashable],
    preds_of: Sequence[Sequence[int]],
    unordered: Sequence[int],
    consumed: Sequence[tuple[int, int, str]],
    options: Sequence[TaskOptions | None],
) -> AccessError | None:
    """The :class:`~ftdag.AccessError` for a consume-implied edge that lies on a cycle, if any.

    ``preds_of`` gives every node's predecessors (data and order, by insertion index);
    ``unordered`` is what Kahn's algorithm left (``indegree > 0``: the cycles and what lies
    behind them).  An edge ``user -> consumer`` is on a cycle exactly when both ends are in
    one strongly connected component of the unordered nodes.
    """
    edges = [(u, c, name) for u, c, name in consumed if unordered[u] and unordered[c]]
    if not edges:
        return None
    component = _components(preds_of, unordered)
    for u, c, name in sorted(edges, key=lambda e: (e[1], e[0])):
        if component[u] == component[c]:
            o = options[u]
            kind = "write" if o is not None and name in o.writes else "read"
            return AccessError(name, (keys[u], keys[c]), kind)
    return None


def _components(preds_of: Sequence[Sequence[int]], unordered: Sequence[int]) -> list[int]:
    """Strongly connected components (Tarjan's algorithm, iterative) of the subgraph of the
    ``unordered`` nodes, walking predecessor edges; ``-1`` for the other nodes."""
    n = len(preds_of)
    component = [-1] * n
    low = [0] * n
    number = [0] * n  # 0: not visited yet; else visit number + 1
    on_stack = bytearray(n)
    stack: list[int] = []
    counter = 0
    found = 0
    for root in range(n):
        if not unordered[root] or number[root]:
            continue
        work = [(root, 0)]
        while work:
            v, k = work.pop()
            if k == 0:
                counter += 1
                number[v] = low[v] = counter
                stack.append(v)
                on_stack[v] = 1
            ps = preds_of[v]
            while k < len(ps):
                w = ps[k]
                k += 1
                if not unordered[w]:
                    continue
                if not number[w]:
                    work.append((v, k))
                    work.append((w, 0))
                    break
                if on_stack[w] and number[w] < low[v]:
                    low[v] = number[w]
            else:
                if low[v] == number[v]:
                    while True:
                        w = stack.pop()
                        on_stack[w] = 0
                        component[w] = found
                        if w == v:
                            break
                    found += 1
                if work:
                    parent = work[-1][0]
                    if low[v] < low[parent]:
                        low[parent] = low[v]
    return component


def batches(dag: Dag, outputs: object = None) -> list[list[Hashable]]:
    """A static schedule of ``dag``'s tasks in layers (see :meth:`ftdag.Dag.batches`).

    Greedy, in topological (id) order: each task goes to the earliest layer after the layers
    of all its predecessors (data and order) in which no task's accesses conflict with its
    own (a writer of a name conflicts with every other reader or writer of it).  Each layer
    keeps id order.  Resources are not counted.
    """
    keys, fns, deps, after, access = dag._keys, dag._fns, dag._deps, dag._after, dag._access
    ids = range(len(keys)) if outputs is None else dag._closure(dag._output_ids(outputs))
    layer_of = [-1] * len(keys)  # -1 for sources and unplanned nodes
    layers: list[list[int]] = []
    read: list[set[str]] = []  # by layer, the names its tasks read
    written: list[set[str]] = []
    for i in ids:
        if fns[i] is None:
            continue
        at = 0
        for d in deps[i]:
            if layer_of[d] >= at:
                at = layer_of[d] + 1
        if after is not None:
            for d in after[i]:
                if layer_of[d] >= at:
                    at = layer_of[d] + 1
        sets = access[i] if access is not None else None
        if sets is not None:
            reads, writes = sets
            while at < len(layers) and not (
                writes.isdisjoint(read[at]) and writes.isdisjoint(written[at]) and reads.isdisjoint(written[at])
            ):
                at += 1
        if at == len(layers):
            layers.append([])
            read.append(set())
            written.append(set())
        layers[at].append(i)
        layer_of[i] = at
        if sets is not None:
            read[at] |= sets[0]
            written[at] |= sets[1]
    return [[keys[i] for i in layer] for layer in layers]
