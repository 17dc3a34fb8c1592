"""dask interop: ``ftdag.get`` as a dask scheduler, ``ftdag.from_dask`` and ``Dag.to_dask``.

dask (and numpy, for dask.array) are installed in the tox test envs (the ``dask`` extra), so
nothing here is skipped.  Every test runs on the backend the build picks (``auto``: threads
on 3.13t, processes on GIL builds), and the ones that matter also on an explicit executor of
each backend.  The shared executors ``ftdag.get`` makes for itself are closed after each test,
so the suite's leak check holds.
"""

from __future__ import annotations

import functools
import io
import os
import re
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path

import dask
import dask.array as da
import dask.bag as db
import pytest
from dask._task_spec import Alias, DataNode, List, Task, TaskRef, convert_legacy_graph
from dask.callbacks import Callback as DaskCallback
from dask.delayed import Delayed
from dask.diagnostics import Profiler, ProgressBar
from dask.highlevelgraph import HighLevelGraph
from dask.utils_test import GetFunctionTestMixin, add, inc
from helpers import TIMEOUT

import ftdag
from ftdag import _dask

BACKENDS = ["sequential", "threads", "processes"]
SRC = str(Path(ftdag.__file__).resolve().parent.parent)


@pytest.fixture(autouse=True)
def _close_shared_executors():
    """ftdag.get's shared executors live until exit; the leak check wants them gone."""
    yield
    _dask.close_shared_executors()


@pytest.fixture(params=BACKENDS)
def executor(request):
    """An executor of each backend, with 2 workers."""
    with ftdag.Executor(backend=request.param, max_workers=2) as ex:
        yield ex


@pytest.fixture(params=["default", *BACKENDS])
def maybe_executor(request):
    """None (ftdag.get's shared executor, on the build's backend), then an executor of each backend."""
    if request.param == "default":
        yield None
        return
    with ftdag.Executor(backend=request.param, max_workers=2) as ex:
        yield ex


def build_backend() -> str:
    """The backend ``auto`` picks on this build."""
    return "processes" if ftdag.gil_enabled() else "threads"


# -- module-level task functions (worker processes import them by name) ------------------------


def double(x):
    return 2 * x


def total(*xs):
    return sum(xs)


def boom(x):
    raise ZeroDivisionError(f"boom {x}")


def step(x):
    return x + 1


