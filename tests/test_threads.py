"""Concurrency invariants of the thread backend, checked with deterministic gating.

Tasks block on a :class:`ftdag.testing.Gate` that the test opens; the test waits on
conditions (gate arrivals, the pool's own counters) with timeouts.  Nothing sleeps.
"""

from __future__ import annotations

import functools
import random
import signal
import threading
import warnings

import pytest
from helpers import TIMEOUT, Background, build_dag, evaluate, random_graph, results, stress, tracked_mix

import ftdag
from ftdag.testing import ConcurrencyProbe, Gate, pool_state, wait_for_pool


def threads(max_workers, max_in_flight=None, worker_queue_cap=2):
    return ftdag.Executor(
        ftdag.ExecutorConfig(
            max_workers=max_workers, max_in_flight=max_in_flight, worker_queue_cap=worker_queue_cap, backend="threads"
        )
    )


def gated_independent(n, gate, probe, fail=None):
    """``n`` independent tasks t0..t{n-1} that wait at ``gate``; ``fail`` maps key -> exception to raise."""
    b = ftdag.DagBuilder()
    for i in range(n):
        key = f"t{i}"

        def task(key=key, i=i):
            with probe.track(key):
                gate.wait(key)
                if fail and key in fail:
                    raise fail[key]
            return i

        b.add_task(key, [], task)
    return b.build(), [f"t{i}" for i in range(n)]


def random_dag(seed, n, *, probe=None):
    """A seeded random DAG of ``n`` nodes (:func:`helpers.random_graph`); every task records
    its start and end in ``probe`` if given."""
    graph = random_graph(seed, n)
    if probe is None:
        return build_dag(graph)
    return build_dag(graph, lambda key: functools.partial(tracked_mix, probe, key))


def all_idle(state):
    """Every pool worker is asleep: nothing more can start until someone adds work."""
    return state.idle == state.workers


def assert_queue_bound(res, cap):
    assert res.stats.backend == "threads"
    assert res.stats.peak_queue_len <= cap


# -- the in-flight and queue bounds -----------------------------------------------------------


@pytest.mark.parametrize(
    "workers, max_in_flight, cap, n",
    [
        (4, 3, 2, 32),  # the bound is max_in_flight: one worker must stay idle
        (2, 2, 1, 12),
        (3, 5, 2, 24),
        (2, 100, 2, 20),  # more than the workers can hold: bound = 2 * (2 + 1)
        (3, 7, 1, 21),  # bound = min(7, 3 * 2) = 6
    ],
)
def test_in_flight_bound_is_reached_and_never_exceeded(workers, max_in_flight, cap, n):
    bound = min(max_in_flight, workers * (cap + 1))
    running = min(workers, bound)  # tasks that can be at the gate at once
    gate, probe = Gate(), ConcurrencyProbe()
    dag, outputs = gated_independent(n, gate, probe)
    with threads(workers, max_in_flight, cap) as ex:
        run = Background(ex.run, dag, outputs)
        gate.wait_for_arrivals(running, TIMEOUT)
        for released in range(n - running + 1):
            # Every worker that can take a task has one; the rest are asleep: nothing more can start.
            state = wait_for_pool(ex, lambda s: s.running == running and s.idle == s.workers - running, TIMEOUT)
            left = n - released - running  # not yet started
            assert state.in_flight == min(bound, running + left)
            assert state.in_flight <= bound
            assert all(q <= cap for q in state.queued)
            assert state.ready == left - (state.in_flight - running)
            assert gate.waiting == running == probe.current
            assert len(gate.arrived) == running + released
            if left == 0:
                break
            gate.release(1)
            gate.wait_for_arrivals(running + released + 1, TIMEOUT)
        gate.open()
        res = run.result()
    assert dict(res) == {f"t{i}": i for i in range(n)}
    assert res.stats.peak_in_flight == bound
    assert probe.peak == running
    assert_queue_bound(res, cap)
    if bound > workers:  # built to fill the queues: the cap is reached
        assert res.stats.peak_queue_len == cap


