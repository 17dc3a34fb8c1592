"""Ctrl-C for the thread backend: SIGINT stops the runs the main thread drives *before*
``KeyboardInterrupt`` raises.

Signals reach only the main thread.  When it drives a run (``ThreadPool.run``), the SIGINT
handler in force (Python's default raises ``KeyboardInterrupt``) is wrapped by the one
:class:`_Guard` of the process, ``GUARD``: when the wrapped handler raises, every run the main
thread is driving gets ``stopped`` and ``interrupted`` set first.  Those runs are found
through the thread pools, which register with the guard once, when they are made
(:func:`watch`): a pool's :meth:`~Driver.main_run` is the run in progress that the main
thread drives, if any (a task on the main thread may drive a run of another executor, so
there may be several).  So no thread starts a task of those runs while the exception unwinds
through the task it interrupted, and a Ctrl-C that a finalizer swallowed still ends the run
(the caller checks ``interrupted``).  A handler that does not raise is left to decide: the
runs go on.  ``SIG_IGN``, ``SIG_DFL`` and a handler installed outside Python are left alone,
and the run is not guarded.

A run costs the guard one look at the handler in force (:func:`arm`), and nothing to
register or unregister.  The guard stays installed between runs.  Installing a handler is a
``sigaction`` system call; doing it twice per run (wrap, then restore) cost a 3-task diamond
on 3.13t about 5–8 µs of its 30–60.  Between runs the guard only calls the handler it wraps,
so Ctrl-C raises ``KeyboardInterrupt`` (or does what that handler does) as before; what
changes is that ``signal.getsignal(SIGINT)`` shows the guard.  A handler installed over it
is respected: the next run wraps that one instead.  :func:`release`, called when a thread
pool closes on the main thread between runs, puts the wrapped handler back.

Invariant: ``GUARD.pools`` is replaced whole (under ``_watch_lock``), never changed in place,
so the handler, which may interrupt the main thread anywhere, iterates a consistent tuple.
A pool's ``main_run()`` changes only on the main thread (the run's caller publishes and
unpublishes it there), which is where the handler runs.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # signal's C functions: signal.signal() converts enums, 5x the cost
import functools
import signal
import threading
import weakref
from typing import Any, Protocol

__all__ = ["GUARD", "Driver", "Interruptible", "arm", "handler", "release", "watch"]

_SIGINT = int(signal.SIGINT)  # as the C functions take it
handler = functools.partial(_signal.getsignal, _SIGINT)
"""The SIGINT handler in force: ``GUARD`` once :func:`arm` installed it (the usual case, since
it stays installed between runs), so that a run on the main thread can see that with one C call
and call :func:`arm` only when it is not."""
MAIN_IDENT = threading.main_thread().ident  # signals reach this thread only


class Interruptible(Protocol):
    """What the guard marks: a run's flags (``ftdag._threads._Run``)."""

    stopped: bool
    interrupted: bool


class Driver(Protocol):
    """What registers with the guard: a thread pool (``ftdag._threads.ThreadPool``)."""

    def main_run(self) -> Interruptible | None:
        """The run in progress that the main thread drives, if any."""


class _Guard:
    """The SIGINT handler wrapping ``previous`` for the runs of ``pools`` (module docstring)."""

    __slots__ = ("previous", "pools")

    def __init__(self) -> None:
        self.previous: Any = None  # the handler called first (the one in force when installed)
        self.pools: tuple[weakref.ref[Driver], ...] = ()  # every live pool (replaced whole: see the invariant)

    def __call__(self, signum: int, frame: Any) -> None:
        try:
            self.previous(signum, frame)
        except BaseException:
            for run in _main_runs():
                run.stopped = True
                run.interrupted = True
            raise


GUARD = _Guard()
_watch_lock = threading.Lock()


def watch(pool: Driver) -> None:
    """Register ``pool``, for as long as it lives: the guard stops its main-thread runs."""
    with _watch_lock:
        GUARD.pools = (*(r for r in GUARD.pools if r() is not None), weakref.ref(pool))


def _main_runs() -> list[Interruptible]:
    """The runs the main thread drives, on every live pool."""
    runs = []
    for ref in GUARD.pools:
        pool = ref()
        run = pool.main_run() if pool is not None else None
        if run is not None:
            runs.append(run)
    return runs


def arm() -> None:
    """A run driven by the main thread starts: install the guard over the handler in force
    unless it is already installed, or that handler is not a Python callable."""
    handler = _signal.getsignal(_SIGINT)
    if handler is not GUARD and callable(handler):
        GUARD.previous = handler
        _signal.signal(_SIGINT, GUARD)


def release() -> None:
    """Put the wrapped handler back if the guard is installed and no run on the main thread
    is in progress; from the main thread only (elsewhere nothing happens: only the main
    thread may set handlers)."""
    if threading.get_ident() != MAIN_IDENT or _main_runs():
        return
    if _signal.getsignal(_SIGINT) is GUARD:
        _signal.signal(_SIGINT, GUARD.previous)
    # (GUARD.previous stays: whoever saved the guard with getsignal() and installs it again
    # gets the handler it wrapped.)
