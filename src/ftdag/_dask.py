"""Interop with dask: :func:`get`, a dask scheduler, and graph conversion both ways.

- ``ftdag.get(dsk, keys, **kwargs)`` runs a dask graph on an ftdag :class:`~ftdag.Executor`,
  as a drop-in for ``dask.threaded.get``: ``dask.compute(x, scheduler=ftdag.get)``,
  ``x.compute(scheduler=ftdag.get)`` or ``dask.config.set(scheduler=ftdag.get)``.
- ``ftdag.from_dask(dsk, keys=None)`` is a dask graph as a :class:`~ftdag.Dag`, its keys
  unchanged, for the rest of ftdag's API (stats, stores, callbacks, ``as_completed``).
- ``Dag.to_dask()`` is a :class:`~ftdag.Dag` as a dask graph that dask's own schedulers run.

dask is an optional dependency (the ``ftdag[dask]`` extra).  This module never imports it at
import time, and ``import ftdag`` does not import this module (``ftdag.get`` and
``ftdag.from_dask`` are resolved on first access by ``ftdag.__getattr__``); each function
imports dask when called and says how to install it when it is missing.

dask's graph spec is dask's: a graph (a ``Mapping``, a ``HighLevelGraph``, or an object with
``__dask_graph__()`` such as the expression ``dask.compute`` passes to its scheduler) is
materialised and normalised with dask's own ``dask._task_spec.convert_legacy_graph``, as
``dask.local.get_async`` does.  Each node of the result then has ``.dependencies`` (keys) and
is computed by calling it with a dict of their values.  A ``DataNode`` becomes an ftdag
source (its value); every other node (``Task``, ``Alias``, containers of tasks) becomes an
ftdag task whose dependencies are the node's, and whose function (a partial of
:func:`call_node`) calls the node with their values.  The graph goes straight into a
:class:`~ftdag.Dag` (:func:`_build`): for :func:`from_dask`, the requested keys and their
ancestors; for :func:`get`, every node (a run starts only the ancestors), and a plain
``Task`` of references (after literals) calls its function directly, as ``Task.__call__``
would, at a fraction of the cost per call.

Where ``get`` runs: on ``executor=`` if given, else on a shared executor made on first use
and kept for later calls (so repeated ``compute()`` calls reuse one pool), ``Executor()``
with backend ``auto``; a ``num_workers`` other than its ``max_workers`` gets a shared
executor of its own per count.  They close at interpreter exit, or with
:func:`close_shared_executors`.  On a GIL build ``auto`` means worker processes, where every
task's node is pickled (with ``cloudpickle``) for the workers on each call: fine-grained dask
graphs run faster there on ``executor=Executor(backend="threads")``.

Differences from ``dask.threaded.get``
---------------------------------------
- Ready tasks start in ftdag's ready order (the longest critical path first, as
  :func:`ftdag._plan.ready_order` computes it; then as the scheduler finds them), not
  ``dask.order``'s.
- A failing task's own exception is raised (the original object and type, as
  ``dask.threaded.get`` raises it), with a note naming the task's key; on the process
  backend it is the exception as unpickled in the parent.  ``rerun_exceptions_locally``,
  ``cache``, ``pool``, ``chunksize`` and other keyword arguments are ignored.
- dask callbacks (``callbacks=`` or the registered ones, e.g. ``with ProgressBar():``) are
  called as ``get_async`` calls them, but ``pretask`` and ``posttask`` come from ftdag's
  task events (:class:`_DaskCallbacks`): on the thread backend from the worker thread that
  ran the task (serialised by a lock, so never two at once), on the process backend from the
  parent when it learns the task is done (then ``posttask``'s ``result`` is ``None`` and
  ``state["cache"]`` holds only the graph's data, since a task's value stays in the worker
  processes).  An exception raised by ``pretask`` or ``posttask`` is reported as a
  :class:`~ftdag.CallbackWarning` and does not stop the run; one raised by ``start``,
  ``start_state`` or ``finish`` propagates, as in dask.
"""

from __future__ import annotations

import functools
import threading
from array import array
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any

from ._arrays import INDEX
from ._keywords import KeywordCall
from .callbacks import Callback
from .errors import CycleError, EmptyGraphError, MissingDependencyError, TaskError, UnknownKeyError
from .executor import Executor
from .graph import Dag

