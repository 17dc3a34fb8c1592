"""The graph model: :class:`DagBuilder` collects named nodes, :class:`Dag` is the result.

A node is either a *source* (a value) or a *task* (a function called with the values of its
dependencies, in the order they were listed, or by keyword: :mod:`ftdag._keywords` compiles a
keyword task into a positional one when it is added).  ``build()`` resolves dependencies, rejects
cycles and compiles the graph to dense integer ids so that the schedulers' hot paths index
lists instead of hashing keys (on free-threaded CPython a dict look-up from a thread other
than the dict's creator can cost ~20 µs when the key is equal but not identical).

Besides data dependencies, tasks may be ordered without passing values: ``after``,
``before``, access sets (``creates``, ``consumes``) and barriers compile into *order edges*
(:mod:`ftdag._constraints`).  Ids are assigned in a topological order over both kinds of
edge: every dependency, and every node a node must run after, has a smaller id.  A
:class:`Dag` is immutable and safe to share between threads and runs.
"""

from __future__ import annotations

import threading
from array import array
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from itertools import accumulate, chain, compress, repeat
from operator import is_, is_not, lt, not_, sub
from typing import Any

from . import _constraints, _pictures
from ._arrays import INDEX, MAX_IDS, Rows, table, transpose
from ._keywords import KeywordCalls, keyword_deps
from ._options import TaskOptions, task_options
from .errors import CycleError, DuplicateKeyError, EmptyGraphError, MissingDependencyError, UnknownKeyError

__all__ = ["Dag", "DagBuilder"]

_RETRY_ON = (Exception,)  # add_task's default retry_on
# add_task's option arguments when every one is its default (see add_task's fast path)
_DEFAULT_OPTIONS = (0, _RETRY_ON, 0.0, None, True, None, 0, 1.0, None, None, None, None, None, None, None)


def _not_hashable(what: str, key: object) -> TypeError:
    return TypeError(f"{what} must be hashable, got {type(key).__name__}: {key!r}")


