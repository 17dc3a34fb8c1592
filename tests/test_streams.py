"""Results as they complete, futures and asyncio: ``as_completed``, ``submit``, ``run_async``.

Order claims are made with gates the test opens one at a time; memory claims with weakrefs
to objects that the consumer's own thread made (on 3.13t an object is freed at once only by
the thread that made it: see the README), popped from a list by the tasks.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import threading
import weakref

import pytest
from helpers import TIMEOUT, Background, CallLog, CallManager, kept_by_fixture

import ftdag
from ftdag.testing import Gate, shared_manager

PARALLEL = ["threads", "processes"]
BACKENDS = ["sequential", "threads", "processes"]


@pytest.fixture(scope="module")
def manager():
    with shared_manager(CallManager) as m, kept_by_fixture(m):
        yield m


def gate_for(backend, manager):
    return manager.Gate() if backend == "processes" else Gate()


def gated(gate, key, *args):
    gate.wait(key)
    return key


def fails(*args):
    raise ValueError("bad")


def add(*xs):
    return sum(xs)


# -- as_completed ---------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", PARALLEL)
def test_as_completed_yields_in_completion_order(backend, manager):
    gate = gate_for(backend, manager)
    b = ftdag.DagBuilder()
    for k in ("a", "b", "c"):
        b.add_task(k, [], functools.partial(gated, gate, k))
    b.add_task("sum", ["a", "b", "c"], lambda *xs: "".join(xs))
    dag = b.build()
    with ftdag.Executor(backend=backend, max_workers=3) as ex:
        it = ex.as_completed(dag, ["a", "b", "c", "sum"])
        got = []
        bg = Background(lambda: got.extend(it))
        gate.wait_for_arrivals(3)
        for n, k in enumerate(("c", "a", "b"), 1):  # one at a time: each is yielded before the next goes
            gate.let_through(k)
            _wait_until(lambda: len(got) >= n)
            assert got[n - 1][0] == k
        bg.result()
    assert got == [("c", "c"), ("a", "a"), ("b", "b"), ("sum", "abc")]


def _wait_until(predicate):
    waiter = threading.Event()
    for _ in range(int(TIMEOUT / 0.005)):
        if predicate():
            return
        waiter.wait(0.005)
    raise TimeoutError("condition not reached")


def test_as_completed_on_sequential_yields_every_output_once():
    b = ftdag.DagBuilder()
    b.add_source("s", 1)
    b.add_task("x", ["s"], lambda s: s + 1)
    b.add_task("y", ["x"], lambda x: x * 10)
    with ftdag.Executor(backend="sequential") as ex:
        assert list(ex.as_completed(b.build(), ["y", "s", "x"])) == [("s", 1), ("x", 2), ("y", 20)]


class Big:
    """Stands for a large result; made by the consumer's thread (see the module docstring)."""

    __slots__ = ("n", "__weakref__")

    def __init__(self, n):
        self.n = n


def take(pool, i, *args):
    return pool.pop(i)


@pytest.mark.parametrize("backend", ["sequential", "threads"])
def test_a_yielded_output_is_held_by_the_consumer_only(backend):
    pool = {i: Big(i) for i in range(6)}
    refs = {i: weakref.ref(pool[i]) for i in range(6)}
    b = ftdag.DagBuilder()
    for i in range(6):
        b.add_task(i, [], functools.partial(take, pool, i))
    b.add_task("count", [0, 1], lambda x, y: x.n + y.n)  # 0 and 1 are also inputs of a task
    with ftdag.Executor(backend=backend, max_workers=2) as ex:
        seen = []
        for key, value in ex.as_completed(b.build(), list(range(6)) + ["count"]):
            seen.append(key)
            if key in range(2, 6):  # no task needs them: the run holds none of them any more
                value = None
                # The worker that handed it out lets go of its local reference just after (its
                # next statement), and on 3.13t its last decref of an object another thread made
                # is queued to that thread, merged at its next eval-breaker check or when
                # collecting (no cycle is involved: nothing else is collected).  So wait, briefly.
                _wait_until(lambda: (gc.collect(), refs[key]())[1] is None)
            del value
    assert sorted(seen, key=str) == sorted([*range(6), "count"], key=str)
    gc.collect()  # (see above)
    assert all(r() is None for r in refs.values())


