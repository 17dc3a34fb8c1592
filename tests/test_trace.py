"""ftdag.Trace on every backend: the Chrome trace it saves, its summary, the critical path, the
timeline picture, and how it places attempts whose start it only learns from the reply."""

from __future__ import annotations

import functools
import io
import json
import sys
import threading

import pytest
from helpers import TIMEOUT, Background, CallManager, add, fails, flaky, kept_by_fixture

import ftdag
from ftdag.testing import Gate, shared_manager

BACKENDS = ["sequential", "threads", "processes"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EPS_US = 1e-3  # timestamps are rounded to the nanosecond: lanes may touch within that


@pytest.fixture(scope="module")
def manager():
    with shared_manager(CallManager) as m, kept_by_fixture(m):
        yield m


# -- task functions (module level, so that worker processes import them) -----------------------




def gated(gate, key, *args):
    if gate is not None:
        gate.wait(key)
    return key


class EndSeen(ftdag.Callback):
    """Sets ``event`` when ``key`` reports its end (in the parent on every backend)."""

    def __init__(self, key):
        self.key = key
        self.event = threading.Event()

    def on_task_end(self, key, worker, elapsed_s, error):
        if key == self.key:
            self.event.set()


def mixed_graph(tmp_path):
    """Twelve tasks in layers, a task that fails once and is retried, and one that fails for good."""
    b = ftdag.DagBuilder()
    b.add_source("s", 1)
    for i in range(6):
        b.add_task(f"x{i}", ["s"], functools.partial(add, i))
    for i in range(3):
        b.add_task(f"y{i}", [f"x{2 * i}", f"x{2 * i + 1}"], add)
    b.add_task(("z", 0), ["y0", "y1"], add)
    b.add_task(("z", 1), ["y1", "y2"], add)
    b.add_task("top", [("z", 0), ("z", 1)], add)
    b.add_task("flaky", ["s"], functools.partial(flaky, str(tmp_path / "calls")), retries=1, retry_on=(OSError,))
    b.add_task("bad", ["s"], fails)
    return b.build()


def run_traced(backend, dag, outputs, *callbacks, workers=2, **options):
    with ftdag.Executor(backend=backend, max_workers=workers) as ex:
        return ex.run(dag, outputs, callbacks=list(callbacks), **options)


def check_chain(path, dag, spans):
    """``path`` is a chain: each attempt is a dependency (or the previous attempt) of the next,
    and it ends with the attempt that ended last."""
    assert path, "a run with tasks has a critical path"
    assert path[-1].end == max(s.end for s in spans)
    for before, after in zip(path, path[1:]):
        linked = before.key in dag.dependencies(after.key) or (
            before.key == after.key and before.attempt == after.attempt - 1)
        assert linked, f"{before.key!r} -> {after.key!r} is not a dependency link"
        assert before.end <= after.start + 1e-9


# -- the Chrome trace ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_saved_trace_has_one_complete_event_per_attempt(backend, tmp_path):
    dag = mixed_graph(tmp_path)
    trace = ftdag.Trace(dag)
    res = run_traced(backend, dag, ["top", "flaky", "bad"], trace, on_error="keep_going")
    assert set(res.failed) == {"bad"}
    workers = res.stats.workers
    path = trace.save(tmp_path / "run.json")
    with open(path) as f:
        data = json.load(f)
    events = data["traceEvents"]
    complete = [e for e in events if e["ph"] == "X"]
    # 12 tasks that succeed at once, flaky twice, bad once
    assert len(complete) == 12 + 2 + 1
    names = sorted(e["name"] for e in complete)
    expected = [f"x{i}" for i in range(6)] + [f"y{i}" for i in range(3)] + ["('z', 0)", "('z', 1)", "top"]
    assert names == sorted(expected + ["flaky", "flaky", "bad"])
    for e in complete:
        assert 0 <= e["tid"] < workers and e["pid"] == 1
        assert e["ts"] >= 0 and e["dur"] >= 0
    failed = sorted((e["name"], e["args"]["attempt"], e["args"]["error"]) for e in complete if "error" in e["args"])
    assert failed == [("bad", 1, "ValueError"), ("flaky", 1, "OSError")]
    assert [e["args"]["attempt"] for e in complete if e["name"] == "flaky" and "error" not in e["args"]] == [2]
    # Each lane runs one attempt at a time.
    for w in range(workers):
        lane = sorted((e["ts"], e["ts"] + e["dur"]) for e in complete if e["tid"] == w)
        for (_, end), (start, _) in zip(lane, lane[1:]):
            assert end <= start + EPS_US, f"worker {w}: attempts overlap"
    lanes = {e["tid"]: e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    assert lanes == {w: f"worker {w}" for w in range(workers)}
    assert data["otherData"]["backend"] == backend


def test_each_run_starts_a_new_trace():
    b = ftdag.DagBuilder()
    b.add_task("one", [], functools.partial(add, 1))
    b.add_task("two", [], functools.partial(add, 2))
    dag = b.build()
    trace = ftdag.Trace()
    with ftdag.Executor(backend="threads", max_workers=2, callbacks=[trace]) as ex:
        ex.run(dag, ["one", "two"])
        ex.run(dag, ["two"])
    assert [s.key for s in trace.spans] == ["two"] and trace.spans[0].attempt == 1


# -- the summary and the critical path ----------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_summary(backend, tmp_path):
    dag = mixed_graph(tmp_path)
    trace = ftdag.Trace(dag)
    res = run_traced(backend, dag, ["top", "flaky", "bad"], trace, on_error="keep_going")
    out = io.StringIO()
    summary = trace.summary(top=4, file=out)
    assert summary.backend == backend and summary.workers == res.stats.workers
    assert summary.attempts == 15 and summary.failed == 2
    assert summary.wall_s > 0 and len(summary.busy_s) == summary.workers
    assert 0 <= summary.utilisation <= 1
    assert summary.utilisation == pytest.approx(min(sum(summary.busy_s) / (summary.workers * summary.wall_s), 1.0))
    longest = [s.elapsed for s in summary.longest]
    assert len(longest) == 4 and longest == sorted(longest, reverse=True)
    assert longest[0] == max(s.elapsed for s in trace.spans)
    assert summary.exact
    check_chain(list(summary.critical_path), dag, trace.spans)
    assert summary.critical_path_s == pytest.approx(sum(s.duration for s in summary.critical_path))
    text = out.getvalue()
    assert text == str(summary) + "\n"
    for line in ("wall time: ", "busy time: worker 0 ", "utilisation: ", "longest tasks:", "critical path ("):
        assert line in text


@pytest.mark.parametrize("backend", BACKENDS)
def test_critical_path_of_a_known_run(backend, manager):
    """A chain a -> b -> c -> end, and a side task that ``end`` also needs but that ends
    before ``a`` does: the path is the chain."""
    gate = None if backend == "sequential" else manager.Gate() if backend == "processes" else Gate()
    b = ftdag.DagBuilder()
    b.add_source("s", 0)
    # sequential: side runs first by its priority; elsewhere the gate orders side's end before a's
    b.add_task("side", ["s"], functools.partial(gated, gate, "side"), priority=1)
    b.add_task("a", ["s"], functools.partial(gated, gate, "a"))
    b.add_task("b", ["a"], functools.partial(gated, None, "b"))
    b.add_task("c", ["b"], functools.partial(gated, None, "c"))
    b.add_task("end", ["c", "side"], functools.partial(gated, None, "end"))
    dag = b.build()
    with_dag, without = ftdag.Trace(dag), ftdag.Trace()
    side_ended = EndSeen("side")
    with ftdag.Executor(backend=backend, max_workers=2) as ex:
        bg = Background(functools.partial(ex.run, dag, ["end"], callbacks=[with_dag, without, side_ended]))
        if gate is not None:
            assert sorted(gate.wait_for_arrivals(2)) == ["a", "side"]  # both running, held
            gate.let_through("side")
            assert side_ended.event.wait(TIMEOUT)
            gate.let_through("a")
        assert bg.result()["end"] == "end"
    assert [s.key for s in with_dag.critical_path()] == ["a", "b", "c", "end"]
    # Without the graph each step is whatever ended last before the attempt started: on one
    # worker that is side, which ran just before a.
    guessed = ["side", "a", "b", "c", "end"] if backend == "sequential" else ["a", "b", "c", "end"]
    assert [s.key for s in without.critical_path()] == guessed
    assert with_dag.summary(show=False).exact and not without.summary(show=False).exact


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_retry_is_on_the_critical_path(backend, tmp_path):
    b = ftdag.DagBuilder()
    b.add_source("s", 1)
    b.add_task("flaky", ["s"], functools.partial(flaky, str(tmp_path / "calls")), retries=1, retry_on=(OSError,))
    b.add_task("after", ["flaky"], add)
    dag = b.build()
    trace = ftdag.Trace(dag)
    run_traced(backend, dag, ["after"], trace)
    path = trace.critical_path()
    assert [(s.key, s.attempt, s.error) for s in path] == [("flaky", 1, "OSError"), ("flaky", 2, None), ("after", 1, None)]


def test_a_trace_needs_the_graph_the_run_ran():
    with pytest.raises(TypeError, match=r"Trace\(dag=...\) must be an ftdag.Dag"):
        ftdag.Trace("not a dag")
    b = ftdag.DagBuilder()
    b.add_task("t", [], functools.partial(add, 1))
    other = ftdag.DagBuilder()
    other.add_task("u", [], functools.partial(add, 1))
    trace = ftdag.Trace(other.build())
    run_traced("threads", b.build(), ["t"], trace)
    with pytest.raises(ValueError, match="task 't' is not in the graph the Trace was given"):
        trace.critical_path()
    with pytest.raises(ValueError, match="top"):
        trace.summary(top=-1)


def test_an_empty_trace():
    trace = ftdag.Trace()
    summary = trace.summary(show=False)
    assert summary.attempts == 0 and summary.critical_path == () and summary.utilisation == 0
    assert [e["ph"] for e in trace.chrome_trace()["traceEvents"]] == ["M"]


# -- placing attempts on processes --------------------------------------------------------------


def test_replies_read_late_do_not_make_a_lane_overlap():
    """On processes both events of an attempt arrive with the reply: start = its time minus
    the worker's elapsed time, moved to the end of the lane's previous attempt if earlier."""
    trace = ftdag.Trace()
    trace.on_run_start(ftdag.RunInfo(("a", "b", "c"), 3, "processes", 2))
    for key in ("a", "b"):  # replies read together: each claims to have taken 10 s
        trace.on_task_start(key, 0)
        trace.on_task_end(key, 0, 10.0, None)
    trace.on_task_start("c", 1)
    trace.on_task_end("c", 1, 0.0, RuntimeError("x"))
    trace.on_run_end(None, None)
    a, b, c = trace.spans
    assert (a.key, b.key, c.key) == ("a", "b", "c")
    assert a.start == 0.0 and b.start == a.end and b.elapsed == 10.0 and b.duration < 10.0
    assert c.worker == 1 and c.duration == 0.0 and c.error == "RuntimeError"
    summary = trace.summary(show=False)
    assert summary.busy_s == (20.0, 0.0) and summary.utilisation == 1.0  # busy counts elapsed; capped at 1


# -- the timeline picture -----------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["threads", "processes"])
def test_plot_writes_a_png(backend, tmp_path):
    pytest.importorskip("matplotlib")
    dag = mixed_graph(tmp_path)
    trace = ftdag.Trace(dag)
    run_traced(backend, dag, ["top", "flaky", "bad"], trace, on_error="keep_going")
    path = trace.plot(tmp_path / "run.png", title="a test run")
    assert path == tmp_path / "run.png"
    assert path.read_bytes()[:8] == PNG_SIGNATURE


def test_plot_names_the_extra_when_matplotlib_is_missing(monkeypatch, tmp_path):
    trace = ftdag.Trace()
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"Trace.plot\(\) needs matplotlib.*pip install 'ftdag\[plot\]'"):
        trace.plot(tmp_path / "run.png")
    assert not (tmp_path / "run.png").exists()
