"""Run semantics shared by every backend: pruning, results, errors, memory release, stats.

Most tests take a ``runner``: ``Executor.run`` on the sequential, thread and process
backends, or ``Executor.run_sequential`` on a thread-backend executor (which must still run
on the calling thread).  Task calls are counted (``runner.call_log()``: in the test's
process, or in a manager for the process backend, whose tasks run elsewhere), so every test
states exactly which tasks ran and how often.  Tasks must therefore be picklable (lambdas
and closures are: cloudpickle is installed in the test environments), and a test that
needs to share objects with its tasks takes an ``in_process_runner`` instead, saying why.

The process backend's runs share one executor (and one manager) per module, so that its
worker processes start once.
"""

import collections
import dataclasses
import functools
import gc
import os
import random
import threading
import weakref
from collections.abc import Mapping

import pytest
from helpers import (
    TIMEOUT,
    Background,
    CallLog,
    CallManager,
    ancestors,
    build_dag,
    evaluate,
    kept_by_fixture,
    mix,
    random_graph,
    results,
    stress,
)

import ftdag
from ftdag.testing import shared_manager

# -- runners ------------------------------------------------------------------------------------


class Runner:
    """Runs graphs one way; ``backend`` is what ``res.stats.backend`` must say.

    ``executor`` and ``manager``: the module's shared process executor and call-counting
    manager (the process backend only); the runner does not close them.
    """

    def __init__(self, kind, max_workers=2, executor=None, manager=None):
        self.kind = kind
        self.backend = "sequential" if kind == "run_sequential" else kind
        self._owned = executor is None
        if executor is None:
            backend = "threads" if kind == "run_sequential" else kind
            executor = ftdag.Executor(ftdag.ExecutorConfig(backend=backend, max_workers=max_workers))
        self.executor = executor
        self._manager = manager
        self._method = executor.run_sequential if kind == "run_sequential" else executor.run

    @property
    def on_calling_thread(self):
        return self.backend == "sequential"

    @property
    def in_process(self):
        """Whether tasks run in this process (so they share its objects)."""
        return self.backend != "processes"

    def call_log(self):
        """A :class:`CallLog` that sees this runner's task calls, wherever they run."""
        return CallLog(self._manager)

    def __call__(self, dag, outputs):
        return self._method(dag, outputs)

    def close(self):
        if self._owned:
            self.executor.close()


IN_PROCESS_KINDS = ["sequential", "threads", "run_sequential"]
RUNNER_KINDS = IN_PROCESS_KINDS + ["processes"]


@pytest.fixture(scope="module")
def call_manager():
    with shared_manager(CallManager) as manager, kept_by_fixture(manager):
        yield manager


@pytest.fixture(scope="module")
def process_executor():
    with ftdag.Executor(ftdag.ExecutorConfig(backend="processes", max_workers=2)) as ex, kept_by_fixture(ex):
        yield ex


def make_runner(request, kind, max_workers=2):
    if kind == "processes":  # the module's executor and manager, started on first use
        return Runner(kind, executor=request.getfixturevalue("process_executor"),
                      manager=request.getfixturevalue("call_manager"))
    return Runner(kind, max_workers)


@pytest.fixture(params=RUNNER_KINDS)
def runner(request):
    r = make_runner(request, request.param)
    yield r
    r.close()


@pytest.fixture(params=IN_PROCESS_KINDS)
def in_process_runner(request):
    """Like ``runner``, but only runners whose tasks run in this process."""
    r = make_runner(request, request.param)
    yield r
    r.close()


@pytest.fixture(params=IN_PROCESS_KINDS)
def one_worker_runner(request):
    """Like ``in_process_runner``, but a thread backend has a single worker.

    On free-threaded CPython an object whose last reference is dropped by a thread other
    than the one that made it may be freed a little later (biased reference counting), so
    tests that check *when* a fan-in's input dies keep every task on one thread.
    """
    r = make_runner(request, request.param, max_workers=1)
    yield r
    r.close()


@pytest.fixture(params=["sequential", "threads", "processes"])
def backend(request):
    """A backend for tests that make their own executor."""
    return request.param


def call_log_for(request, backend):
    """A :class:`CallLog` that sees the calls of tasks run by ``backend``."""
    return CallLog(request.getfixturevalue("call_manager") if backend == "processes" else None)