__all__ = ["call_node", "close_shared_executors", "from_dask", "get", "to_dask"]

_INSTALL = "pip install 'ftdag[dask]'"
_MIN_DASK = "2024.12"  # the task spec (dask._task_spec), which dask's local schedulers run


def _task_spec(what: str) -> Any:
    """``dask._task_spec``, imported now; an ``ImportError`` naming ``what`` and the extra
    when dask is missing or too old to have it."""
    try:
        from dask import _task_spec
    except ImportError as exc:
        raise ImportError(
            f"{what} needs dask (version {_MIN_DASK} or newer), an optional dependency of ftdag that is not "
            f"installed: install it with {_INSTALL}"
        ) from exc
    if not hasattr(_task_spec, "convert_legacy_graph"):
        raise ImportError(f"{what} needs dask {_MIN_DASK} or newer (its task spec); upgrade it with {_INSTALL}")
    return _task_spec


# -- the nodes' functions ------------------------------------------------------------------------


def call_node(node: Any, deps: tuple[Hashable, ...], *values: Any) -> Any:
    """Compute the dask graph node ``node`` from its dependencies' values: ``deps`` are its
    dependencies in the order the ftdag task lists them, ``values`` their values.

    The function of an ftdag task made from a node is ``functools.partial(call_node, node,
    deps)``: a partial is made in C (a graph has a function per task, so this matters), is
    weakly referenceable (the process backend forgets its pickle once a run's graph is
    gone), pickles when the node does (dask's task-spec nodes pickle; the functions in them
    need ``cloudpickle`` unless they are importable), and result stores fingerprint it by its
    function and arguments.  ``deps`` is stored rather than read from ``node.dependencies``
    at call time, since a frozenset unpickled in a worker process may iterate in another order.
    """
    return node(dict(zip(deps, values)))


def _node_of(fn: Any) -> Any:
    """The dask node an ftdag task's function computes, or None if it is not such a function."""
    if type(fn) is functools.partial and fn.func in (call_node, _call_node_stashing):
        return fn.args[0]
    return None


_NOTHING = object()


class _Stash(threading.local):
    value: Any = _NOTHING  # what _call_node_stashing just returned on this thread, for _DaskCallbacks.on_task_end


_stash = _Stash()


def _call_node_stashing(node: Any, deps: tuple[Hashable, ...], *values: Any) -> Any:
    """:func:`call_node` that also leaves the result in this thread's stash, where ``posttask``
    finds it: on the thread and sequential backends ``on_task_end`` runs on the thread that
    ran the task, right after it."""
    result = node(dict(zip(deps, values)))
    _stash.value = result
    return result


class _IgnoreTail:
    """``_IgnoreTail(fn, n)(*args)`` is ``fn(*args[:n])``: a task of :func:`to_dask` that also
    waits for the tasks it must run after (its order edges), receiving their values unused."""

    __slots__ = ("fn", "n", "__weakref__")

    def __init__(self, fn: Callable[..., Any], n: int) -> None:
        self.fn = fn
        self.n = n

    def __call__(self, *args: Any) -> Any:
        return self.fn(*args[: self.n])

    def __reduce__(self) -> tuple[Any, ...]:
        return (_IgnoreTail, (self.fn, self.n))


# -- dask graphs in --------------------------------------------------------------------------


def _graph(dsk: Any, what: str) -> dict[Hashable, Any]:
    """The graph ``dsk`` as a dict of task-spec nodes (dask's own conversion, as
    ``dask.local.get_async`` does it)."""
    task_spec = _task_spec(what)
    if not isinstance(dsk, Mapping):
        graph_of = getattr(dsk, "__dask_graph__", None)
        if not callable(graph_of):
            raise TypeError(
                f"{what}: dsk must be a dask graph (a Mapping of keys to tasks, a HighLevelGraph, or an object "
                f"with __dask_graph__(), such as a dask collection or expression), got {type(dsk).__name__}: "
                f"{dsk!r:.200}"
            )
        dsk = graph_of()
    return task_spec.convert_legacy_graph(dsk)