# -- each node once, after its dependencies; pruning -------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_each_node_once_and_after_its_dependencies(seed):
    n = 2000
    expected = evaluate(random_graph(seed, n))
    with threads(4) as ex:
        for _ in range(3):
            probe = ConcurrencyProbe()
            dag = random_dag(seed, n, probe=probe)
            outputs = [k for k in dag if not dag.dependents(k)]
            res = ex.run(dag, outputs)
            assert dict(res) == {k: expected[k] for k in outputs}
            assert_queue_bound(res, 2)

            started: dict = {}
            ended: dict = {}
            for seq, kind, key in probe.events():
                book = started if kind == "start" else ended
                assert key not in book, f"{key} {kind}ed twice"
                book[key] = seq
            tasks = {k for k in dag.ancestors(outputs) if not dag.is_source(k)}
            assert set(started) == set(ended) == tasks
            for key in tasks:
                for dep in dag.dependencies(key):
                    if not dag.is_source(dep):
                        assert ended[dep] < started[key], f"{key} started before its dependency {dep} ended"


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_pruning_under_parallelism_is_exact(seed):
    rng = random.Random(seed)
    with threads(3) as ex:
        for _ in range(5):
            probe = ConcurrencyProbe()
            dag = random_dag(seed, 1500, probe=probe)
            outputs = rng.sample(list(dag.keys()), 3)
            res = ex.run(dag, outputs)
            wanted = dag.ancestors(outputs)
            assert set(probe.started()) == {k for k in wanted if not dag.is_source(k)}
            assert len(probe.started()) == len(set(probe.started()))
            assert res.stats.executed == len(wanted)
            assert res.stats.pruned == len(dag) - len(wanted)
            assert dict(res) == dict(ex.run_sequential(dag, outputs))


# -- fail fast ------------------------------------------------------------------------------------


@pytest.mark.parametrize("exc_type", [ValueError, SystemExit, KeyboardInterrupt])
def test_fail_fast(exc_type):
    workers = 3
    gate, probe = Gate(), ConcurrencyProbe()
    doomed: dict = {}
    dag, outputs = gated_independent(20, gate, probe, fail=doomed)
    with threads(workers, max_in_flight=workers, worker_queue_cap=1) as ex:
        run = Background(ex.run, dag, outputs)
        first = gate.wait_for_arrivals(workers, TIMEOUT)
        victim = first[0]
        doomed[victim] = exc_type("boom")
        gate.let_through(victim)
        # The failure stopped the run: nothing queued or ready, the failed task's worker is
        # idle and the other two still run (blocked at the gate); run() has not returned.
        state = wait_for_pool(ex, lambda s: s.stopped and s.idle == 1, TIMEOUT)
        assert state.queued == (0,) * workers and state.ready == 0 and state.running == workers - 1
        assert state.in_flight == workers - 1
        gate.open()
        if exc_type is ValueError:
            with pytest.raises(ftdag.TaskError) as info:
                run.result()
            assert info.value.key == victim
            assert isinstance(info.value.__cause__, ValueError)
            assert victim in str(info.value)
        else:
            with pytest.raises(exc_type):
                run.result()
        # No task outside those already running started after the failure.
        assert sorted(probe.started()) == sorted(first)
        state = wait_for_pool(ex, all_idle, TIMEOUT)
        assert state.in_flight == 0 and state.running == 0
        # The executor is usable for the next run.
        doomed.clear()
        res = ex.run(dag, outputs)
        assert dict(res) == {f"t{i}": i for i in range(20)}


def test_ctrl_c_in_caller_stops_dispatch():
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals are delivered to the main thread only")
    workers = 3
    gate, probe = Gate(), ConcurrencyProbe()
    dag, outputs = gated_independent(30, gate, probe)
    main = threading.main_thread().ident

    def interrupt():
        gate.wait_for_arrivals(workers, TIMEOUT)
        signal.pthread_kill(main, signal.SIGINT)

    with threads(workers) as ex:
        killer = Background(interrupt)
        try:
            with pytest.raises(KeyboardInterrupt):
                ex.run(dag, outputs)
            killer.result()
        finally:
            gate.open()  # a failed check must not leave the workers blocked
        first = gate.arrived
        assert len(first) == workers
        # The tasks already running finish; no worker starts a new one.
        probe.wait_for_ends(first, TIMEOUT)
        wait_for_pool(ex, all_idle, TIMEOUT)
        assert sorted(probe.started()) == sorted(first)
        assert dict(ex.run(dag, outputs[:5])) == {f"t{i}": i for i in range(5)}


# -- stealing ------------------------------------------------------------------------------------


