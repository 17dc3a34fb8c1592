"""The process backend (``ftdag._processes``): same semantics as the threads, across processes.

Tasks are gated deterministically with :func:`ftdag.testing.shared_manager` objects handed to
them as source values; no test sleeps, and every wait has a timeout.  Task functions live at
module level here: the worker processes import this module by name (pytest puts ``tests/``
on ``sys.path``, which the workers inherit).
"""

from __future__ import annotations

import functools
import gc
import multiprocessing
import os
import signal
import sys
import sysconfig
import threading
import weakref

import pytest
from helpers import Background, kept_by_fixture

import ftdag
from ftdag import _functions, _processes
from ftdag._processes import ProcessPool
from ftdag.testing import DEFAULT_TIMEOUT, shared_manager

# -- task functions (module level, so that the workers can unpickle them by reference) --------


def gated(gate, probe, key, *deps):
    """Record the start, wait at the gate, record the end; return the key."""
    probe.enter(key)  # (probe.track() is a context manager: proxies cannot forward it)
    try:
        gate.wait(key)
    finally:
        probe.exit(key)
    return key


def inc(x):
    return x + 1


def add(a, b):
    return a + b


def fail_at_gate(gate, probe, key):
    gated(gate, probe, key)
    raise ValueError(f"{key} failed on purpose")


def raise_nested(x):
    def helper_that_raises(v):
        raise ValueError(f"bad value {v}")

    return helper_that_raises(x)


def raise_base(kind):
    raise {"exit": SystemExit(3), "interrupt": KeyboardInterrupt()}[kind]


def crash(how):
    if how == "exit":
        os._exit(3)
    os.kill(os.getpid(), signal.SIGKILL)


def pid_when_both_running(gate, key):
    """Return this worker's pid, once two tasks are running at once (so on both workers)."""
    gate.wait(key)
    gate.wait_for_arrivals(2)
    return os.getpid()


def return_lock(x):
    return threading.Lock()


def identity(x):
    return x


def reverse_bytes(b, *rest):
    return b[::-1]


class UnpicklableError(Exception):
    def __init__(self, a, b):  # pickling keeps only args=(message,): unpickling it fails
        super().__init__(f"{a}/{b}")


def raise_unpicklable(x):
    raise UnpicklableError("left", "right")


def make_locked_function():
    """A closure over a lock: neither pickle nor cloudpickle can send it."""
    lock = threading.Lock()

    def locked(x):
        with lock:
            return x

    return locked


SENT: list[int] = []  # parent-side: tokens pickled, i.e. tasks sent to workers


class Token:
    """A source value whose pickling (in the parent, when its task is sent) is recorded."""

    def __init__(self, i):
        self.i = i

    def __reduce__(self):
        SENT.append(self.i)
        return (Token, (self.i,))


def gated_token(gate, probe, token):
    return gated(gate, probe, token.i)


class CountedFunction:
    """A callable whose unpickling (once per worker that receives it) is recorded in a probe."""

    def __init__(self, probe):
        self.probe = probe

    def __call__(self, x):
        return x * 2

    def __reduce__(self):
        return (_rebuild_counted, (self.probe,))


def _rebuild_counted(probe):
    probe.enter(("loaded", os.getpid()))
    return CountedFunction(probe)


TRACKED: dict[str, list] = {}  # name -> weak references to every copy unpickled in this process


class Tracked:
    def __init__(self, name, data):
        self.name, self.data = name, data

    def __reduce__(self):
        return (_rebuild_tracked, (self.name, self.data))


def _rebuild_tracked(name, data):
    obj = Tracked(name, data)
    TRACKED.setdefault(name, []).append(weakref.ref(obj))
    return obj


def make_tracked(name, n):
    return Tracked(name, bytes(n))


def use_tracked(name, t):
    return Tracked(name, t.data[:10])


def final_gated(gate, b1, b2):
    gate.wait("final")
    return len(b1.data) + len(b2.data)


# -- helpers -----------------------------------------------------------------------------------


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def processes(**kwargs) -> ftdag.Executor:
    return ftdag.Executor(ftdag.ExecutorConfig(backend="processes", **kwargs))


def pool_of(ex: ftdag.Executor) -> ProcessPool:
    pool = ex._processes
    assert isinstance(pool, ProcessPool)
    return pool


