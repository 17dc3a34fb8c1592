"""A plain thread run starts alone on the caller (ftdag._alone): what sharing it must keep.

The caller runs the tasks in plan order itself and wakes no one; a pool thread (the lookout)
shares the run when the caller is stuck in a task while another could run, and the caller
shares it when its tasks are slow.  Most tests here make the caller stuck on a task that
waits for another task: they finish only if the run is shared, and the waits have timeouts,
so a run that is never shared fails, not hangs.  The sharing the caller does is forced where
the tests want it (every stretch counted slow), so that it happens at a known place.
"""

from __future__ import annotations

import random
import threading

import pytest
from helpers import TIMEOUT, Finalized, build_dag, evaluate, mix, random_graph

import ftdag
import ftdag._alone


def executor(workers=2):
    return ftdag.Executor(ftdag.ExecutorConfig(max_workers=workers, backend="threads"))


def waits_for_other(n_quick=0):
    """``first`` (the caller's first task) returns only once ``second``, ready beside it, ran;
    ``n_quick`` quick tasks run before them on the caller, alone."""
    ran = threading.Event()
    threads = {}
    b = ftdag.DagBuilder()
    b.add_source("s", 1)
    prev = "s"
    for i in range(n_quick):
        b.add_task(f"q{i}", [prev], lambda x: x + 1)
        prev = f"q{i}"

    def first(x):
        threads["first"] = threading.get_ident()
        if not ran.wait(TIMEOUT):
            raise TimeoutError("second never ran while first waited: the run was not shared")
        return x * 10

    def second(x):
        threads["second"] = threading.get_ident()
        ran.set()
        return x + 5

    b.add_task("first", [prev], first)
    b.add_task("second", [prev], second)
    b.add_task("both", ["first", "second"], lambda a, c: a + c)
    return b.build(), threads


@pytest.mark.parametrize("n_quick", [0, 50])
def test_a_stuck_caller_is_shared_by_the_lookout(n_quick):
    dag, threads = waits_for_other(n_quick)
    with executor() as ex:
        res = ex.run(dag, ["both"])
    base = 1 + n_quick
    assert res["both"] == base * 10 + base + 5
    assert threads["first"] == threading.main_thread().ident  # the caller took it, alone
    assert threads["second"] != threads["first"]  # a pool thread took the other, once shared


def test_the_lookout_stands_down_and_watches_the_next_run():
    """A3: after a shared run the lookout is free again, so the next run is watched too."""
    with executor() as ex:
        for _ in range(3):
            dag, threads = waits_for_other()
            assert ex.run(dag, ["both"])["both"] == 16
            assert threads["second"] != threads["first"]  # (with no lookout called, first times out)


def test_no_pool_thread_runs_a_task_while_the_run_is_alone():
    """A1, checked by the tasks themselves: one that runs on a pool thread finds the run shared.
    (Whether this run is shared depends on the machine's timing; the invariant does not.)"""
    caller = threading.get_ident()
    broken = []
    with executor() as ex:

        def task(*xs):
            run = ex._threads._run
            if threading.get_ident() != caller and run is not None and run.alone:
                broken.append(threading.get_ident())
            return sum(xs)

        b = ftdag.DagBuilder()
        b.add_source("s", 1)
        for i in range(200):
            b.add_task(i, ["s"] if i < 8 else [i - 8, i - 3], task)
        dag = b.build()
        for _ in range(5):
            res = ex.run(dag, list(range(192, 200)))
    assert broken == []
    assert res[199] == evaluate_chain()


def evaluate_chain():
    v = {}
    for i in range(200):
        v[i] = 1 if i < 8 else v[i - 8] + v[i - 3]
    return v[199]


def test_a_failure_while_alone_fails_the_run_and_leaves_the_executor_usable():
    b = ftdag.DagBuilder()
    b.add_source("s", 1)
    b.add_task("ok", ["s"], lambda x: x)
    b.add_task("bad", ["s"], lambda x: 1 / 0)
    b.add_task("after", ["ok", "bad"], lambda a, c: a + c)
    dag = b.build()
    with executor() as ex:
        with pytest.raises(ftdag.TaskError) as info:
            ex.run(dag, ["after"])
        assert info.value.key == "bad" and isinstance(info.value.__cause__, ZeroDivisionError)
        assert ex.run(dag, ["ok"])["ok"] == 1
        assert ex._threads.state().in_flight == 0


def test_one_worker_runs_alone_without_a_lookout():
    b = ftdag.DagBuilder()
    b.add_source("s", 2)
    for i in range(10):
        b.add_task(i, ["s"], lambda x, i=i: x * i)
    with executor(1) as ex:
        res = ex.run(b.build(), list(range(10)))
    assert {i: res[i] for i in range(10)} == {i: 2 * i for i in range(10)}


