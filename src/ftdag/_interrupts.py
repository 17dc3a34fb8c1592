"""Ctrl-C for the thread backend: SIGINT stops the runs the main thread drives *before*
``KeyboardInterrupt`` raises.

Signals reach only the main thread.  When it drives a run (``ThreadPool.run``), the SIGINT
handler in force (Python's default raises ``KeyboardInterrupt``) is wrapped by the one
:class:`_Guard` of the process, ``GUARD``: when the wrapped handler raises, every run the main
thread is driving (``GUARD.runs``, the innermost last: a task on the main thread may drive a
run of another executor) gets ``stopped`` and ``interrupted`` set first.  So no thread starts
a task of those runs while the exception unwinds through the task it interrupted, and a
Ctrl-C that a finalizer swallowed still ends the run (the caller checks ``interrupted``).  A
handler that does not raise is left to decide: the runs go on.  ``SIG_IGN``, ``SIG_DFL`` and
a handler installed outside Python are left alone, and the run is not guarded.

The guard stays installed between runs.  Installing a handler is a ``sigaction`` system
call; doing it twice per run (wrap, then restore) cost a 3-task diamond on 3.13t about
5–8 µs of its 30–60.  Between runs the guard only calls the handler it wraps, so Ctrl-C
raises ``KeyboardInterrupt`` (or does what that handler does) as before; what changes is
that ``signal.getsignal(SIGINT)`` shows the guard.  A handler installed over it is
respected: the next run wraps that one instead.  :func:`release`, called when a thread pool
closes on the main thread between runs, puts the wrapped handler back.

Invariant: ``GUARD.runs`` is touched only by the main thread (in ``enter``/``leave``, and by
the handler, which also runs there), so it needs no lock.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # signal's C functions: signal.signal() converts enums, 5x the cost
import signal
import threading
from typing import Any, Protocol

__all__ = ["GUARD", "Interruptible", "enter", "leave", "release"]

_SIGINT = int(signal.SIGINT)  # as the C functions take it
MAIN_IDENT = threading.main_thread().ident  # signals reach this thread only


class Interruptible(Protocol):
    """What the guard marks: a run's flags (``ftdag._threads._Run``)."""

    stopped: bool
    interrupted: bool


class _Guard:
    """The SIGINT handler wrapping ``previous`` for the runs in ``runs`` (module docstring)."""

    __slots__ = ("previous", "runs")

    def __init__(self) -> None:
        self.previous: Any = None  # the handler called first (the one in force when installed)
        self.runs: list[Interruptible] = []  # the runs the main thread drives, the innermost last

    def __call__(self, signum: int, frame: Any) -> None:
        try:
            self.previous(signum, frame)
        except BaseException:
            for run in self.runs:
                run.stopped = True
                run.interrupted = True
            raise


GUARD = _Guard()


def enter(run: Interruptible) -> bool:
    """Guard ``run``, driven by the main thread: install the guard over the handler in force
    unless it is already installed.  False (nothing done) when that handler is not a Python
    callable."""
    handler = _signal.getsignal(_SIGINT)
    if handler is not GUARD:
        if not callable(handler):
            return False
        GUARD.previous = handler
        _signal.signal(_SIGINT, GUARD)
    GUARD.runs.append(run)
    return True


def leave(run: Interruptible) -> None:
    """``run`` is over or abandoned: stop guarding it (the guard stays installed)."""
    runs = GUARD.runs
    if runs and runs[-1] is run:
        runs.pop()
    else:
        runs.remove(run)


def release() -> None:
    """Put the wrapped handler back if the guard is installed and guards no run; from the
    main thread only (elsewhere nothing happens: only the main thread may set handlers)."""
    if threading.get_ident() != MAIN_IDENT or GUARD.runs:
        return
    if _signal.getsignal(_SIGINT) is GUARD:
        _signal.signal(_SIGINT, GUARD.previous)
    # (GUARD.previous stays: whoever saved the guard with getsignal() and installs it again
    # gets the handler it wrapped.)
