"""One attempt of a task on the calling thread: context, timeout and store, for non-plain runs.

The thread backend and the sequential backend call :func:`run_attempt` in place of the bare
``fn(*args)`` of their plain paths.  It makes the attempt visible to
:func:`ftdag.current_task`, enforces the task's ``timeout``, and saves the result to the
run's store on the thread that ran it (so no store I/O happens under a scheduler's lock).

Timeouts
--------
A thread cannot be killed.  So an attempt with a timeout runs on a fresh *attempt thread*
(``ftdag-attempt-<n>``) while the worker that took the task waits for it, at most
``timeout`` seconds.  If the attempt returns in time the worker goes on with its result.  If
not, the worker stops waiting: it marks the attempt ``timed_out`` (which
``current_task().cancelled`` reports, so a cooperative task can return early), raises
:class:`~ftdag.TaskTimeoutError`, and takes its next task: the worker slot is free again at
once, so the executor keeps running ``max_workers`` tasks at a time.  The abandoned call
keeps running on its attempt thread until it returns; its result is discarded.  Attempts
without a timeout run on the worker itself.
"""

from __future__ import annotations

import functools
import itertools
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from ._context import RunContext, TaskContext, register_frame, thread_state
from ._plan import Plan
from .errors import SerializationError, TaskTimeoutError

__all__ = ["SaveFailed", "attempts", "run_attempt"]

_SIGNAL_SLICE_S = 0.05  # the main thread waits in slices, so that Ctrl-C is seen
_main_ident = threading.main_thread().ident
_names = itertools.count(1)


class SaveFailed(Exception):
    """The task succeeded but its result could not be saved to the store (``.error``)."""

    def __init__(self, error: SerializationError) -> None:
        super().__init__(error)
        self.error = error


def attempts(ctx: RunContext, plan: Plan, stopped: Callable[[], bool]) -> list[Callable[..., Any] | None]:
    """The thread backend's functions for a run with a context, by node id: each planned
    task's function wrapped in :func:`run_attempt` (None elsewhere), so that its hot loop
    calls ``fns[task](*args)`` for every run and plain runs pay nothing for this module."""
    fns: list[Callable[..., Any] | None] = [None] * len(plan.values)
    dag_fns = plan.dag._fns
    for t in plan.tasks:
        fns[t] = functools.partial(_wrapped, ctx, t, dag_fns[t], stopped)
    return fns


def _wrapped(ctx: RunContext, task: int, fn: Callable[..., Any], stopped: Callable[[], bool], *args: Any) -> Any:
    return run_attempt(ctx, task, fn, args, stopped, thread_state().slot)


def run_attempt(
    ctx: RunContext, task: int, fn: Callable[..., Any], args: Sequence[Any], stopped: Callable[[], bool],
    worker: int = 0,
) -> Any:
    """Run one attempt of ``task`` on ``worker``: ``fn(*args)``, with its context, timeout,
    store and callbacks (``on_task_start`` and ``on_task_end`` on this thread)."""
    key = ctx.keys[task]
    context = TaskContext(key, ctx.attempt(task), stopped)
    callbacks = ctx.callbacks
    if callbacks is not None:
        callbacks.task_start(key, worker)
        started = time.perf_counter()
    try:
        timeout = ctx.timeout_of(task)
        if timeout is None:
            result = fn(*args)  # current_task() finds ``context`` in this frame
        else:
            result = _call_with_timeout(fn, args, timeout, context)
        fingerprints = ctx.fingerprints
        if fingerprints is not None:
            fingerprint = fingerprints[task]
            if fingerprint is not None:
                try:
                    ctx.store.save(fingerprint, result, key)
                except SerializationError as err:
                    raise SaveFailed(err) from None
    except BaseException as exc:
        if callbacks is not None:
            callbacks.task_end(key, worker, time.perf_counter() - started, exc.error if isinstance(exc, SaveFailed) else exc)
        raise
    if callbacks is not None:
        callbacks.task_end(key, worker, time.perf_counter() - started, None)
    return result


class _Call:
    """One timed call, shared by the waiting worker and the attempt thread.

    ``lock`` guards ``state``: 0 running, 1 returned (``outcome`` set), 2 abandoned (the
    worker gave up; the attempt thread drops what it gets).  Whichever side moves ``state``
    from 0 decides; ``done`` is released once by the attempt thread when it returns.
    """

    __slots__ = ("lock", "done", "state", "ok", "outcome")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.done = threading.Lock()
        self.done.acquire()
        self.state = 0
        self.ok = False
        self.outcome: Any = None


def _call_with_timeout(fn: Callable[..., Any], args: Sequence[Any], timeout: float, context: TaskContext) -> Any:
    call = _Call()
    pool = thread_state().pool  # a nested run() in the call must know it is in the pool
    thread = threading.Thread(
        target=_attempt_thread, args=(call, fn, args, context, pool), name=f"ftdag-attempt-{next(_names)}",
        daemon=True,
    )
    thread.start()
    if threading.get_ident() == _main_ident:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or call.done.acquire(True, min(left, _SIGNAL_SLICE_S)):
                break
    else:
        call.done.acquire(True, timeout)
    with call.lock:
        if call.state == 0:
            call.state = 2
            context.timed_out = True
            raise TaskTimeoutError(context.key, timeout)
    outcome, call.outcome = call.outcome, None
    if call.ok:
        return outcome
    raise outcome


def _attempt_thread(
    call: _Call, fn: Callable[..., Any], args: Sequence[Any], context: TaskContext, pool: object,
) -> None:
    """The body of an attempt thread: the call, then its outcome to ``call`` (unless abandoned)."""
    thread_state().pool = pool
    try:
        outcome, ok = fn(*args), True  # current_task() finds ``context`` in this frame
    except BaseException as exc:
        outcome, ok = exc, False
    with call.lock:
        if call.state == 0:
            call.state, call.ok, call.outcome = 1, ok, outcome
    outcome = None
    call.done.release()


register_frame(run_attempt.__code__, lambda frame: frame.f_locals["context"])
register_frame(_attempt_thread.__code__, lambda frame: frame.f_locals["context"])
