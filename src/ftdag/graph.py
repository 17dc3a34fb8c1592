"""The graph model: :class:`DagBuilder` collects named nodes, :class:`Dag` is the result.

A node is either a *source* (a value) or a *task* (a function called with the values of its
dependencies, in the order they were listed).  ``build()`` resolves dependencies, rejects
cycles and compiles the graph to dense integer ids so that the schedulers' hot paths index
lists instead of hashing keys (on free-threaded CPython a dict look-up from a thread other
than the dict's creator can cost ~20 µs when the key is equal but not identical).

Ids are assigned in a topological order: every dependency has a smaller id than its
dependents.  A :class:`Dag` is immutable and safe to share between threads and runs.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Hashable, Iterable
from typing import Any

from ._options import TaskOptions, task_options
from .errors import CycleError, DuplicateKeyError, EmptyGraphError, MissingDependencyError, UnknownKeyError

__all__ = ["Dag", "DagBuilder"]

_SOURCE = object()  # marks a source in DagBuilder._nodes (its "deps")


def _check_hashable(what: str, key: object) -> None:
    try:
        hash(key)
    except TypeError:
        raise TypeError(f"{what} must be hashable, got {type(key).__name__}: {key!r}") from None


class DagBuilder:
    """Collects nodes; :meth:`build` turns them into a :class:`Dag`.

    Dependencies may name keys that are added later; they are resolved by :meth:`build`.
    The builder can keep being used after ``build()``; each call snapshots it.
    """

    def __init__(self) -> None:
        # key -> (deps tuple | _SOURCE, fn | None, value)
        self._nodes: dict[Hashable, tuple[Any, Callable[..., Any] | None, Any]] = {}
        self._options: dict[Hashable, TaskOptions] = {}  # the tasks that have options (ftdag._options)

    def add_source(self, key: Hashable, value: Any) -> None:
        """Add a node whose value is ``value``."""
        _check_hashable("source key", key)
        if key in self._nodes:
            raise DuplicateKeyError(key)
        self._nodes[key] = (_SOURCE, None, value)

    def add_task(
        self,
        key: Hashable,
        deps: list[Hashable] | tuple[Hashable, ...],
        fn: Callable[..., Any],
        *,
        retries: int = 0,
        retry_on: tuple[type[BaseException], ...] = (Exception,),
        retry_delay: float = 0.0,
        timeout: float | None = None,
        cache: bool = True,
        version: str | None = None,
    ) -> None:
        """Add a node computed as ``fn(*values_of(deps))``.

        ``deps`` is a list or tuple of keys (possibly empty, possibly repeating a key).

        Failure handling (see :mod:`ftdag._options` for the exact rules): ``retries`` extra
        attempts for the exceptions in ``retry_on``, the first after ``retry_delay`` seconds,
        doubling, with jitter; ``timeout`` seconds per attempt (then
        :class:`~ftdag.TaskTimeoutError`).  Result stores: ``cache=False`` keeps this task
        (and what depends on it) out of the store; ``version`` names the task's code in
        fingerprints instead of its function's bytecode.  Invalid values raise ``TypeError``
        or ``ValueError`` naming the task and the argument.
        """
        _check_hashable("task key", key)
        if not isinstance(deps, (list, tuple)):
            raise TypeError(
                f"deps of task {key!r} must be a list or tuple of keys, got {type(deps).__name__}: {deps!r}"
            )
        for dep in deps:
            try:
                hash(dep)
            except TypeError:
                raise TypeError(
                    f"dependency {dep!r} of task {key!r} must be hashable, got {type(dep).__name__}"
                ) from None
        if not callable(fn):
            raise TypeError(f"fn of task {key!r} must be callable, got {type(fn).__name__}: {fn!r}")
        options = task_options(
            key, retries=retries, retry_on=retry_on, retry_delay=retry_delay, timeout=timeout, cache=cache,
            version=version,
        )
        if key in self._nodes:
            raise DuplicateKeyError(key)
        self._nodes[key] = (tuple(deps), fn, None)
        if options is not None:
            self._options[key] = options

    def build(self) -> Dag:
        """Validate the nodes and compile them into an immutable :class:`Dag`.

        Raises :class:`EmptyGraphError`, :class:`MissingDependencyError` or :class:`CycleError`.
        """
        nodes = self._nodes
        if not nodes:
            raise EmptyGraphError()
        for key, (deps, _, _) in nodes.items():
            if deps is not _SOURCE:
                missing = [d for d in dict.fromkeys(deps) if d not in nodes]
                if missing:
                    raise MissingDependencyError(key, missing)

        # Kahn's algorithm over insertion order; nodes left over lie on or behind a cycle.
        keys = list(nodes)
        index = {k: i for i, k in enumerate(keys)}
        n = len(keys)
        deps_of = [() if nodes[k][0] is _SOURCE else tuple(index[d] for d in nodes[k][0]) for k in keys]
        users: list[list[int]] = [[] for _ in range(n)]
        for i, ds in enumerate(deps_of):
            for d in ds:
                users[d].append(i)
        indegree = [len(ds) for ds in deps_of]
        queue = deque(i for i in range(n) if not indegree[i])
        order: list[int] = []
        while queue:
            i = queue.popleft()
            order.append(i)
            for u in users[i]:
                indegree[u] -= 1
                if not indegree[u]:
                    queue.append(u)
        if len(order) < n:
            raise CycleError(_find_cycle(keys, deps_of, indegree))

        new_id = [0] * n
        for pos, i in enumerate(order):
            new_id[i] = pos
        return Dag(
            keys=[keys[i] for i in order],
            deps=[tuple(new_id[d] for d in deps_of[i]) for i in order],
            fns=[nodes[keys[i]][1] for i in order],
            values=[nodes[keys[i]][2] for i in order],
            options=[self._options.get(keys[i]) for i in order] if self._options else None,
        )


def _find_cycle(keys: list[Hashable], deps_of: list[tuple[int, ...]], indegree: list[int]) -> list[Hashable]:
    """One cycle among the nodes Kahn's algorithm could not order (``indegree > 0``).

    Every such node has a dependency that is also unordered, so walking dependencies from any
    of them must revisit a node; the walk from that node on is a cycle.
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
        "_keys", "_ids", "_deps", "_dependents", "_fns", "_values", "_options", "_n_sources", "_plans", "_plans_lock",
        "_after", "_followers", "_next", "_access", "_resources",
    )

    def __init__(
        self, *, keys: list[Hashable], deps: list[tuple[int, ...]], fns: list, values: list,
        options: list[TaskOptions | None] | None = None,
    ) -> None:
        self._keys = tuple(keys)
        self._ids = {k: i for i, k in enumerate(keys)}
        self._deps = tuple(deps)
        dependents: list[list[int]] = [[] for _ in keys]
        for i, ds in enumerate(deps):
            for d in ds:
                dependents[d].append(i)  # with multiplicity, matching _deps
        self._dependents = tuple(tuple(x) for x in dependents)
        self._fns = tuple(fns)  # None for a source
        self._values = tuple(values)  # a source's value; None for a task
        # The options table (ftdag._options): a task's TaskOptions, None for defaults and sources;
        # None instead of a table when no task has options.
        self._options: tuple[TaskOptions | None, ...] | None = tuple(options) if options else None
        self._n_sources = sum(fn is None for fn in fns)
        # (stand-ins until the constraints land: no order edges, access sets or resources)
        self._after: tuple[tuple[int, ...], ...] | None = None
        self._followers: tuple[tuple[int, ...], ...] | None = None
        self._next = self._dependents
        self._access: tuple[tuple[frozenset[str], frozenset[str]] | None, ...] | None = None
        self._resources: tuple[tuple[tuple[str, int], ...] | None, ...] | None = None
        self._plans: dict = {}  # plan templates by frozenset of output ids: ftdag._plan._template
        self._plans_lock = threading.Lock()

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
        """All keys, in a topological order (every dependency before its dependents).

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
        """The keys ``key`` depends on, as listed when it was added (empty for a source)."""
        keys = self._keys
        return tuple(keys[d] for d in self._deps[self._id(key)])

    def dependents(self, key: Hashable) -> tuple[Hashable, ...]:
        """The keys that depend directly on ``key``, each once, in topological order."""
        keys = self._keys
        return tuple(keys[u] for u in dict.fromkeys(self._dependents[self._id(key)]))

    def ancestors(self, outputs: Iterable[Hashable] | Hashable) -> set[Hashable]:
        """The keys a run requesting ``outputs`` executes: the outputs and all they depend on.

        ``outputs`` follows the same rules as :meth:`ftdag.Executor.run`: a list (or another
        iterable) of keys, or one key; a ``tuple`` is always one key.
        """
        keys = self._keys
        return {keys[i] for i in self._closure(self._output_ids(outputs))}

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
        """The ids in ``ids`` and all their ancestors, sorted (so in topological order); the
        ancestors of the ids in ``given`` are not followed (their values are known)."""
        deps = self._deps
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
            for d in deps[i]:
                if not seen[d]:
                    seen[d] = 1
                    stack.append(d)
        found.sort()
        return found