def test_a_run_after_a_run_with_a_context_is_watched_too():
    """A pool thread that went idle during a run with a context (a shared run, which needs no
    lookout) does not stay the lookout without watching: the next plain run is watched."""
    with executor() as ex:
        b = ftdag.DagBuilder()
        b.add_source("s", 1)
        for i in range(8):
            b.add_task(i, ["s"], lambda x, i=i: x + i)
        assert ex.run(b.build(), list(range(8)), on_error="keep_going")[7] == 8  # a context
        dag, threads = waits_for_other()
        assert ex.run(dag, ["both"])["both"] == 16
        assert threads["second"] != threads["first"]


def test_a_caller_stuck_inside_a_solo_chain_is_shared():
    """The caller does not take the lock between the links of a solo chain that follow each
    other in plan order (A1): stuck on the second link, it still counts as running the first,
    and the lookout shares the run from there."""
    ran = threading.Event()

    def link(x):
        if not ran.wait(TIMEOUT):
            raise TimeoutError("other never ran while the chain waited: the run was not shared")
        return x + 1

    b = ftdag.DagBuilder()
    b.add_source("s", 1)
    b.add_task("c0", ["s"], lambda x: x * 2)
    b.add_task("c1", ["c0"], link)
    b.add_task("c2", ["c1"], lambda x: x * 3)
    b.add_task("other", ["s"], lambda x: ran.set() or x + 100)
    b.add_task("end", ["c2", "other"], lambda a, c: a + c)
    dag = b.build()
    with executor() as ex:
        for _ in range(3):
            ran.clear()
            assert ex.run(dag, ["end"])["end"] == (1 * 2 + 1) * 3 + 101


@pytest.mark.parametrize("window", [1, 40])
@pytest.mark.parametrize("seed", range(6))
def test_sharing_at_any_point_keeps_every_result_and_runs_each_task_once(seed, window, monkeypatch):
    """share() rebuilds the shared state (ready tasks, remaining counts, pending) from the
    caller's position, counting from the finished tasks early in a run and from the
    unfinished ones late in it: forced (every stretch is slow, a stretch is ``window``
    tasks), it shares after two stretches, at the first place where another task could run."""
    rng = random.Random(seed)
    graph = random_graph(rng, 120, max_deps=3, window=rng.choice([None, 4]))
    calls: dict[int, int] = {}
    lock = threading.Lock()

    def counted(key):
        def task(*xs):
            with lock:
                calls[key] = calls.get(key, 0) + 1
            return mix(key, *xs)
        return task

    dag = build_dag(graph, counted, shuffle=random.Random(seed) if seed % 2 else None)
    expected = evaluate(graph)
    shared_at: list[int] = []
    real_share = ftdag._alone.share

    def share(pool, run, w):
        shared_at.append(run.pos)
        real_share(pool, run, w)

    monkeypatch.setattr(ftdag._alone, "share", share)
    monkeypatch.setattr(ftdag._alone, "_QUICK_S", -1.0)
    monkeypatch.setattr(ftdag._alone, "_WINDOW", window)
    monkeypatch.setattr(ftdag._alone, "_WINDOW_S", 1e9)
    monkeypatch.setattr(ftdag._alone, "_TICK", 1)
    outputs = rng.sample(sorted(graph), 10) if window == 1 else sorted(graph)  # (a part, or all)
    with executor() as ex:
        for _ in range(3):
            calls.clear()
            res = ex.run(dag, outputs)
            assert {k: res[k] for k in outputs} == {k: expected[k] for k in outputs}
            assert set(calls.values()) <= {1}, calls
    n_tasks = sum(deps is not None for deps in graph.values())
    assert shared_at and all(p > 0 for p in shared_at), shared_at
    if window > 1:  # past half the tasks: share() counts from the unfinished ones
        assert all(n_tasks / 2 < p < n_tasks for p in shared_at), (shared_at, n_tasks)


def test_a_late_share_keeps_the_stuck_tasks_dependents_waiting():
    """Shared past half its tasks, the run counts each unfinished task's unfinished inputs
    afresh: the task the caller is stuck in counts as one, so its dependent (the best task
    by critical path) waits for it, while a task that does not depend on it runs."""
    ran = threading.Event()
    seen = []

    def stuck(x):
        if not ran.wait(TIMEOUT):
            raise TimeoutError("other never ran while x waited: the run was not shared")
        return x * 2

    b = ftdag.DagBuilder()
    b.add_source("s", 1)
    prev = "s"
    for i in range(80):  # quick tasks first: x comes past half the plan
        b.add_task(f"q{i}", [prev], lambda v: v + 1)
        prev = f"q{i}"
    b.add_task("x", [prev], stuck)
    b.add_task("y", ["x"], lambda v: seen.append(v) or v)
    prev = "y"
    for i in range(10):  # a long tail: y ranks first among the tasks that are not x
        b.add_task(f"z{i}", [prev], lambda v: v + 1)
        prev = f"z{i}"
    b.add_task("other", ["s"], lambda v: ran.set() or v)
    b.add_task("end", [prev, "other", "q79"], lambda a, c, q: a + c + q)  # (q79 -> x is no solo link)
    dag = b.build()
    with executor() as ex:
        for _ in range(3):
            ran.clear()
            seen.clear()
            assert ex.run(dag, ["end"])["end"] == 81 * 2 + 10 + 1 + 81
            assert seen == [162]