def test_idle_worker_steals_from_a_busy_workers_queue():
    gate, probe = Gate(), ConcurrencyProbe()
    ran_on: dict = {}

    def tracked(key, wait):
        def task(*_):
            ran_on[key] = threading.current_thread().name
            with probe.track(key):
                if wait:
                    gate.wait(key)
            return key

        return task

    b = ftdag.DagBuilder()
    b.add_task("parent", [], tracked("parent", wait=True))  # the caller's, alone
    b.add_task("blocker", [], tracked("blocker", wait=True))  # the lookout shares the run and takes it
    b.add_task("c1", ["parent"], tracked("c1", wait=True))  # holds its worker busy
    b.add_task("c2", ["parent"], tracked("c2", wait=False))
    b.add_task("c3", ["parent"], tracked("c3", wait=False))
    dag = b.build()
    # When parent ends, c1 runs next on the same worker and c2, c3 go to that worker's own
    # queue, which only the other worker can drain, by stealing, once blocker let it go.
    with threads(2, max_in_flight=4, worker_queue_cap=2) as ex:
        run = Background(ex.run, dag, ["c1", "c2", "c3", "blocker"])
        gate.wait_for_arrivals(2, TIMEOUT)  # parent on the caller, blocker on the pool thread
        gate.let_through("parent")
        gate.wait_for_arrivals(3, TIMEOUT)  # c1 is blocked on its worker
        gate.let_through("blocker")
        probe.wait_for_ends(["c2", "c3"], TIMEOUT)  # done by the other worker meanwhile
        gate.open()
        res = run.result()
    assert ran_on["c1"] == ran_on["parent"], "a chain must continue on the same worker"
    assert ran_on["c2"] != ran_on["c1"] and ran_on["c3"] != ran_on["c1"]
    assert res.stats.steals >= 2
    assert res.stats.peak_queue_len == 2
    assert dict(res) == {"c1": "c1", "c2": "c2", "c3": "c3", "blocker": "blocker"}


def test_chain_stays_on_one_worker():
    names = []
    b = ftdag.DagBuilder()
    b.add_source("x", 0)
    prev = "x"
    for i in range(200):
        b.add_task(i, [prev], lambda v: names.append(threading.current_thread().name) or v + 1)
        prev = i
    dag = b.build()
    with threads(4) as ex:
        res = ex.run(dag, [199])
    assert res[199] == 200
    assert len(set(names)) == 1
    assert res.stats.steals == 0 and res.stats.peak_in_flight == 1


# -- nested and concurrent runs ---------------------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2])
def test_nested_run_from_a_task_runs_inline(workers):
    inner_b = ftdag.DagBuilder()
    inner_b.add_source("a", 20)
    inner_b.add_task("b", ["a"], lambda a: a + 1)
    inner = inner_b.build()
    seen = {}

    # One worker slot: waiting for the pool from its only task would deadlock.  Two: the outer
    # tasks run on the caller and on the pool thread (the gate holds both until both started).
    gate = Gate()
    with threads(workers) as ex:

        def outer_task(i):
            gate.wait(i)
            res = ex.run(inner, ["b"])
            seen[i] = (res.stats.backend, threading.current_thread().name)
            return res["b"] * 2

        b = ftdag.DagBuilder()
        for i in range(workers):
            b.add_task(f"outer{i}", [], lambda i=i: outer_task(i))
        opener = threading.Thread(target=lambda: (gate.wait_for_arrivals(workers, TIMEOUT), gate.open()))
        opener.start()
        res = ex.run(b.build(), [f"outer{i}" for i in range(workers)])
        opener.join(TIMEOUT)
    assert dict(res) == {f"outer{i}": 42 for i in range(workers)}
    assert {backend for backend, _ in seen.values()} == {"sequential"}
    names = sorted(name for _, name in seen.values())
    assert names == (["MainThread"] if workers == 1 else ["MainThread", "ftdag-worker-0"])


def test_nested_run_with_a_context_runs_inline_and_its_callbacks_hear_so():
    """A nested run that has a context (here: a callback) is diverted before it starts, so
    that ``on_run_start`` names the backend that runs it; the plain one above is diverted by
    the pool itself (ThreadPool.run returns None)."""
    inner_b = ftdag.DagBuilder()
    inner_b.add_source("a", 20)
    inner_b.add_task("b", ["a"], lambda a: a + 1)
    inner = inner_b.build()
    heard = []

    class Hear(ftdag.Callback):
        def on_run_start(self, info):
            heard.append((info.backend, info.workers))

    with threads(2) as ex:

        def outer_task():
            res = ex.run(inner, ["b"], callbacks=[Hear()])
            return res["b"], res.stats.backend

        b = ftdag.DagBuilder()
        b.add_task("outer", [], outer_task)
        assert ex.run(b.build(), "outer")["outer"] == (21, "sequential")
        assert heard == [("sequential", 1)]
        assert ex.run(inner, ["b"], callbacks=[Hear()]).stats.backend == "threads"  # (not nested: the pool's)
        assert heard[1] == ("threads", 2)


def test_concurrent_runs_from_many_threads_are_all_correct():
    graphs = [random_graph(seed, 300) for seed in range(4)]
    dags = [build_dag(g) for g in graphs]
    outputs = [[k for k in d if not d.dependents(k)] for d in dags]
    expected = [{k: evaluate(g)[k] for k in o} for g, o in zip(graphs, outputs)]
    runs = stress(5)
    with threads(3) as ex:

        def client(i):
            for _ in range(runs):
                assert dict(ex.run(dags[i], outputs[i])) == expected[i]
            return runs

        assert results([Background(client, i) for i in range(4)]) == [runs] * 4  # a client's error is raised here


