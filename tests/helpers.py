"""What several test modules share: background runs, seeded random graphs evaluated by hand,
call logs that also count calls made in worker processes, the leak check, and two settings.

Settings (environment variables):

``FTDAG_STRESS``
    How big the stress-like tests are, as a factor of their CI size (default ``1``, which
    keeps the whole suite fast on 2 busy cores).  ``FTDAG_STRESS=10`` is a soak run by hand:
    ten times the runs, clients and graphs.
``FTDAG_TEST_TIMEOUT``
    Seconds any single wait gives up after (default 30, see :data:`ftdag.testing.DEFAULT_TIMEOUT`);
    each test's own timeout is ten times that.  Raise it on a loaded machine: timeouts are
    there to catch deadlocks, not to measure speed.

Worker processes import this module by name (pytest puts ``tests/`` on ``sys.path``, and the
workers inherit it), so everything a task may use here is defined at module level.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import multiprocessing
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from pathlib import Path

import ftdag
from ftdag.testing import DEFAULT_TIMEOUT, SharedManager, _positive_from_env

TIMEOUT = DEFAULT_TIMEOUT
"""Seconds a test waits for a condition (a thread, a gate, the pool) before it fails."""

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"


STRESS = _positive_from_env("FTDAG_STRESS", 1.0, "1 = the CI size")


def stress(n: int) -> int:
    """``n``, a stress test's size in CI, scaled by ``FTDAG_STRESS`` (at least 1)."""
    return max(1, round(n * STRESS))


# -- running things in the background -----------------------------------------------------------


class Background:
    """Calls ``fn(*args)`` on a new thread at once; :meth:`result` waits for it (bounded) and
    returns its value or re-raises its exception, so that an error in a helper thread fails
    the test with that error."""

    def __init__(self, fn: Callable, *args) -> None:
        self._value = self._error = None
        name = f"background-{getattr(fn, '__name__', type(fn).__name__)}"
        self._thread = threading.Thread(target=self._main, args=(fn, args), name=name, daemon=True)
        self._thread.start()

    def _main(self, fn: Callable, args: tuple) -> None:
        try:
            self._value = fn(*args)
        except BaseException as exc:  # handed to the thread that calls result()
            self._error = exc

    def result(self, timeout: float = TIMEOUT):
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"{self._thread.name} did not finish within {timeout}s")
        if self._error is not None:
            raise self._error
        return self._value


def results(backgrounds: Iterable[Background]) -> list:
    """The results of several :class:`Background` calls, in order (the first error is raised)."""
    return [b.result() for b in list(backgrounds)]


def run_example(name: str, **env: str) -> subprocess.CompletedProcess:
    """Run ``examples/<name>`` as a user would: this interpreter, from the repository root,
    no standard input, ``env`` added to the environment, and the ftdag under test importable
    (wherever it was imported from).  Bounded by three times :data:`TIMEOUT`."""
    full_env = dict(os.environ, **env)
    package_root = str(Path(ftdag.__file__).resolve().parent.parent)
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, full_env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, str(EXAMPLES / name)], cwd=REPO, env=full_env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=3 * TIMEOUT)


def example_output(name: str, **env: str) -> str:
    """What ``examples/<name>`` prints (:func:`run_example`), which must exit with 0."""
    proc = run_example(name, **env)
    assert proc.returncode == 0, f"{name} exited with {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


# -- random graphs --------------------------------------------------------------------------------

Graph = dict[int, "tuple[int, ...] | None"]
"""``{key: its dependencies in order, or None for a source}``."""