def _flatten(keys: Any) -> list[Hashable]:
    """The keys of ``keys``: one key, or nested lists of keys (only a ``list`` is several: a
    tuple such as ``("x", 0)`` is one key, as in dask)."""
    if not isinstance(keys, list):
        return [keys]
    out: list[Hashable] = []
    stack = [iter(keys)]
    while stack:
        for k in stack[-1]:
            if isinstance(k, list):
                stack.append(iter(k))
                break
            out.append(k)
        else:
            stack.pop()
    return out


def _nested(keys: Any, values: Mapping[Hashable, Any]) -> Any:
    """The values of ``keys`` with its nesting, lists turned into tuples (``dask.local.nested_get``)."""
    if isinstance(keys, list):
        return tuple(_nested(k, values) for k in keys)
    return values[keys]


def _check_keys(graph: Mapping[Hashable, Any], wanted: list[Hashable]) -> None:
    missing = []
    for k in wanted:
        try:
            if k in graph:
                continue
        except TypeError:  # unhashable: not a key
            pass
        missing.append(k)
    if missing:
        raise UnknownKeyError(missing, "requested key")


def _build(graph: Mapping[Hashable, Any], roots: Iterable[Hashable], task_spec: Any,
           call: Callable[..., Any] = call_node, direct: bool = False) -> Dag:
    """The :class:`Dag` of the keys ``roots`` of ``graph`` and all their ancestors.

    A node's task calls it (``functools.partial(call, node, deps)``), except, when ``direct``,
    a plain ``Task`` whose arguments are literals followed by references and which has no
    keywords: its task calls the node's function directly, its dependencies the referenced
    keys in argument order (with repeats), after the literals bound by a partial.  That is
    what ``Task.__call__`` computes, without a dict of values and the node's argument walk
    per call, which cost most of a quick task's time (``dask.delayed`` calls make such
    tasks).  :func:`get` builds so; :func:`from_dask` does not, so that its tasks keep their
    nodes (``to_dask`` gives them back, stores fingerprint them).

    Built directly rather than through :class:`~ftdag.DagBuilder`, whose per-task checks
    (hashable keys, options, duplicates) a dask graph needs none of, and which would cost
    more than the run: one iterative depth-first walk from each root in turn numbers each
    node after its dependencies (the topological order a :class:`Dag` is compiled to), so a
    10,000-task chain does not recurse.  A node is visited once if its dependencies are
    numbered before it is reached (roots in a topological order, as :func:`_build_all` takes
    them), twice otherwise (a chain walked from its end).  A dependency missing from the
    graph raises :class:`~ftdag.MissingDependencyError` (a ``ValueError``, as dask's
    "Missing dependency"), a cycle :class:`~ftdag.CycleError`, as ``build()`` would.
    """
    ids: dict[Hashable, int] = {}  # key -> id, given once its dependencies have theirs
    keys: list[Hashable] = []
    # The data dependencies by id, as the table a Dag keeps (ftdag._arrays): made here so that
    # no tuple per node outlives the walk (fewer objects for the garbage collector to scan).
    start, edges = array(INDEX, [0]), array(INDEX)
    fns: list[Any] = []
    values: list[Any] = []
    # The nodes being expanded (each pushed by the one before: the path from a root)
    # -> their dependencies.  A node is always finished before the one that pushed it, so the
    # last entry is the next to finish, and a dependency found here closes a cycle.
    expanding: dict[Hashable, frozenset[Hashable]] = {}
    get, new_key, new_fn, new_value, new_start, edge = graph.get, keys.append, fns.append, values.append, start.append, edges.append
    partial = functools.partial
    data_node = task_spec.DataNode
    # The node type whose tasks may call its function directly, and the argument types that
    # stop it (a reference of another type, a nested node); None for none (not direct).
    task_type = task_spec.Task if direct else None
    ref_type, not_literal = task_spec.TaskRef, (task_spec.TaskRef, task_spec.GraphNode)
    stack: list[Hashable] = []
    push, pop = stack.append, stack.pop
    for root in roots:
        push(root)
        while stack:
            key = stack[-1]
            deps = expanding.get(key)
            if deps is None:  # first visit
                if key in ids:
                    pop()
                    continue
                node: Any = get(key)
                if node is None:  # (requested keys are in the graph: the last node expanding pushed it)
                    dependent = next(reversed(expanding))
                    raise MissingDependencyError(dependent, [d for d in dict.fromkeys(expanding[dependent])
                                                             if d not in graph])
                if type(node) is data_node:
                    pop()
                    ids[key] = len(keys)
                    new_key(key)
                    new_start(len(edges))
                    new_fn(None)
                    new_value(node.value)
                    continue
                deps = node.dependencies  # a frozenset, iterated in one order as long as it lives
                waiting = False
                for d in deps:
                    if d in ids:
                        continue
                    if d in expanding or d == key:
                        path = [*expanding, key]
                        cycle = path[path.index(d):] + [d]
                        cycle.reverse()  # dependency -> dependent, as CycleError lists it
                        raise CycleError(cycle)
                    push(d)
                    waiting = True
                if waiting:  # come back once they are numbered
                    expanding[key] = deps
                    continue
            else:  # second visit: every dependency is numbered now
                del expanding[key]
                node = graph[key]
            pop()
            ids[key] = len(keys)
            new_key(key)
            new_value(None)
            if type(node) is task_type and not node.kwargs:
                args = node.args
                mark = len(edges)
                literals = 0
                for a in args:
                    if type(a) is ref_type:
                        edge(ids[a.key])
                    elif len(edges) > mark or isinstance(a, not_literal):  # a literal after a reference, a nested node
                        del edges[mark:]
                        break
                    else:
                        literals += 1
                else:
                    new_start(len(edges))
                    new_fn(partial(node.func, *args[:literals]) if literals else node.func)
                    continue
            listed = tuple(deps)  # (call_node's order for the values)
            edges.extend([ids[d] for d in listed])
            new_start(len(edges))
            new_fn(partial(call, node, listed))
    if not keys:
        raise EmptyGraphError()
    return Dag._compiled(keys, ids, fns, values, start, edges, None, None)


