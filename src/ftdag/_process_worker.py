"""The main loop of one worker process of the process backend (see :mod:`ftdag._processes`).

A worker is single-threaded.  It reads batches of tasks from its end of a duplex pipe into a
local FIFO queue, runs them one at a time, and answers each with one reply, in order.  It
never schedules: which task runs where is decided by the parent.

Before it starts a queued task it reads the shared cancellation flag (``cancel.value``, the
id of the last cancelled run): a task of a cancelled run is answered ``SKIPPED`` without
running.  A task that fails sets the flag itself, before replying, so that no task of the
failed run starts on this worker or any other after the failure (the parent sets it too when
it sees the failure, for failures a worker cannot report, such as a crash).

A task flagged KEEP leaves its result in the worker (one at a time) for the next task, which
the parent may have *linked* to it: that task names the kept task and the argument positions
its result fills.  The kept result is dropped when the next task starts, or when a message
without tasks says the run is over.  A result is sent back only if flagged SEND.

Between tasks the worker takes whatever messages have arrived (the parent never blocks on
a write: what the pipe cannot take waits in the parent until the worker reads).  SIGINT is
ignored: on Ctrl-C the parent decides what happens to running tasks (it waits a grace
period, then terminates).

The first thing the loop sends is ``HELLO``, so the parent can tell a worker that died while
starting (typically re-importing a main module that runs ftdag at import time) from one that
died running a task.  The messages, statuses and flags are those of :mod:`ftdag._wire`.  This
module uses nothing else from ftdag that the package's own import does not load already, so
a worker starts quickly.
"""

from __future__ import annotations

import pickle
import select
import signal
import traceback
from collections import deque
from time import perf_counter
from typing import Any

from ._context import TaskContext, register_frame
from ._plan import NO_TASK
from ._wire import BAD_ARGS, BAD_FUNCTION, BAD_RESULT, HELLO, KEEP, OK, PROTOCOL, RAISED, SEND, SKIPPED, UNSAVED, reply


class _LoadFailure:
    """Stands in the function cache for a function that failed to unpickle."""

    __slots__ = ("payload",)

    def __init__(self, payload: tuple) -> None:
        self.payload = payload


def _error_payload(exc: BaseException, skip_frames: int = 0) -> tuple:
    """``(pickled exception or None, "Type: message", traceback text)`` for the parent."""
    tb = exc.__traceback__
    for _ in range(skip_frames):
        if tb is not None:
            tb = tb.tb_next
    try:
        text = "".join(traceback.format_exception(type(exc), exc, tb))
    except BaseException:  # a broken __str__ must not kill the worker
        text = f"{type(exc).__qualname__} (its traceback could not be formatted)\n"
    summary = type(exc).__qualname__
    try:
        message = str(exc)
    except BaseException:
        message = ""
    if message:
        summary = f"{summary}: {message}"
    try:
        blob = pickle.dumps(exc, PROTOCOL)
    except BaseException:
        blob = None
    return (blob, summary, text)


def _take(data: bytes, fns: dict[int, Any], local: deque[tuple[Any, ...]], stores: dict[int, Any]) -> bool | None:
    """Unpack one message from the parent into ``fns``, ``local`` and ``stores`` (the store of
    the run, when the message brings one: only the last run's is kept).

    Returns None for SHUTDOWN, False for a message without tasks (the run is over: nothing
    will be linked to the kept result), True otherwise.
    """
    if not data:
        return None
    run_id, defs, forget, tasks, store = pickle.loads(data)
    if store is not None:
        stores.clear()
        try:
            stores[run_id] = pickle.loads(store)
        except BaseException as exc:
            stores[run_id] = _LoadFailure(_error_payload(exc))
    for fid in forget:
        fns.pop(fid, None)
    for fid, blob in defs:
        try:
            fns[fid] = pickle.loads(blob)
        except BaseException as exc:
            fns[fid] = _LoadFailure(_error_payload(exc))
    for item in tasks:
        local.append((run_id, *item))
    return bool(tasks)


def _never_sent(fid: int) -> _LoadFailure:
    """Stands for a function the parent never sent: that cannot happen unless the protocol is
    broken, and fails the task, not the worker."""
    return _LoadFailure((None, f"LookupError: function id {fid} was never sent", ""))


