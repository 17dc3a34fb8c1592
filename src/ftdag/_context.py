"""The run context: what a run with a failure policy carries, shared by every backend.

A run is *plain* when its planned tasks have no retries or timeouts and it has no failure
policy, cancel token, deadline or store: the backends then run today's hot paths and never
create a :class:`RunContext`.  Any other run gets one, and the backends consult it at four
points, always from one thread at a time (threads: under the pool's lock; processes and
sequential: the caller's thread), so nothing here locks:

- before a task starts: :meth:`RunContext.halted` (the cancel token, the deadline);
- when an attempt fails: :meth:`RunContext.failure` decides between retrying (now, or at a
  time kept in :attr:`RunContext.timers`), going on without the task and what depends on it
  (``keep_going``), and stopping the run;
- when a task succeeds: :meth:`RunContext.succeeded`;
- while idle: :meth:`RunContext.next_due` says until when a worker may sleep, and
  :meth:`RunContext.release_due` moves the retries that are due back to ``ready``.

The context also carries what watches the run: its callbacks (``callbacks``, called by
:mod:`ftdag._attempt` on threads and sequential and by the process backend's parent, see
:mod:`ftdag.callbacks`), and, for :meth:`ftdag.Executor.as_completed`, the function that
outputs are streamed to as they complete (``emit``, :meth:`RunContext.stream`).  The
sequence of a run with a context, from its policy to its result, is :mod:`ftdag._runner`.

State, by task id:

``tries[t]``     failed attempts of ``t`` so far (absent: none); the running attempt is
                 ``tries.get(t, 0) + 1``.
``status[t]``    ``DONE``, ``FAILED`` or ``SKIPPED`` once ``t`` is settled, else 0.  Loaded tasks
                 are ``DONE`` from the start.
``timers``       a heap of ``(due, seq, t)``: tasks waiting for their retry, holding no worker
                 and no in-flight slot (``seq`` keeps the order of equal times).
``failed``       ``t -> TaskError`` for the tasks that failed for good, in the order they did.
``reason``       why the run stopped early: ``None``, ``"cancelled"``, ``"timeout"``,
                 ``"failed"`` (fail fast or ``max_failures``).

:func:`current_task` and :class:`CancelToken` are the public faces of this module.
"""

from __future__ import annotations

import heapq
import logging
import random
import sys
import threading
import time
from collections.abc import Callable, Hashable
from types import CodeType, FrameType
from typing import TYPE_CHECKING, Any

from ._options import TaskOptions, retry_delay
from .callbacks import Callbacks

if TYPE_CHECKING:
    from ._policy import RunPolicy
from ._plan import Plan
from .errors import TaskError, _task_failed

__all__ = ["CancelToken", "RunContext", "TaskContext", "current_task"]

_log = logging.getLogger("ftdag")

DONE, FAILED, SKIPPED = 1, 2, 3  # RunContext.status values

RETRY_NOW, RETRY_LATER, CONTINUE, STOP = range(4)  # what RunContext.failure tells the backend


class CancelToken:
    """Cancels the runs it is passed to: ``run(..., cancel=token)``.

    :meth:`cancel` may be called from any thread or from a signal handler: it only sets a
    flag and calls the wakers of the runs using the token, which only set flags or write to
    a pipe (they take no lock).  A run that sees the flag starts nothing new, waits for its
    running tasks and raises :class:`~ftdag.RunCancelledError`.  A cancelled token stays
    cancelled: make a new one for the next run.
    """

    __slots__ = ("_cancelled", "_wakers", "__weakref__")

    def __init__(self) -> None:
        self._cancelled = False
        self._wakers: list[Callable[[], None]] = []  # one per run using the token

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        """Cancel every run using this token, now and later.  Idempotent."""
        self._cancelled = True
        for wake in list(self._wakers):
            wake()

    def _watch(self, wake: Callable[[], None]) -> None:
        self._wakers.append(wake)

    def _unwatch(self, wake: Callable[[], None]) -> None:
        try:
            self._wakers.remove(wake)
        except ValueError:
            pass

    def __repr__(self) -> str:
        return f"<CancelToken cancelled={self._cancelled}>"