def random_graph(rng: random.Random | int, n: int, *, max_deps: int = 4, sources: float = 0.1,
                 window: int | None = None) -> Graph:
    """A seeded random acyclic graph over the keys ``0 .. n-1``.

    Key 0 is a source; every other key is a source with probability ``sources``, else a task
    with 0 to ``max_deps`` dependencies drawn from smaller keys (repeats allowed), from the
    ``window`` keys just before it if given (which makes long chains likely).
    """
    if not isinstance(rng, random.Random):
        rng = random.Random(rng)
    graph: Graph = {}
    for i in range(n):
        if i == 0 or rng.random() < sources:
            graph[i] = None
        else:
            low = 0 if window is None else max(0, i - window)
            graph[i] = tuple(rng.randrange(low, i) for _ in range(rng.randint(0, min(i, max_deps))))
    return graph


def mix(key: int, *args: int) -> int:
    """A node's value: an order-sensitive combination of its key and its inputs (the same in
    every process: no ``hash()``)."""
    h = key
    for x in args:
        h = (h * 1_000_003 + x) % (2**61 - 1)
    return h


def tracked_mix(probe, key: int, *args: int) -> int:
    """:func:`mix`, recording its start and end in ``probe``."""
    with probe.track(key):
        return mix(key, *args)


def source_value(key: int) -> int:
    return key * 7


def mix_task(key: int) -> Callable:
    """The task function :func:`build_dag` gives ``key`` by default: :func:`mix` of the key and the inputs."""
    return functools.partial(mix, key)


def build_dag(graph: Graph, task: Callable[[int], Callable] = mix_task, *,
              shuffle: random.Random | None = None) -> ftdag.Dag:
    """A Dag of ``graph``: sources worth :func:`source_value`, and for each task key the
    function ``task(key)``.  With ``shuffle``, nodes are added in a
    random order, so that dependencies are often forward references."""
    keys = list(graph)
    if shuffle is not None:
        shuffle.shuffle(keys)
    b = ftdag.DagBuilder()
    for k in keys:
        if graph[k] is None:
            b.add_source(k, source_value(k))
        else:
            b.add_task(k, list(graph[k]), task(k))
    return b.build()


def evaluate(graph: Graph) -> dict[int, int]:
    """Every node's value, computed by hand in key order (dependencies are smaller keys)."""
    values: dict[int, int] = {}
    for k in sorted(graph):
        deps = graph[k]
        values[k] = source_value(k) if deps is None else mix(k, *(values[d] for d in deps))
    return values


def ancestors(graph: dict[Hashable, Iterable[Hashable] | None], outputs: Iterable[Hashable]) -> set:
    """The outputs and everything they depend on, by hand (``graph``: key -> deps or None)."""
    seen: set = set()
    todo = list(outputs)
    while todo:
        k = todo.pop()
        if k not in seen:
            seen.add(k)
            todo.extend(graph[k] or ())
    return seen


# -- small task functions -------------------------------------------------------------------------


def add(*xs):
    return sum(xs)


def fails(*args):
    raise ValueError("bad")


def flaky(path, *args):
    """Fails with OSError on its first call (counted in the file at ``path``), then returns 1."""
    with open(path, "a") as f:
        f.write("x")
    with open(path) as f:
        if len(f.read()) < 2:
            raise OSError("first attempt")
    return 1


# -- counting task calls ------------------------------------------------------------------------


class Finalized:
    """Calls ``on_del()`` when it is freed."""

    def __init__(self, on_del):
        self.on_del = on_del

    def __del__(self):
        self.on_del()


