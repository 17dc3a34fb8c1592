"""Checkpoint and resume: ``run(..., store=S)`` on every store and every backend.

A second run of the same request executes nothing; a changed source or ``version`` reruns
exactly what is downstream of it; a damaged record is recomputed with a warning; a run
killed with SIGKILL resumes and ends with the clean run's result.  Task calls are counted by
:class:`helpers.CallLog` (through a manager for the process backend).
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import textwrap
import threading

import pytest
from helpers import REPO, TIMEOUT, CallLog, CallManager, kept_by_fixture

import ftdag
from ftdag.testing import shared_manager

BACKENDS = ["sequential", "threads", "processes"]
STORES = ["memory", "directory-fast", "directory-atomic", "directory-durable", "sqlite"]


@pytest.fixture(scope="module")
def manager():
    with shared_manager(CallManager) as m, kept_by_fixture(m):
        yield m


def make_store(kind, tmp_path):
    if kind == "memory":
        return ftdag.MemoryStore()
    if kind.startswith("directory"):
        return ftdag.DirectoryStore(tmp_path / "store", durability=kind.split("-")[1])
    return ftdag.SQLiteStore(tmp_path / "store.sqlite")


def add(*xs):
    return sum(xs)


def scale(k, x):
    return x * k


def unpicklable_result(x):
    return threading.Lock()


def build(log, s1=1, s2=2, version_a=None, cache_c=True):
    """s1 -> a --.
                  +-> c -> d          (and e, from s2 only, never requested with d)
       s2 -> b --'     """
    b = ftdag.DagBuilder()
    b.add_source("s1", s1)
    b.add_source("s2", s2)
    # Versions name the code: the tasks are wrapped by the call log, whose counts (state bound
    # to the function) would otherwise be part of their fingerprints.
    b.add_task("a", ["s1"], log.task("a", functools.partial(scale, 10)), version=version_a or "1")
    b.add_task("b", ["s2"], log.task("b", functools.partial(scale, 100)), version="1")
    b.add_task("c", ["a", "b"], log.task("c", add), cache=cache_c, version="1")
    b.add_task("d", ["c"], log.task("d", functools.partial(scale, 2)), version="1")
    b.add_task("e", ["s2"], log.task("e", functools.partial(scale, 3)), version="1")
    return b.build()


def clean(s1=1, s2=2):
    a, b = s1 * 10, s2 * 100
    return {"a": a, "b": b, "c": a + b, "d": (a + b) * 2, "e": s2 * 3}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", STORES)
def test_a_second_run_executes_nothing(backend, kind, tmp_path, manager):
    store = make_store(kind, tmp_path)
    log = CallLog(manager if backend == "processes" else None)
    dag = build(log)
    with ftdag.Executor(backend=backend, max_workers=2) as ex:
        first = ex.run(dag, ["d", "e"], store=store)
        assert dict(first) == {"d": clean()["d"], "e": clean()["e"]}
        assert first.stats.stored == 5 and first.stats.loaded == 0
        assert len(store) == 5
        log.assert_ran_once("abcde")
        second = ex.run(dag, ["d", "e"], store=store)
    assert dict(second) == dict(first)
    log.assert_ran_once("abcde")  # nothing more ran
    assert second.stats.loaded == 2 and second.stats.stored == 0  # only the outputs are loaded
    assert second.stats.executed == 2 and second.stats.pruned == 5  # d and e, loaded; the rest is pruned


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_changed_source_reruns_exactly_what_depends_on_it(backend, tmp_path, manager):
    store = make_store("directory-atomic", tmp_path)
    with ftdag.Executor(backend=backend, max_workers=2) as ex:
        ex.run(build(CallLog(manager if backend == "processes" else None)), ["d", "e"], store=store)
        log = CallLog(manager if backend == "processes" else None)
        res = ex.run(build(log, s1=5), ["d", "e"], store=store)
    assert dict(res) == {"d": clean(s1=5)["d"], "e": clean()["e"]}
    log.assert_ran_once("acd")  # b and e are loaded (b as an input of c)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_changed_version_reruns_exactly_what_depends_on_it(backend, tmp_path, manager):
    store = make_store("sqlite", tmp_path)
    with ftdag.Executor(backend=backend, max_workers=2) as ex:
        ex.run(build(CallLog(manager if backend == "processes" else None), version_a="1"), ["d"], store=store)
        same = CallLog(manager if backend == "processes" else None)
        ex.run(build(same, version_a="1"), ["d"], store=store)
        changed = CallLog(manager if backend == "processes" else None)
        res = ex.run(build(changed, version_a="2"), ["d"], store=store)
    assert same.ran == set()
    changed.assert_ran_once("acd")
    assert res["d"] == clean()["d"]


