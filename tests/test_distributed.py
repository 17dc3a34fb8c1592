"""The distributed backend (``ExecutorConfig(backend="distributed")``, :mod:`ftdag._distributed`)
on a real ``distributed.LocalCluster`` bound to 127.0.0.1.

One cluster of two single-threaded worker processes serves the module (``address=`` and
``client=`` executors use it); one test starts and closes an embedded cluster of its own.
Tasks run in other processes, so calls are counted with files in ``tmp_path``: each call of
a counted task creates one.  The workers import this module and ``helpers`` by name (they
inherit the test process's ``sys.path``), so every task function here is module-level.
"""

from __future__ import annotations

import functools
import os
import random
import subprocess
import sys
import sysconfig
import threading
import time
import uuid
from pathlib import Path

import dask
import distributed  # the distributed extra: tox installs it, so these tests run everywhere
import pytest
from helpers import TIMEOUT, build_dag, evaluate, kept_by_fixture, random_graph

import ftdag
from ftdag import ExecutorConfig

FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
PROFILE = "distributed.worker.profile.enabled"


@pytest.fixture(scope="module")
def cluster():
    """The module's cluster: two worker processes of one thread, the profiler off on 3.13t (as
    the embedded cluster has it; a worker with it on would make every executor here warn)."""
    config = {PROFILE: False} if FREE_THREADED else None
    with dask.config.set(config or {}):  # (and in this process, for the scheduler's event loop)
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
            config=config, scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},  # (not dask's 8787)
        )
    with cluster, kept_by_fixture(cluster):
        yield cluster


@pytest.fixture(scope="module")
def client(cluster):
    with distributed.Client(cluster, set_as_default=False) as client:
        yield client


@pytest.fixture
def ex(client):
    """An executor on the module's cluster, through its client."""
    with ftdag.Executor(backend="distributed", client=client) as ex:
        yield ex


# -- task functions (the workers import them from this module) ------------------------------------


class Calls:
    """Counts calls of tasks in any process: each call creates a file ``<key>.<uuid>`` in ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def task(self, key, fn):
        """``fn``, counted under ``key``."""
        return functools.partial(_counted, str(self.root), str(key), fn)

    @property
    def counts(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for path in self.root.iterdir():
            key = path.name.rpartition(".")[0]
            found[key] = found.get(key, 0) + 1
        return found


def _counted(root: str, key: str, fn, *args):
    Path(root, f"{key}.{uuid.uuid4().hex}").touch()
    return fn(*args)


def add(a, b):
    return a + b


class Broken(Exception):
    """A task's own exception: its type and attributes must reach the caller."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code

    def __reduce__(self):
        return (type(self), (self.args[0], self.code))


def broken(*args):
    raise Broken("broken on purpose", 42)


def held_until(path: str, value):
    """Blocks until the test creates ``path`` (a gate across processes), at most TIMEOUT."""
    waiter = threading.Event()
    for _ in range(int(TIMEOUT / 0.01)):
        if os.path.exists(path):
            return value
        waiter.wait(0.01)
    raise TimeoutError(f"{path} was never created")


def set_profile(value: bool) -> None:
    dask.config.set({PROFILE: value})


def diamond(calls: Calls) -> ftdag.Dag:
    """a -> b, c -> d, plus e (from a) that only some requests need."""
    b = ftdag.DagBuilder()
    b.add_source("a", 2)
    b.add_task("b", ["a"], calls.task("b", functools.partial(add, 1)))
    b.add_task("c", ["a"], calls.task("c", functools.partial(add, 10)))
    b.add_task("d", ["b", "c"], calls.task("d", add))
    b.add_task("e", ["a"], calls.task("e", functools.partial(add, 100)))
    return b.build()


# -- configuration (no cluster) -------------------------------------------------------------------