@pytest.mark.parametrize("backend", BACKENDS)
def test_leaving_the_loop_early_cancels_the_rest_and_keeps_the_executor(backend, manager):
    gate = gate_for(backend, manager)
    log = CallLog(manager if backend == "processes" else None)
    b = ftdag.DagBuilder()
    b.add_task("first", [], log.task("first", functools.partial(gated, gate, "first")))
    b.add_task("second", ["first"], log.task("second", functools.partial(add, 1)))
    b.add_task("third", ["second"], log.task("third", functools.partial(add, 1)))
    dag = b.build()
    gate.open()
    with ftdag.Executor(backend=backend, max_workers=2) as ex:
        for key, _ in ex.as_completed(dag, ["first", "third"]):
            assert key == "first"
            break
        assert "third" not in log.ran
        assert ex.run(dag, ["first"])["first"] == "first"


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_failure_raises_from_the_iterator(backend):
    b = ftdag.DagBuilder()
    b.add_task("ok", [], functools.partial(add, 1))
    b.add_task("bad", ["ok"], fails)
    with ftdag.Executor(backend=backend, max_workers=2) as ex:
        got = []
        with pytest.raises(ftdag.TaskError) as info:
            for item in ex.as_completed(b.build(), ["ok", "bad"]):
                got.append(item)
        assert info.value.key == "bad" and got == [("ok", 1)]
        with pytest.raises(TypeError, match="'retry'"):
            ex.as_completed(b.build(), ["ok"], retry=3)


# -- submit ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_submit_runs_in_order_cancels_before_start_and_raises_as_run(backend, manager):
    gate = gate_for(backend, manager)
    log = CallLog(manager if backend == "processes" else None)
    b = ftdag.DagBuilder()
    b.add_task("slow", [], log.task("slow", functools.partial(gated, gate, "slow")))
    b.add_task("quick", [], log.task("quick", functools.partial(add, 2)))
    b.add_task("bad", [], fails)
    dag = b.build()
    with ftdag.Executor(backend=backend, max_workers=2) as ex:
        first = ex.submit(dag, ["slow"])
        gate.wait_for_arrivals(1)  # the first run is running: the next ones wait their turn
        second = ex.submit(dag, ["quick"])
        third = ex.submit(dag, ["quick"])
        failing = ex.submit(dag, ["bad"])
        assert third.cancel() and third.cancelled()
        assert not first.cancel()  # running
        gate.open()
        assert first.result(TIMEOUT)["slow"] == "slow"
        assert second.result(TIMEOUT)["quick"] == 2
        with pytest.raises(ftdag.TaskError):
            failing.result(TIMEOUT)
        assert log.counts["quick"] == 1  # the cancelled run never ran
        with pytest.raises(ValueError, match="on_error"):
            ex.submit(dag, ["quick"], on_error="sometimes")


def test_close_cancels_the_submitted_runs_that_have_not_started():
    gate = Gate()
    b = ftdag.DagBuilder()
    b.add_task("slow", [], functools.partial(gated, gate, "slow"))
    dag = b.build()
    ex = ftdag.Executor(backend="threads", max_workers=2)
    running = ex.submit(dag, ["slow"])
    gate.wait_for_arrivals(1)
    waiting = ex.submit(dag, ["slow"])
    closer = Background(ex.close)
    _wait_until(waiting.cancelled)
    gate.open()
    closer.result()
    assert running.result(TIMEOUT)["slow"] == "slow"
    with pytest.raises(RuntimeError, match="closed"):
        ex.submit(dag, ["slow"])


# -- asyncio --------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_run_async(backend):
    b = ftdag.DagBuilder()
    b.add_source("s", 20)
    b.add_task("t", ["s"], functools.partial(add, 1))
    b.add_task("bad", ["s"], fails)
    dag = b.build()

    async def main(ex):
        res, res2 = await asyncio.gather(ex.run_async(dag, ["t"]), ex.run_async(dag, "t"))
        with pytest.raises(ftdag.TaskError):
            await ex.run_async(dag, ["bad"])
        return res["t"], res2["t"]

    with ftdag.Executor(backend=backend, max_workers=2) as ex:
        assert asyncio.run(main(ex)) == (21, 21)


@pytest.mark.parametrize("backend", BACKENDS)
def test_cancelling_the_awaiting_task_cancels_the_run(backend, manager):
    gate = gate_for(backend, manager)
    log = CallLog(manager if backend == "processes" else None)
    b = ftdag.DagBuilder()
    b.add_task("first", [], log.task("first", functools.partial(gated, gate, "first")))
    b.add_task("then", ["first"], log.task("then", functools.partial(add, 1)))
    dag = b.build()

    async def main(ex):
        task = asyncio.ensure_future(ex.run_async(dag, ["then"]))
        await asyncio.to_thread(gate.wait_for_arrivals, 1)
        task.cancel()
        await asyncio.sleep(0)  # let the cancellation reach run_async, which cancels the run
        gate.open()  # the running task finishes; nothing new starts
        with pytest.raises(asyncio.CancelledError):
            await task
        return await ex.run_async(dag, ["first"])

    with ftdag.Executor(backend=backend, max_workers=2) as ex:
        assert asyncio.run(main(ex))["first"] == "first"
    assert "then" not in log.ran