def small_dag() -> ftdag.Dag:
    b = ftdag.DagBuilder()
    b.add_source("x", 1)
    b.add_task("y", ["x"], inc)
    b.add_task("z", ["y", "x"], add)
    return b.build()


@pytest.fixture(scope="module")
def manager():
    with shared_manager() as m, kept_by_fixture(m):
        yield m


@pytest.fixture(scope="module")
def ex():
    with processes(max_workers=2) as executor, kept_by_fixture(executor):
        yield executor


# -- tests -------------------------------------------------------------------------------------


def test_runs_small_graph_and_reports_stats(ex):
    res = ex.run(small_dag(), ["z"])
    assert dict(res) == {"z": 3}
    assert res.stats.backend == "processes"
    assert res.stats.workers == 2 and res.stats.steals == 0
    assert res.stats.executed == 3 and res.stats.pruned == 0
    pids = pool_of(ex).pids()
    assert len(pids) == 2 and all(alive(p) for p in pids)
    assert dict(ex.run(small_dag(), ["z"])) == {"z": 3}
    assert pool_of(ex).pids() == pids  # the pool is reused


def test_source_only_request_starts_nothing():
    with processes(max_workers=2) as e:
        res = e.run(small_dag(), ["x"])
        assert dict(res) == {"x": 1} and res.stats.executed == 1
        assert pool_of(e).pids() == []


def test_chains_with_outputs_and_side_consumers_along_the_way(ex):
    # Chain links pass results from task to task inside a worker; the results that are
    # requested, or needed by a task off the chain, must still reach the parent.
    b = ftdag.DagBuilder()
    b.add_source(0, 0)
    for i in range(1, 61):
        b.add_task(i, [i - 1], inc)
        if i % 7 == 0:
            b.add_task(("side", i), [i, i - 1], add)
        if i % 11 == 0:
            b.add_task(("twice", i), [i, i], add)
    dag = b.build()
    outputs = [60, 30, ("side", 14), ("side", 49), ("twice", 33), ("twice", 55)]
    expected = {60: 60, 30: 30, ("side", 14): 27, ("side", 49): 97, ("twice", 33): 66, ("twice", 55): 110}
    for config in (dict(), dict(max_workers=1, worker_queue_cap=3), dict(worker_queue_cap=6, max_in_flight=14)):
        with processes(**{"max_workers": 2, **config}) as e:
            res = e.run(dag, outputs)
            assert dict(res) == expected
            assert res.stats.peak_queue_len <= e.config.worker_queue_cap
    assert dict(ex.run(dag, [60])) == {60: 60}


def test_in_flight_bound_reached_and_never_exceeded(manager):
    n = 8
    gate, probe = manager.Gate(), manager.ConcurrencyProbe()
    b = ftdag.DagBuilder()
    b.add_source("gate", gate)
    b.add_source("probe", probe)
    for i in range(n):
        b.add_source(("token", i), Token(i))
        b.add_task(i, ["gate", "probe", ("token", i)], gated_token)
    dag = b.build()
    with processes(max_workers=2, max_in_flight=3, worker_queue_cap=1) as e:
        assert e.config.in_flight_bound == 3
        e.run(small_dag(), ["z"])  # start the workers
        SENT.clear()
        run = Background(e.run, dag, list(range(n)))
        try:
            gate.wait_for_arrivals(2)
            # Two tasks run (blocked) and the parent has sent exactly one more, queued: 3 in flight.
            assert len(SENT) == 3
            for k in range(1, n):
                gate.release(1)
                gate.wait_for_passed(k)
                gate.wait_for_arrivals(k + 1)  # (not k + 2: the next may be queued behind a blocked one)
                # Tasks sent minus tasks through the gate is at most what the parent counts in flight.
                assert len(SENT) - k <= 3, f"{len(SENT)} tasks sent after {k} finished"
        finally:
            gate.open()  # a failed check must not leave the run blocked
        res = run.result()
    assert dict(res) == {i: i for i in range(n)}
    assert sorted(SENT) == list(range(n))  # each task sent once
    assert res.stats.peak_in_flight == 3
    assert res.stats.peak_queue_len == 1
    assert probe.get_peak() == 2


def _gated_named(key, gate, probe, *deps):
    return gated(gate, probe, key)