@pytest.mark.parametrize("seed", range(4))
def test_a_plain_run_on_one_worker_runs_alone_in_the_one_worker_order(seed):
    """One worker has no pool thread: a plain run goes alone through the tasks in the exact
    order one worker takes them by rank (what a direct run would keep), and is never shared,
    even when every stretch counts as slow."""
    graph = random_graph(seed, 400, window=8)  # (over two stretches of _WINDOW tasks)
    started = []
    runs = []
    templates = []

    def task(key):
        def fn(*args):
            started.append(key)
            runs.append(pool._run)
            if len(runs) == 1:  # (a run that ends alone drops its plan: ThreadPool._spare)
                templates.append(pool._run.plan.template)
            return mix(key, *args)
        return fn

    dag = build_dag(graph, task)
    outputs = list(graph)
    slow = ftdag._alone._QUICK_S
    with executor(1) as ex:
        pool = ex._pool("threads")
        ftdag._alone._QUICK_S = -1.0  # every stretch slow: a run that could be shared would be
        try:
            result = ex.run(dag, outputs)
        finally:
            ftdag._alone._QUICK_S = slow
        run = runs[0]
        order = [dag._keys[t] for t in templates[0].one_worker()[0]]
        assert result.stats.backend == "threads" and result.stats.workers == 1
        assert pool._spare is run and run.plan is None  # it ended alone: kept, without its plan
    assert all(r is run for r in runs) and not run.direct and run.alone is False and run.pos == len(order)
    assert started == order  # each task once, in the one-worker order
    expected = evaluate(graph)
    assert all(result[k] == expected[k] for k in outputs)
    # ... which is the ready order's: by critical path, not by key, on this graph.
    assert order != sorted(order)


def test_one_dag_on_one_then_two_then_one_worker_takes_each_pools_order():
    """A template keeps the alone order of the last worker count asked (``_Template.alone``):
    a Dag run on one worker, then on two (every stretch slow, so the caller shares the run,
    which counts on plan order), then on one again, goes through each pool's own order, and
    every task runs once each time."""
    graph = random_graph(1, 400, window=8)
    outputs = list(graph)
    expected = evaluate(graph)
    started: list = []
    runs: list = []
    seen: list = []

    def task(key):
        def fn(*args):
            started.append(key)
            run = ftdag._threads.current_pool()._run
            if not runs:  # (a run that ends alone drops its plan: ThreadPool._spare)
                seen.append((run.plan.template, list(run.shape.order)))
            runs.append(run)
            return mix(key, *args)
        return fn

    dag = build_dag(graph, task)
    slow = ftdag._alone._QUICK_S
    with executor(1) as one, executor(2) as two:
        for ex, workers in ((one, 1), (two, 2), (one, 1)):
            started.clear()
            runs.clear()
            seen.clear()
            ftdag._alone._QUICK_S = -1.0  # every stretch slow: a run that can be shared is
            try:
                result = ex.run(dag, outputs)
            finally:
                ftdag._alone._QUICK_S = slow
            run = runs[0]
            template, run_order = seen[0]
            order = template.one_worker()[0] if workers == 1 else template.tasks
            assert run_order == list(order), workers
            assert sorted(started) == sorted(k for k in outputs if graph[k] is not None), workers
            assert len(started) == len(set(started)), workers  # each task once
            assert all(result[k] == expected[k] for k in outputs), workers
            assert bool(run.queues) == (workers == 2), workers  # shared on two workers only


def test_a_run_that_ended_alone_is_kept_for_the_next_plain_run_without_its_results():
    """A plain run that ended alone is kept (``ThreadPool._spare``, ftdag._threads "Runs")
    without its plan: the outputs of the last run die with the caller's result, and the
    lookout, which may still hold the parked run, finds nothing to share in it."""
    import gc
    import weakref

    class Big:
        pass

    refs = []

    def make(x):
        obj = Big()
        refs.append(weakref.ref(obj))
        return obj

    b = ftdag.DagBuilder()
    b.add_source("s", 1)
    b.add_task("big", ["s"], make)
    b.add_task("l", ["s"], lambda x: x + 1)
    b.add_task("r", ["s"], lambda x: x + 2)
    b.add_task("j", ["l", "r"], lambda x, y: x * y)
    dag = b.build()
    with executor() as ex:
        pool = ex._pool("threads")
        for i in range(3):
            result = ex.run(dag, ["big", "j"])
            assert isinstance(result["big"], Big) and result["j"] == 6
            run = pool._spare
            assert run is not None and run.plan is None and run.values is None and run.shape is None
            assert not ftdag._alone.could_share(run)  # (l and r could run side by side, were it not parked)
            del result
            gc.collect()
            assert [r() for r in refs] == [None] * (i + 1)  # nothing of the run outlives its result
        assert pool._spare is run  # the same one each time