def test_a_changed_function_reruns_its_descendants(tmp_path):
    store = ftdag.MemoryStore()

    def graph(k):
        b = ftdag.DagBuilder()
        b.add_source("s", 1)
        b.add_task("x", ["s"], functools.partial(scale, k))
        b.add_task("y", ["x"], functools.partial(scale, 1))
        return b.build()

    with ftdag.Executor(backend="threads") as ex:
        assert ex.run(graph(2), "y", store=store)["y"] == 2
        assert ex.run(graph(2), "y", store=store).stats.loaded == 1
        res = ex.run(graph(3), "y", store=store)  # the partial's argument is part of the function
    assert res["y"] == 3 and res.stats.loaded == 0


@pytest.mark.parametrize("kind", ["directory-atomic", "sqlite", "memory"])
def test_a_corrupt_record_is_recomputed_with_a_warning(kind, tmp_path):
    store = make_store(kind, tmp_path)
    log = CallLog()
    dag = build(log)
    with ftdag.Executor(backend="threads", max_workers=2) as ex:
        ex.run(dag, ["d"], store=store)
        from ftdag._policy import RunPolicy
        from ftdag._resume import fingerprints

        plan = ftdag._plan.Plan(dag, ["d"])
        ctx = ftdag._context.RunContext(plan, RunPolicy())
        fp = fingerprints(plan, ctx)[dag._id("d")].hex()
        _damage(store, kind, fp, tmp_path)
        again = CallLog()
        with pytest.warns(ftdag.store.CorruptRecordWarning, match="'d'"):
            res = ex.run(build(again), ["d"], store=store)
    assert res["d"] == clean()["d"]
    again.assert_ran_once("d")  # c is loaded instead
    assert fp in store  # saved again, whole


def _damage(store, kind, fp, tmp_path):
    if kind == "memory":
        store._records[fp] = store._records[fp][:-1] + b"\x00"
    elif kind == "sqlite":
        import sqlite3

        with sqlite3.connect(tmp_path / "store.sqlite") as db:
            db.execute("UPDATE records SET data = substr(data, 1, length(data) - 3) WHERE fingerprint = ?", (fp,))
    else:
        path = tmp_path / "store" / fp[:2] / f"{fp}.rec"
        data = bytearray(path.read_bytes())
        data[-1] ^= 0xFF
        path.write_bytes(bytes(data))


@pytest.mark.parametrize("backend", BACKENDS)
def test_cache_false_and_what_depends_on_it_are_not_stored(backend, tmp_path, manager):
    store = make_store("directory-fast", tmp_path)
    with ftdag.Executor(backend=backend, max_workers=2) as ex:
        first = ex.run(build(CallLog(manager if backend == "processes" else None), cache_c=False), ["d"], store=store)
        assert first.stats.stored == 2  # a and b; not c (cache=False) nor d (downstream of c)
        log = CallLog(manager if backend == "processes" else None)
        ex.run(build(log, cache_c=False), ["d"], store=store)
    log.assert_ran_once("cd")


def test_an_unpicklable_source_warns_once_and_its_descendants_are_not_stored():
    store = ftdag.MemoryStore()
    b = ftdag.DagBuilder()
    b.add_source("lock", threading.Lock())
    b.add_source("n", 2)
    b.add_task("uses_lock", ["lock", "n"], lambda lock, n: n)
    b.add_task("after", ["uses_lock"], lambda n: n + 1)
    b.add_task("plain", ["n"], lambda n: n * 2)
    dag = b.build()
    with ftdag.Executor(backend="threads") as ex:
        with pytest.warns(UserWarning, match="'lock'") as caught:
            res = ex.run(dag, ["after", "plain"], store=store)
        assert len([w for w in caught if "cannot be pickled" in str(w.message)]) == 1
        assert dict(res) == {"after": 3, "plain": 4} and res.stats.stored == 1