def test_fail_fast_no_task_starts_after_the_failure(manager, monkeypatch):
    gate, fail_gate, probe = manager.Gate(), manager.Gate(), manager.ConcurrencyProbe()
    b = ftdag.DagBuilder()
    b.add_source("gate", gate)
    b.add_source("fail_gate", fail_gate)
    b.add_source("probe", probe)
    b.add_task("F", ["fail_gate", "probe", "gate"], functools.partial(_fail_named, "F"))
    names = [f"g{i}" for i in range(10)]
    for name in names:
        b.add_task(name, ["gate", "probe", "fail_gate"], functools.partial(_gated_named, name))
    dag = b.build()
    assert [k for k in dag if not dag.is_source(k)][0] == "F"  # F is dispatched first

    # The gate opens exactly when the parent stops the run: any g that starts after that
    # started after the failure was observed.
    original_stop = ProcessPool._stop

    def stop_then_open(self, run):
        first = not run.stopped
        original_stop(self, run)
        if first:
            gate.open()

    monkeypatch.setattr(ProcessPool, "_stop", stop_then_open)
    with processes(max_workers=2, worker_queue_cap=1, max_in_flight=4) as e:
        e.run(small_dag(), ["z"])
        run = Background(e.run, dag, ["F", *names])
        try:
            fail_gate.wait_for_arrivals(1)  # F runs on one worker...
            gate.wait_for_arrivals(1)  # ...a g on the other; one more task is queued behind each
        finally:
            fail_gate.open()  # F fails
        with pytest.raises(ftdag.TaskError) as info:
            run.result()
        assert info.value.key == "F"
        assert isinstance(info.value.__cause__, ValueError)
        started = probe.started()
        assert len(started) == 2 and "F" in started, started  # F and the one g already running
        assert gate.get_arrived() == [k for k in started if k != "F"]
        # Nothing stale reaches the next run.
        monkeypatch.undo()
        assert dict(e.run(small_dag(), ["z"])) == {"z": 3}
        res = e.run(dag, ["g1", "g2"])
        assert dict(res) == {"g1": "g1", "g2": "g2"}


def _fail_named(key, fail_gate, probe, gate):
    fail_at_gate(fail_gate, probe, key)


def test_task_exception_keeps_remote_traceback(ex):
    b = ftdag.DagBuilder()
    b.add_source("x", 7)
    b.add_task("bad", ["x"], raise_nested)
    with pytest.raises(ftdag.TaskError) as info:
        ex.run(b.build(), "bad")
    err = info.value
    assert err.key == "bad" and "'bad'" in str(err)
    cause = err.__cause__
    assert type(cause) is ValueError and cause.args == ("bad value 7",)
    remote = str(cause.__cause__)
    assert "helper_that_raises" in remote and "ValueError: bad value 7" in remote


def test_exception_that_does_not_unpickle_still_names_the_node(ex):
    b = ftdag.DagBuilder()
    b.add_source("x", 1)
    b.add_task("weird", ["x"], raise_unpicklable)
    with pytest.raises(ftdag.TaskError) as info:
        ex.run(b.build(), "weird")
    assert info.value.key == "weird"
    assert "UnpicklableError: left/right" in str(info.value.__cause__)
    assert dict(ex.run(small_dag(), ["z"])) == {"z": 3}


@pytest.mark.parametrize("kind, exc_type", [("exit", SystemExit), ("interrupt", KeyboardInterrupt)])
def test_base_exception_in_task_fails_run_but_not_worker(ex, kind, exc_type):
    ex.run(small_dag(), ["z"])
    pids = pool_of(ex).pids()
    b = ftdag.DagBuilder()
    b.add_source("kind", kind)
    b.add_task("base", ["kind"], raise_base)
    with pytest.raises(exc_type):
        ex.run(b.build(), "base")
    assert dict(ex.run(small_dag(), ["z"])) == {"z": 3}
    assert pool_of(ex).pids() == pids


