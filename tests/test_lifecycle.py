"""The edges of a thread-pool run's life: close() racing run(), Ctrl-C at awkward moments,
values freed outside the scheduler's lock, nothing pinned by idle threads, a crashed thread.

Tasks block on gates and events the test controls; the test waits on conditions with
timeouts.  Ctrl-C is a real SIGINT sent to the main thread with ``signal.pthread_kill``.
"""

from __future__ import annotations

import gc
import signal
import threading
import weakref

import pytest
from helpers import Finalized

import ftdag
from ftdag.testing import ConcurrencyProbe, Gate, pool_state, wait_for_pool

TIMEOUT = 20.0


def threads(max_workers, **options):
    return ftdag.Executor(max_workers=max_workers, backend="threads", **options)


def in_background(fn, *args):
    """Run ``fn(*args)`` on a thread; return (thread, outcome dict with 'result' or 'error')."""
    outcome: dict = {}

    def main():
        try:
            outcome["result"] = fn(*args)
        except BaseException as exc:
            outcome["error"] = exc

    t = threading.Thread(target=main)
    t.start()
    return t, outcome


def independent(n, fn=lambda i: i):
    b = ftdag.DagBuilder()
    for i in range(n):
        b.add_task(f"t{i}", [], lambda i=i: fn(i))
    return b.build(), [f"t{i}" for i in range(n)]


def callers_task_first(gate: Gate, roles: dict) -> None:
    """Two tasks are at ``gate``: let the one the caller (the main thread) runs through first,
    then, once it is through, the other; ``roles`` maps each key to the thread that runs it."""
    arrived = gate.wait_for_arrivals(2, TIMEOUT)
    first = next((k for k in arrived if roles[k] == "MainThread"), arrived[0])
    gate.let_through(first)
    gate.wait_for_passed(1, TIMEOUT)
    gate.open()


def require_main_thread():
    assert threading.current_thread() is threading.main_thread(), "signals reach the main thread only"


# -- close() and run() --------------------------------------------------------------------------


def test_close_during_a_run_waits_for_it():
    gate = Gate()
    dag, outputs = independent(6, lambda i: gate.wait(i) or i)
    ex = threads(2)
    runner, ran = in_background(ex.run, dag, outputs)
    gate.wait_for_arrivals(2, TIMEOUT)
    closer, closed = in_background(ex.close)
    # close() cannot finish while the run holds its tasks at the gate ...
    wait_for_pool(ex, lambda s: s.running == 2, TIMEOUT)
    assert closer.is_alive() and runner.is_alive()
    gate.open()
    # ... and when they are let through, the run completes normally and close() returns.
    runner.join(TIMEOUT)
    closer.join(TIMEOUT)
    assert not runner.is_alive() and not closer.is_alive()
    assert dict(ran["result"]) == {k: i for i, k in enumerate(outputs)}
    assert "error" not in closed
    assert not [t for t in threading.enumerate() if t.name.startswith("ftdag-worker-")]
    with pytest.raises(RuntimeError, match="closed"):
        ex.run(dag, outputs)


def test_close_racing_the_first_run_never_hangs():
    # The window: run() had checked that the pool was open but not yet published its run when
    # close() stopped the threads; run() then waited for threads that no longer existed.
    dag, outputs = independent(2_000)
    for i in range(60):
        ex = threads(2)
        start = threading.Barrier(2)

        def run(ex=ex, start=start):
            start.wait(TIMEOUT)
            return ex.run(dag, outputs)

        runner, ran = in_background(run)
        start.wait(TIMEOUT)
        for _ in range(i % 4 * 50):  # vary where close() lands
            pass
        ex.close()
        runner.join(TIMEOUT)
        assert not runner.is_alive(), f"run() hung after close() (iteration {i})"
        if "error" in ran:
            assert isinstance(ran["error"], RuntimeError) and "closed" in str(ran["error"])
        else:
            assert len(ran["result"]) == len(outputs)


def test_close_from_a_task_lets_the_run_finish():
    gate = Gate()
    holder: dict = {}

    def closer(i):
        if i == 0:
            holder["ex"].close()
        gate.wait(i)
        return i

    dag, outputs = independent(4, closer)
    ex = holder["ex"] = threads(2)
    runner, ran = in_background(ex.run, dag, outputs)
    gate.wait_for_arrivals(2, TIMEOUT)
    gate.open()
    runner.join(TIMEOUT)
    assert dict(ran["result"]) == {k: i for i, k in enumerate(outputs)}
    with pytest.raises(RuntimeError, match="closed"):
        ex.run(dag, outputs)
    ex.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("ftdag-worker-")]