class TaskContext:
    """What :func:`current_task` returns: the running attempt of a task.

    ``key``        the task's key;
    ``attempt``    1 for the first attempt, 2 for the first retry, ...;
    ``cancelled``  true once the run is cancelled or stopped (by a failure, Ctrl-C or its
                   deadline), or this attempt timed out: a long task may check it and return
                   early, the only way to stop a thread.
    """

    __slots__ = ("key", "attempt", "_stopped", "timed_out")

    def __init__(self, key: Hashable, attempt: int, stopped: Callable[[], bool]) -> None:
        self.key = key
        self.attempt = attempt
        self._stopped = stopped  # reads the run's stop flag
        self.timed_out = False  # set when this attempt's timeout expired (the call is abandoned)

    @property
    def cancelled(self) -> bool:
        return self.timed_out or self._stopped()

    def __repr__(self) -> str:
        return f"<TaskContext key={self.key!r} attempt={self.attempt} cancelled={self.cancelled}>"


_frame_readers: dict[CodeType, Callable[[FrameType], TaskContext]] = {}


class ThreadState:
    """What ftdag keeps per thread (:func:`thread_state`).

    ``pool``: the thread pool whose task the thread runs, if any (a pool thread, or a run's
    caller while the run is in progress: see ``ftdag._threads.current_pool``); an attempt
    thread (ftdag._attempt) or a stream's thread (ftdag._streams) takes it over from the thread
    that starts it.  ``slot``: the worker slot that callbacks name for the thread's tasks.
    """

    __slots__ = ("pool", "slot")

    def __init__(self) -> None:
        self.pool: Any = None
        self.slot = 0


_states = threading.local()  # .state: the thread's ThreadState


def thread_state() -> ThreadState:
    """The calling thread's :class:`ThreadState`, made on first use.

    One object per thread, so that a run reads a ``threading.local`` once and then sets and
    restores plain slots: on 3.13t, setting an attribute of a ``threading.local`` costs about
    three times a slot's, and a thread pool's run sets and restores one.
    """
    try:
        return _states.state
    except AttributeError:
        state = _states.state = ThreadState()
        return state


def register_frame(code: CodeType, reader: Callable[[FrameType], TaskContext]) -> None:
    """Let :func:`current_task` find the task that the function of ``code`` calls, in its frame."""
    _frame_readers[code] = reader


def current_task() -> TaskContext:
    """The task the calling code runs in: its key, its attempt and whether it should stop.

    Works in every task on every backend (in a worker process too).  Raises
    :class:`RuntimeError` when called outside a task.

    No scheduler pays for this function on its hot path: none records which task runs.
    This function finds the task in the nearest scheduler frame that called one (each
    scheduler registers its calling function with :func:`register_frame`), so that in a
    nested run it is the inner task.
    """
    frame = sys._getframe(1)
    while frame is not None:
        reader = _frame_readers.get(frame.f_code)
        if reader is not None:
            return reader(frame)
        frame = frame.f_back  # type: ignore[assignment]
    raise RuntimeError("ftdag.current_task() was called outside a task")