@pytest.mark.parametrize("how, exitcode", [("exit", 3), ("kill", -signal.SIGKILL)])
def test_worker_crash_names_the_node_and_next_run_works(ex, how, exitcode):
    ex.run(small_dag(), ["z"])
    before = set(pool_of(ex).pids())
    b = ftdag.DagBuilder()
    b.add_source("how", how)
    b.add_task("victim", ["how"], crash)
    b.add_task("after", ["victim"], inc)
    with pytest.raises(ftdag.WorkerCrashedError) as info:
        ex.run(b.build(), ["after"])
    assert info.value.key == "victim" and info.value.exitcode == exitcode
    assert "'victim'" in str(info.value)
    assert dict(ex.run(small_dag(), ["z"])) == {"z": 3}
    after = set(pool_of(ex).pids())
    assert len(after) == 2 and len(after & before) == 1  # the dead one was replaced
    assert all(alive(p) for p in after) and not any(alive(p) for p in before - after)


def test_unpicklable_function_is_named_before_anything_runs(manager):
    probe = manager.ConcurrencyProbe()
    gate = manager.Gate()
    gate.open()
    b = ftdag.DagBuilder()
    b.add_source("gate", gate)
    b.add_source("probe", probe)
    b.add_task("first", ["gate", "probe"], functools.partial(_gated_named, "first"))
    b.add_task("bad", ["first"], make_locked_function())
    dag = b.build()
    with processes(max_workers=2) as e:
        with pytest.raises(ftdag.TaskError) as info:
            e.run(dag, ["bad"])
        err = info.value
        assert err.key == "bad"
        assert "'bad'" in str(err) and "backend='threads'" in str(err)
        assert err.__cause__ is not None
        assert probe.started() == []  # nothing ran
        assert pool_of(e).pids() == []  # not even the workers were started
        # The other nodes still run, and the check was not cached as a success.
        assert dict(e.run(dag, ["first"])) == {"first": "first"}
        with pytest.raises(ftdag.TaskError):
            e.run(dag, ["bad"])


def test_lambda_without_cloudpickle_says_what_to_do(monkeypatch):
    monkeypatch.setitem(sys.modules, "cloudpickle", None)  # makes "import cloudpickle" fail
    monkeypatch.setattr(_functions, "_cloudpickle", None)  # forget an earlier successful import
    b = ftdag.DagBuilder()
    b.add_source("x", 1)
    b.add_task("lam", ["x"], lambda x: x)
    with processes(max_workers=1) as e, pytest.raises(ftdag.TaskError) as info:
        e.run(b.build(), "lam")
    message = str(info.value)
    assert info.value.key == "lam"
    assert "module level" in message and "ftdag[cloudpickle]" in message and "backend='threads'" in message


def test_lambda_with_cloudpickle_runs(ex):
    pytest.importorskip("cloudpickle", reason="the tox envs install the cloudpickle extra")
    offset = 10
    b = ftdag.DagBuilder()
    b.add_source("x", 1)
    b.add_task("lam", ["x"], lambda x: x + offset)
    assert dict(ex.run(b.build(), "lam")) == {"lam": 11}


def test_unpicklable_source_value_names_task_and_source(ex):
    b = ftdag.DagBuilder()
    b.add_source("lock", threading.Lock())
    b.add_task("user", ["lock"], identity)
    with pytest.raises(ftdag.TaskError) as info:
        ex.run(b.build(), "user")
    assert info.value.key == "user"
    assert "'user'" in str(info.value) and "'lock'" in str(info.value)
    assert dict(ex.run(small_dag(), ["z"])) == {"z": 3}


def test_unpicklable_result_names_the_node(ex):
    b = ftdag.DagBuilder()
    b.add_source("x", 1)
    b.add_task("locky", ["x"], return_lock)
    b.add_task("after", ["locky"], identity)
    with pytest.raises(ftdag.TaskError) as info:
        ex.run(b.build(), ["after", "locky"])
    assert info.value.key == "locky"
    assert "'locky'" in str(info.value) and "pickle" in str(info.value)
    assert dict(ex.run(small_dag(), ["z"])) == {"z": 3}


def test_function_sent_once_per_worker(ex, manager):
    probe = manager.ConcurrencyProbe()
    fn = CountedFunction(probe)
    b = ftdag.DagBuilder()
    for i in range(20):
        b.add_source(("x", i), i)
        b.add_task(i, [("x", i)], fn)
    dag = b.build()
    for _ in range(2):
        assert dict(ex.run(dag, list(range(20)))) == {i: 2 * i for i in range(20)}
    loads = probe.started()
    assert 1 <= len(loads) <= 2 and len(set(loads)) == len(loads)  # at most once per worker


