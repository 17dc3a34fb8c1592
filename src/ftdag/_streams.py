"""Results as they complete, futures and asyncio: thin layers over :meth:`Executor.run`.

:func:`as_completed`
    Runs the graph on a helper thread (``ftdag-stream``) while the caller iterates.  The run
    has a context that *streams* its outputs (:meth:`ftdag._context.RunContext.stream`):
    each requested output is put in a queue as soon as it is ready, and the run drops its
    own hold on it, so once the consumer has taken a value and let it go, nothing keeps it
    alive.  The iterator ends with the run: it raises what ``run()`` would have raised.
    Leaving the loop early (``break``, an exception in the consumer, the generator being
    closed or collected) cancels the run through a :class:`~ftdag.CancelToken`, waits for
    the tasks that are running, and leaves the executor usable.

:class:`Submitter`
    One thread per executor (``ftdag-submit``), started on the first ``submit()``, that runs
    the submitted runs one after the other, in submission order (runs on one executor are
    serialised anyway).  A future cancelled before its run starts is skipped.  ``close()``
    cancels the futures that have not started, then waits for the one that has.

:func:`run_async`
    Submits the run and awaits its future without blocking the event loop.  Cancelling the
    awaiting task cancels the run (nothing new starts; the running tasks finish), waits for
    it to end, and raises :class:`asyncio.CancelledError` in the task.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Hashable, Iterable, Iterator
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from ._context import CancelToken, thread_state

if TYPE_CHECKING:
    from .executor import Executor
    from .graph import Dag
    from .results import RunResult

__all__ = ["Submitter", "as_completed", "run_async"]

_SLICE_S = 0.05  # how long the main thread blocks at a time, so that Ctrl-C is seen
_main_ident = threading.main_thread().ident
_END = object()  # the queue's last item comes after it: the run's result, or its exception


def _linked(token: CancelToken | None) -> CancelToken:
    """A token of our own, cancelled with ``token`` (the caller's, if any) too."""
    ours = CancelToken()
    if token is not None:
        if token.cancelled:
            ours.cancel()
        token._watch(ours.cancel)
    return ours


def _unlink(token: CancelToken | None, ours: CancelToken) -> None:
    if token is not None:
        token._unwatch(ours.cancel)


def _get(q: queue.SimpleQueue) -> Any:
    """``q.get()``; on the main thread in slices, so that Ctrl-C is not held up by the wait."""
    if threading.get_ident() != _main_ident:
        return q.get()
    while True:
        try:
            return q.get(timeout=_SLICE_S)
        except queue.Empty:
            pass


def as_completed(
    executor: Executor, dag: Dag, outputs: Iterable[Hashable] | Hashable, options: dict[str, Any],
) -> Iterator[tuple[Hashable, Any]]:
    """See :meth:`ftdag.Executor.as_completed` and the module docstring."""
    user_token = options.pop("cancel", None)
    token = _linked(user_token)
    policy = executor._policy_of({**options, "cancel": token})  # validates before anything runs
    executor._check(dag)
    items: queue.SimpleQueue = queue.SimpleQueue()
    pool = thread_state().pool  # called from a task of ours: run inline, as run() would

    def body() -> None:
        thread_state().pool = pool
        try:
            result: Any = executor._execute(dag, outputs, policy, emit=lambda key, value: items.put((key, value)))
            items.put(_END)
            items.put((True, result))
        except BaseException as exc:
            items.put(_END)
            items.put((False, exc))

    thread = threading.Thread(target=body, name="ftdag-stream", daemon=True)
    return _iterate(thread, items, token, user_token)


def _iterate(
    thread: threading.Thread, items: queue.SimpleQueue, token: CancelToken, user_token: CancelToken | None,
) -> Iterator[tuple[Hashable, Any]]:
    thread.start()
    finished = False
    box: list[Any] = []  # yielded with pop(): while the consumer holds an output, this frame does not
    try:
        while True:
            box.append(_get(items))
            if box[-1] is _END:
                box.clear()
                finished = True
                ok, outcome = _get(items)
                if not ok:
                    raise outcome  # as run() would (RunCancelledError if the caller's token fired)
                return
            yield box.pop()
    finally:
        if not finished:  # the consumer left early (or Ctrl-C): cancel the rest, wait for it
            token.cancel()
            thread.join()
            while not items.empty():  # drop what was handed out meanwhile
                items.get_nowait()
        _unlink(user_token, token)


class Submitter:
    """An executor's queue of submitted runs and the thread that runs them; see the module docstring."""

    def __init__(self, executor: Executor) -> None:
        self._executor = executor
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._pending: set[Future] = set()  # submitted, not yet started (so that close() cancels them)

    def submit(self, dag: Dag, outputs: Iterable[Hashable] | Hashable, options: dict[str, Any]) -> Future[RunResult]:
        executor = self._executor
        executor._check(dag)
        policy = executor._policy_of(options)  # raise now, not in the future
        future: Future[RunResult] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("this executor is closed")
            self._pending.add(future)
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="ftdag-submit", daemon=True)
                self._thread.start()
            self._queue.put((future, dag, outputs, policy))
        return future

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            future, dag, outputs, policy = item
            with self._lock:
                self._pending.discard(future)
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = self._executor._execute(dag, outputs, policy)
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)
            future = item = None

    def close(self) -> None:
        """Cancel what has not started, wait for the run in progress, stop the thread."""
        with self._lock:
            self._closed = True
            pending, self._pending = self._pending, set()
            thread = self._thread
            self._queue.put(None)
        for future in pending:
            future.cancel()
        if thread is not None and thread is not threading.current_thread():
            thread.join()


async def run_async(
    executor: Executor, dag: Dag, outputs: Iterable[Hashable] | Hashable, options: dict[str, Any],
) -> RunResult:
    """See :meth:`ftdag.Executor.run_async` and the module docstring."""
    user_token = options.pop("cancel", None)
    token = _linked(user_token)
    try:
        future = executor.submit(dag, outputs, cancel=token, **options)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            token.cancel()
            if not future.cancel():  # it started: wait for it to end, then re-raise the cancellation
                try:
                    await asyncio.shield(asyncio.wrap_future(future))
                except (Exception, asyncio.CancelledError):
                    pass  # cancelled (or failed before it saw the cancellation, or we were
                    #       cancelled again while waiting): the cancellation wins
            raise
    finally:
        _unlink(user_token, token)