class TestConfig:
    def test_address(self):
        config = ExecutorConfig(backend="distributed", address="tcp://127.0.0.1:8786")
        assert config.address == "tcp://127.0.0.1:8786"
        assert ExecutorConfig(backend="distributed").address is None

    @pytest.mark.parametrize("address", ["127.0.0.1:8786", "http://h:1", "tcp://", ""])
    def test_bad_address(self, address):
        with pytest.raises(ValueError, match="tcp://127.0.0.1:8786"):
            ExecutorConfig(backend="distributed", address=address)

    def test_address_needs_the_distributed_backend(self):
        with pytest.raises(ValueError, match="backend='distributed'"):
            ExecutorConfig(address="tcp://127.0.0.1:8786")
        with pytest.raises(TypeError, match="address"):
            ExecutorConfig(backend="distributed", address=8786)

    def test_client_must_be_a_client(self):
        with pytest.raises(TypeError, match=r"client must be a distributed\.Client"):
            ftdag.Executor(backend="distributed", client="tcp://127.0.0.1:8786")

    def test_client_needs_the_distributed_backend(self, client):
        with pytest.raises(ValueError, match="backend='distributed'"):
            ftdag.Executor(backend="threads", client=client)
        with pytest.raises(ValueError, match="address"):
            ftdag.Executor(backend="distributed", address="tcp://127.0.0.1:1", client=client)

    def test_importing_ftdag_never_imports_distributed(self):
        code = (
            "import sys, ftdag\n"
            "ex = ftdag.Executor(backend='distributed'); ex.close()\n"
            "print('distributed' in sys.modules, 'dask' in sys.modules)\n"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT,
                             env=_env(), check=True).stdout
        assert out.split() == ["False", "False"]

    def test_a_missing_extra_is_named(self):
        code = (
            "import sys; sys.modules['distributed'] = None\n"
            "import ftdag\n"
            "b = ftdag.DagBuilder(); b.add_source('a', 1); b.add_task('b', ['a'], abs)\n"
            "try:\n"
            "    ftdag.Executor(backend='distributed').run(b.build(), 'b')\n"
            "except ImportError as exc:\n"
            "    print(exc)\n"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT,
                             env=_env(), check=True).stdout
        assert "ftdag[distributed]" in out


def _env() -> dict[str, str]:
    src = str(Path(ftdag.__file__).resolve().parent.parent)
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])))


# -- runs on the module's cluster -----------------------------------------------------------------