def test_collected_functions_are_forgotten(ex):
    gc.collect()
    ex.run(small_dag(), ["z"])
    cache = pool_of(ex)._functions
    before = len(cache._cache)
    for i in range(5):
        b = ftdag.DagBuilder()
        b.add_source("x", 1)
        b.add_task("y", ["x"], functools.partial(add, i))  # a new function object every time
        assert dict(ex.run(b.build(), "y")) == {"y": 1 + i}
    del b
    gc.collect()
    ex.run(small_dag(), ["z"])
    assert len(cache._cache) == before  # none of the collected partials is kept
    assert all(entry.target() is not None for entry in cache._cache.values())
    assert not cache._dead


def test_concurrent_runs_from_two_threads_are_serialised(ex):
    b = ftdag.DagBuilder()
    b.add_source(0, 0)
    for i in range(1, 200):
        b.add_task(i, [i - 1], inc)
    dag = b.build()
    runs = [Background(ex.run, dag, [199, 100]) for _ in range(2)]
    for run in runs:
        assert dict(run.result()) == {199: 199, 100: 100}


def test_large_values_cross_both_ways_without_deadlock(ex):
    big = bytes(range(256)) * (3 * 4096)  # 3 MiB: far more than a pipe holds
    b = ftdag.DagBuilder()
    b.add_source("big", big)
    for i in range(6):
        b.add_task(("rev", i), ["big"], reverse_bytes)
        b.add_task(("back", i), [("rev", i), "big"], reverse_bytes)
    dag = b.build()
    res = ex.run(dag, [("back", i) for i in range(6)])
    assert all(v == big for v in res.values())


def test_intermediate_results_released_after_last_consumer(manager):
    gate = manager.Gate()
    TRACKED.clear()
    b = ftdag.DagBuilder()
    b.add_source("n", 1 << 20)
    b.add_source("gate", gate)
    b.add_source("name_a", "a")
    b.add_source("name_b1", "b1")
    b.add_source("name_b2", "b2")
    b.add_task("a", ["name_a", "n"], make_tracked)
    b.add_task("b1", ["name_b1", "a"], use_tracked)
    b.add_task("b2", ["name_b2", "a"], use_tracked)
    b.add_task("c", ["gate", "b1", "b2"], final_gated)
    dag = b.build()
    with processes(max_workers=2) as e:
        run = Background(e.run, dag, ["c"])
        try:
            gate.wait_for_arrivals(1)  # c runs: b1 and b2 have finished, a's consumers are done
            gc.collect()
            assert TRACKED["a"] and all(r() is None for r in TRACKED["a"]), "a's result is still held"
            assert any(r() is not None for r in TRACKED["b1"]), "b1's result was dropped before c finished"
        finally:
            gate.open()
        assert dict(run.result()) == {"c": 20}
    gc.collect()
    assert all(r() is None for refs in TRACKED.values() for r in refs)


def test_no_orphan_processes_after_close(manager):
    gate = manager.Gate()
    gate.open()
    b = ftdag.DagBuilder()
    b.add_source("gate", gate)
    b.add_task("p0", ["gate"], functools.partial(_pid_named, "p0"))
    b.add_task("p1", ["gate"], functools.partial(_pid_named, "p1"))
    e = processes(max_workers=2)
    res = e.run(b.build(), ["p0", "p1"])
    pids = set(res.values())
    assert len(pids) == 2 and all(alive(p) for p in pids)
    assert pids == set(pool_of(e).pids())
    e.close()
    e.close()  # idempotent
    assert not any(alive(p) for p in pids)
    assert not pids & {p.pid for p in multiprocessing.active_children()}
    with pytest.raises(RuntimeError):
        e.run(small_dag(), ["z"])