class DagBuilder:
    """Collects nodes; :meth:`build` turns them into a :class:`Dag`.

    Dependencies (and the keys ``after`` and ``before`` name) may be keys that are added
    later; they are resolved by :meth:`build`.  The builder can keep being used after
    ``build()``; each call snapshots it.
    """

    def __init__(self) -> None:
        # The nodes by insertion index: key -> index, and by index its dependencies (keys;
        # () for a source), its function (None for a source) and its value (None for a task).
        self._nodes: dict[Hashable, int] = {}
        self._deps: list[tuple[Hashable, ...]] = []
        self._fns: list[Callable[..., Any] | None] = []
        self._values: list[Any] = []
        self._options: dict[Hashable, TaskOptions] = {}  # the tasks that have options (ftdag._options)
        self._barriers: list[int] = []  # per add_barrier() call, how many nodes had been added
        self._keyword_calls = KeywordCalls()  # keyword tasks' adapters, one per (fn, names)

    def add_source(self, key: Hashable, value: Any) -> None:
        """Add a node whose value is ``value``."""
        try:
            if key in self._nodes:
                raise DuplicateKeyError(key)
        except TypeError:
            raise _not_hashable("source key", key) from None
        self._nodes[key] = len(self._deps)
        self._deps.append(())
        self._fns.append(None)
        self._values.append(value)

    def add_task(
        self,
        key: Hashable,
        deps: list[Hashable] | tuple[Hashable, ...] | Mapping[str, Hashable],
        fn: Callable[..., Any],
        *,
        retries: int = 0,
        retry_on: tuple[type[BaseException], ...] = _RETRY_ON,
        retry_delay: float = 0.0,
        timeout: float | None = None,
        cache: bool = True,
        version: str | None = None,
        priority: int = 0,
        cost: float = 1.0,
        resources: Mapping[str, int] | None = None,
        reads: Iterable[str] | str | None = None,
        writes: Iterable[str] | str | None = None,
        creates: Iterable[str] | str | None = None,
        consumes: Iterable[str] | str | None = None,
        after: Iterable[Hashable] | Hashable = None,
        before: Iterable[Hashable] | Hashable = None,
    ) -> None:
        """Add a node computed as ``fn(*values_of(deps))``, or by keyword from a mapping.

        ``deps`` is a list or tuple of keys (possibly empty, possibly repeating a key), passed
        positionally in that order; or a mapping of parameter names (``str`` identifiers) to
        keys, ``{"x": "a", "y": "b"}`` calling ``fn(x=value_of_a, y=value_of_b)``.  A keyword
        task is compiled into a positional one (:mod:`ftdag._keywords`): its dependencies are
        the mapping's values, in its order, as :meth:`Dag.dependencies` lists them.

        Failure handling (see :mod:`ftdag._options` for the exact rules): ``retries`` extra
        attempts for the exceptions in ``retry_on``, the first after ``retry_delay`` seconds,
        doubling, with jitter; ``timeout`` seconds per attempt (then
        :class:`~ftdag.TaskTimeoutError`).  Result stores: ``cache=False`` keeps this task
        (and what depends on it) out of the store; ``version`` names the task's code in
        fingerprints instead of its function's bytecode.

        Scheduling (see :mod:`ftdag._options` and :mod:`ftdag._constraints`): among ready
        tasks, higher ``priority`` first; ``cost`` is a relative estimate (> 0).  ``resources``
        maps capacity names to the units the task holds while it runs.  ``reads``, ``writes``,
        ``creates`` and ``consumes`` name shared state (each a ``str`` or an iterable of them):
        a writer never overlaps another reader or writer of a name; its creator runs before,
        and its consumer after, every other task using it.  ``after`` and ``before`` name
        tasks this one runs after or before, passing no value (a list, set or other iterable
        is several keys; a tuple, str or other non-iterable is one; ``None``, the default, is
        none).  A task a planned task must run after is planned too.

        Invalid values raise ``TypeError`` or ``ValueError`` naming the task and the argument.
        """
        try:
            duplicate = key in self._nodes
        except TypeError:
            raise _not_hashable("task key", key) from None
        names: tuple[str, ...] = ()
        if isinstance(deps, (list, tuple)):
            deps = tuple(deps)
            try:
                hash(deps)  # every dependency is hashable (one C call; the loop below says which is not)
            except TypeError:
                for dep in deps:
                    try:
                        hash(dep)
                    except TypeError:
                        if isinstance(dep, Mapping):
                            raise TypeError(
                                f"deps of task {key!r} mixes positional and keyword dependencies: pass either a "
                                f"list or tuple of keys, or one mapping of parameter names to keys, got {deps!r}"
                            ) from None
                        raise TypeError(
                            f"dependency {dep!r} of task {key!r} must be hashable, got {type(dep).__name__}"
                        ) from None
                raise
        elif isinstance(deps, Mapping):
            deps, names = keyword_deps(key, deps)
        else:
            raise TypeError(
                f"deps of task {key!r} must be a list or tuple of keys, or a mapping of parameter names "
                f"to keys, got {type(deps).__name__}: {deps!r}"
            )
        if not callable(fn):
            raise TypeError(f"fn of task {key!r} must be callable, got {type(fn).__name__}: {fn!r}")
        # The fast path of a task with no options: one tuple comparison, which compares
        # identical objects first (the defaults themselves, when not passed).  Equal values of
        # another type (retries=False, cache=1, cost=True) go to task_options, which rejects
        # the bools.
        options = None
        if not (
            (retries, retry_on, retry_delay, timeout, cache, version, priority, cost, resources, reads, writes,
             creates, consumes, after, before) == _DEFAULT_OPTIONS
            and cache is True and retries is not False and priority is not False and retry_delay is not False
            and cost is not True
        ):
            options = task_options(
                key, retries=retries, retry_on=retry_on, retry_delay=retry_delay, timeout=timeout, cache=cache,
                version=version, priority=priority, cost=cost, resources=resources, reads=reads, writes=writes,
                creates=creates, consumes=consumes, after=after, before=before,
            )
        if duplicate:
            raise DuplicateKeyError(key)
        if names:
            fn = self._keyword_calls.get(fn, names)
        self._nodes[key] = len(self._deps)
        self._deps.append(deps)
        self._fns.append(fn)
        self._values.append(None)
        if options is not None:
            self._options[key] = options

    def add_barrier(self) -> None:
        """Order every task added so far before every task added from now on.

        Sources take no part (they are values, available from the start).  A task that must
        run after a barrier makes every task before it run too, as any order edge does.
        Compiled by :meth:`build` into few edges (see :mod:`ftdag._constraints`).
        """
        self._barriers.append(len(self._nodes))

    def build(self) -> Dag:
        """Validate the nodes and compile them into an immutable :class:`Dag`.

        Raises :class:`EmptyGraphError`; :class:`MissingDependencyError` for an unknown key
        among a task's dependencies or its ``after``/``before``;
        :class:`~ftdag.OrderError` for ``after``/``before`` naming a source;
        :class:`~ftdag.AccessError` for contradictory access sets (two creators or two
        consumers of a name, or a reader or writer that would have to run after the name's
        consumer); :class:`CycleError` for any other cycle, through data or order edges.
        """
        index = self._nodes
        n = len(index)
        if not n:
            raise EmptyGraphError()
        if n > MAX_IDS:
            raise ValueError(f"a graph holds at most {MAX_IDS} nodes, this one {n}")
        keys = list(index)
        rows, fns, options = self._deps, self._fns, self._options
        for o in options.values():
            for k in (*o.after, *o.before):
                if k not in index:
                    break
            else:
                continue
            raise self._missing()
        # The data edges as a table over insertion indexes, made by C loops: a row's ids are
        # its dependencies' indexes (a KeyError names an unknown key).
        edges = sum(map(len, rows))
        if edges > MAX_IDS:  # (checked first: the array would refuse the offsets with a vaguer error)
            raise ValueError(f"a graph holds at most {MAX_IDS} edges, this one {edges}")
        start = array(INDEX, accumulate(map(len, rows), initial=0))
        try:
            ids = array(INDEX, map(index.__getitem__, chain.from_iterable(rows)))
        except KeyError:
            raise self._missing() from None
        by_index = [options.get(k) for k in keys] if options else None
        order = None
        if by_index is not None or self._barriers:
            order = _constraints.order_edges(
                keys, Rows(start, ids), [fn is None for fn in fns], by_index or [None] * n, self._barriers
            )
        after = order.preds if order is not None else None
        # Insertion order is the ids' order when every edge goes from a smaller index to a
        # larger one, which is how most graphs are added; else Kahn's algorithm renumbers.
        owners = chain.from_iterable(map(repeat, range(n), map(len, rows)))  # each edge's node
        if all(map(lt, ids, owners)) and (after is None or all(p < i for i, ps in enumerate(after) for p in ps)):
            return Dag._compiled(
                keys, index, fns, self._values, start, ids, by_index, after if after is not None and any(after) else None
            )
        topo = _topological(keys, start, ids, after, order, by_index)
        new_id = [0] * n
        for pos, i in enumerate(topo):
            new_id[i] = pos
        new_rows = []
        for i in topo:
            new_rows.append([new_id[d] for d in ids[start[i]:start[i + 1]]])
        start, ids = table(new_rows)
        keys = [keys[i] for i in topo]
        return Dag._compiled(
            keys,
            dict(zip(keys, range(n))),
            [fns[i] for i in topo],
            [self._values[i] for i in topo],
            start,
            ids,
            [by_index[i] for i in topo] if by_index is not None else None,
            [tuple(sorted(new_id[d] for d in after[i])) for i in topo] if after is not None and any(after) else None,
        )

    def _missing(self) -> MissingDependencyError:
        """The error for the first node, in insertion order, that names an unknown key among
        its dependencies or its ``after``/``before``."""
        nodes, options = self._nodes, self._options
        for key, deps in zip(nodes, self._deps):
            o = options.get(key) if options else None
            named = deps if o is None or not (o.after or o.before) else (*deps, *o.after, *o.before)
            missing = [d for d in dict.fromkeys(named) if d not in nodes]
            if missing:
                return MissingDependencyError(key, missing)
        raise AssertionError("no unknown key")  # (only called when there is one)