def here():
    """Where the calling code runs, as :class:`CallLog` records it."""
    return os.getpid(), threading.get_ident()


def add(*xs):
    return sum(xs)


def sample_graph(log):
    """Two sources and seven tasks::

        s1 -> a -> c -> d -> f      g <- s2
        s2 -> b -> c    a -> e -> f  h <- g
              b -> g
    """
    b = ftdag.DagBuilder()
    b.add_source("s1", 1)
    b.add_source("s2", 10)
    spec = {
        "a": (["s1"], lambda x: x + 1),  # 2
        "b": (["s2"], lambda x: x * 2),  # 20
        "c": (["a", "b"], add),  # 22
        "d": (["c"], lambda x: x * 10),  # 220
        "e": (["a"], lambda x: x - 1),  # 1
        "f": (["e", "d"], add),  # 221
        "g": (["b"], lambda x: -x),  # -20
        "h": (["g"], lambda x: x - 1),  # -21
    }
    for key, (deps, fn) in spec.items():
        b.add_task(key, deps, log.task(key, fn))
    return b.build()


SAMPLE_VALUES = {"s1": 1, "s2": 10, "a": 2, "b": 20, "c": 22, "d": 220, "e": 1, "f": 221, "g": -20, "h": -21}
SAMPLE_SOURCES = {"s1", "s2"}


# -- basics -------------------------------------------------------------------------------------


def test_readme_example(runner):
    b = ftdag.DagBuilder()
    b.add_source("a", 1)
    b.add_source("b", 2)
    b.add_task("c", ["a", "b"], lambda a, b: a + b)
    dag = b.build()
    res = runner(dag, ["c"])
    assert isinstance(res, ftdag.RunResult)
    assert res["c"] == 3
    assert dict(res) == {"c": 3}


def test_arguments_in_deps_order_with_repeats(runner):
    b = ftdag.DagBuilder()
    b.add_source("x", "X")
    b.add_source("y", "Y")
    b.add_task("t", ["y", "x", "y"], lambda *args: args)
    b.add_task("u", [], lambda: "no deps")
    res = runner(b.build(), ["t", "u"])
    assert dict(res) == {"t": ("Y", "X", "Y"), "u": "no deps"}


def test_values_are_passed_by_reference(in_process_runner):
    # In-process only: the process backend pickles values to and from its workers.
    runner = in_process_runner
    obj = object()
    b = ftdag.DagBuilder()
    b.add_source("o", obj)
    b.add_task("same", ["o"], lambda o: o)
    b.add_task("pair", ["same", "o"], lambda p, o: (p, o))
    res = runner(b.build(), ["o", "same", "pair"])
    assert res["o"] is obj
    assert res["same"] is obj
    assert res["pair"][0] is obj and res["pair"][1] is obj


def test_none_results(runner):
    b = ftdag.DagBuilder()
    b.add_task("none", [], lambda: None)
    b.add_task("is_none", ["none"], lambda v: v is None)
    res = runner(b.build(), ["none", "is_none"])
    assert dict(res) == {"none": None, "is_none": True}


def test_result_is_a_read_only_mapping(runner):
    log = runner.call_log()
    res = runner(sample_graph(log), ["c", "s1"])
    assert isinstance(res, Mapping)
    assert len(res) == 2
    assert "c" in res and "d" not in res
    assert res.get("d", "missing") == "missing"
    with pytest.raises(KeyError):
        res["a"]  # computed, but not requested
    with pytest.raises(TypeError):
        res["c"] = 0
    with pytest.raises(TypeError):
        del res["c"]
    assert dict(res) == {"c": 22, "s1": 1}


# -- pruning ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "outputs, tasks",
    [
        (["a"], {"a"}),
        (["c"], {"a", "b", "c"}),
        (["e"], {"a", "e"}),
        (["f"], {"a", "b", "c", "d", "e", "f"}),
        (["h"], {"b", "g", "h"}),
        (["e", "h"], {"a", "e", "b", "g", "h"}),
        (["f", "h"], {"a", "b", "c", "d", "e", "f", "g", "h"}),
        (["s1"], set()),
        (["s2", "a"], {"a"}),
        (["c", "c", "a"], {"a", "b", "c"}),
    ],
)
def test_pruning_is_exact(runner, outputs, tasks):
    log = runner.call_log()
    dag = sample_graph(log)
    res = runner(dag, outputs)
    log.assert_ran_once(tasks)
    assert dict(res) == {k: SAMPLE_VALUES[k] for k in outputs}
    executed = dag.ancestors(outputs)
    assert executed - SAMPLE_SOURCES == tasks
    assert res.stats.executed == len(executed)
    assert res.stats.pruned == len(dag) - len(executed)