# -- values are freed outside the scheduler's lock ----------------------------------------------


def test_values_are_freed_outside_the_lock():
    # A finalizer that needs the scheduler's lock: under the lock it could never get it.
    got: list[bool] = []
    with threads(2) as ex:

        def on_del():
            lock = ex._threads._lock
            ok = lock.acquire(timeout=5)
            got.append(ok)
            if ok:
                lock.release()

        b = ftdag.DagBuilder()
        b.add_task("v", [], lambda: Finalized(on_del))
        b.add_task("q1", ["v"], lambda v: 1)
        b.add_task("q2", ["v"], lambda v: 2)
        b.add_task("chain", ["v"], lambda v: 3)
        b.add_task("end", ["chain"], lambda c: c)
        dag = b.build()
        for _ in range(5):
            assert dict(ex.run(dag, ["q1", "q2", "end"])) == {"q1": 1, "q2": 2, "end": 3}
            wait_for_pool(ex, lambda s: s.idle == s.workers, TIMEOUT)
    assert got == [True] * 5


def test_a_finalizer_that_runs_the_executor_does_not_deadlock():
    inner = ftdag.DagBuilder()
    inner.add_source("x", 1)
    inner.add_task("y", ["x"], lambda x: x + 1)
    inner_dag = inner.build()
    seen: list = []
    with threads(2) as ex:
        b = ftdag.DagBuilder()
        b.add_task("v", [], lambda: Finalized(lambda: seen.append(ex.run(inner_dag, ["y"])["y"])))
        b.add_task("a", ["v"], lambda v: 1)
        b.add_task("b", ["v"], lambda v: 2)
        assert dict(ex.run(b.build(), ["a", "b"])) == {"a": 1, "b": 2}
    assert seen == [2]


@pytest.mark.timeout(60)
def test_ctrl_c_while_a_worker_frees_a_slow_value():
    """A SIGINT while a pool thread runs a slow finalizer must not break the scheduler's lock."""
    require_main_thread()
    gate = Gate()
    in_del, let_del, del_done = threading.Event(), threading.Event(), threading.Event()
    roles: dict = {}

    def slow_del():
        if threading.current_thread().name.startswith("ftdag-worker-"):
            in_del.set()
            let_del.wait(TIMEOUT)
            del_done.set()

    def make(key):
        roles[key] = threading.current_thread().name
        gate.wait(key)
        return Finalized(slow_del)

    # Per branch: key -> use -> after.  key's value is freed when use (an output, so not a
    # solo link) finishes, by the thread that ran key; that thread then runs after, so the run
    # is not over while the finalizer runs.
    b = ftdag.DagBuilder()
    for key in ("a", "b"):
        b.add_task(key, [], lambda key=key: make(key))
        b.add_task(f"use-{key}", [key], lambda v: 1)
        b.add_task(f"after-{key}", [f"use-{key}"], lambda u: u + 1)
    dag = b.build()
    outputs = ["use-a", "use-b", "after-a", "after-b"]
    expected = {"use-a": 1, "use-b": 1, "after-a": 2, "after-b": 2}
    main = threading.main_thread().ident

    def drive():
        callers_task_first(gate, roles)  # so the caller is waiting, not running a task
        if in_del.wait(TIMEOUT):
            signal.pthread_kill(main, signal.SIGINT)

    with threads(2) as ex:
        driver = threading.Thread(target=drive)
        driver.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                ex.run(dag, outputs)
            # Promptly: while the finalizer still runs (the caller never needed the lock it ran under).
            assert not del_done.is_set()
        finally:
            let_del.set()
            driver.join(TIMEOUT)
        assert in_del.is_set()
        # The lock was never released on the worker's behalf: the pool runs on, with both slots.
        wait_for_pool(ex, lambda s: s.idle == s.workers, TIMEOUT)
        gate.open()
        for _ in range(20):
            assert dict(ex.run(dag, outputs)) == expected
        gate2 = Gate()
        both, outputs = independent(2, lambda i: gate2.wait(i) or i)
        opener = threading.Thread(target=lambda: (gate2.wait_for_arrivals(2, TIMEOUT), gate2.open()))
        opener.start()
        assert len(ex.run(both, outputs)) == 2
        opener.join(TIMEOUT)