def test_each_run_reports_its_own_stats_whatever_ran_before_it_on_the_pool():
    """A reused run (``ThreadPool._spare``) starts as a new one would: a sequence of plain
    runs (a failed one, a shared one, one that executes nothing) returns the same results and
    counters as each run would on a fresh executor."""
    dag, _ = waits_for_other()
    b = ftdag.DagBuilder()
    b.add_source("s", 3)
    b.add_task("a", ["s"], lambda x: x + 1)
    b.add_task("bad", ["a"], lambda x: 1 / 0)
    b.add_task("c", ["a"], lambda x: x * 2)
    b.add_task("d", ["a", "c"], lambda x, y: x + y)
    other = b.build()

    def stats(res):
        s = res.stats
        return dict(res), (s.executed, s.pruned, s.workers, s.peak_in_flight, s.peak_queue_len, s.steals)

    def outcome(ex, graph, outputs):
        try:
            return stats(ex.run(graph, outputs))
        except ftdag.TaskError as exc:
            return exc.key

    steps = [(other, ["d"]), (other, ["s"]), (other, ["bad"]), (other, ["c"]), (other, ["s"]), (other, ["d"])]
    with executor() as ex:
        pool = ex._pool("threads")
        for graph, outputs in steps:
            with executor() as fresh:
                expected = outcome(fresh, graph, outputs)
            assert outcome(ex, graph, outputs) == expected, outputs
            assert (pool._spare is None) == (outputs == ["bad"]), outputs  # a failed run is not kept
        assert ex.run(dag, ["both"])["both"] == 16  # shared by the lookout ...
        assert pool._spare is None  # ... so not kept
        assert outcome(ex, other, ["d"]) == ({"d": 12}, (4, 1, 2, 1, 0, 0))


def test_the_lookout_shares_only_holding_the_runs_gate(monkeypatch):
    """A1/A2: the caller records a task holding the run's gate, not the pool's lock, so the
    lookout shares only once it holds the gate too (it only tries to take it: a caller that
    holds it is recording, not stuck)."""
    seen = []
    real = ftdag._threads.share

    def checked(pool, run, w):
        seen.append((w == pool._caller_slot, run.gate.locked()))
        real(pool, run, w)

    monkeypatch.setattr(ftdag._threads, "share", checked)
    with executor() as ex:
        for n_quick in (0, 50):
            dag, threads = waits_for_other(n_quick)
            base = 1 + n_quick
            assert ex.run(dag, ["both"])["both"] == base * 10 + base + 5
            assert threads["second"] != threads["first"]
    assert seen == [(False, True), (False, True)]  # shared by the lookout, holding the gate, each time


def test_values_dropped_while_alone_are_freed_after_the_gate_before_the_next_task():
    """A1, I5: a task that is the last consumer of three values drops them under the run's gate;
    they are freed after it (the first one a task drops, ``dead``, the others through
    ``garbage``), each before the caller runs the next task."""
    with executor() as ex:
        pool = ex._pool("threads")
        freed = []  # per value freed: whether the run's gate was held
        seen = []  # per run of "k": (values freed by then, the run still alone)

        def make():
            return Finalized(lambda: freed.append(pool._run.gate.locked()))

        def k(j, other):
            seen.append((len(freed), pool._run.alone))
            return j + other

        b = ftdag.DagBuilder()
        for key in "abc":
            b.add_task(key, [], make)
        b.add_task("j", ["a", "b", "c"], lambda *xs: len(xs))
        b.add_task("other", [], lambda: 0)  # ready beside the others, so the run has a lookout
        b.add_task("k", ["j", "other"], k)  # (two inputs: not a solo link of j, whose inputs it would drop itself, I7)
        dag = b.build()
        runs = 20
        for i in range(runs):
            assert dict(ex.run(dag, ["k"])) == {"k": 3}
            assert len(freed) == 3 * (i + 1)
    alone = [n for n, was_alone in seen if was_alone]
    assert len(alone) >= runs // 2, seen  # (a run is shared only if the machine stalls the caller for ~1 ms)
    assert all(n % 3 == 0 for n in alone), seen  # all three freed before k started
    assert not any(freed), freed  # never under the gate