def test_repeated_runs_of_one_dag(runner):
    log = runner.call_log()
    dag = sample_graph(log)
    for _ in range(3):
        assert dict(runner(dag, ["d"])) == {"d": 220}
        assert dict(runner(dag, ["h"])) == {"h": -21}
    assert dict(log.counts) == {"a": 3, "b": 6, "c": 3, "d": 3, "g": 3, "h": 3}


def test_one_dag_many_executors():
    log = CallLog()
    dag = sample_graph(log)
    with ftdag.Executor(ftdag.ExecutorConfig(backend="sequential")) as ex1, \
            ftdag.Executor(ftdag.ExecutorConfig(backend="threads", max_workers=2)) as ex2:
        assert dict(ex1.run(dag, ["f"])) == dict(ex2.run(dag, ["f"])) == {"f": 221}
    assert dict(log.counts) == {k: 2 for k in "abcdef"}


def test_one_dag_from_many_threads():
    # A Dag is shared by several threads, each running its own requests at the same time.
    log = CallLog()
    dag = sample_graph(log)
    requests = [["f"], ["h"], ["c", "e"], ["d", "g"]]
    barrier = threading.Barrier(len(requests))
    runs = stress(50)

    def worker(outputs):
        with ftdag.Executor(ftdag.ExecutorConfig(backend="sequential")) as ex:
            barrier.wait(timeout=TIMEOUT)
            return [dict(ex.run(dag, outputs)) for _ in range(runs)]

    got = results([Background(worker, outputs) for outputs in requests])  # a worker's error is raised here
    assert got == [[{k: SAMPLE_VALUES[k] for k in outputs}] * runs for outputs in requests]
    assert log.counts == {k: runs * n for k, n in collections.Counter(
        k for outputs in requests for k in dag.ancestors(outputs) - SAMPLE_SOURCES).items()}


# -- random graphs against a hand-written evaluation ---------------------------------------------


@pytest.mark.parametrize("seed", range(25))
def test_random_dags(runner, seed):
    rng = random.Random(seed)
    graph = random_graph(rng, rng.randint(1, 80), max_deps=5, sources=0.15)
    expected = evaluate(graph)
    log = runner.call_log()
    dag = build_dag(graph, lambda k: log.task(k, functools.partial(mix, k)), shuffle=rng)
    keys = sorted(graph)
    requests = [keys, [keys[-1]]] + [rng.sample(keys, rng.randint(1, min(6, len(keys)))) for _ in range(4)]
    runs = collections.Counter()
    for outputs in requests:
        res = runner(dag, outputs)
        assert dict(res) == {k: expected[k] for k in outputs}
        executed = ancestors(graph, outputs)
        assert dag.ancestors(outputs) == executed
        assert res.stats.executed == len(executed)
        assert res.stats.pruned == len(graph) - len(executed)
        runs.update(k for k in executed if graph[k] is not None)
        assert log.counts == runs  # each planned task exactly once per run, nothing else
        if not runner.on_calling_thread:  # the pools' bounds
            config = runner.executor.config
            assert res.stats.peak_in_flight <= config.in_flight_bound
            assert res.stats.peak_queue_len <= config.worker_queue_cap


# -- outputs: unknown, empty, bare strings --------------------------------------------------------


def test_unknown_outputs_raise_before_anything_runs(runner):
    log = runner.call_log()
    dag = sample_graph(log)
    with pytest.raises(ftdag.UnknownOutputError) as cm:
        runner(dag, ["f", "nope", "h", ("gone", 1)])
    err = cm.value
    assert isinstance(err, KeyError)
    assert err.keys == ["nope", ("gone", 1)]
    assert "'nope'" in str(err)
    assert "('gone', 1)" in str(err)
    assert log.counts == {}
    # The executor is still usable.
    assert dict(runner(dag, ["h"])) == {"h": -21}


