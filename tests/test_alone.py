"""A plain thread run starts alone on the caller (ftdag._alone): what sharing it must keep.

The caller takes the first ready task itself and wakes no one; a pool thread (the lookout)
shares the run when the caller is stuck in a task while others are ready.  These tests make
the caller stuck on a task that waits for another ready task: they finish only if the run
is shared, and the waits have timeouts, so a run that is never shared fails, not hangs.
"""

from __future__ import annotations

import threading

import pytest
from helpers import TIMEOUT

import ftdag


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