def _build_all(graph: Mapping[Hashable, Any], wanted: list[Hashable], task_spec: Any) -> Dag:
    """The :class:`Dag` :func:`get` runs ``wanted`` of: every node of ``graph``, since a run
    starts only the requested keys' ancestors (and dask culls what ``compute`` hands its
    scheduler to those anyway).  The walk takes the graph's keys from the last: dask's
    expressions list a graph's layers from the last one back, and a ``dask.delayed`` graph
    each call before its arguments, so that most nodes are visited once.  A graph with a
    missing dependency or a cycle is built from ``wanted`` instead, so that only those among
    the requested keys' ancestors raise, as in :func:`from_dask`."""
    try:
        return _build(graph, reversed(graph), task_spec, direct=True)
    except (MissingDependencyError, CycleError):
        return _build(graph, wanted, task_spec, direct=True)


def from_dask(dsk: Any, keys: Any = None) -> Dag:
    """A dask graph as an ftdag :class:`~ftdag.Dag`, its keys unchanged.

    ``dsk`` is a dask graph in any form :func:`get` takes: a dict (legacy tuples, literals,
    task-spec nodes), a ``HighLevelGraph``, or an object with ``__dask_graph__()`` (a dask
    collection or expression: ``from_dask(x)`` for ``x = dask.delayed(f)(1)``, then
    ``ex.run(dag, x.key)``).  ``keys``: ``None`` for every node, or a key or nested lists of
    keys, for those and their ancestors only (a requested key not in the graph raises
    :class:`~ftdag.UnknownKeyError`, a ``KeyError``).

    Data nodes become sources; every other node becomes a task calling the node (a partial
    of :func:`call_node`), so a result store fingerprints it by the node (see
    :mod:`ftdag._fingerprint`).  Needs dask (the ``ftdag[dask]`` extra).
    """
    graph = _graph(dsk, "ftdag.from_dask")
    if keys is None:
        wanted = list(graph)
    else:
        wanted = _flatten(keys)
        _check_keys(graph, wanted)
    return _build(graph, wanted, _task_spec("ftdag.from_dask"))


# -- the scheduler -------------------------------------------------------------------------


_executors: dict[int | None, Executor] = {}  # the shared executors of get(): None is the default's
_executors_lock = threading.Lock()