# -- nothing of a finished run stays alive -------------------------------------------------------


class Big:
    pass


def tracked(refs: list) -> Big:
    """A new :class:`Big`, with a weak reference to it added to ``refs``."""
    obj = Big()
    refs.append(weakref.ref(obj))
    return obj


def boom(*_):
    raise ValueError("boom")


@pytest.mark.parametrize("fail", [False, True], ids=["ok", "failed"])
def test_idle_threads_keep_no_value_alive(fail):
    gate = Gate()
    refs: list = []

    def make(i):
        gate.wait(i)  # both tasks run at once: one of them on a pool thread
        return tracked(refs)

    b = ftdag.DagBuilder()
    b.add_task("x", [], lambda: make("x"))
    b.add_task("y", [], lambda: make("y"))
    b.add_task("bad", ["x"], boom)
    dag = b.build()
    with threads(2) as ex:
        opener = threading.Thread(target=lambda: (gate.wait_for_arrivals(2, TIMEOUT), gate.open()))
        opener.start()
        if fail:
            with pytest.raises(ftdag.TaskError):
                ex.run(dag, ["y", "bad"])
        else:
            res = ex.run(dag, ["x", "y"])
            assert all(isinstance(v, Big) for v in res.values())
            del res
        opener.join(TIMEOUT)
        wait_for_pool(ex, lambda s: s.idle == s.workers, TIMEOUT)
        gc.collect()
        assert len(refs) == 2
        assert [r() for r in refs] == [None, None]


# -- a run cut short while starting the threads -------------------------------------------------


def test_interrupted_thread_start_leaves_no_half_started_pool(monkeypatch):
    workers = 4
    real_start = threading.Thread.start
    calls = []

    def start(self):
        if not self.name.startswith("ftdag-worker-"):
            return real_start(self)
        calls.append(self.name)
        if len(calls) == 2:
            real_start(self)
            raise KeyboardInterrupt  # landed after the thread started
        if len(calls) == 3:
            raise KeyboardInterrupt  # landed before it started
        return real_start(self)

    gate, probe = Gate(), ConcurrencyProbe()

    def task(i):
        with probe.track(i):
            gate.wait(i)
        return i

    dag, outputs = independent(workers, task)
    ex = threads(workers)
    monkeypatch.setattr(threading.Thread, "start", start)
    for _ in range(2):  # the first run is cut after two starts, the second at its first
        with pytest.raises(KeyboardInterrupt):
            ex.run(dag, outputs)
    monkeypatch.undo()
    assert len(calls) == 3
    runner, ran = in_background(ex.run, dag, outputs)
    gate.wait_for_arrivals(workers, TIMEOUT)  # every slot runs a task: no thread is missing
    assert probe.current == workers
    gate.open()
    runner.join(TIMEOUT)
    assert len(ran["result"]) == workers and ran["result"].stats.workers == workers
    ex.close()
    leftover = [t for t in threading.enumerate() if t.name.startswith("ftdag-worker-")]
    assert not leftover, leftover


# -- a crashed pool thread stops its run ---------------------------------------------------------


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_crashed_thread_stops_its_run(monkeypatch):
    """After a pool thread crashes, no task of that run starts, solo chain links included."""
    from ftdag import _threads

    workers, links = 3, 20
    gate, probe = Gate(), ConcurrencyProbe()
    roles: dict = {}
    crasher: list = []
    real_check_done = _threads.ThreadPool._check_done

    def check_done(self, *args):  # called by every finish after which the thread runs no dependent
        if threading.current_thread().name in crasher:
            raise AssertionError("scheduler bug")
        return real_check_done(self, *args)

    def head(key):
        roles[key] = threading.current_thread().name
        with probe.track(key):
            gate.wait(key)
        return 0

    def link(key, x):
        with probe.track(key):
            return x + 1

    b = ftdag.DagBuilder()
    tails = []
    for c in range(workers):  # one chain per slot; each link is a solo link of the one before
        b.add_task((c, 0), [], lambda key=(c, 0): head(key))
        for j in range(1, links):
            b.add_task((c, j), [(c, j - 1)], lambda x, key=(c, j): link(key, x))
        tails.append((c, links - 1))
    dag = b.build()
    with threads(workers, worker_queue_cap=1) as ex:
        monkeypatch.setattr(_threads.ThreadPool, "_check_done", check_done)
        runner, ran = in_background(ex.run, dag, tails)
        heads = gate.wait_for_arrivals(workers, TIMEOUT)
        doomed = next(k for k in heads if roles[k].startswith("ftdag-worker-"))
        crasher.append(roles[doomed])
        gate.let_through(doomed)  # its chain runs to the end, then its thread crashes
        wait_for_pool(ex, lambda s: s.stopped, TIMEOUT)
        gate.open()
        runner.join(TIMEOUT)
        assert isinstance(ran.get("error"), RuntimeError) and "crashed" in str(ran["error"])
        others = [k for k in heads if k != doomed]
        probe.wait_for_ends(others, TIMEOUT)
        started = set(probe.started())
        assert {(doomed[0], j) for j in range(links)} <= started
        # The other chains stopped after their heads: not one more link started.
        assert started - {(doomed[0], j) for j in range(links)} == set(others)
        assert pool_state(ex).in_flight == 0