def test_unknown_bare_string_output(runner):
    log = runner.call_log()
    dag = sample_graph(log)
    with pytest.raises(ftdag.UnknownOutputError) as cm:
        runner(dag, "ab")  # "a" is a key, but "ab" is one key and it is unknown
    assert cm.value.keys == ["ab"]
    assert log.counts == {}


def test_unhashable_output_is_unknown(runner):
    log = runner.call_log()
    with pytest.raises(ftdag.UnknownOutputError) as cm:
        runner(sample_graph(log), [["a"]])
    assert cm.value.keys == [["a"]]
    assert log.counts == {}


@pytest.mark.parametrize("outputs", [[], set(), {}, iter([]), frozenset()],
                         ids=["list", "set", "dict", "iterator", "frozenset"])
def test_empty_outputs(runner, outputs):
    log = runner.call_log()
    dag = sample_graph(log)
    res = runner(dag, outputs)
    assert len(res) == 0
    assert dict(res) == {}
    assert log.counts == {}
    assert res.stats.executed == 0
    assert res.stats.pruned == len(dag)


def test_bare_string_is_one_key(runner):
    log = runner.call_log()
    b = ftdag.DagBuilder()
    b.add_source("a", 1)
    b.add_task("b", [], log.task("b", lambda: 2))
    b.add_task("ab", ["a"], log.task("ab", lambda a: a + 100))
    b.add_source(b"xy", "bytes")
    b.add_source(b"x", "no")
    b.add_source(7, "int")
    dag = b.build()
    res = runner(dag, "ab")
    assert dict(res) == {"ab": 101}
    assert res.stats.executed == 2
    log.assert_ran_once({"ab"})
    assert dict(runner(dag, b"xy")) == {b"xy": "bytes"}
    assert dict(runner(dag, 7)) == {7: "int"}  # a non-iterable is one key


@pytest.mark.parametrize("make", [list, iter, dict.fromkeys, lambda ks: (k for k in ks)],
                         ids=["list", "iterator", "dict", "generator"])
def test_outputs_any_iterable_deduplicated_in_order(runner, make):
    log = runner.call_log()
    dag = sample_graph(log)
    res = runner(dag, make(["h", "c", "h", "a"]))
    assert list(res) == ["h", "c", "a"]
    assert dict(res) == {"h": -21, "c": 22, "a": 2}
    log.assert_ran_once({"a", "b", "c", "g", "h"})


def test_a_tuple_is_always_one_key(runner):
    """A tuple passed as ``outputs`` is one key, even when its items are keys too (dask's rule)."""
    log = runner.call_log()
    b = ftdag.DagBuilder()
    b.add_source("a", 1)
    b.add_source("b", 2)
    b.add_task(("a", "b"), ["a", "b"], log.task(("a", "b"), lambda a, b: a * 10 + b))
    dag = b.build()
    res = runner(dag, ("a", "b"))
    assert dict(res) == {("a", "b"): 12}
    log.assert_ran_once({("a", "b")})
    assert dict(runner(dag, ["a", "b"])) == {"a": 1, "b": 2}  # a list is several keys
    assert dag.ancestors(("a", "b")) == {("a", "b"), "a", "b"}
    assert dag.ancestors(["a"]) == {"a"}


def test_a_tuple_of_keys_that_is_not_a_key_is_unknown(runner):
    log = runner.call_log()
    dag = sample_graph(log)
    with pytest.raises(ftdag.UnknownKeyError) as cm:
        runner(dag, ("a", "c"))
    assert cm.value.keys == [("a", "c")]
    assert "a tuple is one key" in str(cm.value) and "['a', 'c']" in str(cm.value)
    with pytest.raises(ftdag.UnknownKeyError):
        runner(dag, ())
    assert log.counts == {}


def test_tuple_keys_are_requested_in_a_list(runner):
    b = ftdag.DagBuilder()
    b.add_source(("in", 0), 3)
    b.add_task(("out", 0), [("in", 0)], lambda x: x * 2)
    res = runner(b.build(), [("out", 0)])
    assert dict(res) == {("out", 0): 6}


# -- task errors --------------------------------------------------------------------------------


class Boom(Exception):
    pass


def assert_is_the_error(runner, got, raised):
    """``got`` is the exception that a task raised: the object itself, or for the process
    backend (which pickles it back from the worker) a copy of the same type and arguments."""
    if runner.in_process:
        assert got is raised
    else:
        assert type(got) is type(raised) and got.args == raised.args