def _shared_executor(num_workers: int | None) -> Executor:
    """The executor :func:`get` runs on without ``executor=``: one default (``Executor()``, its
    backend ``auto``), created on first use; and, for a ``num_workers`` other than the default's
    ``max_workers``, one per such count, also kept for later calls.  Each shuts its pool down
    at interpreter exit (its own finalizer)."""
    with _executors_lock:
        default = _executors.get(None)
        if default is None:
            default = _executors[None] = Executor()
        if num_workers is None or num_workers == default.config.max_workers:
            return default
        ex = _executors.get(num_workers)
        if ex is None:
            ex = _executors[num_workers] = Executor(max_workers=num_workers)
        return ex


def close_shared_executors() -> None:
    """Close the executors :func:`get` made for itself (waiting for a run in progress) and
    forget them; a later call makes new ones.  For a program that wants their threads or
    processes gone before it exits, and for tests."""
    with _executors_lock:
        executors = list(_executors.values())
        _executors.clear()
    for ex in executors:
        ex.close()


def _executor_for(executor: Any, num_workers: Any) -> Executor:
    if executor is not None:
        if not isinstance(executor, Executor):
            raise TypeError(f"ftdag.get: executor must be an ftdag.Executor, got {type(executor).__name__}: {executor!r}")
        if num_workers is not None and num_workers != executor.config.max_workers:
            raise ValueError(
                f"ftdag.get: num_workers={num_workers!r} contradicts the executor given, which has "
                f"max_workers={executor.config.max_workers}; pass one or the other"
            )
        return executor
    if num_workers is None:
        import dask

        num_workers = dask.config.get("num_workers", None)  # as dask.threaded.get reads it
    if num_workers is not None and (isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 1):
        raise ValueError(f"ftdag.get: num_workers must be None or an int >= 1, got {num_workers!r}")
    return _shared_executor(num_workers)


def get(dsk: Any, keys: Any, *, executor: Executor | None = None, num_workers: int | None = None,
        callbacks: Any = None, **kwargs: Any) -> Any:
    """Compute ``keys`` of the dask graph ``dsk`` on ftdag: a dask scheduler, a drop-in for
    ``dask.threaded.get`` (``dask.compute(x, scheduler=ftdag.get)``).

    ``dsk``: a dict, a ``HighLevelGraph``, or an object with ``__dask_graph__()`` (what
    ``dask.compute`` passes).  ``keys``: one key or nested lists of keys (only a ``list`` is
    several; a tuple such as ``("x", 0, 1)`` is one key); the result has the same nesting,
    with lists turned into tuples.  A requested key not in the graph raises
    :class:`~ftdag.UnknownKeyError` (a ``KeyError``).

    Runs on ``executor`` if given, else on a shared executor created on first use and reused
    by later calls (backend ``auto``: threads when the GIL is off, worker processes
    otherwise); ``num_workers`` (or dask's ``num_workers`` config) other than its
    ``max_workers`` selects another shared executor with that many workers, also kept.
    ``callbacks``: dask callbacks (``dask.callbacks.Callback`` objects or 5-tuples), or, when
    ``None``, the registered ones (``with ProgressBar():``), as ``dask.local.get_async``.
    Other keyword arguments are accepted and ignored.

    A task's exception is raised as it is (its type and object), with a note naming the
    task's key.  See the module docstring for the differences from ``dask.threaded.get``.
    Needs dask (the ``ftdag[dask]`` extra).
    """
    task_spec = _task_spec("ftdag.get")
    from dask.callbacks import local_callbacks, normalize_callback

    graph = _graph(dsk, "ftdag.get")
    wanted = _flatten(keys)
    _check_keys(graph, wanted)
    ex = _executor_for(executor, num_workers)
    if not wanted:  # keys=[] (or nested empty lists): nothing to compute
        return _nested(keys, {})
    with local_callbacks(callbacks) as active:
        if not active:
            dag = _build_all(graph, wanted, task_spec)
            values = _run(ex, dag, wanted, None)
        else:
            values = _run_with_callbacks(ex, graph, wanted, [normalize_callback(c) for c in active], task_spec)
    return _nested(keys, values)


