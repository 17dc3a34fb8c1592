"""Failure handling on every backend: retries, keep-going (skip-cascade), the circuit
breaker, per-attempt timeouts, cancellation, the run timeout and ``current_task()``.

Tasks that must be told apart across processes count their calls in files (``tmp_path``) or
through a manager; tasks that must wait block on :class:`ftdag.testing.Gate` s the test
controls, or on ``current_task().cancelled``.  Nothing here sleeps to let time pass, except
the retry delays the tests are about (a few hundred milliseconds at most).
"""

from __future__ import annotations

import functools
import os
import random
import threading

import pytest
from helpers import TIMEOUT, Background, CallLog, CallManager, build_dag, evaluate, kept_by_fixture, random_graph

import ftdag
from ftdag.testing import Gate, shared_manager

BACKENDS = ["sequential", "threads", "processes"]


@pytest.fixture(scope="module")
def manager():
    with shared_manager(CallManager) as m, kept_by_fixture(m):
        yield m


def executor(backend, max_workers=2, **config):
    return ftdag.Executor(backend=backend, max_workers=max_workers, **config)


# -- task functions (module level, so that worker processes import them) -----------------------


def count_call(path) -> int:
    """Append one line to ``path``; return how many lines it has now (calls so far)."""
    with open(path, "a") as f:
        f.write("x\n")
    with open(path) as f:
        return sum(1 for _ in f)


def fails_first(path, k, exc_type, x):
    """Fails its first ``k`` calls (counted in ``path``, across processes) with ``exc_type``."""
    n = count_call(path)
    if n <= k:
        raise exc_type(f"call {n}")
    return (x, n, ftdag.current_task().attempt)


def always_fails(exc_type, *args):
    raise exc_type("always")


def add(*xs):
    return sum(xs)


def ident(x):
    return x


def context_of(*_):
    c = ftdag.current_task()
    return (c.key, c.attempt, c.cancelled)


def gated(gate, key, *args):
    gate.wait(key)
    return key


def until_cancelled(key, *args):
    """Blocks until the run tells it to stop (cooperative cancellation), then says so."""
    ctx = ftdag.current_task()
    stop = threading.Event()
    for _ in range(int(TIMEOUT / 0.01)):
        if ctx.cancelled:
            return ("saw cancelled", key)
        stop.wait(0.01)
    raise TimeoutError(f"{key!r} never saw current_task().cancelled")


def hang_forever_unless(event_path, *args):
    """Blocks (up to the test timeout) until ``event_path`` exists: stands for a hung call."""
    ev = threading.Event()
    for _ in range(int(TIMEOUT / 0.01)):
        if os.path.exists(event_path):
            return "released"
        ev.wait(0.01)
    return "gave up"


def slow_then_fast(path, gate, x):
    """The first call hangs at the gate (and times out); later calls return at once."""
    n = count_call(path)
    if n == 1:
        gate.wait("slow")
        return "late"
    return ("fast", n)


def fail_or_mix(key, failing, *args):
    from helpers import mix

    if key in failing:
        raise ValueError(f"{key} is meant to fail")
    return mix(key, *args)


# -- retries --------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_task_succeeds_after_k_failures(backend, tmp_path):
    calls = tmp_path / "calls"
    b = ftdag.DagBuilder()
    b.add_source("s", 1)
    b.add_task("f", ["s"], functools.partial(fails_first, str(calls), 2, ValueError), retries=3)
    b.add_task("g", ["f"], ident)
    with executor(backend) as ex:
        res = ex.run(b.build(), ["g"])
    assert res["g"] == (1, 3, 3)  # value, calls, attempt number seen by the task
    assert res.stats.retries == 2 and res.stats.failed == 0 and res.ok
    assert calls.read_text().count("x") == 3