class RunContext:
    """One non-plain run's policy and failure state; see the module docstring."""

    __slots__ = (
        "keys", "options", "on_error", "max_failures", "cancel", "deadline", "store", "fingerprints",
        "tries", "status", "timers", "failed", "reason", "retries", "loaded", "stored", "settled", "_seq",
        "_rng", "_wake", "emit", "_streamed", "callbacks",
    )

    def __init__(self, plan: Plan, policy: RunPolicy) -> None:
        dag = plan.dag
        on_error, max_failures, cancel, timeout = policy.on_error, policy.max_failures, policy.cancel, policy.timeout
        self.keys = dag._keys
        self.options: tuple[TaskOptions | None, ...] = dag._options or (None,) * len(dag._keys)
        self.on_error = on_error
        self.max_failures = max_failures  # stop after this many tasks failed for good (None: never)
        self.cancel = cancel
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.store = policy.store  # set up by ftdag._resume when the run has one
        self.fingerprints: list[str | None] | None = None  # by id, with a store: None where not stored
        self.tries: dict[int, int] = {}
        self.status = bytearray(len(dag._keys))
        self.timers: list[tuple[float, int, int]] = []
        self.failed: dict[int, TaskError] = {}
        self.reason: str | None = None
        self.retries = 0  # attempts beyond the first, summed
        self.loaded = 0  # tasks loaded from the store
        self.stored = 0  # results saved to the store
        self.settled = 0  # after failure() returned CONTINUE: the tasks it settled (it and the skipped)
        self._seq = 0
        self._rng = random.Random()
        self._wake: Callable[[], None] | None = None
        self.emit: Callable[[Hashable, Any], None] | None = None  # streams outputs (ftdag._streams)
        self.callbacks = Callbacks(policy.callbacks) if policy.callbacks else None  # ftdag.callbacks
        self._streamed: bytearray | None = None  # by id: 1 for a requested output still to be emitted

    # -- cancellation -----------------------------------------------------------------------------

    def watch(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` (from any thread, or a signal handler) when the token is cancelled."""
        if self.cancel is not None:
            self._wake = wake
            self.cancel._watch(wake)

    def unwatch(self) -> None:
        if self.cancel is not None and self._wake is not None:
            self.cancel._unwatch(self._wake)
            self._wake = None

    def halted(self) -> bool:
        """Whether the run must start nothing more: cancelled, or past its deadline (sets ``reason``)."""
        if self.reason is not None:
            return True
        if self.cancel is not None and self.cancel._cancelled:
            self.reason = "cancelled"
            return True
        if self.deadline is not None and time.monotonic() >= self.deadline:
            self.reason = "timeout"
            return True
        return False

    # -- attempts ---------------------------------------------------------------------------------

    def attempt(self, task: int) -> int:
        """The number of the attempt of ``task`` about to start (or running): 1 for the first."""
        return self.tries.get(task, 0) + 1

    def timeout_of(self, task: int) -> float | None:
        options = self.options[task]
        return None if options is None else options.timeout

    def succeeded(self, plan: Plan, task: int) -> None:
        """``task`` succeeded and ``plan.finish`` recorded its result."""
        self.status[task] = DONE
        fingerprints = self.fingerprints
        if fingerprints is not None and fingerprints[task] is not None:
            self.stored += 1
        if self._streamed is not None and self._streamed[task]:
            self._hand_out(plan, task)

    # -- streaming outputs ------------------------------------------------------------------------

    def stream(self, plan: Plan, emit: Callable[[Hashable, Any], None]) -> None:
        """Hand each requested output to ``emit(key, value)`` as soon as it is ready, and then
        drop the run's own hold on it (the extra consumer count of an output, ftdag._plan), so
        that the value lives on only in the consumer, and in the run while tasks still need it.
        Outputs ready before anything runs (sources, values loaded from a store) go now."""
        self.emit = emit
        streamed = self._streamed = bytearray(len(self.keys))
        fns = plan.dag._fns
        for i in plan.outputs:
            streamed[i] = 1
        for i in plan.outputs:
            if fns[i] is None or self.status[i] == DONE:
                self._hand_out(plan, i)

    def _hand_out(self, plan: Plan, task: int) -> None:
        self._streamed[task] = 0  # type: ignore[index]
        self.emit(self.keys[task], plan.values[task])  # type: ignore[misc]
        left = plan.consumers[task] - 1
        plan.consumers[task] = left
        if not left:
            plan.values[task] = None  # (the consumer holds it now: nothing is freed here)

    def failure(
        self, plan: Plan, task: int, exc: BaseException, error: TaskError | None = None,
        retryable: bool = True, garbage: list[Any] | None = None,
    ) -> int:
        """An attempt of ``task`` failed with ``exc``: retry it, go on without it, or stop.

        ``error`` is the :class:`TaskError` already built for it (the process backend's
        serialization and crash errors), else one is made with ``exc`` as its cause.  Returns
        ``RETRY_NOW`` (the caller puts ``task`` back in ``ready``), ``RETRY_LATER`` (it is in
        :attr:`timers`), ``CONTINUE`` (keep-going: it failed for good and its planned
        descendants are skipped, their inputs dropped into ``garbage``, and the caller
        subtracts :meth:`settled` from ``pending``) or ``STOP`` (the caller stops the run; for
        a ``BaseException`` that is not an ``Exception`` the caller raises ``exc`` itself).
        """
        attempts = self.tries.get(task, 0) + 1
        if not isinstance(exc, Exception):
            self.reason = "failed"
            return STOP
        options = self.options[task]
        if (
            retryable and options is not None and attempts <= options.retries
            and isinstance(error if error is not None else exc, options.retry_on)
            and not self.halted()
        ):
            self.tries[task] = attempts
            self.retries += 1
            delay = retry_delay(options, attempts, self._rng)
            if _log.isEnabledFor(logging.DEBUG):
                _log.debug("task %r failed (attempt %d of %d): %s: %s; retrying in %.3g s", self.keys[task], attempts,
                           options.retries + 1, type(exc).__name__, exc, delay)
            if delay <= 0:
                return RETRY_NOW
            self._seq += 1
            heapq.heappush(self.timers, (time.monotonic() + delay, self._seq, task))
            return RETRY_LATER
        if error is None:
            error = _task_failed(self.keys[task], exc, attempts)
        else:
            error.attempts = attempts
        self.failed[task] = error
        self.status[task] = FAILED
        if _log.isEnabledFor(logging.DEBUG):
            _log.debug("task %r failed for good after %d attempt(s): %s", self.keys[task], attempts, error)
        if self.on_error == "fail_fast" or (self.max_failures is not None and len(self.failed) >= self.max_failures):
            self.reason = "failed"
            return STOP
        skipped = plan.skip_after(task, garbage)
        for u in skipped:
            self.status[u] = SKIPPED
        self.settled = 1 + len(skipped)
        return CONTINUE

    def first_error(self) -> TaskError:
        """The fail-fast run's error: the first task that failed for good."""
        return next(iter(self.failed.values()))

    # -- retries waiting for their time -----------------------------------------------------------

    def next_due(self) -> float | None:
        """The ``time.monotonic()`` at which a retry is due, or None if none waits."""
        timers = self.timers
        return timers[0][0] if timers else None

    def release_due(self, now: float) -> list[int]:
        """Pop the retries that are due at ``now``, in the order they were scheduled."""
        timers = self.timers
        due = []
        while timers and timers[0][0] <= now:
            due.append(heapq.heappop(timers)[2])
        return due

    def drop_timers(self) -> None:
        self.timers.clear()

    # -- the report -------------------------------------------------------------------------------

    def report(self, plan: Plan) -> tuple[dict[Hashable, Any], dict[Hashable, TaskError] | None, frozenset[Hashable]]:
        """The run's outputs that completed, its failures by key, and the skipped keys."""
        keys, status, values = self.keys, self.status, plan.values
        fns = plan.dag._fns
        outputs = {keys[i]: values[i] for i in plan.outputs if fns[i] is None or status[i] == DONE}
        failed = {keys[t]: err for t, err in self.failed.items()} or None
        skipped = frozenset(keys[t] for t in plan.tasks if status[t] == 0 or status[t] == SKIPPED)
        return outputs, failed, skipped

    def counters(self) -> dict[str, int]:
        return {"retries": self.retries, "loaded": self.loaded, "stored": self.stored}