class FinishedCounts(DaskCallback):
    """Records ``len(state["finished"])`` at each ``posttask``: what a progress bar reads."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def _posttask(self, key, result, dsk, state, worker_id):
        self.seen.append(len(state["finished"]))


def compute_inside(x):
    """A task that runs a dask graph itself, on the executor of the run it is part of."""
    inner = {"a": x, "b": (inc, "a")}
    return ftdag.get(inner, "b", executor=_NESTED_EXECUTOR[0])


_NESTED_EXECUTOR: list = []


def delayed_graph(n=6):
    parts = [dask.delayed(double)(i) for i in range(n)]
    return dask.delayed(total)(*parts)


# -- conformance: dask's own test mixin for get functions --------------------------------------


class TestGetConformance(GetFunctionTestMixin):
    """dask.utils_test.GetFunctionTestMixin with ftdag.get on its shared default executor."""

    get = staticmethod(ftdag.get)


class TestGetConformanceOnEachBackend(GetFunctionTestMixin):
    """The same tests with ``executor=`` of each backend."""

    @pytest.fixture(autouse=True)
    def _get(self, executor):
        self.get = functools.partial(ftdag.get, executor=executor)


# -- inputs, keys and results ---------------------------------------------------------------


def test_compute_passes_an_expression_and_the_result_equals_sync():
    seen = []

    def recording_get(dsk, keys, **kwargs):
        seen.append(type(dsk))
        return ftdag.get(dsk, keys, **kwargs)

    x = delayed_graph()
    assert dask.compute(x, scheduler=recording_get) == dask.compute(x, scheduler="sync") == (30,)
    assert seen
    if int(dask.__version__.split(".")[0]) >= 2026:  # (older dask, e.g. 2024.12, passes a HighLevelGraph)
        assert not issubclass(seen[0], Mapping)  # an expression: what dask.compute hands its scheduler
    assert x.compute(scheduler=ftdag.get) == 30
    with dask.config.set(scheduler=ftdag.get):
        assert x.compute() == 30


def test_an_expression_a_dict_and_a_high_level_graph():
    x = delayed_graph()
    assert ftdag.get(x, x.key) == 30  # a collection has __dask_graph__() too
    assert ftdag.get(dict(x.__dask_graph__()), [x.key]) == (30,)
    hlg = HighLevelGraph({"a": {"s": 1, "t": (inc, "s")}, "b": {"u": (add, "t", "s")}}, {"a": set(), "b": {"a"}})
    assert ftdag.get(hlg, ["u", "t"]) == (3, 2)


def test_not_a_graph_is_a_type_error_naming_what_it_got():
    with pytest.raises(TypeError, match=r"ftdag\.get: dsk must be a dask graph .* got int"):
        ftdag.get(42, "x")


def test_delayed_bag_and_array_graphs_equal_sync(maybe_executor):
    ex = maybe_executor
    get = functools.partial(ftdag.get, executor=ex)
    x = delayed_graph(8)
    bag = db.from_sequence(range(200), npartitions=8).map(double).filter(lambda v: v % 3).sum()
    arr = (da.arange(4096, chunks=256).reshape(64, 64).rechunk(16) * 2 + 1).sum(axis=0)
    for coll in (x, bag, arr):
        ours = dask.compute(coll, scheduler=get)[0]
        ref = dask.compute(coll, scheduler="sync")[0]
        if coll is arr:
            assert (ours == ref).all() and ours.shape == (64,)
        else:
            assert ours == ref


def test_keys_nest_lists_into_tuples_and_a_tuple_is_one_key():
    d = {"x": 1, "y": 2, ("t", 0, 1): (add, "x", "y"), ("t", 0, 2): (inc, ("t", 0, 1))}
    assert ftdag.get(d, ("t", 0, 1)) == 3
    assert ftdag.get(d, [("t", 0, 1)]) == (3,)
    assert ftdag.get(d, [[("t", 0, 2), "x"], "y", [[("t", 0, 1)]]]) == ((4, 1), 2, ((3,),))
    assert ftdag.get(d, []) == ()
    assert ftdag.get(d, [[], ["x"]]) == ((), (1,))


def test_a_requested_key_not_in_the_graph_is_a_key_error():
    d = {"x": 1, "y": (inc, "x")}
    with pytest.raises(KeyError) as info:
        ftdag.get(d, [["y"], "nope", ("x", 1)])
    assert isinstance(info.value, ftdag.UnknownKeyError)
    assert info.value.keys == ["nope", ("x", 1)]


def test_a_missing_dependency_or_a_cycle_is_named():
    with pytest.raises(ftdag.MissingDependencyError, match="'b' depends on unknown key"):
        ftdag.get({"a": 1, "b": Task("b", add, TaskRef("a"), TaskRef("zz"))}, "b")
    with pytest.raises(ftdag.CycleError) as info:
        ftdag.get({"x": (inc, "y"), "y": (inc, "z"), "z": (inc, "x")}, "x")
    assert set(info.value.cycle) == {"x", "y", "z"}


def scaled(x, scale=1):
    return scale * x


def digits(a, b, c):
    return 100 * a + 10 * b + c


def test_get_calls_plain_tasks_directly_and_every_other_node_through_itself(executor):
    graph = {
        "x": DataNode("x", 3),
        "lit": Task("lit", total, 10, 20, TaskRef("x")),  # literals, then references: a partial
        "rep": Task("rep", digits, TaskRef("lit"), TaskRef("x"), TaskRef("x")),  # the function itself
        "late": Task("late", total, TaskRef("x"), 100),  # a literal after a reference: the node
        "nested": Task("nested", sum, List(TaskRef("x"), TaskRef("lit"))),  # a nested node
        "kw": Task("kw", scaled, TaskRef("rep"), scale=TaskRef("x")),  # keywords
        "alias": Alias("alias", "late"),
        "end": Task("end", total, TaskRef("rep"), TaskRef("late"), TaskRef("alias")),
    }
    keys = [["end", "nested"], "kw", "lit"]
    assert ftdag.get(graph, keys, executor=executor) == dask.get(graph, keys) == ((3539, 36), 9999, 33)
    dag = _dask._build_all(graph, _dask._flatten(keys), _dask._task_spec("test"))
    fns = {k: dag._fns[dag._ids[k]] for k in graph}
    deps = {k: [dag._keys[d] for d in dag._deps[dag._ids[k]]] for k in graph}
    assert (fns["lit"].func, fns["lit"].args, deps["lit"]) == (total, (10, 20), ["x"])
    assert (fns["rep"], deps["rep"]) == (digits, ["lit", "x", "x"])  # in argument order, with repeats
    for k in ("late", "nested", "kw", "alias"):
        assert fns[k].func is _dask.call_node and fns[k].args[0] is graph[k], k
    assert fns["x"] is None


def test_get_builds_the_whole_graph_but_runs_only_what_the_keys_need(executor):
    ran = []
    graph = {"a": 1, "b": (inc, "a"), "c": (ran.append, "a"), "d": (inc, "b")}
    assert ftdag.get(graph, "b", executor=executor) == 2 and ran == []
    # A broken node that the keys do not need (a missing dependency, a cycle) is not an error.
    broken = {**graph, "e": Task("e", inc, TaskRef("missing")), "f": (inc, "g"), "g": (inc, "f")}
    assert ftdag.get(broken, ["d", "b"], executor=executor) == (3, 2) and ran == []
    with pytest.raises(ftdag.MissingDependencyError, match="'e' depends on unknown key"):
        ftdag.get(broken, "e", executor=executor)


def test_a_10000_task_chain_does_not_recurse():
    d = {f"x{i + 1}": (inc, f"x{i}") for i in range(10_000)}
    d["x0"] = 0
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(200)  # the walk, the build and the run are all iterative
    try:
        assert ftdag.get(d, "x10000") == 10_000
        dag = ftdag.from_dask(d)
    finally:
        sys.setrecursionlimit(limit)
    assert len(dag) == 10_001
    # The same chain as a Delayed (dask.delayed(inc)(x) 10,000 times over takes dask about a
    # minute here: each call merges the graph so far), computed through dask.compute.
    chain = {"c0": Task("c0", inc, 0), **{f"c{i}": Task(f"c{i}", inc, TaskRef(f"c{i - 1}")) for i in range(1, 10_000)}}
    assert Delayed("c9999", chain).compute(scheduler=ftdag.get) == 10_000


# -- exceptions ------------------------------------------------------------------------------


def _check_raised(exc: BaseException, key) -> None:
    assert type(exc) is ZeroDivisionError  # the task's own exception, not a TaskError
    assert any(repr(key) in note and "ftdag.get" in note for note in getattr(exc, "__notes__", ()))
    assert not isinstance(exc.__context__, ftdag.TaskError)


def test_a_task_exception_reaches_the_caller_as_it_is_with_a_note(executor):
    d = {"a": 1, "b": (boom, "a"), "c": (inc, "b")}
    with pytest.raises(ZeroDivisionError, match="boom 1") as info:
        ftdag.get(d, "c", executor=executor)
    _check_raised(info.value, "b")
    assert executor.run(ftdag.from_dask({"a": 1}), "a")["a"] == 1  # still usable


def test_a_task_exception_through_dask_compute_on_the_build_backend():
    x = dask.delayed(boom, pure=True)(3)
    y = dask.delayed(inc)(x)
    with pytest.raises(ZeroDivisionError, match="boom 3") as info:
        dask.compute(y, scheduler=ftdag.get)
    _check_raised(info.value, x.key)


# -- callbacks ------------------------------------------------------------------------------


class Recording(DaskCallback):
    """Records dask's callback calls and checks the state's sizes at each task event."""

    def __init__(self):
        super().__init__()
        self.calls = []
        self.lock = threading.Lock()
        self.tasks = None

    def _start(self, dsk):
        self.calls.append(("start", len(dsk)))

    def _start_state(self, dsk, state):
        self.tasks = len(state["ready"]) + len(state["waiting"])
        assert not state["running"] and not state["finished"]
        self.calls.append(("start_state", self.tasks))

    def _check(self, state):
        sizes = [len(state[k]) for k in ("ready", "waiting", "running", "finished")]
        assert sum(sizes) == self.tasks, sizes
        return sizes

    def _pretask(self, key, dsk, state):
        with self.lock:
            assert key in state["running"] and key in dsk
            self.calls.append(("pretask", key, self._check(state)))

    def _posttask(self, key, result, dsk, state, worker_id):
        with self.lock:
            assert key in state["finished"]
            self.calls.append(("posttask", key, result, self._check(state), worker_id))

    def _finish(self, dsk, state, failed):
        self.calls.append(("finish", failed, len(state.get("finished", ()))))


def test_callbacks_are_called_as_get_async_calls_them(maybe_executor):
    ex = maybe_executor
    backend = ex.config.backend if ex is not None else build_backend()
    d = {"s": 1, "a": (inc, "s"), "b": (double, "a"), "c": (add, "a", "b"), "unused": (inc, "s")}
    rec = Recording()
    with rec:
        assert ftdag.get(d, ["c", "b"], executor=ex) == (6, 4)
    kinds = [c[0] for c in rec.calls]
    assert kinds[:2] == ["start", "start_state"] and kinds[-1] == "finish"
    assert rec.calls[0] == ("start", 5)  # the whole (converted) graph, as get_async passes it
    assert rec.tasks == 3  # a, b, c: the requested keys' tasks, not the data
    assert sorted(c[1] for c in rec.calls if c[0] == "pretask") == ["a", "b", "c"]
    posts = [c for c in rec.calls if c[0] == "posttask"]
    assert [c[3][3] for c in posts] == [1, 2, 3]  # finished grows by one per task
    results = {c[1]: c[2] for c in posts}
    if backend == "processes":
        assert results == {"a": None, "b": None, "c": None}  # values stay in the workers
    else:
        assert results == {"a": 2, "b": 4, "c": 6}
    assert all(0 <= c[4] < 2 for c in posts) if ex is not None else True
    for key in "abc":
        assert kinds.index("pretask") < kinds.index("posttask")
        pre = next(i for i, c in enumerate(rec.calls) if c[0] == "pretask" and c[1] == key)
        post = next(i for i, c in enumerate(rec.calls) if c[0] == "posttask" and c[1] == key)
        assert pre < post
    assert rec.calls[-1] == ("finish", False, 3)


def test_callbacks_given_as_an_argument_and_finish_reports_failure():
    rec = Recording()
    with pytest.raises(ZeroDivisionError):
        ftdag.get({"a": 1, "b": (boom, "a")}, "b", callbacks=[rec])
    assert rec.calls[-1][:2] == ("finish", True)
    start_only = []
    ftdag.get({"a": 1, "b": (inc, "a")}, "b", callbacks=[(start_only.append, None, None, None, None)])
    assert len(start_only) == 1


def test_callbacks_see_an_expression_as_its_graph():
    rec = Recording()
    with rec:
        assert dask.compute(delayed_graph(4), scheduler=ftdag.get) == (12,)
    assert rec.tasks == 5 and rec.calls[-1] == ("finish", False, 5)


def test_progress_bar_draws_progress(maybe_executor):
    """dask's ProgressBar redraws from a timer thread, from ``state``: that state must grow as
    tasks finish (checked at each posttask, without timing) and end at 100%."""
    ex = maybe_executor
    x = dask.delayed(0)
    for _ in range(8):
        x = dask.delayed(step)(x)
    out = io.StringIO()
    counts = FinishedCounts()
    with ProgressBar(out=out, dt=0.005), counts:
        assert dask.compute(x, scheduler=functools.partial(ftdag.get, executor=ex)) == (8,)
    text = out.getvalue()
    assert text.rstrip().endswith("s") and "100% Completed" in text, text
    assert counts.seen == sorted(counts.seen) and counts.seen[-1] == len(counts.seen) >= 8, counts.seen


def test_profiler_records_every_task_like_sync(executor):
    bag = db.from_sequence(range(40), npartitions=4).map(inc).sum()
    with Profiler() as ours:
        assert bag.compute(scheduler=functools.partial(ftdag.get, executor=executor)) == 820
    with Profiler() as ref:
        bag.compute(scheduler="sync")
    def names(prof):  # keys with their tokens out (compute's final key has a new one each time)
        return sorted(re.sub(r"-[0-9a-f]{32}", "", str(r.key)) for r in prof.results)

    assert len(ours.results) == len(ref.results) and names(ours) == names(ref)
    for r in ours.results:
        assert r.start_time <= r.end_time and 0 <= r.worker_id < 2
        assert r.task is not None


# -- executors and num_workers --------------------------------------------------------------


def test_runs_share_one_default_executor_and_its_pool():
    d = {"a": 1, "b": (inc, "a")}
    ftdag.get(d, "b")
    default = _dask._executors[None]
    pool = default._threads or default._processes
    assert pool is not None
    for _ in range(3):
        assert ftdag.get(d, "b") == 2
    assert _dask._executors[None] is default and (default._threads or default._processes) is pool
    assert list(_dask._executors) == [None]
    assert default.config.backend == "auto"


def test_num_workers_selects_an_executor_with_that_many_workers():
    rec = Recording()
    d = {"s": 0, **{f"t{i}": (inc, "s") for i in range(8)}}
    keys = [f"t{i}" for i in range(8)]
    with rec:
        assert ftdag.get(d, keys, num_workers=1) == (1,) * 8
    assert {c[4] for c in rec.calls if c[0] == "posttask"} == {0}  # one worker slot
    one = _dask._executors[1]
    assert one.config.max_workers == 1
    ftdag.get(d, keys, num_workers=1)
    assert _dask._executors[1] is one  # kept for later calls
    default_workers = ftdag.ExecutorConfig().max_workers
    ftdag.get(d, keys, num_workers=default_workers)
    assert set(_dask._executors) == {None, 1}  # the default's count is the default
    with dask.config.set(num_workers=3):  # dask's config, as dask.threaded.get reads it
        ftdag.get(d, keys)
    assert _dask._executors[3].config.max_workers == 3
    assert dask.compute(delayed_graph(), scheduler=ftdag.get, num_workers=3) == (30,)


def test_bad_num_workers_and_executor_arguments():
    d = {"a": 1}
    with pytest.raises(ValueError, match=r"num_workers must be None or an int >= 1, got 0"):
        ftdag.get(d, "a", num_workers=0)
    with ftdag.Executor(max_workers=2, backend="sequential") as ex:
        with pytest.raises(ValueError, match=r"num_workers=3 contradicts .* max_workers=2"):
            ftdag.get(d, "a", executor=ex, num_workers=3)
        assert ftdag.get(d, "a", executor=ex, num_workers=2) == 1
    with pytest.raises(TypeError, match="executor must be an ftdag.Executor"):
        ftdag.get(d, "a", executor=object())


def test_unknown_keyword_arguments_are_ignored():
    assert ftdag.get({"a": 1, "b": (inc, "a")}, "b", cache=None, pool=None, chunksize=3, whatever=object()) == 2


def test_a_task_may_run_a_dask_graph_on_the_executor_running_it():
    with ftdag.Executor(backend="threads", max_workers=2) as ex:
        _NESTED_EXECUTOR[:] = [ex]
        try:
            d = {"x": 1, "y": (compute_inside, "x"), "z": (compute_inside, "y")}
            assert ftdag.get(d, "z", executor=ex) == 3  # the inner runs go inline, no deadlock
        finally:
            _NESTED_EXECUTOR.clear()


def test_processes_run_delayed_graphs_with_lambdas_and_closures():
    offset = 5
    x = dask.delayed(lambda v: v + offset)(dask.delayed(double)(3))
    with ftdag.Executor(backend="processes", max_workers=2) as ex:
        assert x.compute(scheduler=functools.partial(ftdag.get, executor=ex)) == 11
        bag = db.from_sequence(range(10), npartitions=2).map(lambda v: v * offset).sum()
        assert bag.compute(scheduler=functools.partial(ftdag.get, executor=ex)) == 225


# -- conversion -----------------------------------------------------------------------------


def _same(a, b) -> bool:
    return bool((a == b).all()) if hasattr(a, "shape") else a == b


def test_from_dask_then_run_equals_dask(executor):
    x = delayed_graph(5)
    arr = (da.ones((32, 32), chunks=8) * 3).sum(axis=1)
    bag = db.from_sequence(range(30), npartitions=3).map(inc)
    for coll in (x, arr, bag):
        keys = _dask._flatten(coll.__dask_keys__())
        dag = ftdag.from_dask(coll)
        res = executor.run(dag, keys)
        ref = dask.get(coll.__dask_graph__(), keys)
        assert len(ref) == len(keys) and all(_same(res[k], r) for k, r in zip(keys, ref))
        assert res.stats.executed == len(dag)


def test_from_dask_keeps_keys_culls_to_the_requested_keys_and_gives_sources():
    d = {"s": 1, ("t", 0): (inc, "s"), ("t", 1): (double, ("t", 0)), "other": (inc, "s"), "alias": ("t", 1)}
    dag = ftdag.from_dask(d)
    assert set(dag.keys()) == set(d)
    assert dag.is_source("s") and not dag.is_source(("t", 0))
    assert dag.dependencies(("t", 1)) == (("t", 0),)
    part = ftdag.from_dask(d, keys=[[("t", 1)]])
    assert set(part.keys()) == {"s", ("t", 0), ("t", 1)}
    with pytest.raises(KeyError, match="nope"):
        ftdag.from_dask(d, keys=["nope"])
    with ftdag.Executor(backend="sequential") as ex:
        assert dict(ex.run(dag, ["alias", "other"])) == {"alias": 4, "other": 2}


def test_from_dask_dags_take_the_ftdag_api(tmp_path):
    d = {"s": 1, "a": (inc, "s"), "b": (double, "a")}
    dag = ftdag.from_dask(d)
    store = ftdag.MemoryStore()

    class Count(ftdag.Callback):
        def __init__(self):
            self.ends = []

        def on_task_end(self, key, worker, elapsed_s, error):
            self.ends.append(key)

    with ftdag.Executor(max_workers=2) as ex:
        seen = Count()
        first = ex.run(dag, "b", store=store, callbacks=[seen])
        assert first["b"] == 4 and first.stats.stored == 2 and sorted(seen.ends) == ["a", "b"]
        again = ex.run(dag, "b", store=store)
        assert again["b"] == 4 and again.stats.loaded >= 1 and again.stats.stored == 0
        assert dict(ex.as_completed(dag, ["a", "b"])) == {"a": 2, "b": 4}


def test_to_dask_runs_on_dask_schedulers_with_ftdag_results():
    b = ftdag.DagBuilder()
    b.add_source("n", 3)
    b.add_source("looks_like_a_task", (inc, "n"))  # a literal, not a task
    b.add_source("looks_like_a_key", "n")  # a literal string, not an alias
    b.add_source("list_of_keys", ["n", "n"])
    b.add_task("sq", ["n", "n"], lambda x, y: x * y)
    b.add_task(("kw", 1), {"base": "n", "exp": "sq"}, pow)
    b.add_task("lit", ["looks_like_a_task", "looks_like_a_key", "list_of_keys"], lambda t, k, ks: (t, k, ks))
    b.add_task("first", [], lambda: "ran first")
    b.add_task("later", ["n"], inc, after="first")  # an order edge
    dag = b.build()
    keys = dag.keys()
    with ftdag.Executor(backend="sequential") as ex:
        ours = ex.run(dag, keys)
    dsk = dag.to_dask()
    assert set(dsk) == set(keys)
    for scheduler in (dask.get, dask.threaded.get):
        assert list(scheduler(dsk, keys)) == [ours[k] for k in keys]
    assert ours["lit"] == ((inc, "n"), "n", ["n", "n"]) and ours[("kw", 1)] == 3**9
    assert dsk["first"].key == "first" and "first" in dsk["later"].dependencies


def test_to_dask_of_a_from_dask_dag_gives_back_the_nodes_and_refuses_exclusion():
    x = delayed_graph(3)
    graph = convert_legacy_graph(x.__dask_graph__())
    back = ftdag.from_dask(x).to_dask()
    assert back.keys() == graph.keys()
    assert all(back[k] == graph[k] for k in graph)
    assert dask.get(back, x.key) == 6
    b = ftdag.DagBuilder()
    b.add_task("w", [], int, writes="db")
    with pytest.raises(ValueError, match=r"task 'w' reads or writes shared state"):
        b.build().to_dask()
    b = ftdag.DagBuilder()
    b.add_task("g", [], int, resources={"gpu": 1})
    with pytest.raises(ValueError, match=r"task 'g' holds resources"):
        b.build().to_dask()


# -- dask stays optional --------------------------------------------------------------------


def _python(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=SRC)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=3 * TIMEOUT)


def test_importing_ftdag_does_not_import_dask():
    proc = _python(
        "import ftdag, sys; assert 'dask' not in sys.modules\n"
        "assert 'ftdag._dask' not in sys.modules\n"
        "ftdag.get, ftdag.from_dask, ftdag.Dag.to_dask  # resolved without importing dask\n"
        "assert 'dask' not in sys.modules and 'get' in dir(ftdag)\n"
        "from ftdag import get, from_dask\n"
        "assert 'dask' not in sys.modules\n"
    )
    assert proc.returncode == 0, proc.stderr


def test_a_script_using_the_shared_executor_exits_promptly():
    proc = _python(  # (its timeout fails the test if the shared executor keeps the script alive)
        "import dask, ftdag\n"
        "def f(x): return x + 1\n"
        "print(dask.delayed(f)(dask.delayed(f)(1)).compute(scheduler=ftdag.get))\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "3"


def test_missing_dask_names_the_extra(monkeypatch):
    dag = ftdag.from_dask({"a": 1})
    monkeypatch.setitem(sys.modules, "dask", None)  # makes `import dask` raise ImportError
    for call in (lambda: ftdag.get({"a": 1}, "a"), lambda: ftdag.from_dask({"a": 1}), dag.to_dask):
        with pytest.raises(ImportError, match=r"needs dask .*pip install 'ftdag\[dask\]'"):
            call()


def test_unknown_attribute_of_ftdag_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        ftdag.nope  # noqa: B018


# -- the benchmark script -------------------------------------------------------------------


def test_the_benchmark_script_measures_tiny_workloads():
    """benchmarks/dask_get.py's measurement on tiny sizes (its real sizes take minutes)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    try:
        import dask_get
    finally:
        sys.path.pop(0)
    import cloudpickle

    cloudpickle.register_pickle_by_value(dask_get)  # worker processes cannot import it by name
    try:
        gets = dask_get.schedulers(2)
        rows = dask_get.measure("chain", 50, dask_get.chain(50), gets, 1, lambda s: None)
        rows += dask_get.measure("bag", 8, dask_get.bag(8, 10), gets, 1, lambda s: None)
        rows += dask_get.measure("array", 4, dask_get.array(4), gets, 1, lambda s: None)
    finally:
        cloudpickle.unregister_pickle_by_value(dask_get)
    assert [(r["workload"], r["scheduler"]) for r in rows] == [
        (w, s) for w in ("chain", "bag", "array") for s in ("ftdag", "threaded", "sync")]
    chain = rows[0]
    assert chain["tasks"] == 50 and chain["target"] == 0.1 and isinstance(chain["met"], bool)
    assert all(r["best_s"] > 0 and r["per_task_us"] > 0 for r in rows)
    assert rows[1]["vs_threaded"] == 1.0 and "target" not in rows[6]
    assert "| chain | ftdag | 50 |" in dask_get.table(rows)