@pytest.mark.parametrize("backend", BACKENDS)
def test_retries_exhausted_fail_with_attempts_and_the_last_exception(backend, tmp_path):
    calls = tmp_path / "calls"
    b = ftdag.DagBuilder()
    b.add_source("s", 1)
    b.add_task("f", ["s"], functools.partial(fails_first, str(calls), 99, ValueError), retries=2)
    with executor(backend) as ex, pytest.raises(ftdag.TaskError) as info:
        ex.run(b.build(), ["f"])
    err = info.value
    assert err.key == "f" and err.attempts == 3
    assert isinstance(err.__cause__, ValueError) and str(err.__cause__) == "call 3"
    assert "after 3 attempts" in str(err)
    assert calls.read_text().count("x") == 3


@pytest.mark.parametrize("backend", BACKENDS)
def test_retry_on_filters_the_exceptions_that_are_retried(backend, tmp_path):
    b = ftdag.DagBuilder()
    b.add_source("s", 1)
    b.add_task("v", ["s"], functools.partial(fails_first, str(tmp_path / "v"), 1, ValueError),
               retries=2, retry_on=(ValueError,))
    b.add_task("t", ["s"], functools.partial(fails_first, str(tmp_path / "t"), 1, TypeError),
               retries=2, retry_on=(ValueError,))
    dag = b.build()
    with executor(backend) as ex:
        assert ex.run(dag, ["v"])["v"][1] == 2
        with pytest.raises(ftdag.TaskError) as info:
            ex.run(dag, ["t"])
    assert info.value.attempts == 1 and isinstance(info.value.__cause__, TypeError)
    assert (tmp_path / "t").read_text().count("x") == 1


def test_a_plain_failure_reports_one_attempt():
    b = ftdag.DagBuilder()
    b.add_source("s", 1)
    b.add_task("f", ["s"], functools.partial(always_fails, KeyError))
    with executor("threads") as ex, pytest.raises(ftdag.TaskError) as info:
        ex.run(b.build(), "f")
    assert info.value.attempts == 1


def first_then_check(path, flag, x):
    """Fails its first call; the retry succeeds only if ``flag`` was written meanwhile."""
    n = count_call(path)
    if n == 1:
        raise ValueError("first")
    if not os.path.exists(flag):
        raise AssertionError("the retry ran before the other ready task: it held the worker")
    return "retried"


def write_flag(flag, x):
    with open(flag, "w") as f:
        f.write("ran")
    return "other"


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_task_waiting_for_its_retry_holds_no_worker(backend, tmp_path):
    """One worker: while ``f`` waits out its retry delay (1 to 3 s), the other ready task runs."""
    flag = str(tmp_path / "flag")
    b = ftdag.DagBuilder()
    b.add_source("s", 1)
    b.add_task("f", ["s"], functools.partial(first_then_check, str(tmp_path / "calls"), flag),
               retries=1, retry_on=(ValueError,), retry_delay=2.0)
    b.add_task("other", ["s"], functools.partial(write_flag, flag))
    config = {"max_in_flight": 1} if backend == "processes" else {}
    with executor(backend, max_workers=1, **config) as ex:
        res = ex.run(b.build(), ["f", "other"])
    assert dict(res) == {"f": "retried", "other": "other"}
    assert res.stats.retries == 1


def test_retry_delays_double_with_jitter_and_are_capped():
    from ftdag._options import MAX_RETRY_DELAY_S, retry_delay, task_options

    options = task_options("k", retries=30, retry_delay=0.5)
    rng = random.Random(1)
    for failures, base in [(1, 0.5), (2, 1.0), (3, 2.0), (5, 8.0)]:
        delays = [retry_delay(options, failures, rng) for _ in range(200)]
        assert base * 0.5 <= min(delays) < base * 0.6 and base * 1.4 < max(delays) <= base * 1.5
    assert max(retry_delay(options, 30, rng) for _ in range(50)) == MAX_RETRY_DELAY_S
    assert retry_delay(task_options("k", retries=2), 1, rng) == 0.0


# -- keep going -----------------------------------------------------------------------------------