# -- Ctrl-C stops the run at once, even while the caller's task unwinds -------------------------


@pytest.mark.timeout(60)
def test_ctrl_c_stops_the_run_before_the_interrupted_task_unwinds():
    """Pool threads start nothing once SIGINT arrives, while the interrupted task's cleanup runs."""
    require_main_thread()
    gate, probe = Gate(), ConcurrencyProbe()
    in_cleanup = threading.Event()
    driver = None

    def task(i):
        with probe.track(i):
            if threading.current_thread() is threading.main_thread():
                try:
                    gate.wait(("main", i))
                finally:
                    in_cleanup.set()
                    driver.join(TIMEOUT)  # the task's cleanup lasts until the pool has settled
            else:
                gate.wait(("pool", i))
        return i

    dag, outputs = independent(40, task)
    main = threading.main_thread().ident
    with threads(2) as ex:

        def drive():
            gate.wait_for_arrivals(2, TIMEOUT)  # one task on the caller, one on the pool thread
            signal.pthread_kill(main, signal.SIGINT)
            in_cleanup.wait(TIMEOUT)
            gate.open()  # the pool thread's task ends; it must not start another
            # Settled: the pool thread asleep, only the caller's task (in its cleanup) running.
            return wait_for_pool(ex, lambda s: s.idle == 1 and s.running == 1, TIMEOUT)

        driver, settled = in_background(drive)
        try:
            with pytest.raises(KeyboardInterrupt):
                ex.run(dag, outputs)
        finally:
            gate.open()
            driver.join(TIMEOUT)
        assert "error" not in settled, settled
        assert settled["result"].stopped
        assert len(probe.started()) == 2, probe.started()


@pytest.mark.timeout(60)
def test_ctrl_c_stops_every_run_the_main_thread_drives():
    """A task on the main thread drives a run of another executor: SIGINT stops both runs
    before the interrupted inner task unwinds, the outer one included."""
    require_main_thread()
    gate = Gate()
    seen: dict = {}
    with threads(2) as outer_ex, threads(2) as inner_ex:

        def inner(i):
            try:
                gate.wait(("inner", i))  # on the main thread: SIGINT raises KeyboardInterrupt here
            finally:
                seen["outer"] = outer_ex._threads.state().stopped
                seen["inner"] = inner_ex._threads.state().stopped
            return i

        inner_dag, _ = independent(1, inner)
        outer_dag, _ = independent(1, lambda i: inner_ex.run(inner_dag, ["t0"])["t0"])
        main = threading.main_thread().ident
        killer = threading.Thread(target=lambda: (gate.wait_for_arrivals(1, TIMEOUT), signal.pthread_kill(main, signal.SIGINT)))
        killer.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                outer_ex.run(outer_dag, ["t0"])
        finally:
            gate.open()
            killer.join(TIMEOUT)
        assert seen == {"outer": True, "inner": True}
        assert outer_ex.run(outer_dag, ["t0"])["t0"] == 0  # both executors still usable


