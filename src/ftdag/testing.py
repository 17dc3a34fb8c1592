"""Helpers for testing pipelines deterministically: no ``sleep``, every wait bounded.

A :class:`Gate` holds tasks until the test lets them through and tells the test how many
have arrived; a :class:`ConcurrencyProbe` records which tasks started and ended, in what
order, and how many ran at once.  A test gates its tasks, waits *on conditions* (with
timeouts) for the state it wants to check, checks it, and opens the gate::

    gate, probe = Gate(), ConcurrencyProbe()

    def task(i):
        with probe.track(i):
            gate.wait(i)
        return i

    # ... start ex.run(dag, outputs) in a thread ...
    gate.wait_for_arrivals(3)          # three tasks are running and blocked
    assert probe.current == 3
    gate.open()

:func:`wait_for_pool` waits for the thread pool's own counters (idle workers, tasks in
flight, queue lengths) to reach a state, so a test can check that nothing more *can* start.

Both classes are thread-safe.  For worker *processes*, make them in a :func:`shared_manager`
(``m.Gate()``, ``m.ConcurrencyProbe()``): the objects live in the manager's process and the
proxies that tasks receive (as source values, say) forward every call there.  A proxy that
reaches a worker process many times (one task after another) is unpickled there into the
same proxy each time, so it opens one connection to the manager per process, not one per
task.

Every wait here gives up after :data:`DEFAULT_TIMEOUT` seconds unless told otherwise; set
the environment variable ``FTDAG_TEST_TIMEOUT`` to give a slow or loaded machine more time.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Iterator
from multiprocessing.context import get_spawning_popen
from multiprocessing.managers import BaseManager, BaseProxy, RebuildProxy  # type: ignore[attr-defined]
from typing import TYPE_CHECKING, Any

from ._threads import PoolState

if TYPE_CHECKING:
    from .executor import Executor

__all__ = [
    "DEFAULT_TIMEOUT",
    "ConcurrencyProbe",
    "Gate",
    "PoolState",
    "SharedManager",
    "SharedProxy",
    "pool_state",
    "shared_manager",
    "wait_for_pool",
]



def _positive_from_env(name: str, default: float, unit: str) -> float:
    """The environment variable ``name`` as a positive finite number, or ``default`` if unset."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise ValueError(f"{name} must be a positive number ({unit}), got {text!r}")
    return value


DEFAULT_TIMEOUT = _positive_from_env("FTDAG_TEST_TIMEOUT", 30.0, "seconds")
"""Seconds any wait here gives up after (raising :class:`TimeoutError`), so that a broken
scheduler fails a test instead of hanging it: 30, or ``FTDAG_TEST_TIMEOUT`` if set.  It is
there to catch deadlocks, not to measure speed: raise it on a loaded machine."""


_SIGNAL_SLICE_S = 0.05


def _wait_for(cond: threading.Condition, predicate: Callable[[], bool], timeout: float) -> bool:
    """``cond.wait_for(predicate, timeout)``, in short slices on the main thread.

    A task that the calling thread of ``run()`` runs may be the main thread, and Ctrl-C must
    reach it: on free-threaded CPython 3.13 a SIGINT that arrives just before a lock wait
    begins does not interrupt that wait, so the wait is cut into slices after which pending
    signals are handled.
    """
    if threading.get_ident() != threading.main_thread().ident:
        return cond.wait_for(predicate, timeout)
    deadline = time.monotonic() + timeout
    while not predicate():
        left = deadline - time.monotonic()
        if left <= 0:
            return predicate()
        cond.wait(min(left, _SIGNAL_SLICE_S))
    return True