class TestRuns:
    def test_only_ancestors_run_each_once(self, ex, tmp_path):
        calls = Calls(tmp_path)
        res = ex.run(diamond(calls), ["d"])
        assert dict(res) == {"d": 3 + 12}
        assert calls.counts == {"b": 1, "c": 1, "d": 1}  # e is pruned
        assert (res.stats.backend, res.stats.executed, res.stats.pruned) == ("distributed", 4, 1)
        assert res.stats.workers == 2

    def test_outputs_sources_and_tuple_keys(self, ex):
        b = ftdag.DagBuilder()
        b.add_source("a", 1)
        b.add_source("big", list(range(5000)))  # scattered, used twice
        b.add_task(("sum", "eu"), ["a", "a"], add)
        b.add_task("n", ["big"], len)
        b.add_task("m", ["big", "n"], lambda big, n: big[-1] + n)  # a lambda travels by cloudpickle
        b.add_task("k", {"base": "a", "exp": ("sum", "eu")}, pow)  # keyword dependencies
        res = ex.run(b.build(), [("sum", "eu"), "a", "m", "k"])
        assert dict(res) == {("sum", "eu"): 2, "a": 1, "m": 4999 + 5000, "k": 1}

    def test_order_only_edges(self, ex, tmp_path):
        b = ftdag.DagBuilder()
        b.add_source("a", 1)
        b.add_task("first", ["a"], functools.partial(_stamp, str(tmp_path / "first")))
        b.add_task("then", ["a"], functools.partial(_require, str(tmp_path / "first")), after=["first"])
        res = ex.run(b.build(), ["then"])
        assert res["then"] == 1  # "first" had run when "then" ran, and its value was not passed
        assert res.stats.executed == 3

    def test_unknown_output_before_anything_is_submitted(self, ex, tmp_path):
        calls = Calls(tmp_path)
        with pytest.raises(ftdag.UnknownOutputError) as info:
            ex.run(diamond(calls), ["d", "nope"])
        assert info.value.keys == ["nope"]
        assert ex._distributed is None  # the pool was not even made
        assert calls.counts == {}

    def test_task_error_has_the_remote_exception_as_cause(self, ex, tmp_path):
        calls = Calls(tmp_path)
        b = ftdag.DagBuilder()
        b.add_source("a", 1)
        b.add_task("bad", ["a"], broken)
        b.add_task("after", ["bad"], calls.task("after", abs))
        dag = b.build()
        with pytest.raises(ftdag.TaskError) as info:
            ex.run(dag, ["after"])
        err = info.value
        assert err.key == "bad"  # the task that failed, not the output it took down
        assert type(err.__cause__) is Broken and err.__cause__.code == 42
        assert err.__cause__.__traceback__ is not None  # the remote traceback
        assert calls.counts == {}
        assert dict(ex.run(diamond(Calls(tmp_path)), "b")) == {"b": 3}  # still usable

    def test_what_cannot_be_sent_is_a_serialization_error(self, ex, tmp_path):
        lock = threading.Lock()
        b = ftdag.DagBuilder()
        b.add_source("a", 1)
        b.add_source("lock", lock)
        b.add_task("fine", ["a"], Calls(tmp_path).task("fine", abs))
        b.add_task("closure", ["a"], lambda a: (lock, a))
        b.add_task("input", ["lock"], repr)
        dag = b.build()
        with pytest.raises(ftdag.SerializationError) as info:
            ex.run(dag, ["fine", "closure"])
        assert (info.value.key, info.value.what) == ("closure", "function")
        with pytest.raises(ftdag.SerializationError) as info:
            ex.run(dag, ["input"])
        assert (info.value.key, info.value.what) == ("lock", "inputs")
        assert ex.run(dag, "fine")["fine"] == 1

    def test_keep_going(self, ex, tmp_path):
        calls = Calls(tmp_path)
        b = ftdag.DagBuilder()
        b.add_source("a", 1)
        b.add_task("bad", ["a"], broken)
        b.add_task("after", ["bad"], calls.task("after", abs))
        b.add_task("fine", ["a"], calls.task("fine", abs))
        res = ex.run(b.build(), ["after", "fine"], on_error="keep_going")
        assert dict(res) == {"fine": 1}
        assert list(res.failed) == ["bad"] and type(res.failed["bad"].__cause__) is Broken
        assert res.skipped == {"after"}
        assert (res.stats.failed, res.stats.skipped) == (1, 1)
        assert calls.counts == {"fine": 1}

    def test_timeout_stops_the_run(self, ex, tmp_path):
        release = tmp_path / "release"
        b = ftdag.DagBuilder()
        b.add_source("a", 1)
        b.add_task("quick", ["a"], abs)
        b.add_task("slow", ["a"], functools.partial(held_until, str(release)))
        b.add_task("later", ["slow"], abs)
        try:
            with pytest.raises(ftdag.RunTimeoutError) as info:
                ex.run(b.build(), ["quick", "later"], timeout=0.3)
            assert "later" in info.value.result.skipped
        finally:
            release.touch()  # the abandoned "slow" returns on its worker

    def test_as_completed(self, ex, tmp_path):
        got = dict(ex.as_completed(diamond(Calls(tmp_path)), ["b", "d", "a"]))
        assert got == {"a": 2, "b": 3, "d": 15}

    def test_leaving_as_completed_early_cancels_the_rest(self, ex, tmp_path):
        calls = Calls(tmp_path)
        b = ftdag.DagBuilder()
        b.add_source("a", 1)
        b.add_task("quick", ["a"], abs)
        release = tmp_path / "release"
        b.add_task("slow", ["a"], functools.partial(held_until, str(release)))
        b.add_task("after", ["slow"], calls.task("after", abs))
        try:
            # "slow" is held until the end of the test: were it waited for, the loop would not end
            for key, value in ex.as_completed(b.build(), ["quick", "after"]):
                assert (key, value) == ("quick", 1)
                break
            assert ex.run(b.build(), "quick")["quick"] == 1  # usable while "slow" still runs on its worker
            assert calls.counts == {}
        finally:
            release.touch()

    @pytest.mark.parametrize("option", ["retries", "cost", "resources"])
    def test_unsupported_task_options_are_named(self, ex, tmp_path, option):
        calls = Calls(tmp_path)
        b = ftdag.DagBuilder()
        b.add_source("a", 1)
        value = {"retries": 1, "cost": 2.0, "resources": {"db": 1}}[option]
        b.add_task("t", ["a"], calls.task("t", abs), **{option: value})
        config = ExecutorConfig(backend="distributed", resources={"db": 1})
        with ftdag.Executor(config, client=ex._client) as ex2, pytest.raises(NotImplementedError, match=option):
            ex2.run(b.build(), "t")
        assert calls.counts == {}

    def test_unsupported_run_options_are_named(self, ex, tmp_path):
        calls = Calls(tmp_path)
        with pytest.raises(NotImplementedError, match="store"):
            ex.run(diamond(calls), "d", store=ftdag.MemoryStore())
        assert calls.counts == {}

    def test_same_results_as_threads_on_a_random_graph(self, ex):
        rng = random.Random(1234)
        graph = random_graph(rng, 60, window=12)
        dag = build_dag(graph)
        outputs = rng.sample(sorted(graph), 8)
        expected = evaluate(graph)
        res = ex.run(dag, outputs)
        assert dict(res) == {k: expected[k] for k in outputs}
        with ftdag.Executor(backend="threads", max_workers=2) as threads:
            assert dict(threads.run(dag, outputs)) == dict(res)

    def test_address_connects_and_never_closes_the_cluster(self, cluster, client, tmp_path):
        ex = ftdag.Executor(backend="distributed", address=cluster.scheduler_address)
        with ex:
            assert dict(ex.run(diamond(Calls(tmp_path)), "d")) == {"d": 15}
            own = ex._distributed.client
            assert own is not client
        assert own.status == "closed"  # its own client is closed
        assert client.submit(add, 1, 2, pure=False).result(timeout=TIMEOUT) == 3  # the cluster is not
        assert len(client.nthreads()) == 2

    def test_client_is_never_closed(self, client, tmp_path):
        with ftdag.Executor(backend="distributed", client=client) as ex:
            assert dict(ex.run(diamond(Calls(tmp_path)), "c")) == {"c": 12}
        assert client.status == "running"
        assert client.submit(add, 2, 2, pure=False).result(timeout=TIMEOUT) == 4

    def test_workers_are_probed_and_warned_about(self, client, tmp_path):
        with ftdag.Executor(backend="distributed", client=client) as ex:
            ex.run(diamond(Calls(tmp_path)), "b")
            reports = ex._distributed.reports
        assert len(reports) == 2
        for report in reports.values():
            assert report.free_threaded is FREE_THREADED
            assert report.gil_enabled is not FREE_THREADED
            assert report.profiler is not FREE_THREADED
        address = next(iter(client.nthreads()))
        client.run(set_profile, True, workers=[address])
        try:
            with ftdag.Executor(backend="distributed", client=client) as ex:
                if FREE_THREADED:
                    with pytest.warns(RuntimeWarning, match="profiler"):
                        ex.run(diamond(Calls(tmp_path)), "b")
                else:
                    ex.run(diamond(Calls(tmp_path)), "b")
        finally:
            client.run(set_profile, not FREE_THREADED, workers=[address])