def expected_outcome(graph, outputs, failing):
    """(ran, failed, skipped) task keys of a keep-going run, computed from the graph alone."""
    from helpers import ancestors

    planned = ancestors(graph, outputs)
    failed, skipped, ran = set(), set(), set()
    for k in sorted(planned):
        deps = graph[k]
        if deps is None:
            continue
        if any(d in failed or d in skipped for d in deps):
            skipped.add(k)
        elif k in failing:
            failed.add(k)
        else:
            ran.add(k)
    return ran, failed, skipped


@pytest.mark.parametrize("backend", BACKENDS)
def test_keep_going_on_random_graphs_runs_exactly_what_does_not_depend_on_a_failure(backend, manager):
    clean_values = {}
    with executor(backend) as ex:
        for seed in range(6):
            rng = random.Random(seed)
            graph = random_graph(rng, 40, max_deps=3, window=8)
            tasks = [k for k, deps in graph.items() if deps is not None]
            failing = frozenset(rng.sample(tasks, 3))
            outputs = rng.sample(list(graph), 10)
            log = CallLog(manager if backend == "processes" else None)
            dag = build_dag(graph, lambda k: log.task(k, functools.partial(fail_or_mix, k, failing)))
            res = ex.run(dag, outputs, on_error="keep_going")
            ran, failed, skipped = expected_outcome(graph, outputs, failing)
            assert set(res.failed) == failed, seed
            assert res.skipped == frozenset(skipped), seed
            log.assert_ran_once(ran | failed)
            clean_values = evaluate(graph)
            for k in outputs:
                if k in failed or k in skipped:
                    assert k not in res
                else:
                    assert res[k] == clean_values[k], (seed, k)
            for k, err in res.failed.items():
                assert err.key == k and err.attempts == 1 and isinstance(err.__cause__, ValueError)
            assert res.stats.failed == len(failed) and res.stats.skipped == len(skipped)
            assert res.ok is (not failed)


@pytest.mark.parametrize("backend", BACKENDS)
def test_keep_going_report_and_raise_for_failures(backend):
    b = ftdag.DagBuilder()
    b.add_source("s", 1)
    b.add_task("bad", ["s"], functools.partial(always_fails, ValueError))
    b.add_task("after_bad", ["bad"], ident)
    b.add_task("good", ["s"], ident)
    with executor(backend) as ex:
        res = ex.run(b.build(), ["after_bad", "good", "bad"], on_error="keep_going")
    assert dict(res) == {"good": 1}
    assert set(res.failed) == {"bad"} and res.skipped == {"after_bad"} and not res.ok
    assert res.failed["bad"].__cause__.__traceback__ is not None or backend == "processes"
    with pytest.raises(ftdag.RunFailedError) as info:
        res.raise_for_failures()
    assert info.value.result is res and [e.key for e in info.value.exceptions] == ["bad"]
    with pytest.raises(TypeError):
        res.failed["x"] = 1  # read-only


def test_keep_going_as_the_executor_default_and_a_clean_run_is_ok():
    b = ftdag.DagBuilder()
    b.add_source("s", 1)
    b.add_task("bad", ["s"], functools.partial(always_fails, ValueError))
    b.add_task("good", ["s"], ident)
    dag = b.build()
    with ftdag.Executor(backend="threads", on_error="keep_going") as ex:
        assert set(ex.run(dag, ["bad", "good"]).failed) == {"bad"}
        with pytest.raises(ftdag.TaskError):
            ex.run(dag, ["bad"], on_error="fail_fast")
        res = ex.run(dag, ["good"])
    assert res.ok and not res.failed and res.skipped == frozenset()
    res.raise_for_failures()  # nothing to raise


@pytest.mark.parametrize("backend", BACKENDS)
def test_max_failures_stops_the_run_and_reports_the_rest_as_skipped(backend, manager):
    log = CallLog(manager if backend == "processes" else None)
    b = ftdag.DagBuilder()
    b.add_source("s", 1)
    keys = [f"t{i}" for i in range(6)]
    for k in keys:
        b.add_task(k, ["s"], log.task(k, functools.partial(always_fails, ValueError)))
    config = {"max_in_flight": 1} if backend == "processes" else {}
    with executor(backend, max_workers=1, **config) as ex:
        res = ex.run(b.build(), keys, on_error="keep_going", max_failures=2)
    assert len(res.failed) == 2 and len(res.skipped) == 4
    assert set(res.failed) | res.skipped == set(keys)
    assert sum(log.counts.values()) == 2
    assert res.stats.failed == 2 and res.stats.skipped == 4