class Gate:
    """A door that tasks wait at until the test opens it or lets some through.

    Tasks call :meth:`wait`; the test calls :meth:`wait_for_arrivals` to learn that N tasks
    have reached the gate, then :meth:`release` (let N through) or :meth:`open` (let all
    through, now and later).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._arrived: list[Hashable] = []
        self._passed = 0
        self._permits = 0
        self._chosen: set[Hashable] = set()
        self._open = False

    def wait(self, key: Hashable = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Called by a task: record its arrival, then block until let through."""
        with self._cond:
            self._arrived.append(key)
            self._cond.notify_all()
            if not _wait_for(self._cond, lambda: self._open or key in self._chosen or self._permits > 0, timeout):
                raise TimeoutError(f"task {key!r} waited {timeout}s at a gate that never opened")
            if key in self._chosen:
                self._chosen.discard(key)
            elif not self._open:
                self._permits -= 1
            self._passed += 1
            self._cond.notify_all()

    def release(self, n: int = 1) -> None:
        """Let ``n`` more waiting (or future) tasks through."""
        with self._cond:
            self._permits += n
            self._cond.notify_all()

    def let_through(self, *keys: Hashable) -> None:
        """Let the tasks with these keys through (once each), whoever else is waiting."""
        with self._cond:
            self._chosen.update(keys)
            self._cond.notify_all()

    def open(self) -> None:
        """Let every task through, now and from now on."""
        with self._cond:
            self._open = True
            self._cond.notify_all()

    def wait_for_arrivals(self, n: int, timeout: float = DEFAULT_TIMEOUT) -> list[Hashable]:
        """Block until at least ``n`` tasks have arrived in total; return their keys in arrival order."""
        return self._wait_until(lambda: len(self._arrived) >= n, f"{n} arrivals", timeout)

    def wait_for_passed(self, n: int, timeout: float = DEFAULT_TIMEOUT) -> list[Hashable]:
        """Block until at least ``n`` tasks have gone through; return the arrivals so far."""
        return self._wait_until(lambda: self._passed >= n, f"{n} tasks through", timeout)

    @property
    def arrived(self) -> list[Hashable]:
        """Keys of the tasks that reached the gate, in arrival order."""
        with self._cond:
            return list(self._arrived)

    @property
    def waiting(self) -> int:
        """Tasks at the gate right now."""
        with self._cond:
            return len(self._arrived) - self._passed

    def _wait_until(self, predicate, what: str, timeout: float) -> list[Hashable]:
        with self._cond:
            if not self._cond.wait_for(predicate, timeout):
                raise TimeoutError(
                    f"waited {timeout}s for {what}; arrived: {self._arrived!r}, through: {self._passed}"
                )
            return list(self._arrived)

    # Properties are not forwarded by manager proxies; these are.
    def get_arrived(self) -> list[Hashable]:
        return self.arrived

    def get_waiting(self) -> int:
        return self.waiting


class _Tracks:
    """``track()`` for anything with ``enter(key)`` and ``exit(key)``."""

    if TYPE_CHECKING:

        def enter(self, key: Hashable = None) -> None: ...

        def exit(self, key: Hashable = None) -> None: ...

    @contextlib.contextmanager
    def track(self, key: Hashable = None) -> Iterator[None]:
        """``with probe.track(key):`` around a task's body."""
        self.enter(key)
        try:
            yield
        finally:
            self.exit(key)


class ConcurrencyProbe(_Tracks):
    """Records task starts and ends under a lock, with a global sequence number.

    ``current`` and ``peak`` count tasks between :meth:`enter` and :meth:`exit`;
    ``events()`` lists ``(seq, "start" | "end", key)`` in order, so tests can check that a
    node ran once and only after its dependencies ended.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._current = 0
        self._peak = 0
        self._events: list[tuple[int, str, Hashable]] = []

    def enter(self, key: Hashable = None) -> None:
        with self._lock:
            self._current += 1
            self._peak = max(self._peak, self._current)
            self._events.append((len(self._events), "start", key))
            self._cond.notify_all()

    def exit(self, key: Hashable = None) -> None:
        with self._lock:
            self._current -= 1
            self._events.append((len(self._events), "end", key))
            self._cond.notify_all()

    @property
    def current(self) -> int:
        with self._lock:
            return self._current

    @property
    def peak(self) -> int:
        with self._lock:
            return self._peak

    def get_current(self) -> int:
        return self.current

    def get_peak(self) -> int:
        return self.peak

    def events(self) -> list[tuple[int, str, Hashable]]:
        with self._lock:
            return list(self._events)

    def started(self) -> list[Hashable]:
        """Keys in start order (a key twice means it ran twice)."""
        return [k for _, kind, k in self.events() if kind == "start"]

    def wait_for_starts(self, n: int, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Block until at least ``n`` starts were recorded."""
        starts = lambda: sum(1 for e in self._events if e[1] == "start")
        with self._cond:
            if not self._cond.wait_for(lambda: starts() >= n, timeout):
                raise TimeoutError(f"waited {timeout}s for {n} task starts; saw {starts()}")

    def wait_for_ends(self, keys: Iterable[Hashable], timeout: float = DEFAULT_TIMEOUT) -> None:
        """Block until every task in ``keys`` has ended at least once."""
        wanted = set(keys)
        ended = lambda: wanted <= {k for _, kind, k in self._events if kind == "end"}
        with self._cond:
            if not self._cond.wait_for(ended, timeout):
                raise TimeoutError(f"waited {timeout}s for tasks {sorted(map(repr, wanted))} to end")


def pool_state(executor: Executor) -> PoolState:
    """The thread pool's counters: idle workers, in-flight, running, per-worker queue lengths.

    Raises :class:`RuntimeError` if the executor has not started its thread pool yet.
    """
    return _thread_pool(executor).state()