def failing_graph(log, error):
    """s -> ok -> bad -> after -> last, and s -> side."""

    def fail(x):
        raise error

    b = ftdag.DagBuilder()
    b.add_source("s", 1)
    b.add_task("ok", ["s"], log.task("ok", lambda x: x + 1))
    b.add_task("bad", ["ok"], log.task("bad", fail))
    b.add_task("after", ["bad"], log.task("after", lambda x: x))
    b.add_task("last", ["after"], log.task("last", lambda x: x))
    b.add_task("side", ["s"], log.task("side", lambda x: x))
    return b.build()


def test_task_error(runner):
    log = runner.call_log()
    error = Boom("it broke")
    dag = failing_graph(log, error)
    with pytest.raises(ftdag.TaskError) as cm:
        runner(dag, ["last"])
    err = cm.value
    assert err.key == "bad"
    assert_is_the_error(runner, err.__cause__, error)
    assert not isinstance(err, ftdag.BuildError)
    message = str(err)
    assert "'bad'" in message
    assert "Boom" in message
    assert "it broke" in message
    # The original traceback is kept, down to the function that raised.
    if runner.in_process:
        tb = err.__cause__.__traceback__
        while tb.tb_next is not None:
            tb = tb.tb_next
        assert tb.tb_frame.f_code.co_name == "fail"
    else:  # the worker's traceback, as text
        assert ", in fail\n" in str(err.__cause__.__cause__)
    log.assert_ran_once({"ok", "bad"})


def test_task_error_stops_dependents(runner):
    log = runner.call_log()
    dag = failing_graph(log, Boom())
    with pytest.raises(ftdag.TaskError):
        runner(dag, ["last", "side"])
    ran = log.ran
    assert {"ok", "bad"} <= ran
    assert not ran & {"after", "last"}
    assert all(n == 1 for n in log.counts.values())


def test_task_error_with_tuple_key(runner):
    log = runner.call_log()
    b = ftdag.DagBuilder()
    b.add_source(("in",), [])
    b.add_task(("stage", 3), [("in",)], log.task("t", lambda xs: xs[0]))
    with pytest.raises(ftdag.TaskError) as cm:
        runner(b.build(), [("stage", 3)])
    assert cm.value.key == ("stage", 3)
    assert isinstance(cm.value.__cause__, IndexError)
    assert "('stage', 3)" in str(cm.value)


def test_sequential_failure_starts_nothing_more():
    # On the calling thread the order is deterministic: nothing after the failing task runs.
    log = CallLog()
    b = ftdag.DagBuilder()
    b.add_task("first", [], log.task("first", lambda: 1))
    b.add_task("bad", [], log.task("bad", lambda: 1 / 0))
    for i in range(10):
        b.add_task(f"later{i}", [], log.task(f"later{i}", lambda: 1))
    dag = b.build()
    assert dag.keys()[:2] == ["first", "bad"]
    with ftdag.Executor(ftdag.ExecutorConfig(backend="sequential")) as ex, pytest.raises(ftdag.TaskError) as cm:
        ex.run(dag, dag.keys())
    assert isinstance(cm.value.__cause__, ZeroDivisionError)
    log.assert_ran_once({"first", "bad"})


class Abort(BaseException):
    pass


def test_base_exception_is_reraised_as_is(runner):
    log = runner.call_log()
    error = Abort()
    dag = failing_graph(log, error)
    with pytest.raises(Abort) as cm:
        runner(dag, ["last"])
    assert_is_the_error(runner, cm.value, error)
    assert "after" not in log.ran
    assert dict(runner(dag, ["side"])) == {"side": 1}