def _pid_named(key, gate):
    return pid_when_both_running(gate, key)


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs signal.pthread_kill")
def test_ctrl_c_terminates_busy_workers_and_executor_stays_usable(ex, manager, monkeypatch):
    monkeypatch.setattr(_processes, "_INTERRUPT_GRACE", 0.2)
    ex.run(small_dag(), ["z"])
    before = set(pool_of(ex).pids())
    gate, probe = manager.Gate(), manager.ConcurrencyProbe()  # never opened: tasks stay busy
    b = ftdag.DagBuilder()
    b.add_source("gate", gate)
    b.add_source("probe", probe)
    for i in range(6):
        b.add_task(i, ["gate", "probe"], functools.partial(_gated_named, i))
    dag = b.build()

    def interrupt():
        gate.wait_for_arrivals(2)  # both workers are running a task
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    helper = Background(interrupt)
    try:
        with pytest.raises(KeyboardInterrupt):
            ex.run(dag, list(range(6)))
        helper.result()
    finally:
        gate.open()
    assert len(probe.started()) == 2  # nothing started after Ctrl-C
    assert not any(alive(p) for p in before)  # the busy workers were terminated...
    assert not before & {p.pid for p in multiprocessing.active_children()}
    assert dict(ex.run(small_dag(), ["z"])) == {"z": 3}  # ...and replaced on next use
    assert len(set(pool_of(ex).pids()) - before) == 2


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs signal.pthread_kill")
def test_ctrl_c_lets_tasks_that_finish_promptly_keep_their_workers(ex, manager, monkeypatch):
    monkeypatch.setattr(_processes, "_INTERRUPT_GRACE", DEFAULT_TIMEOUT)
    ex.run(small_dag(), ["z"])
    before = set(pool_of(ex).pids())
    gate, probe = manager.Gate(), manager.ConcurrencyProbe()
    b = ftdag.DagBuilder()
    b.add_source("gate", gate)
    b.add_source("probe", probe)
    for i in range(6):
        b.add_task(i, ["gate", "probe"], functools.partial(_gated_named, i))
    dag = b.build()
    original_abort = ProcessPool._abort

    def abort_then_open(self, run):  # the running tasks finish within the grace period
        self._stop(run)  # (what _abort does first: after it, no queued task may start)
        gate.open()
        original_abort(self, run)

    monkeypatch.setattr(ProcessPool, "_abort", abort_then_open)

    def interrupt():
        gate.wait_for_arrivals(2)
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    helper = Background(interrupt)
    with pytest.raises(KeyboardInterrupt):
        ex.run(dag, list(range(6)))
    helper.result()
    assert len(probe.started()) == 2
    monkeypatch.undo()
    assert set(pool_of(ex).pids()) == before  # drained, not terminated
    assert dict(ex.run(small_dag(), ["z"])) == {"z": 3}
    assert set(pool_of(ex).pids()) == before


def test_auto_picks_processes_with_the_gil_and_threads_without():
    free_threaded = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    with ftdag.Executor(ftdag.ExecutorConfig(backend="auto", max_workers=2)) as e:
        res = e.run(small_dag(), ["z"])
    assert dict(res) == {"z": 3}
    assert res.stats.backend == ("threads" if free_threaded else "processes")
    assert res.stats.backend == ("processes" if getattr(sys, "_is_gil_enabled", lambda: True)() else "threads")


def proxy_uses(gate, key):
    """Pass the gate; return this worker's pid and how many tasks got this very proxy object."""
    gate._test_uses = getattr(gate, "_test_uses", 0) + 1
    gate.wait(key)
    return os.getpid(), gate._test_uses


def test_a_worker_reuses_one_proxy_per_shared_object(ex, manager):
    # Unpickling a fresh proxy connects to the manager (to register it, to call it, and to
    # unregister it when collected): on a loaded machine that made every gated task slow.
    # ftdag.testing's proxies unpickle to one cached proxy per process and object.
    gate = manager.Gate()
    gate.open()
    b = ftdag.DagBuilder()
    b.add_source("gate", gate)
    n = 30
    for i in range(n):
        b.add_task(i, ["gate"], functools.partial(_proxy_uses_named, i))
    dag = b.build()
    uses = {}
    for _ in range(2):
        for pid, count in ex.run(dag, list(range(n))).values():
            uses.setdefault(pid, []).append(count)
    assert set(uses) <= set(pool_of(ex).pids())
    # Each worker's tasks got one proxy: the first saw it unused, each next one used once more.
    assert all(sorted(counts) == list(range(1, len(counts) + 1)) for counts in uses.values()), uses
    assert sorted(gate.arrived) == sorted(list(range(n)) * 2)


def _proxy_uses_named(key, gate):
    return proxy_uses(gate, key)