@pytest.mark.timeout(60)
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_ctrl_c_swallowed_by_a_finalizer_still_ends_the_run():
    require_main_thread()
    in_del = threading.Event()
    started: list = []

    def on_del():
        in_del.set()
        never = threading.Event()
        for _ in range(int(TIMEOUT / 0.05)):  # the SIGINT lands here, and __del__ swallows it;
            never.wait(0.05)  # in slices: 3.13t does not interrupt a wait that began after it

    def link(i, x):
        started.append(i)
        return x

    b = ftdag.DagBuilder()
    b.add_task(0, [], lambda: Finalized(on_del))
    for i in range(1, 30):  # a solo chain: link 2 frees link 1's value, then links follow
        b.add_task(i, [i - 1], lambda x, i=i: link(i, x if i > 1 else None))
    dag = b.build()
    main = threading.main_thread().ident

    def drive():
        if in_del.wait(TIMEOUT):
            signal.pthread_kill(main, signal.SIGINT)

    with threads(1) as ex:
        driver = threading.Thread(target=drive)
        driver.start()
        with pytest.raises(KeyboardInterrupt):
            ex.run(dag, [29])
        driver.join(TIMEOUT)
    # The value of task 0 is freed once task 1 has run; at most the link after that starts.
    assert started[:1] == [1] and len(started) <= 3, started


# -- the Ctrl-C guard stays installed between runs, and close() puts the handler back -------------


def _sigint_self_and_wait(seen: list, count: int) -> None:
    """Send SIGINT to this (the main) thread and wait until a handler appended to ``seen``
    (handlers run between bytecodes of the main thread: soon, but not at once)."""
    signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
    pause = threading.Event()
    for _ in range(int(TIMEOUT / 0.01)):
        if len(seen) >= count:
            return
        pause.wait(0.01)
    raise AssertionError(f"the handler did not run: {seen}")


@pytest.mark.timeout(60)
def test_the_ctrl_c_guard_wraps_the_handler_in_force_until_close():
    require_main_thread()
    from ftdag import _interrupts

    original = signal.getsignal(signal.SIGINT)
    seen: list = []
    try:
        signal.signal(signal.SIGINT, lambda signum, frame: seen.append(("first", signum)))
        first = signal.getsignal(signal.SIGINT)
        dag, outputs = independent(3)
        with threads(2) as ex:
            assert ex.run(dag, outputs)["t2"] == 2
            # Installed by the run and left in place: it wraps the handler that was in force.
            assert signal.getsignal(signal.SIGINT) is _interrupts.GUARD
            assert _interrupts.GUARD.previous is first and _interrupts._main_runs() == []
            _sigint_self_and_wait(seen, 1)  # between runs: the wrapped handler, which does not raise
            assert seen == [("first", signal.SIGINT)]
            # A handler installed over the guard is respected, and the next run wraps it.
            signal.signal(signal.SIGINT, lambda signum, frame: seen.append(("second", signum)))
            second = signal.getsignal(signal.SIGINT)
            assert ex.run(dag, outputs)["t1"] == 1
            assert signal.getsignal(signal.SIGINT) is _interrupts.GUARD and _interrupts.GUARD.previous is second
            _sigint_self_and_wait(seen, 2)
            assert seen[1] == ("second", signal.SIGINT)
        # close() on the main thread, between runs, puts the wrapped handler back.
        assert signal.getsignal(signal.SIGINT) is second
        # The default handler, guarded between runs, still raises KeyboardInterrupt.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        with threads(2) as ex:
            ex.run(dag, outputs)
            assert signal.getsignal(signal.SIGINT) is _interrupts.GUARD
            with pytest.raises(KeyboardInterrupt):
                _sigint_self_and_wait([], 1)
            assert ex.run(dag, outputs)["t0"] == 0  # and the executor is still usable
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, original)


@pytest.mark.timeout(60)
def test_an_ignored_sigint_is_left_alone():
    require_main_thread()
    original = signal.getsignal(signal.SIGINT)
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        dag, outputs = independent(3)
        with threads(2) as ex:
            assert ex.run(dag, outputs)["t2"] == 2
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, original)


# -- a run is over only once the values it dropped are freed -------------------------------------