@pytest.mark.parametrize("backend", ["sequential", "threads", "processes"])
def test_a_result_that_cannot_be_saved_fails_its_task(backend, tmp_path):
    store = make_store("directory-atomic", tmp_path)
    b = ftdag.DagBuilder()
    b.add_source("s", 1)
    b.add_task("lock", ["s"], unpicklable_result)
    b.add_task("fine", ["s"], functools.partial(scale, 2))
    dag = b.build()
    with ftdag.Executor(backend=backend, max_workers=2) as ex:
        res = ex.run(dag, ["lock", "fine"], store=store, on_error="keep_going")
        with pytest.raises(ftdag.SerializationError) as info:
            ex.run(dag, ["lock"], store=store)
    assert set(res.failed) == {"lock"} and res["fine"] == 2
    assert isinstance(res.failed["lock"], ftdag.SerializationError)
    assert info.value.key == "lock" and info.value.what == "result"
    assert "store" in str(info.value)


def test_keep_going_with_a_store_saves_what_succeeded(tmp_path):
    store = ftdag.MemoryStore()
    b = ftdag.DagBuilder()
    b.add_source("s", 1)
    b.add_task("bad", ["s"], lambda s: 1 / 0)
    b.add_task("good", ["s"], lambda s: s + 1)
    with ftdag.Executor(backend="threads") as ex:
        res = ex.run(b.build(), ["bad", "good"], store=store, on_error="keep_going")
    assert set(res.failed) == {"bad"} and res.stats.stored == 1 and len(store) == 1


# -- killed with SIGKILL mid-run, then resumed ----------------------------------------------------

SCRIPT = textwrap.dedent('''
    import functools, os, sys, threading
    import ftdag

    def step(i, x):
        # Where to log and where to block come from the environment, not from the function's
        # arguments: those are part of its fingerprint, and the resumed run must match.
        log = os.environ["FTDAG_TEST_LOG"]
        with open(log, "a") as f:
            f.write(f"{i}\\n")
        if i == int(os.environ["FTDAG_TEST_BLOCK"]):
            open(log + ".blocked", "w").close()
            threading.Event().wait(600)  # killed here
        return (x * 31 + i) % 1000003

    def main(store_dir):
        b = ftdag.DagBuilder()
        b.add_source("seed", 7)
        prev = "seed"
        for i in range(12):
            b.add_task(f"step/{i}", [prev], functools.partial(step, i))
            prev = f"step/{i}"
        b.add_task("side", ["seed"], functools.partial(step, 100))
        store = ftdag.DirectoryStore(store_dir, durability="durable")
        with ftdag.Executor(max_workers=2) as ex:
            res = ex.run(b.build(), [prev, "side"], store=store)
        print(res[prev], res["side"], res.stats.loaded)

    if __name__ == "__main__":
        main(sys.argv[1])
''')


def _wait_for_file(path, proc):
    waiter = threading.Event()
    for _ in range(int(TIMEOUT / 0.01)):
        if os.path.exists(path):
            return
        if proc.poll() is not None:
            raise AssertionError(f"the script exited ({proc.returncode}) before blocking: {proc.stderr.read()}")
        waiter.wait(0.01)
    raise TimeoutError(f"{path} never appeared")


def test_a_run_killed_with_sigkill_resumes_and_matches_a_clean_run(tmp_path):
    script = tmp_path / "pipeline.py"
    script.write_text(SCRIPT)
    log = tmp_path / "log"

    def env(log, block):
        return dict(os.environ, PYTHONPATH=str(REPO / "src"), FTDAG_TEST_LOG=str(log), FTDAG_TEST_BLOCK=str(block))

    clean = subprocess.run([sys.executable, str(script), str(tmp_path / "clean")],
                           capture_output=True, text=True, env=env(tmp_path / "clean-log", -1), timeout=TIMEOUT)
    assert clean.returncode == 0, clean.stderr
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "store")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(log, 7))
    try:
        _wait_for_file(str(log) + ".blocked", proc)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        proc.stderr.close()
    first = log.read_text().split()
    assert [x for x in first if x != "100"] == [str(i) for i in range(8)]  # it was killed in step 7
    log.unlink()
    resumed = subprocess.run([sys.executable, str(script), str(tmp_path / "store")],
                             capture_output=True, text=True, env=env(log, -1), timeout=TIMEOUT)
    assert resumed.returncode == 0, resumed.stderr
    final, side, loaded = resumed.stdout.split()
    assert (final, side) == tuple(clean.stdout.split()[:2])
    ran = set(log.read_text().split())
    # Steps 0-6 were saved before the kill, so only 7-11 run again (and "side", had it not
    # finished and been saved by then: it runs beside the chain).
    assert ran - {"100"} == {"7", "8", "9", "10", "11"}
    assert int(loaded) == (1 if "100" not in ran else 0) + 1
