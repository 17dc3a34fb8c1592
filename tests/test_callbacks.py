"""Run callbacks on every backend: the events, their order, where they run, and failures."""

from __future__ import annotations

import functools
import threading

import pytest

import ftdag

BACKENDS = ["sequential", "threads", "processes"]


class Recorder(ftdag.Callback):
    """Records every event under a lock (task events come from worker threads)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.events = []

    def on_run_start(self, info):
        with self.lock:
            self.events.append(("run_start", info))

    def on_task_start(self, key, worker):
        with self.lock:
            self.events.append(("start", key, worker))

    def on_task_end(self, key, worker, elapsed_s, error):
        with self.lock:
            self.events.append(("end", key, worker, elapsed_s, error))

    def on_run_end(self, result, error):
        with self.lock:
            self.events.append(("run_end", result, error))


def add(*xs):
    return sum(xs)


def fails(*args):
    raise ValueError("bad")


def flaky(path, x):
    with open(path, "a") as f:
        f.write("x")
    with open(path) as f:
        if len(f.read()) < 2:
            raise OSError("first attempt")
    return x


def check_task_events(events, workers):
    """Each attempt: a start, then its end on the same worker, each once."""
    open_ = {}
    for e in events:
        if e[0] == "start":
            assert e[1] not in open_, f"{e[1]!r} started twice without ending"
            assert 0 <= e[2] < workers
            open_[e[1]] = e[2]
        elif e[0] == "end":
            assert open_.pop(e[1]) == e[2], f"{e[1]!r} ended on another worker than it started"
            assert e[3] >= 0
    assert not open_, f"started but never ended: {open_}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_events_of_a_run(backend):
    rec = Recorder()
    b = ftdag.DagBuilder()
    b.add_source("s", 1)
    b.add_task("a", ["s"], functools.partial(add, 1))
    b.add_task("b", ["a"], functools.partial(add, 2))
    b.add_task("unused", ["s"], functools.partial(add, 3))
    dag = b.build()
    with ftdag.Executor(backend=backend, max_workers=2) as ex:
        res = ex.run(dag, ["b"], callbacks=[rec])
    assert res["b"] == 4
    kinds = [e[0] for e in rec.events]
    assert kinds[0] == "run_start" and kinds[-1] == "run_end"
    info = rec.events[0][1]
    assert info.keys == ("s", "a", "b") and info.count == 3 and info.backend == backend
    assert info.workers == (1 if backend == "sequential" else 2)
    assert [e[1] for e in rec.events if e[0] == "end"] == ["a", "b"]
    assert all(e[4] is None for e in rec.events if e[0] == "end")
    check_task_events(rec.events[1:-1], info.workers)
    assert rec.events[-1][1] is not None and rec.events[-1][1]["b"] == 4 and rec.events[-1][2] is None


@pytest.mark.parametrize("backend", BACKENDS)
def test_failures_and_retries_are_reported(backend, tmp_path):
    rec = Recorder()
    b = ftdag.DagBuilder()
    b.add_source("s", 1)
    b.add_task("flaky", ["s"], functools.partial(flaky, str(tmp_path / "calls")), retries=1, retry_on=(OSError,))
    b.add_task("bad", ["s"], fails)
    b.add_task("after_bad", ["bad"], functools.partial(add, 1))
    dag = b.build()
    with ftdag.Executor(backend=backend, max_workers=2, callbacks=[rec]) as ex:
        res = ex.run(dag, ["flaky", "after_bad"], on_error="keep_going")
        with pytest.raises(ftdag.TaskError) as info:
            ex.run(dag, ["bad"])
    ends = [e for e in rec.events if e[0] == "end"]
    flaky_ends = [e for e in ends if e[1] == "flaky"]
    assert len(flaky_ends) == 2  # each attempt
    assert isinstance(flaky_ends[0][4], OSError) and flaky_ends[1][4] is None
    bad_ends = [e for e in ends if e[1] == "bad"]
    assert len(bad_ends) == 2 and all(isinstance(e[4], ValueError) for e in bad_ends)
    assert not any(e[1] == "after_bad" for e in ends)  # skipped: never started
    run_ends = [e for e in rec.events if e[0] == "run_end"]
    assert run_ends[0][1] is res and run_ends[0][2] is None
    failed_result, error = run_ends[1][1], run_ends[1][2]
    assert error is info.value and set(failed_result.failed) == {"bad"}
    check_task_events([e for e in rec.events if e[0] in ("start", "end")], 2)


class Broken(ftdag.Callback):
    def on_task_end(self, key, worker, elapsed_s, error):
        raise RuntimeError("callback bug")


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_failing_callback_warns_and_the_run_goes_on(backend):
    rec = Recorder()
    b = ftdag.DagBuilder()
    b.add_task("t", [], functools.partial(add, 5))
    with ftdag.Executor(backend=backend, max_workers=2) as ex, pytest.warns(
        ftdag.CallbackWarning, match="Broken.*on_task_end.*callback bug"
    ):
        res = ex.run(b.build(), ["t"], callbacks=[Broken(), rec])
    assert res["t"] == 5
    assert [e[0] for e in rec.events] == ["run_start", "start", "end", "run_end"]


def test_bad_callbacks_are_named():
    b = ftdag.DagBuilder()
    b.add_task("t", [], functools.partial(add, 1))
    with ftdag.Executor(backend="threads") as ex:
        with pytest.raises(TypeError, match="list or tuple"):
            ex.run(b.build(), ["t"], callbacks=Recorder())
        with pytest.raises(TypeError, match="lacks on_run_start"):
            ex.run(b.build(), ["t"], callbacks=[object()])
    with pytest.raises(TypeError, match="Executor\\(callbacks=...\\)"):
        ftdag.Executor(callbacks=[1])


def test_an_interrupted_run_reports_its_end():
    rec = Recorder()

    def stop(x):
        raise KeyboardInterrupt

    b = ftdag.DagBuilder()
    b.add_source("s", 1)
    b.add_task("k", ["s"], stop)
    with ftdag.Executor(backend="threads", max_workers=1) as ex, pytest.raises(KeyboardInterrupt):
        ex.run(b.build(), ["k"], callbacks=[rec])
    assert rec.events[-1][0] == "run_end" and isinstance(rec.events[-1][2], KeyboardInterrupt)


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_ftdag_logger_records_runs_failures_and_retries(backend, caplog, tmp_path):
    b = ftdag.DagBuilder()
    b.add_source("s", 1)
    b.add_task("flaky", ["s"], functools.partial(flaky, str(tmp_path / "calls")), retries=1, retry_on=(OSError,))
    b.add_task("bad", ["s"], fails)
    dag = b.build()
    with ftdag.Executor(backend=backend, max_workers=2) as ex:
        with caplog.at_level("DEBUG", logger="ftdag"):
            ex.run(dag, ["flaky", "bad"], on_error="keep_going")
        messages = [r.getMessage() for r in caplog.records if r.name == "ftdag"]
        assert any("starts" in m for m in messages) and any(m.startswith(f"run on {backend} ended") for m in messages)
        assert any("task 'flaky' failed (attempt 1 of 2): OSError" in m for m in messages)
        assert any("task 'bad' failed for good after 1 attempt(s)" in m for m in messages)
        caplog.clear()
        ex.run(dag, ["flaky"])  # the logger is not enabled for DEBUG now: nothing is recorded
        assert not [r for r in caplog.records if r.name == "ftdag"]