def _topological(
    keys: list[Hashable], start: array, ids: array, after: list[tuple[int, ...]] | None,
    order: _constraints.Order | None, by_index: list[TaskOptions | None] | None,
) -> list[int]:
    """Kahn's algorithm over insertion order, following data and order edges: the nodes in a
    topological order, ties in insertion order.  Nodes it cannot order lie on or behind a
    cycle: raises :class:`~ftdag.AccessError` when an edge that consuming a name implies is on
    it, else :class:`CycleError`."""
    n = len(keys)
    users_start, users, _ = transpose(start, ids, n)
    indegree = [start[i + 1] - start[i] for i in range(n)]
    followers: list[list[int]] | None = None
    if after is not None:
        followers = [[] for _ in range(n)]
        for i, ps in enumerate(after):
            indegree[i] += len(ps)
            for p in ps:
                followers[p].append(i)
    queue = deque(i for i in range(n) if not indegree[i])
    topo: list[int] = []
    while queue:
        i = queue.popleft()
        topo.append(i)
        for u in users[users_start[i]:users_start[i + 1]]:
            indegree[u] -= 1
            if not indegree[u]:
                queue.append(u)
        if followers is not None:
            for u in followers[i]:
                indegree[u] -= 1
                if not indegree[u]:
                    queue.append(u)
    if len(topo) < n:
        rows = Rows(start, ids)
        preds_of: Sequence[tuple[int, ...]] = rows
        if after is not None:
            preds_of = [ds + ps for ds, ps in zip(rows, after)]
        if order is not None and order.consumed:
            err = _constraints.access_cycle(keys, preds_of, indegree, order.consumed, by_index or [None] * n)
            if err is not None:
                raise err
        raise CycleError(_find_cycle(keys, preds_of, indegree))
    return topo