def test_executor_usable_after_failing_run(runner):
    log = runner.call_log()
    attempts = runner.call_log()  # (a list would not see the attempts made in worker processes)

    def flaky(x):
        n = attempts.hit("flaky")
        if n % 2:
            raise Boom(f"attempt {n}")
        return x * 100

    b = ftdag.DagBuilder()
    b.add_source("s", 1)
    b.add_task("pre", ["s"], log.task("pre", lambda x: x + 1))
    b.add_task("flaky", ["pre"], log.task("flaky", flaky))
    b.add_task("post", ["flaky"], log.task("post", lambda x: x + 1))
    b.add_task("other", ["s"], log.task("other", lambda x: -x))
    dag = b.build()
    for i in range(5):
        with pytest.raises(ftdag.TaskError) as cm:
            runner(dag, ["post"])
        assert str(cm.value.__cause__) == f"attempt {2 * i + 1}"
        assert dict(runner(dag, ["other"])) == {"other": -1}
        assert dict(runner(dag, ["post", "other"])) == {"post": 201, "other": -1}
    assert dict(log.counts) == {"pre": 10, "flaky": 10, "post": 5, "other": 10}
    # Another graph on the same executor.
    assert dict(runner(sample_graph(log), ["f"])) == {"f": 221}


# -- memory release -----------------------------------------------------------------------------


class Blob:
    """A result that counts how many of its kind are alive."""

    __slots__ = ("data", "tracker", "__weakref__")

    def __init__(self, tracker, size=16):
        self.data = bytearray(size)
        self.tracker = tracker
        tracker.born()

    def __del__(self):
        self.tracker.died()


class Tracker:
    def __init__(self):
        self._lock = threading.Lock()
        self.live = 0
        self.peak = 0

    def born(self):
        with self._lock:
            self.live += 1
            self.peak = max(self.peak, self.live)

    def died(self):
        with self._lock:
            self.live -= 1


# In-process runners only: these tests watch results die through weak references, which the
# process backend's pickled copies in its workers would not show.


def test_intermediate_released_before_later_node_runs(in_process_runner):
    runner = in_process_runner
    tracker = Tracker()
    refs = []
    seen = []  # (node, previous alive?, the one before dead?)

    def step(i):
        def fn(prev):
            if i >= 2:
                seen.append((i, refs[i - 1]() is prev, refs[i - 2]() is None))
            blob = Blob(tracker)
            refs.append(weakref.ref(blob))
            return blob

        return fn

    n = 12
    b = ftdag.DagBuilder()
    b.add_source("seed", None)
    for i in range(n):
        b.add_task(i, [i - 1 if i else "seed"], step(i))
    res = runner(b.build(), [n - 1])
    assert seen == [(i, True, True) for i in range(2, n)]
    assert res[n - 1] is refs[n - 1]()
    assert [r() is None for r in refs] == [True] * (n - 1) + [False]


def test_fan_in_input_released_after_last_consumer(one_worker_runner):
    runner = one_worker_runner
    tracker = Tracker()
    refs = {}
    alive_in_consumers = []
    alive_in_join = []

    def source_blob(_):
        blob = Blob(tracker)
        refs["a"] = weakref.ref(blob)
        return blob

    def consumer(*args):
        alive_in_consumers.append(all(x is refs["a"]() for x in args))
        return len(args)

    def join(*counts):
        alive_in_join.append(refs["a"]() is not None)
        return sum(counts)

    b = ftdag.DagBuilder()
    b.add_source("s", None)
    b.add_task("a", ["s"], source_blob)
    b.add_task("b1", ["a", "a"], consumer)  # listed twice: released only once, after both
    b.add_task("b2", ["a"], consumer)
    b.add_task("b3", ["a", "a", "a"], consumer)
    b.add_task("j", ["b1", "b2", "b3"], join)
    dag = b.build()

    res = runner(dag, ["j"])
    assert dict(res) == {"j": 6}
    assert alive_in_consumers == [True] * 3
    assert alive_in_join == [False]

    # A requested output is kept, however many consumers it has.
    res = runner(dag, ["j", "a"])
    assert res["j"] == 6
    assert res["a"] is refs["a"]()
    assert alive_in_consumers == [True] * 6
    assert alive_in_join == [False, True]


def test_10k_chain_of_1mb_results_holds_few_at_once(in_process_runner):
    runner = in_process_runner
    tracker = Tracker()
    size = 1 << 20

    def step(prev):
        return Blob(tracker, size)

    n = 10_000
    b = ftdag.DagBuilder()
    b.add_source(-1, None)
    for i in range(n):
        b.add_task(i, [i - 1], step)
    res = runner(b.build(), [n - 1])
    assert len(res[n - 1].data) == size
    assert res.stats.executed == n + 1
    # While a step runs, its input and its own result are alive: two.
    assert tracker.peak <= 3, f"{tracker.peak} results of 1 MB were alive at once"
    assert tracker.live == 1
    if runner.on_calling_thread:
        del res
        gc.collect()
        assert tracker.live == 0