def _stamp(path: str, value):
    """Writes the time it ends (monotonic clocks are one clock across processes on Linux)."""
    Path(path).write_text(repr(time.monotonic()))
    return value


def _require(path: str, value):
    """Fails unless ``_stamp`` ended before this started."""
    started = time.monotonic()
    if not Path(path).exists() or float(Path(path).read_text()) > started:
        raise AssertionError(f"{path} was not written before this task started")
    return value


# -- the embedded cluster -------------------------------------------------------------------------


def test_embedded_cluster_is_owned_and_closed(tmp_path):
    ex = ftdag.Executor(backend="distributed", max_workers=2)
    try:
        res = ex.run(diamond(Calls(tmp_path)), "d")
        assert dict(res) == {"d": 15} and res.stats.workers == 2
        pool = ex._distributed
        pids = pool.pids()
        assert len(pids) == 2
        client = pool.client
        assert {w.partition("://")[2].partition(":")[0] for w in client.nthreads()} == {"127.0.0.1"}
        profiles = client.run(dask.config.get, PROFILE)
        assert set(profiles.values()) == {not FREE_THREADED}  # off on a free-threaded build
        if FREE_THREADED:
            assert set(client.run(sys._is_gil_enabled).values()) == {False}
            # Nor in this process, where the scheduler runs: its profiler is a thread named Profile.
            assert not [t for t in threading.enumerate() if t.name == "Profile"]
        assert all(not r.gil_enabled for r in pool.reports.values()) or not FREE_THREADED
    finally:
        ex.close()
    assert client.status == "closed"
    waiter = threading.Event()  # the worker processes exit after close(): wait for that, bounded
    for _ in range(int(TIMEOUT / 0.05)):
        if not any(_alive(pid) for pid in pids):
            break
        waiter.wait(0.05)
    assert not any(_alive(pid) for pid in pids)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie not yet reaped counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False