def exits(*args):
    raise SystemExit(3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_base_exception_stops_a_keep_going_run_and_is_raised_as_it_is(backend):
    b = ftdag.DagBuilder()
    b.add_source("s", 1)
    b.add_task("x", ["s"], exits, retries=3)
    with executor(backend) as ex:
        with pytest.raises(SystemExit):
            ex.run(b.build(), ["x"], on_error="keep_going")
        assert ex.run(b.build(), ["s"])["s"] == 1  # still usable


# -- timeouts -------------------------------------------------------------------------------------


def meet(barrier, key, *args):
    barrier.wait(TIMEOUT)
    return key


def test_thread_timeout_abandons_the_call_and_keeps_every_worker_slot(tmp_path):
    release = tmp_path / "release"
    b = ftdag.DagBuilder()
    b.add_source("s", 1)
    b.add_task("hung", ["s"], functools.partial(hang_forever_unless, str(release)), timeout=0.2)
    barrier = threading.Barrier(2)
    for k in ("m1", "m2"):
        b.add_task(k, ["s"], functools.partial(meet, barrier, k))
    dag = b.build()
    try:
        with executor("threads", max_workers=2) as ex:
            with pytest.raises(ftdag.TaskError) as info:
                ex.run(dag, ["hung"])
            assert isinstance(info.value.__cause__, ftdag.TaskTimeoutError)
            assert info.value.__cause__.key == "hung" and info.value.__cause__.timeout == 0.2
            # Both slots are free although the abandoned call still runs: two tasks meet.
            assert dict(ex.run(dag, ["m1", "m2"])) == {"m1": "m1", "m2": "m2"}
    finally:
        release.write_text("go")


def test_process_timeout_kills_the_worker_and_keeps_every_worker(manager, tmp_path):
    gate = manager.Gate()
    b = ftdag.DagBuilder()
    b.add_source("s", 1)
    b.add_task("hung", ["s"], functools.partial(hang_forever_unless, str(tmp_path / "never")), timeout=0.3)
    for k in ("m1", "m2"):
        b.add_task(k, ["s"], functools.partial(gated, gate, k))
    dag = b.build()
    with executor("processes", max_workers=2) as ex:
        pids = set(ex._processes.pids()) if ex._processes else set()
        res = ex.run(dag, ["hung", "s"], on_error="keep_going")
        assert isinstance(res.failed["hung"].__cause__, ftdag.TaskTimeoutError)
        assert pids.isdisjoint(ex._processes.pids()) or not pids
        bg = Background(ex.run, dag, ["m1", "m2"])
        assert sorted(gate.wait_for_arrivals(2)) == ["m1", "m2"]  # both workers run at once
        gate.open()
        assert dict(bg.result()) == {"m1": "m1", "m2": "m2"}


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_timed_out_attempt_is_retried(backend, manager, tmp_path):
    gate = manager.Gate() if backend == "processes" else Gate()
    b = ftdag.DagBuilder()
    b.add_source("s", 1)
    b.add_task("t", ["s"], functools.partial(slow_then_fast, str(tmp_path / "calls"), gate),
               timeout=0.3, retries=1, retry_on=(TimeoutError,))
    try:
        with executor(backend) as ex:
            res = ex.run(b.build(), ["t"])
        assert res["t"] == ("fast", 2) and res.stats.retries == 1
    finally:
        gate.open()


def test_an_abandoned_thread_attempt_sees_cancelled(tmp_path):
    seen = threading.Event()

    def cooperative(x):
        ctx = ftdag.current_task()
        wait = threading.Event()
        for _ in range(int(TIMEOUT / 0.01)):
            if ctx.cancelled:
                seen.set()
                return "stopped early"
            wait.wait(0.01)
        return "never told"

    b = ftdag.DagBuilder()
    b.add_source("s", 1)
    b.add_task("c", ["s"], cooperative, timeout=0.1)
    with executor("threads") as ex, pytest.raises(ftdag.TaskError):
        ex.run(b.build(), ["c"])
    assert seen.wait(TIMEOUT)


# -- cancellation and the run timeout -------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_cancel_from_another_thread_starts_nothing_new(backend, manager):
    gate = manager.Gate() if backend == "processes" else Gate()
    log = CallLog(manager if backend == "processes" else None)
    b = ftdag.DagBuilder()
    b.add_source("s", 1)
    b.add_task("a", ["s"], log.task("a", functools.partial(gated, gate, "a")))
    b.add_task("b", ["s"], log.task("b", functools.partial(gated, gate, "b")))
    b.add_task("after_a", ["a"], log.task("after_a", ident))
    b.add_task("after_b", ["b"], log.task("after_b", ident))
    token = ftdag.CancelToken()
    with executor(backend, max_workers=2) as ex:
        bg = Background(functools.partial(ex.run, cancel=token), b.build(), ["after_a", "after_b", "a"])
        first = gate.wait_for_arrivals(1)
        token.cancel()
        assert token.cancelled
        gate.open()
        with pytest.raises(ftdag.RunCancelledError) as info:
            bg.result()
    result = info.value.result
    ran = set(log.ran)
    assert {"after_a", "after_b"}.isdisjoint(ran)  # nothing started after cancel()
    assert set(first) <= ran
    assert ("a" in result) == ("a" in ran)
    assert {"after_a", "after_b"} <= result.skipped
    assert not isinstance(info.value, ftdag.RunTimeoutError)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_cancelled_token_cancels_the_next_run_before_anything_runs(backend):
    token = ftdag.CancelToken()
    token.cancel()
    b = ftdag.DagBuilder()
    b.add_source("s", 1)
    b.add_task("t", ["s"], ident)
    with executor(backend) as ex, pytest.raises(ftdag.RunCancelledError) as info:
        ex.run(b.build(), ["t"], cancel=token)
    assert info.value.result.skipped == {"t"} and "t" not in info.value.result


@pytest.mark.parametrize("backend", BACKENDS)
def test_run_timeout_stops_the_run_and_running_tasks_see_cancelled(backend, manager):
    log = CallLog(manager if backend == "processes" else None)
    b = ftdag.DagBuilder()
    b.add_source("s", 1)
    b.add_task("long", ["s"], log.task("long", functools.partial(until_cancelled, "long")))
    b.add_task("next", ["long"], log.task("next", ident))
    with executor(backend) as ex:
        with pytest.raises(ftdag.RunTimeoutError) as info:
            ex.run(b.build(), ["next", "long"], timeout=0.3)
        assert isinstance(info.value, ftdag.RunCancelledError) and isinstance(info.value, TimeoutError)
        assert info.value.result["long"] == ("saw cancelled", "long")
        assert "next" in info.value.result.skipped and "next" not in log.ran
        assert ex.run(b.build(), ["s"])["s"] == 1


# -- current_task ---------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("plain", [True, False])
def test_current_task_names_the_running_task(backend, plain, tmp_path):
    b = ftdag.DagBuilder()
    b.add_source("s", 1)
    options = {} if plain else {"retries": 1}
    b.add_task(("k", 1), ["s"], context_of, **options)
    b.add_task("first_fails", ["s"], functools.partial(fails_first, str(tmp_path / "c"), 1, ValueError), retries=1)
    with executor(backend) as ex:
        assert ex.run(b.build(), [("k", 1)])[("k", 1)] == (("k", 1), 1, False)
        if not plain:
            assert ex.run(b.build(), ["first_fails"])["first_fails"][2] == 2


def test_current_task_outside_a_task_raises():
    with pytest.raises(RuntimeError, match="outside a task"):
        ftdag.current_task()


# -- validation -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, error, words", [
    ({"retries": -1}, ValueError, "retries"),
    ({"retries": 1.5}, TypeError, "retries"),
    ({"retries": True}, TypeError, "retries"),
    ({"retry_on": ValueError}, TypeError, "retry_on"),
    ({"retry_on": (ValueError, 3)}, TypeError, "retry_on"),
    ({"retry_on": (ValueError("x"),)}, TypeError, "retry_on"),
    ({"retry_on": ()}, TypeError, "retry_on"),
    ({"retry_delay": -0.1}, ValueError, "retry_delay"),
    ({"retry_delay": float("nan")}, ValueError, "retry_delay"),
    ({"retry_delay": "1"}, TypeError, "retry_delay"),
    ({"timeout": 0}, ValueError, "timeout"),
    ({"timeout": -1}, ValueError, "timeout"),
    ({"timeout": float("inf")}, ValueError, "timeout"),
    ({"timeout": "5"}, TypeError, "timeout"),
    ({"cache": 1}, TypeError, "cache"),
    ({"version": 2}, TypeError, "version"),
    # bools equal to the defaults: add_task's fast path for default options must not take them
    ({"retries": False}, TypeError, "retries"),
    ({"retry_delay": False}, TypeError, "retry_delay"),
    ({"priority": False}, TypeError, "priority"),
    ({"cost": True}, TypeError, "cost"),
])
def test_invalid_task_options_name_the_task_and_the_argument(kwargs, error, words):
    b = ftdag.DagBuilder()
    with pytest.raises(error, match=rf"{words} of task 'bad'"):
        b.add_task("bad", [], ident, **kwargs)
    assert not b._nodes  # nothing was added


