"""The process backend's worker processes: starting, replacing and stopping them.

A pool owns ``count`` worker processes, started (``forkserver`` where available, else
``spawn``; never ``fork``, since the parent has threads) on its first run, reused by later
runs, and shut down by ``close()`` or at interpreter exit.  Each worker has its own duplex
pipe (a socket pair, a :class:`~ftdag._wire.Pipe` at the parent's end).  One
:mod:`selectors` selector watches every worker's pipe (replies; writability while a message
is only partly written) and every worker's process sentinel (its death); the pool's run
loop waits in it.  All of this runs in the thread that holds the pool's run lock.

A worker is ``dead`` from the moment the parent sees that its process ended, or decides to
end it.  It is then discarded (taken out of the selector, its pipe closed) and its slot in
:attr:`Workers.all` waits for a replacement: :meth:`Workers.fill` at the start of the next
run, or :meth:`Workers.replace` when the pool wants one at once.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.util
import selectors
from collections import deque
from typing import Any

from . import _process_worker
from ._plan import NO_TASK
from ._wire import EXITED, Pipe

__all__ = ["Worker", "Workers"]

_JOIN_TIMEOUT = 5.0  # seconds a worker gets to exit after being asked to (or after terminate)


def _context():
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


class Worker:
    """One worker process and the parent's view of it (see :mod:`ftdag._processes` for the state)."""

    __slots__ = (
        "index", "proc", "pid", "pipe", "dead", "started", "reading", "known", "forget", "assigned", "keep_tail",
        "store_run", "timed", "deadline",
    )

    def __init__(self, index: int, proc, conn, selector: selectors.BaseSelector) -> None:
        self.index = index  # its place in Workers.all, which its replacement takes
        self.proc = proc  # the multiprocessing.Process
        self.pid = proc.pid
        self.pipe = Pipe(conn, selector, self)  # the parent's end of its pipe
        self.dead = False  # its process ended (or is being ended): dispatch skips it
        self.started = False  # it sent HELLO: its loop runs, so it did not die while starting
        self.reading = False  # inside the pool's _receive (an interruption there loses replies or framing)
        self.known: set[int] = set()  # ids of the functions it has cached
        self.forget: list[int] = []  # ids of collected functions to tell it to drop, with its next message
        self.assigned: deque[int] = deque()  # tasks sent to it and not answered yet, oldest first
        self.keep_tail = NO_TASK  # assigned[-1] if it was told to keep that task's result for a link
        self.store_run = 0  # the id of the last run whose store it was sent
        self.timed = NO_TASK  # the task with a timeout it runs alone, until answered
        self.deadline = 0.0  # when that task's attempt times out (time.monotonic())


class Workers:
    """A pool's worker processes, its selector and the run cancellation flag they share."""

    def __init__(self, count: int) -> None:
        self.count = count  # how many to keep running
        self.all: list[Worker] = []  # by index; a dead one stays until it is replaced
        self.selector: selectors.BaseSelector | None = None  # created with the first worker
        self.cancel: Any = None  # a shared RawValue('q'): the id of the last cancelled run
        self._ctx: Any = None  # the multiprocessing context
        self._finalizer: multiprocessing.util.Finalize | None = None  # shuts the workers down at exit

    def fill(self) -> None:
        """Start the workers that are missing or dead (the first call sets everything up)."""
        if self.selector is None:
            self._ctx = _context()
            self.cancel = self._ctx.RawValue("q", 0)
            self.selector = selectors.DefaultSelector()
            # Runs at interpreter exit before multiprocessing joins its children.
            self._finalizer = multiprocessing.util.Finalize(self, _shutdown, args=(self.all,), exitpriority=10)
        workers = self.all
        for i, w in enumerate(workers):
            if w.dead:
                workers[i] = self._spawn(i)
        while len(workers) < self.count:
            workers.append(self._spawn(len(workers)))

    def replace(self, w: Worker) -> None:
        """Start a new worker in the place of ``w``, which was discarded."""
        self.all[w.index] = self._spawn(w.index)

    def _spawn(self, index: int) -> Worker:
        ctx, selector = self._ctx, self.selector
        assert selector is not None  # made by fill()
        conn, child = ctx.Pipe(duplex=True)
        proc = ctx.Process(
            target=_process_worker.main, args=(child, self.cancel), name=f"ftdag-worker-{index}", daemon=False
        )
        try:
            proc.start()
        except BaseException:
            conn.close()
            raise
        finally:
            child.close()
        w = Worker(index, proc, conn, selector)
        selector.register(proc.sentinel, selectors.EVENT_READ, (w, EXITED))
        return w

    def cancel_run(self, run_id: int) -> None:
        """Let no queued task of run ``run_id`` (or an earlier one) start on any worker."""
        if self.cancel is not None and self.cancel.value < run_id:
            self.cancel.value = run_id

    def forget_functions(self, fids: list[int]) -> None:
        """Make the workers that hold these functions drop them, with their next message."""
        for w in self.all:
            for fid in fids:
                if fid in w.known:
                    w.known.discard(fid)
                    w.forget.append(fid)

    def bury(self, w: Worker) -> None:
        """Discard a worker whose process has ended (wait for it to be reaped)."""
        w.dead = True
        _stop_process(w.proc, terminate=False)
        self._discard(w)

    def kill(self, w: Worker) -> None:
        """Terminate a worker that is busy with a task of an abandoned run, and discard it."""
        w.dead = True
        _stop_process(w.proc, terminate=True)
        self._discard(w)

    def _discard(self, w: Worker) -> None:
        """Forget a worker whose process has exited: unregister it and close its pipe."""
        w.pipe.unwatch()
        try:
            w.pipe.selector.unregister(w.proc.sentinel)
        except (KeyError, ValueError):
            pass
        w.pipe.close()

    def pids(self) -> list[int]:
        return [w.pid for w in self.all if not w.dead]

    def close(self) -> None:
        """Shut every worker down; the selector goes too.  Idempotent."""
        _shutdown(self.all)
        if self._finalizer is not None:
            self._finalizer.cancel()
            self._finalizer = None
        if self.selector is not None:
            self.selector.close()
            self.selector = None


def _stop_process(proc, terminate: bool) -> None:
    """Wait for ``proc`` to exit, terminating (then killing) it if asked or if it does not."""
    if terminate:
        try:
            proc.terminate()
        except (OSError, ValueError):
            pass
    proc.join(_JOIN_TIMEOUT)
    if proc.exitcode is None:
        proc.terminate()
        proc.join(_JOIN_TIMEOUT)
    if proc.exitcode is None:
        proc.kill()
        proc.join()


def _shutdown(workers: list[Worker]) -> None:
    """Ask every live worker to exit, wait for them, and terminate those that do not go."""
    for w in workers:
        if not w.dead and not w.pipe.send_shutdown():  # it could not be told: terminate it
            w.dead = True
            _stop_process(w.proc, terminate=True)
    for w in workers:
        w.dead = True
        if w.proc.exitcode is None:
            _stop_process(w.proc, terminate=False)
        w.pipe.close()
        w.assigned.clear()