class CallCounts:
    """Calls by key, and where each ran (``(pid, thread id)``), under a lock.  Shared across
    processes through a :class:`CallManager`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: collections.Counter = collections.Counter()
        self._where: set[tuple[int, int]] = set()

    def hit(self, key: Hashable, where: tuple[int, int]) -> int:
        """Count a call of ``key``; return how many there were, this one included."""
        with self._lock:
            self._counts[key] += 1
            self._where.add(where)
            return self._counts[key]

    def counts(self) -> dict:
        with self._lock:
            return dict(self._counts)

    def where(self) -> set[tuple[int, int]]:
        with self._lock:
            return set(self._where)


class CallManager(SharedManager):
    """A :func:`ftdag.testing.shared_manager` that also serves ``CallCounts()``."""


CallManager.register("CallCounts", CallCounts)


def _here() -> tuple[int, int]:
    return os.getpid(), threading.get_ident()


def _counted(store, key: Hashable, fn: Callable, *args):
    store.hit(key, _here())
    return fn(*args)


class CallLog:
    """Counts task calls by key.  In-process by default; with a :class:`CallManager`, the
    counts live in the manager, so calls made in worker processes count too (and the tasks
    that :meth:`task` makes are picklable if ``fn`` is)."""

    def __init__(self, manager: CallManager | None = None) -> None:
        self._store = CallCounts() if manager is None else manager.CallCounts()

    def task(self, key: Hashable, fn: Callable) -> Callable:
        """``fn``, counting its calls under ``key``."""
        return functools.partial(_counted, self._store, key, fn)

    def hit(self, key: Hashable) -> int:
        """Count a call of ``key`` made by hand; return the count so far."""
        return self._store.hit(key, _here())

    @property
    def counts(self) -> collections.Counter:
        return collections.Counter(self._store.counts())

    @property
    def ran(self) -> set:
        return set(self._store.counts())

    @property
    def where(self) -> set[tuple[int, int]]:
        """``(pid, thread id)`` of every thread that called a task."""
        return self._store.where()

    def assert_ran_once(self, keys: Iterable[Hashable]) -> None:
        assert dict(self.counts) == {k: 1 for k in keys}


# -- the leak check -------------------------------------------------------------------------------

WORKER_THREAD_PREFIX = "ftdag-worker-"
LEAK_GRACE = 5.0  # seconds leaked-looking threads and processes get to exit before they count
_owned: list = []  # executors and managers whose processes a module/session fixture keeps on purpose
_blamed: set = set()  # threads and pids already reported, so that later tests are not blamed too


@contextlib.contextmanager
def kept_by_fixture(obj):
    """While inside, the leak check ignores the processes of ``obj`` (an :class:`ftdag.Executor`,
    a started ``multiprocessing`` manager, or a ``distributed.LocalCluster``), which a module- or
    session-scoped fixture keeps alive on purpose across tests."""
    _owned.append(obj)
    try:
        yield obj
    finally:
        _owned.remove(obj)


def _owned_pids() -> set[int]:
    pids: set[int] = set()
    for obj in _owned:
        if isinstance(obj, ftdag.Executor):
            for pool in (obj._processes, obj._distributed):
                if pool is not None:
                    pids.update(pool.pids())
        elif hasattr(obj, "scheduler_address"):  # a distributed cluster: its workers' processes
            pids.update(pid for pid in (getattr(w, "pid", None) for w in list(obj.workers.values())) if pid)
        else:
            proc = getattr(obj, "_process", None)  # a BaseManager's server process
            if proc is not None:
                pids.add(proc.pid)
    return pids


def check_no_leaks(test: str) -> None:
    """Fail unless every ``ftdag-worker-*`` thread and every child process (but those of
    :func:`kept_by_fixture` objects) has exited, after a bounded wait.  A leaked process is
    terminated once reported, so that the next test starts clean."""
    deadline = time.monotonic() + LEAK_GRACE
    threads = [t for t in threading.enumerate()
               if t.name.startswith(WORKER_THREAD_PREFIX) and t not in _blamed and t is not threading.current_thread()]
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    threads = [t for t in threads if t.is_alive()]
    owned = _owned_pids()
    procs = [p for p in multiprocessing.active_children() if p.pid not in owned and p.pid not in _blamed]
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    procs = [p for p in procs if p.is_alive()]
    if not threads and not procs:
        return
    _blamed.update(threads)
    _blamed.update(p.pid for p in procs)
    for p in procs:
        p.kill()
        p.join(LEAK_GRACE)
    leaks = [f"thread {t.name!r}" for t in threads] + [f"process {p.name!r} (pid {p.pid})" for p in procs]
    raise AssertionError(f"{test} left {', '.join(leaks)} running: close every Executor (and manager) it starts")