def _find_cycle(keys: list[Hashable], deps_of: Sequence[tuple[int, ...]], indegree: list[int]) -> list[Hashable]:
    """One cycle among the nodes Kahn's algorithm could not order (``indegree > 0``).

    ``deps_of`` lists each node's predecessors, data and order.  Every unordered node has a
    predecessor that is also unordered, so walking predecessors from any of them must revisit
    a node; the walk from that node on is a cycle.
    """
    start = next(i for i, d in enumerate(indegree) if d)
    seen: dict[int, int] = {}
    path: list[int] = []
    i = start
    while i not in seen:
        seen[i] = len(path)
        path.append(i)
        i = next(d for d in deps_of[i] if indegree[d])
    cycle = path[seen[i]:] + [i]
    cycle.reverse()  # walked dependent -> dependency; report dependency -> dependent
    return [keys[j] for j in cycle]


class Dag:
    """An immutable, validated graph, compiled to dense ids in topological order.

    Reusable across runs and threads.  Use :class:`DagBuilder` to make one.
    """

    __slots__ = (
        "_keys", "_ids", "_fns", "_values", "_options", "_n_sources", "_plans", "_plans_lock",
        "_dep_start", "_dep_ids", "_out_start", "_out_ids", "_next_start", "_next_ids",
        "_deps", "_dependents", "_next", "_after", "_followers", "_access", "_resources",
        "_indegree", "_outdegree", "_tasks", "_initial", "_sinks",
    )

    def __init__(
        self, *, keys: list[Hashable], deps: Sequence[Sequence[int]], fns: list, values: list,
        options: list[TaskOptions | None] | None = None, after: list[tuple[int, ...]] | None = None,
    ) -> None:
        """A graph from its nodes already numbered in a topological order (for converters
        such as :func:`ftdag.from_dask`; users build with :class:`DagBuilder`)."""
        start, ids = table(deps)
        self._setup(keys, {k: i for i, k in enumerate(keys)}, fns, values, start, ids, options, after)

    @classmethod
    def _compiled(
        cls, keys: list[Hashable], index: dict[Hashable, int], fns: list, values: list, start: array, ids: array,
        options: list[TaskOptions | None] | None, after: list[tuple[int, ...]] | None,
    ) -> Dag:
        """The graph ``DagBuilder.build()`` compiled (``index`` is copied)."""
        self = cls.__new__(cls)
        self._setup(keys, dict(index), fns, values, start, ids, options, after)
        return self

    def _setup(
        self, keys: list[Hashable], index: dict[Hashable, int], fns: list, values: list, start: array, ids: array,
        options: list[TaskOptions | None] | None, after: list[tuple[int, ...]] | None,
    ) -> None:
        n = len(keys)
        self._keys = tuple(keys)
        self._ids = index  # key -> id
        # By id: a task's function (None for a source), a source's value (None for a task).
        self._fns = tuple(fns)
        self._values = tuple(values)
        # The edges as flat tables (ftdag._arrays), read by the schedulers' hot paths: the data
        # dependencies as listed (with repeats), and their inverse, the data dependents (with
        # multiplicity, matching); both also shown as tuples by the views _deps and _dependents.
        self._dep_start, self._dep_ids = start, ids
        self._out_start, self._out_ids, outdegree = transpose(start, ids, n)
        self._deps = Rows(start, ids)
        self._dependents = Rows(self._out_start, self._out_ids)
        # The options table (ftdag._options): a task's TaskOptions, None for defaults and sources;
        # None instead of a table when no task has options.
        self._options: tuple[TaskOptions | None, ...] | None = tuple(options) if options else None
        # Order edges (ftdag._constraints): by id, the node's order-only predecessors (ascending,
        # none of them also a data dependency of the node), and the inverse, its order-only
        # successors (ascending); None instead of both tables when the graph has no order edge.
        self._after: tuple[tuple[int, ...], ...] | None = None
        self._followers: tuple[tuple[int, ...], ...] | None = None
        # By id, what finishing the node decrements the remaining count of: its data dependents
        # (with multiplicity), then its order-only successors.  Without order edges, the very
        # same table as the dependents, so plain graphs pay nothing.
        self._next_start, self._next_ids, self._next = self._out_start, self._out_ids, self._dependents
        if after is not None and any(after):
            followers: list[list[int]] = [[] for _ in keys]
            for i, ps in enumerate(after):
                for p in ps:
                    followers[p].append(i)  # ascending, as i ascends
            self._after = tuple(after)
            self._followers = tuple(tuple(x) for x in followers)
            self._next_start, self._next_ids = table(
                ds + fs for ds, fs in zip(self._dependents, self._followers)
            )
            self._next = Rows(self._next_start, self._next_ids)
        # By id, (reads, writes) of a task that reads or writes names, else None; None instead of
        # a table when no task does.  What the scheduler checks when it dispatches the task.
        self._access: tuple[tuple[frozenset[str], frozenset[str]] | None, ...] | None = None
        # By id, a task's resources as sorted (name, units) pairs, else None; None instead of a
        # table when no task holds any.
        self._resources: tuple[tuple[tuple[str, int], ...] | None, ...] | None = None
        if self._options is not None:
            table_ = self._options
            if any(o is not None and (o.reads or o.writes) for o in table_):
                self._access = tuple(
                    (o.reads, o.writes) if o is not None and (o.reads or o.writes) else None for o in table_
                )
            if any(o is not None and o.resources for o in table_):
                self._resources = tuple(o.resources if o is not None and o.resources else None for o in table_)
        self._n_sources = self._fns.count(None)
        self._whole_plan(outdegree)
        self._plans: dict = {}  # plan templates by frozenset of output ids: ftdag._plan._template
        self._plans_lock = threading.Lock()

    def _whole_plan(self, outdegree: array) -> None:
        """The counts of a plan of the whole graph, which every request of all the sinks gets
        (ftdag._plan): made here with C loops, so that such a request costs a few copies."""
        fns, start, out_start, out_ids = self._fns, self._dep_start, self._out_start, self._out_ids
        n = len(fns)
        # By id: the task dependencies (with multiplicity) and order-only predecessors of a
        # task, which is how many finishes it waits for (sources count as done from the start).
        indegree = array(INDEX, map(sub, start[1:], start[:-1]))
        if self._n_sources:
            for s in compress(range(n), map(is_, fns, repeat(None))):
                for u in out_ids[out_start[s]:out_start[s + 1]]:
                    indegree[u] -= 1
        if self._after is not None:
            for i, ps in enumerate(self._after):
                if ps:
                    indegree[i] += len(ps)
        self._indegree = indegree
        self._outdegree = outdegree  # by id: its dependents, with multiplicity (its consumers)
        self._tasks = array(INDEX, compress(range(n), map(is_not, fns, repeat(None))))  # task ids, ascending
        self._initial = tuple(compress(self._tasks, map(not_, map(indegree.__getitem__, self._tasks))))
        # The nodes nothing runs after: a request holding all of them plans the whole graph.
        ends = compress(range(n), map(not_, outdegree))
        followers = self._followers
        self._sinks = tuple(ends) if followers is None else tuple(i for i in ends if not followers[i])

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        try:
            return key in self._ids
        except TypeError:
            return False

    def __iter__(self):
        return iter(self._keys)

    def __repr__(self) -> str:
        return f"<Dag: {len(self)} nodes, {self._n_sources} sources>"

    def keys(self) -> list[Hashable]:
        """All keys, in a topological order (every dependency before its dependents, and every
        node before the nodes that must run after it).

        A new list each call, so ``ex.run(dag, dag.keys())`` requests every node (a tuple
        would be one key).
        """
        return list(self._keys)

    def is_source(self, key: Hashable) -> bool:
        """Whether ``key`` is a source (a value) rather than a task."""
        return self._fns[self._id(key)] is None

    def options(self, key: Hashable) -> TaskOptions:
        """The options task ``key`` was added with (every default for a source)."""
        i = self._id(key)
        table = self._options
        found = table[i] if table is not None else None
        return found if found is not None else TaskOptions()

    def dependencies(self, key: Hashable) -> tuple[Hashable, ...]:
        """The keys ``key`` depends on, as listed when it was added (for keyword dependencies,
        the mapping's values in its order; empty for a source)."""
        keys = self._keys
        return tuple(keys[d] for d in self._deps[self._id(key)])

    def dependents(self, key: Hashable) -> tuple[Hashable, ...]:
        """The keys that depend directly on ``key``, each once, in topological order."""
        keys = self._keys
        return tuple(keys[u] for u in dict.fromkeys(self._dependents[self._id(key)]))

    def order_dependencies(self, key: Hashable) -> tuple[Hashable, ...]:
        """The keys ``key`` must run after without receiving their values, in topological order.

        These are its order-only predecessors, compiled from ``after``, ``before``, access
        sets and barriers (:mod:`ftdag._constraints`); a key that is also a data dependency
        of ``key`` is listed only by :meth:`dependencies`.  Barriers are compiled to few
        edges, so a task after a barrier may list only some of the tasks before it (the
        others precede those).
        """
        i = self._id(key)
        after = self._after
        if after is None:
            return ()
        keys = self._keys
        return tuple(keys[p] for p in after[i])

    def ancestors(self, outputs: Iterable[Hashable] | Hashable) -> set[Hashable]:
        """The keys a run requesting ``outputs`` executes: the outputs, all they depend on,
        and all they must run after (order-only predecessors are planned too), transitively.

        ``outputs`` follows the same rules as :meth:`ftdag.Executor.run`: a list (or another
        iterable) of keys, or one key; a ``tuple`` is always one key.
        """
        keys = self._keys
        return {keys[i] for i in self._closure(self._output_ids(outputs))}

    def batches(self, outputs: Iterable[Hashable] | Hashable = None) -> list[list[Hashable]]:
        """A valid static schedule of the tasks a run would execute, as a list of layers.

        Every task is in exactly one layer; every data or order edge between tasks goes to
        a later layer; no two tasks in one layer conflict over shared state (a writer of a
        name with any other reader or writer of it).  Sources are left out: they are values,
        ready from the start.  Greedy, in topological order, each task in the earliest layer
        that fits, each layer in topological order; resources are not counted.  So the
        tasks of a layer may run in parallel once the earlier layers are done.

        ``outputs=None`` (the default) schedules every task; otherwise the tasks of
        ``ancestors(outputs)`` (request the key ``None`` as ``[None]``).
        """
        return _constraints.batches(self, outputs)

    def to_dot(self, outputs: Iterable[Hashable] | Hashable = None) -> str:
        """The graph in Graphviz DOT (``dot -Tsvg``): see :mod:`ftdag._pictures`.

        With ``outputs`` (same rules as :meth:`batches`), the nodes a run for them would
        prune are greyed out and the outputs drawn bold.
        """
        return _pictures.to_dot(self, outputs)

    def to_mermaid(self, outputs: Iterable[Hashable] | Hashable = None) -> str:
        """The graph as a Mermaid flowchart: see :meth:`to_dot` and :mod:`ftdag._pictures`."""
        return _pictures.to_mermaid(self, outputs)

    def to_dask(self) -> dict:
        """This graph as a dask graph that ``dask.get`` and ``dask.threaded.get`` run with the
        same results (needs dask, the ``ftdag[dask]`` extra): see :func:`ftdag._dask.to_dask`."""
        from ._dask import to_dask

        return to_dask(self)

    # -- internals shared with the schedulers -------------------------------------------------

    def _id(self, key: Hashable) -> int:
        try:
            return self._ids[key]
        except (KeyError, TypeError):
            raise UnknownKeyError([key]) from None

    def _output_ids(self, outputs: Iterable[Hashable] | Hashable) -> list[int]:
        """Ids of the requested outputs, deduplicated in request order.

        The rule dask uses: a ``tuple`` is always *one* key (``("sum", region)`` is a common
        key), and so are ``str``, ``bytes`` and any non-iterable; a list, or any other
        iterable (set, dict, generator), is several keys.  Raises :class:`UnknownKeyError`
        listing every unknown key.
        """
        if isinstance(outputs, (tuple, str, bytes)):
            wanted: list = [outputs]
        else:
            try:
                wanted = list(outputs)  # type: ignore[arg-type]
            except TypeError:
                wanted = [outputs]
        ids = self._ids
        out: dict[int, None] = {}
        unknown = []
        for key in wanted:
            try:
                out[ids[key]] = None
            except (KeyError, TypeError):
                unknown.append(key)
        if unknown:
            raise UnknownKeyError(unknown, "requested output")
        return list(out)

    def _closure(self, ids: Iterable[int], given: frozenset[int] = frozenset()) -> list[int]:
        """The ids in ``ids`` and all their ancestors over data and order edges, sorted (so in
        topological order); the ancestors of the ids in ``given`` are not followed (their
        values are known, so they do not run, and nothing needs to run before them)."""
        start, dep_ids, after = self._dep_start, self._dep_ids, self._after
        seen = bytearray(len(self._keys))
        stack = list(ids)
        for i in stack:
            seen[i] = 1
        found = []
        while stack:
            i = stack.pop()
            found.append(i)
            if given and i in given:
                continue
            for d in dep_ids[start[i]:start[i + 1]]:
                if not seen[d]:
                    seen[d] = 1
                    stack.append(d)
            if after is not None:
                for d in after[i]:
                    if not seen[d]:
                        seen[d] = 1
                        stack.append(d)
        found.sort()
        return found