def _run(ex: Executor, dag: Dag, wanted: list[Hashable], bridge: _DaskCallbacks | None) -> Mapping[Hashable, Any]:
    """``ex.run``, raising a failed task's own exception with a note naming its key."""
    try:
        return ex.run(dag, wanted, callbacks=None if bridge is None else [bridge])
    except TaskError as err:
        if type(err) is not TaskError or err.__cause__ is None:
            raise  # not the task's own exception (it could not be pickled, its worker died, ...)
        key, cause = err.key, err.__cause__
    # Raised here, outside the except clause, so that the TaskError does not become its context.
    cause.add_note(f"(raised by the dask task {key!r}, run by ftdag.get)")
    raise cause


def _run_with_callbacks(
    ex: Executor, graph: dict[Hashable, Any], wanted: list[Hashable], callbacks: list[tuple[Any, ...]],
    task_spec: Any,
) -> Mapping[Hashable, Any]:
    """A run with dask callbacks, in ``dask.local.get_async``'s sequence: ``start(dsk)`` for
    each, the graph's state, ``start_state(dsk, state)``, the tasks (``pretask`` and
    ``posttask`` through :class:`_DaskCallbacks`), and ``finish(dsk, state, failed)`` for each
    callback whose ``start`` ran, whatever happened."""
    started: list[tuple[Any, ...]] = []
    state: dict[str, Any] = {}
    succeeded = False
    try:
        for cb in callbacks:
            if cb[0]:
                cb[0](graph)
            started.append(cb)
        dag = _build(graph, wanted, task_spec, _call_node_stashing)
        bridge = _DaskCallbacks(graph, dag, wanted, callbacks)
        state = bridge.state
        for cb in callbacks:
            if cb[1]:
                cb[1](graph, state)
        values = _run(ex, dag, wanted, bridge)
        succeeded = True
        return values
    finally:
        for cb in started:
            if cb[4]:
                cb[4](graph, state, not succeeded)


class _DaskCallbacks(Callback):
    """dask's ``pretask`` and ``posttask`` callbacks on ftdag's task events, with the run's
    ``state`` dict kept as ``dask.local.get_async`` keeps it.

    ``state`` holds ``dependencies`` and ``dependents`` (sets by key), ``waiting`` (a task's
    unfinished dependencies, for tasks not yet ready), ``waiting_data`` (a key's dependents
    that have not finished), ``cache`` (the graph's data, and on threads the values not yet
    released), ``ready`` (a list of the tasks whose dependencies are done and that have not
    started), ``running``, ``finished`` and ``released`` (sets).  Every event updates it under
    one lock before calling the dask callbacks, so their sizes are current (dask's
    ``ProgressBar`` reads them from its own thread).
    """

    def __init__(self, graph: dict[Hashable, Any], dag: Dag, wanted: list[Hashable],
                 callbacks: list[tuple[Any, ...]]) -> None:
        self.graph = graph
        self.pretask = [cb[2] for cb in callbacks if cb[2]]
        self.posttask = [cb[3] for cb in callbacks if cb[3]]
        self.results = set(wanted)
        self.lock = threading.Lock()
        dependencies: dict[Hashable, set[Hashable]] = {}
        dependents: dict[Hashable, set[Hashable]] = {}
        waiting: dict[Hashable, set[Hashable]] = {}
        waiting_data: dict[Hashable, set[Hashable]] = {}
        cache: dict[Hashable, Any] = {}
        ready: list[Hashable] = []
        keys = dag._keys
        for key, ds, fn, value in zip(keys, dag._deps, dag._fns, dag._values):
            dependents[key] = set()
            waiting_data[key] = set()
            deps = {keys[d] for d in ds}
            dependencies[key] = deps
            for d in deps:
                dependents[d].add(key)  # (dependencies come first: the keys are in topological order)
                waiting_data[d].add(key)
            if fn is None:  # a source
                cache[key] = value
                continue
            unfinished = {d for d in deps if d not in cache}
            if unfinished:
                waiting[key] = unfinished
            else:
                ready.append(key)
        self.ready_at = {k: i for i, k in enumerate(ready)}  # each ready key's index in ready
        self.state: dict[str, Any] = {
            "dependencies": dependencies,
            "dependents": dependents,
            "waiting": waiting,
            "waiting_data": waiting_data,
            "cache": cache,
            "ready": ready,
            "running": set(),
            "finished": set(),
            "released": set(),
        }

    def _unready(self, key: Hashable) -> None:
        """Take ``key`` out of ``state["ready"]`` in O(1): the last key takes its place."""
        at = self.ready_at.pop(key, None)
        if at is None:
            return
        ready = self.state["ready"]
        last = ready.pop()
        if last != key:
            ready[at] = last
            self.ready_at[last] = at

    def on_task_start(self, key: Hashable, worker: int) -> None:
        state = self.state
        with self.lock:
            self._unready(key)
            state["waiting"].pop(key, None)
            state["running"].add(key)
            for f in self.pretask:
                f(key, self.graph, state)

    def on_task_end(self, key: Hashable, worker: int, elapsed_s: float, error: BaseException | None) -> None:
        value = _stash.value
        _stash.value = _NOTHING
        if error is not None:
            return  # dask calls no posttask for a failed task; finish(failed=True) follows
        state = self.state
        with self.lock:
            if value is _NOTHING:  # the process backend: the value stayed in a worker process
                value = None
            else:
                state["cache"][key] = value
            waiting, ready, ready_at = state["waiting"], state["ready"], self.ready_at
            for dep in state["dependents"][key]:
                s = waiting.get(dep)
                if s is not None:
                    s.discard(key)
                    if not s:
                        del waiting[dep]
                        ready_at[dep] = len(ready)
                        ready.append(dep)
            waiting_data, results = state["waiting_data"], self.results
            for dep in state["dependencies"][key]:
                s = waiting_data.get(dep)
                if s is not None:
                    s.discard(key)
                    if not s and dep not in results:
                        del waiting_data[dep]
                        state["released"].add(dep)
                        state["cache"].pop(dep, None)
            state["finished"].add(key)
            state["running"].discard(key)
            for f in self.posttask:
                f(key, value, self.graph, state, worker)