@pytest.mark.parametrize("kwargs, error, words", [
    ({"on_error": "ignore"}, ValueError, "on_error"),
    ({"max_failures": 0}, ValueError, "max_failures"),
    ({"max_failures": 2.0, "on_error": "keep_going"}, TypeError, "max_failures"),
    ({"max_failures": 2}, ValueError, "keep_going"),
    ({"cancel": object()}, TypeError, "CancelToken"),
    ({"timeout": 0}, ValueError, "timeout"),
    ({"timeout": "1"}, TypeError, "timeout"),
    ({"store": {}}, TypeError, "store"),
])
def test_invalid_run_arguments_are_named(kwargs, error, words):
    b = ftdag.DagBuilder()
    b.add_source("s", 1)
    with executor("threads") as ex:
        with pytest.raises(error, match=words):
            ex.run(b.build(), ["s"], **kwargs)
        assert ex.run(b.build(), ["s"])["s"] == 1


def test_options_are_compiled_into_the_dag():
    b = ftdag.DagBuilder()
    b.add_source("s", 1)
    b.add_task("plain", ["s"], ident)
    b.add_task("opt", ["s"], ident, retries=2, retry_on=(OSError,), timeout=5, cache=False, version="v2")
    dag = b.build()
    assert dag.options("plain") == ftdag.TaskOptions() == dag.options("s")
    assert dag.options("opt") == ftdag.TaskOptions(2, (OSError,), 0.0, 5.0, False, "v2")
    assert dag._options[dag._id("plain")] is None
    plain = ftdag.DagBuilder()
    plain.add_task("t", [], ident)
    assert plain.build()._options is None  # no table at all when no task has options


def test_current_task_in_a_nested_run_is_the_inner_task():
    inner = ftdag.DagBuilder()
    inner.add_task("inner", [], context_of)
    inner_dag = inner.build()
    with executor("threads") as ex:

        def outer(x):
            nested = ex.run(inner_dag, "inner")["inner"]  # inline on this worker
            return nested, context_of()

        b = ftdag.DagBuilder()
        b.add_source("s", 1)
        b.add_task("outer", ["s"], outer, retries=1, timeout=30)  # a run context and an attempt thread
        nested, mine = ex.run(b.build(), "outer")["outer"]
    assert nested == ("inner", 1, False)
    assert mine == ("outer", 1, False)