def _arguments(blob: bytes, link: int, positions: tuple, linked_task: int, linked: object) -> list:
    """The task's arguments: its pickled ones, with the kept result where it is linked."""
    args = pickle.loads(blob)
    if link != NO_TASK:
        if linked_task != link:
            raise LookupError(f"the result of task id {link} was not kept for it")
        for i in positions:
            args[i] = linked
    return args


def main(conn, cancel) -> None:
    """Serve tasks until the parent sends SHUTDOWN or goes away."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    recv, send = conn.recv_bytes, conn.send_bytes
    fns: dict[int, Any] = {}  # fid -> the function (or a _LoadFailure)
    local: deque[tuple[Any, ...]] = deque()  # (run_id, task, fid, pickled args, flags, link, positions, key, attempt)
    stores: dict[int, Any] = {}  # run_id -> the run's result store (the last run's only)
    fn: Any  # the running task's function (or a _LoadFailure)
    args: list | None  # its arguments, then None
    payload: Any  # its result or error payload, then None
    message: bytes | None  # its reply, then None
    kept_task, kept = NO_TASK, None  # the last result, while the next task may be linked to it
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN)
    try:
        send(HELLO)
        while True:
            # Wait for a message while there is nothing to run (a message without tasks leaves
            # nothing), then take whatever else has arrived.
            while not local or poller.poll(0):
                taken = _take(recv(), fns, local, stores)
                if taken is None:
                    return
                if not taken:
                    kept_task, kept = NO_TASK, None
            run_id, task, fid, blob, flags, link, positions, key, attempt = local.popleft()
            linked_task, linked = kept_task, kept
            kept_task, kept = NO_TASK, None
            if cancel.value >= run_id:
                linked = None
                send(reply(run_id, task, SKIPPED, None))
                continue
            started = perf_counter()  # (reported for tasks of runs with a context: elapsed)
            status, fn = OK, fns.get(fid)
            if fn is None:
                fn = _never_sent(fid)
            if type(fn) is _LoadFailure:
                status, payload = BAD_FUNCTION, fn.payload
            else:
                try:
                    args = _arguments(blob, link, positions, linked_task, linked)
                except BaseException as exc:
                    status, payload = BAD_ARGS, _error_payload(exc)
                else:
                    blob = linked = None  # the task's arguments hold the only references now
                    try:
                        payload = fn(*args)
                    except BaseException as exc:  # SystemExit too: it fails the run, not the worker
                        status, payload = RAISED, _error_payload(exc, skip_frames=1)
                    args = None
            elapsed = None if attempt is None else perf_counter() - started
            if status == OK and attempt is not None and attempt[1] is not None:
                status, payload = _save(stores.get(run_id), attempt[1], payload, key)
            if status == OK:
                if flags & KEEP:
                    kept_task, kept = task, payload
                try:
                    message = reply(run_id, task, OK, payload if flags & SEND else None, elapsed)
                except BaseException as exc:
                    kept_task, kept = NO_TASK, None
                    status, payload = BAD_RESULT, _error_payload(exc)
            if status != OK:
                if attempt is None and cancel.value < run_id:
                    cancel.value = run_id  # fail fast (a plain run): nothing of this run starts any more
                message = reply(run_id, task, status, payload, elapsed)
            payload = blob = linked = None  # hold no task data while waiting for the next message
            send(message)
            message = None
    except (EOFError, OSError):  # the parent closed its end or died
        return


def _save(store: Any, fingerprint: str, result: Any, key: Any) -> tuple[int, Any]:
    """Save a task's result to the run's store: ``(OK, result)``, or ``(UNSAVED, error payload)``."""
    if store is None:
        exc: BaseException = LookupError("the run's store was never sent to this worker")
        return UNSAVED, _error_payload(exc)
    if type(store) is _LoadFailure:
        return UNSAVED, store.payload
    try:
        store.save(fingerprint, result, key)
    except Exception as exc:
        return UNSAVED, _error_payload(exc)
    return OK, result


def _read_frame(frame: Any) -> TaskContext:
    """current_task() in a worker process: the task is the one :func:`main` is running."""
    f_locals = frame.f_locals
    run_id, cancel, attempt = f_locals["run_id"], f_locals["cancel"], f_locals["attempt"]
    return TaskContext(f_locals["key"], 1 if attempt is None else attempt[0], lambda: cancel.value >= run_id)


register_frame(main.__code__, _read_frame)