def wait_for_pool(
    executor: Executor, predicate: Callable[[PoolState], bool], timeout: float = DEFAULT_TIMEOUT
) -> PoolState:
    """Block until ``predicate(pool_state(executor))`` holds (no polling: the pool notifies
    when a worker goes idle or a run ends); return that state."""
    return _thread_pool(executor).wait_for_state(predicate, timeout)


def _thread_pool(executor: Executor):
    pool = executor._threads
    if pool is None:
        raise RuntimeError("the executor has not run anything on threads yet")
    return pool


# -- across processes ----------------------------------------------------------------------------

_REUSED: OrderedDict[tuple, BaseProxy] = OrderedDict()  # (pid, manager address, object id) -> proxy
_REUSED_MAX = 32  # proxies kept per process; each holds a connection and a reference in the manager
_reused_lock = threading.Lock()


class SharedProxy(BaseProxy):
    """A proxy to an object in a :class:`SharedManager` that forwards every public method.

    Pickled (say, as a task's input sent to a worker process), it unpickles into one cached
    proxy per process and object, instead of the fresh proxy that ``multiprocessing`` makes
    each time (each of which connects to the manager to register itself, again for its first
    call, and again to unregister when collected).  A worker that runs many tasks with the
    same gate then talks to the manager over one connection.  The cache keeps the
    :data:`_REUSED_MAX` most recently unpickled proxies of each process; a cached proxy holds
    its object alive in the manager, so an object id in the cache always means that object.
    """

    def _call(self, name: str) -> Any:
        """``_callmethod(name)``, typed: the standard library's stubs say it returns None."""
        return self._callmethod(name)

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)

        def method(*args, **kwds):
            return self._callmethod(name, args, kwds)

        method.__name__ = name
        return method

    def __reduce__(self):
        kwds = {}
        if get_spawning_popen() is not None:  # (what BaseProxy does: a child being started needs the key)
            kwds["authkey"] = self._authkey
        return (_reused_proxy, (type(self), self._token, self._serializer, kwds))


def _reused_proxy(proxytype: type, token, serializer: str, kwds: dict) -> BaseProxy:
    key = (os.getpid(), token.address, token.id)  # the pid: a forked child must not share connections
    with _reused_lock:
        proxy = _REUSED.get(key)
        if proxy is not None:
            _REUSED.move_to_end(key)
            return proxy
    proxy = RebuildProxy(proxytype, token, serializer, kwds)
    with _reused_lock:
        proxy = _REUSED.setdefault(key, proxy)
        _REUSED.move_to_end(key)
        evicted = [_REUSED.popitem(last=False)[1] for _ in range(len(_REUSED) - _REUSED_MAX)]
    del evicted  # dropped outside the lock: each unregisters itself from its manager
    return proxy


class GateProxy(SharedProxy):
    """A :class:`Gate` in a manager; ``arrived`` and ``waiting`` work as on the real one."""

    @property
    def arrived(self) -> list[Hashable]:
        return self._call("get_arrived")

    @property
    def waiting(self) -> int:
        return self._call("get_waiting")


class ConcurrencyProbeProxy(_Tracks, SharedProxy):
    """A :class:`ConcurrencyProbe` in a manager; ``track()``, ``current`` and ``peak`` work as on the real one."""

    @property
    def current(self) -> int:
        return self._call("get_current")

    @property
    def peak(self) -> int:
        return self._call("get_peak")


class SharedManager(BaseManager):
    """A manager whose proxies are :class:`SharedProxy` objects (reused per process).

    It serves ``Gate()`` and ``ConcurrencyProbe()``; a subclass can share more thread-safe
    classes with ``Sub.register("Name", cls)`` (the class must be importable by name).
    """

    @classmethod
    def register(cls, typeid, callable=None, proxytype=None, exposed=None, method_to_typeid=None, create_method=True):
        super().register(
            typeid, callable, SharedProxy if proxytype is None else proxytype, exposed, method_to_typeid, create_method
        )


SharedManager.register("Gate", Gate, GateProxy)
SharedManager.register("ConcurrencyProbe", ConcurrencyProbe, ConcurrencyProbeProxy)


def shared_manager(manager_class: type[SharedManager] = SharedManager) -> SharedManager:
    """A started manager whose ``Gate()`` and ``ConcurrencyProbe()`` work across processes.

    Use it as a context manager (``with shared_manager() as m: ...``) so that it is shut down.
    """
    # Not fork: the calling process usually has threads (3.12+ warns that forking it may deadlock).
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    manager = manager_class(ctx=multiprocessing.get_context(method))
    manager.start()
    return manager
