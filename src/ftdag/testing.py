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
proxies that tasks receive (as source values, say) forward every call there.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import threading
from collections.abc import Callable, Hashable, Iterable, Iterator
from multiprocessing.managers import BaseManager
from typing import TYPE_CHECKING

from ._threads import PoolState

if TYPE_CHECKING:
    from .executor import Executor

__all__ = [
    "DEFAULT_TIMEOUT",
    "ConcurrencyProbe",
    "Gate",
    "PoolState",
    "pool_state",
    "shared_manager",
    "wait_for_pool",
]

DEFAULT_TIMEOUT = 30.0
"""Seconds any wait here gives up after (raising :class:`TimeoutError`), so that a broken
scheduler fails a test instead of hanging it."""


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
            if not self._cond.wait_for(lambda: self._open or key in self._chosen or self._permits > 0, timeout):
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


class ConcurrencyProbe:
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

    @contextlib.contextmanager
    def track(self, key: Hashable = None) -> Iterator[None]:
        """``with probe.track(key):`` around a task's body."""
        self.enter(key)
        try:
            yield
        finally:
            self.exit(key)

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
        starts = lambda: sum(1 for e in self._events if e[1] == "start")  # noqa: E731
        with self._cond:
            if not self._cond.wait_for(lambda: starts() >= n, timeout):
                raise TimeoutError(f"waited {timeout}s for {n} task starts; saw {starts()}")

    def wait_for_ends(self, keys: Iterable[Hashable], timeout: float = DEFAULT_TIMEOUT) -> None:
        """Block until every task in ``keys`` has ended at least once."""
        wanted = set(keys)
        ended = lambda: wanted <= {k for _, kind, k in self._events if kind == "end"}  # noqa: E731
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


class _SharedManager(BaseManager):
    pass


_SharedManager.register("Gate", Gate)
_SharedManager.register("ConcurrencyProbe", ConcurrencyProbe)


def shared_manager() -> _SharedManager:
    """A started manager whose ``Gate()`` and ``ConcurrencyProbe()`` work across processes.

    Use it as a context manager (``with shared_manager() as m: ...``) so that it is shut down.
    """
    # Not fork: the calling process usually has threads (3.12+ warns that forking it may deadlock).
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    manager = _SharedManager(ctx=multiprocessing.get_context(method))
    manager.start()
    return manager