# -- large graphs -------------------------------------------------------------------------------


CHAIN = 200_000


@pytest.fixture(scope="module")
def long_chain():
    b = ftdag.DagBuilder()
    b.add_source(0, 0)
    inc = (1).__add__
    for i in range(1, CHAIN):
        b.add_task(i, [i - 1], inc)
    return b.build()


def test_200k_chain(runner, long_chain):
    # The process backend sends every task to a worker and back (tens of microseconds each, so
    # 200k of them would take half a minute): on it, the requests end early in the chain,
    # which still plans and prunes the whole 200k-node graph.
    last = CHAIN - 1 if runner.in_process else 2_000
    res = runner(long_chain, [last])
    assert dict(res) == {last: last}
    assert res.stats.executed == last + 1
    assert res.stats.pruned == CHAIN - last - 1
    res = runner(long_chain, [last // 2])
    assert dict(res) == {last // 2: last // 2}
    assert res.stats.executed == last // 2 + 1
    assert res.stats.pruned == CHAIN - last // 2 - 1


# -- stats, threads, executor lifecycle -----------------------------------------------------------


def test_stats(runner):
    log = runner.call_log()
    dag = sample_graph(log)
    res = runner(dag, ["e"])
    stats = res.stats
    assert isinstance(stats, ftdag.RunStats)
    assert stats.executed == 3  # s1, a, e
    assert stats.pruned == 7
    assert stats.backend == runner.backend
    assert isinstance(stats.wall_s, float)
    assert 0 <= stats.wall_s < 60
    if runner.backend == "sequential":
        assert stats.workers == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.executed = 0


def test_where_tasks_run(runner):
    log = runner.call_log()
    dag = sample_graph(log)
    runner(dag, ["f", "h"])
    if runner.on_calling_thread:
        assert log.where == {here()}
    elif runner.backend == "threads":
        # The calling thread helps: tasks run on it and on the pool's own threads only.
        pool = {(os.getpid(), t.ident) for t in threading.enumerate() if t.name.startswith("ftdag-worker-")}
        assert log.where <= pool | {here()}
    else:
        assert os.getpid() not in {pid for pid, _ in log.where}


def test_run_sequential_reports_sequential(backend):
    log = CallLog()
    with ftdag.Executor(ftdag.ExecutorConfig(backend=backend)) as ex:
        res = ex.run_sequential(sample_graph(log), ["d"])
    assert res.stats.backend == "sequential"
    assert dict(res) == {"d": 220}
    assert log.where == {here()}


@pytest.mark.parametrize("used", [False, True], ids=["unused", "used"])
def test_closed_executor_raises(request, backend, used):
    log = call_log_for(request, backend)
    dag = sample_graph(log)
    ex = ftdag.Executor(ftdag.ExecutorConfig(backend=backend))
    assert not ex.closed
    if used:
        assert dict(ex.run(dag, ["c"])) == {"c": 22}
    ex.close()
    assert ex.closed
    with pytest.raises(RuntimeError, match="closed"):
        ex.run(dag, ["c"])
    with pytest.raises(RuntimeError, match="closed"):
        ex.run_sequential(dag, ["c"])
    ex.close()  # idempotent
    assert ex.closed
    assert dict(log.counts) == ({"a": 1, "b": 1, "c": 1} if used else {})


def test_context_manager_closes(request, backend):
    log = call_log_for(request, backend)
    dag = sample_graph(log)
    with ftdag.Executor(ftdag.ExecutorConfig(backend=backend)) as ex:
        assert dict(ex.run(dag, ["a"])) == {"a": 2}
    assert ex.closed
    with pytest.raises(RuntimeError):
        ex.run(dag, ["a"])
    assert dict(log.counts) == {"a": 1}


@pytest.mark.parametrize("not_a_dag", [None, {"a": 1}, ftdag.DagBuilder()])
def test_run_needs_a_dag(runner, not_a_dag):
    with pytest.raises(TypeError) as cm:
        runner(not_a_dag, ["a"])
    assert "Dag" in str(cm.value)
    assert type(not_a_dag).__name__ in str(cm.value)