@pytest.mark.timeout(60)
def test_run_returns_after_dropped_values_are_freed():
    """When run() returns, the finalizers of the values it dropped have run.  (On 3.13t an
    object dropped by a thread that did not make it may be handed back to its maker to free,
    so there the finalizer may run on the caller; the GIL build checks the pool-thread case.)"""
    gate = Gate()
    in_del, main_returned, del_done = threading.Event(), threading.Event(), threading.Event()
    early: list = []
    roles: dict = {}

    def on_del():
        in_del.set()
        early.append(main_returned.wait(1.0))  # True if run() returned while this still ran
        del_done.set()

    def use(key, v):
        roles[key] = threading.current_thread().name
        gate.wait(key)
        return 1

    b = ftdag.DagBuilder()
    b.add_task("v", [], lambda: Finalized(on_del))
    b.add_task("u1", ["v"], lambda v: use("u1", v))
    b.add_task("u2", ["v"], lambda v: use("u2", v))
    dag = b.build()

    def drive():
        callers_task_first(gate, roles)  # so a pool thread frees the value

    with threads(2) as ex:
        driver = threading.Thread(target=drive)
        driver.start()
        assert dict(ex.run(dag, ["u1", "u2"])) == {"u1": 1, "u2": 1}
        main_returned.set()
        assert del_done.wait(TIMEOUT)
        assert early == [False], "run() returned before the dropped value's finalizer ran"
        driver.join(TIMEOUT)
    assert in_del.is_set()


def test_a_failed_runs_values_are_freed_without_the_cycle_collector():
    refs: list = []
    b = ftdag.DagBuilder()
    b.add_task("x", [], lambda: tracked(refs))
    b.add_task("y", ["x"], boom)
    b.add_task("z", ["x"], lambda x: 1)
    dag = b.build()
    # One slot: every object is made and dropped by this thread.  (On free-threaded builds an
    # object dropped by a thread other than its maker is freed by the maker later, which only
    # the collector's merge would hurry; that is not what this test is about.)
    with threads(1) as ex:
        gc.disable()
        try:
            with pytest.raises(ftdag.TaskError):
                ex.run(dag, ["y", "z"])
            wait_for_pool(ex, lambda s: s.idle == s.workers, TIMEOUT)
            assert refs and refs[0]() is None
        finally:
            gc.enable()


# -- a crash between two runs, and close() from the caller's own thread --------------------------


@pytest.mark.timeout(60)
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_crash_before_the_run_is_published_starts_none_of_it(monkeypatch):
    """A pool thread still finishing a task of an abandoned run crashes just before the next
    run is published: that run must start nothing, not run on without the crashed thread."""
    require_main_thread()
    from ftdag import _threads

    real_check_done, real_run_alone = _threads.ThreadPool._check_done, _threads.run_alone
    gate = Gate()
    started: list = []

    def check_done(self, *args):  # called by every finish after which the thread runs no dependent
        if threading.current_thread().name.startswith("ftdag-worker-"):
            raise AssertionError("scheduler bug")
        return real_check_done(self, *args)

    first, _ = independent(3, lambda i: gate.wait(i))
    second, outputs = independent(10, lambda i: started.append(i))
    main = threading.main_thread().ident
    with threads(3) as ex:
        killer = threading.Thread(target=lambda: (gate.wait_for_arrivals(3, TIMEOUT), signal.pthread_kill(main, signal.SIGINT)))
        killer.start()
        with pytest.raises(KeyboardInterrupt):  # abandoned; both pool threads still hold a task
            ex.run(first, ["t0", "t1", "t2"])
        killer.join(TIMEOUT)
        pool = ex._threads

        def run_alone(pool_, run, main):  # a plain run starts alone: run_alone publishes it
            gate.open()  # the pool threads' tasks end, and their finish crashes ...
            pool.wait_for_state(lambda s: pool._crash is not None, TIMEOUT)
            return real_run_alone(pool_, run, main)  # ... after run() checked, before publishing

        monkeypatch.setattr(_threads.ThreadPool, "_check_done", check_done)
        monkeypatch.setattr(_threads, "run_alone", run_alone)
        with pytest.raises(RuntimeError, match="crashed"):
            ex.run(second, outputs)
        assert started == []


def test_close_from_the_callers_own_thread_before_the_run_starts_does_not_deadlock(monkeypatch):
    from ftdag import _threads

    real_start = _threads.ThreadPool._start_threads
    dag, outputs = independent(4)
    ex = threads(2)

    def start_threads(self):
        ex.close()  # as a signal handler or a finalizer on this thread might, mid-run()
        return real_start(self)

    monkeypatch.setattr(_threads.ThreadPool, "_start_threads", start_threads)
    runner, ran = in_background(ex.run, dag, outputs)
    runner.join(TIMEOUT)
    assert not runner.is_alive(), "run() deadlocked on its own close()"
    monkeypatch.undo()
    ex.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("ftdag-worker-")]