# -- no leaks ----------------------------------------------------------------------------------------


def test_no_thread_leaks_and_close_joins_workers():
    dag = random_dag(11, 100)
    outputs = [k for k in dag if not dag.dependents(k)]
    ex = threads(4)
    try:
        ex.run(dag, outputs)
        after_one = set(threading.enumerate())
        workers = [t for t in after_one if t.name.startswith("ftdag-worker-")]
        assert workers, "the pool's threads are named ftdag-worker-N"
        for _ in range(stress(25)):
            ex.run(dag, outputs)
        assert set(threading.enumerate()) == after_one
    finally:
        ex.close()
    assert [t.name for t in workers if t.is_alive()] == []  # close() joined them
    with pytest.raises(RuntimeError, match="closed"):
        ex.run(dag, outputs)


def test_worker_keeps_no_result_alive_after_the_run():
    import gc
    import weakref

    class Big:
        pass

    refs = []

    def make():
        obj = Big()
        refs.append(weakref.ref(obj))
        return obj

    b = ftdag.DagBuilder()
    b.add_task("big", [], make)
    b.add_task("small", ["big"], lambda big: 1)
    dag = b.build()
    with threads(2) as ex:
        assert ex.run(dag, ["small"])["small"] == 1
        wait_for_pool(ex, all_idle, TIMEOUT)
        gc.collect()
        assert refs[0]() is None


# -- stress --------------------------------------------------------------------------------------------


def test_stress_many_small_runs():
    # FTDAG_STRESS=10 makes it a soak: 2,000 runs.
    rng = random.Random(99)
    cases = []
    for seed in range(20):
        graph = random_graph(seed, rng.randint(5, 40), max_deps=3)
        d = build_dag(graph)
        outputs = [k for k in d if not d.dependents(k)]
        values = evaluate(graph)
        cases.append((d, outputs, {k: values[k] for k in outputs}))
    with threads(8, max_in_flight=5, worker_queue_cap=1) as ex:
        for i in range(stress(200)):
            d, outputs, expected = cases[i % len(cases)]
            res = ex.run(d, outputs)
            assert dict(res) == expected, f"run {i}"
            assert res.stats.peak_in_flight <= 5 and res.stats.peak_queue_len <= 1
        assert pool_state(ex).in_flight == 0


# -- backend choice ------------------------------------------------------------------------------------


def test_auto_warns_once_when_the_gil_came_back_on_a_free_threaded_build(monkeypatch):
    from ftdag import executor

    monkeypatch.setattr(executor, "_FREE_THREADED_BUILD", True)
    monkeypatch.setattr(executor, "gil_enabled", lambda: True)
    with ftdag.Executor(ftdag.ExecutorConfig(max_workers=1)) as ex:
        with pytest.warns(RuntimeWarning, match="PYTHON_GIL=0"):
            assert ex._choose_backend() == "processes"
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert ex._choose_backend() == "processes"


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_crashed_worker_fails_the_run_instead_of_hanging_it(monkeypatch):
    from ftdag import _threads

    real_check_done = _threads.ThreadPool._check_done

    def broken_check_done(self, *args):
        if threading.current_thread().name.startswith("ftdag-worker-"):
            raise AssertionError("scheduler bug")
        return real_check_done(self, *args)

    gate = Gate()
    b = ftdag.DagBuilder()
    b.add_task("x", [], int)
    b.add_task("y", [], lambda: gate.wait("y"))
    b.add_task("z", [], lambda: gate.wait("z"))
    dag = b.build()
    with threads(2) as ex:
        assert ex.run(dag, "x")["x"] == 0
        monkeypatch.setattr(_threads.ThreadPool, "_check_done", broken_check_done)
        # y and z run at once, one on the caller and one on the pool thread, whose finish fails.
        opener = threading.Thread(target=lambda: (gate.wait_for_arrivals(2, TIMEOUT), gate.open()))
        opener.start()
        with pytest.raises(RuntimeError, match="worker thread crashed") as info:
            ex.run(dag, ["y", "z"])
        opener.join(TIMEOUT)
        assert isinstance(info.value.__cause__, AssertionError)
        with pytest.raises(RuntimeError, match="worker thread crashed") as info:
            ex.run(dag, "x")
        assert isinstance(info.value.__cause__, AssertionError)
        with pytest.raises(RuntimeError, match="worker thread crashed"):
            ex.run(dag, "x")