# -- dask graphs out -------------------------------------------------------------------------


def to_dask(dag: Dag) -> dict[Hashable, Any]:
    """``dag`` as a dask graph (a dict of dask task-spec nodes) that dask's schedulers
    (``dask.get``, ``dask.threaded.get``) run with the same results.

    A source becomes a ``DataNode`` of its value (a literal: never mistaken for a task or a
    key, whatever it holds); a task ``Task(key, fn, TaskRef(dep), ...)``, its dependencies in
    order; a keyword task ``Task(key, fn, name=TaskRef(dep), ...)``; a task of
    :func:`from_dask` its original dask node.  A task's order edges (``after``, ``before``,
    access sets that order, barriers) become extra dependencies whose values it ignores, so
    dask keeps that order.  Options without a dask equivalent (retries, timeouts, priority,
    cost, the store's ``cache`` and ``version``) are dropped; the mutual exclusion of
    ``reads``/``writes`` and ``resources`` cannot be kept, so a graph using them raises
    ``ValueError`` naming a task.  Needs dask (the ``ftdag[dask]`` extra).
    """
    task_spec = _task_spec("Dag.to_dask")
    Task, TaskRef, DataNode = task_spec.Task, task_spec.TaskRef, task_spec.DataNode
    keys, deps, fns, values, after = dag._keys, dag._deps, dag._fns, dag._values, dag._after
    for table, what in ((dag._access, "reads or writes shared state"), (dag._resources, "holds resources")):
        if table is not None:
            first = next(keys[i] for i, entry in enumerate(table) if entry is not None)
            raise ValueError(
                f"Dag.to_dask: task {first!r} {what}, which dask cannot enforce (it has no mutual exclusion "
                f"between tasks); build the graph without reads=, writes= and resources= to convert it"
            )
    out: dict[Hashable, Any] = {}
    for i, key in enumerate(keys):
        fn = fns[i]
        if fn is None:
            out[key] = DataNode(key, values[i])
            continue
        order = after[i] if after is not None else ()
        node = _node_of(fn)
        if not order and node is not None and node.key == key:
            out[key] = node
            continue
        refs = [TaskRef(keys[d]) for d in deps[i]]
        if order:
            out[key] = Task(key, _IgnoreTail(fn, len(refs)), *refs, *(TaskRef(keys[d]) for d in order))
        elif isinstance(fn, KeywordCall) and "_data_producer" not in fn.names:
            out[key] = Task(key, fn.fn, **dict(zip(fn.names, refs)))
        else:
            out[key] = Task(key, fn, *refs)
    return out
