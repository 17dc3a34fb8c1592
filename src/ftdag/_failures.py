"""How a failed run of the process backend becomes the exception its caller sees.

A run records its first failure as ``(task, status, payload)``, with a status of
:mod:`ftdag._wire`; :func:`run_error` turns that record into the exception, without side
effects.  A task's own exception comes back pickled, with its traceback text: it becomes
the ``__cause__`` of :class:`~ftdag.TaskError`, its own ``__cause__`` being a
:class:`RemoteTraceback` holding that text.  A ``BaseException`` that is not an
``Exception`` (``SystemExit``, ``KeyboardInterrupt``) raised by a task is returned as it is,
as the thread backend re-raises it.  A worker that died gives
:class:`~ftdag.WorkerCrashedError`.
"""

from __future__ import annotations

import pickle
from collections.abc import Hashable, Sequence

from ._wire import BAD_ARGS, BAD_FUNCTION, CRASHED, RAISED, UNLOADABLE, UNSENDABLE
from .errors import TaskError, WorkerCrashedError, _task_failed

__all__ = ["RemoteError", "RemoteTraceback", "remote_exception", "run_error", "unpicklable_function"]


class RemoteTraceback(Exception):
    """The traceback text of an exception raised in a worker process (as its ``__cause__``)."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f'\n"""\n{self.tb.rstrip()}\n"""'


class RemoteError(Exception):
    """Stands for a worker's exception that could not be sent back (it did not pickle or unpickle)."""


def remote_exception(payload: tuple) -> BaseException:
    """The exception of an error reply's payload ``(pickled exception or None, summary, traceback)``."""
    blob, summary, text = payload
    exc = None
    if blob is not None:
        try:
            exc = pickle.loads(blob)
        except Exception:
            exc = None
    if not isinstance(exc, BaseException):
        exc = RemoteError(f"{summary} (the exception itself could not be sent back from the worker process)")
    if text:
        exc.__cause__ = RemoteTraceback(text)
    return exc


def unpicklable_function(key: Hashable, fn: object, exc: Exception, cloudpickle: bool) -> TaskError:
    """The error for task ``key``'s function ``fn`` failing to pickle (the caller chains ``exc``)."""
    name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    if cloudpickle:
        hint = ("cloudpickle could not pickle it either, so it probably refers to an object that "
                "cannot be pickled (a lock, a file, a connection): pass such things differently, "
                "or use backend='threads'")
    else:
        hint = ("define it at module level (lambdas, closures and nested functions cannot be "
                "pickled by the standard library), install the ftdag[cloudpickle] extra, "
                "or use backend='threads'")
    return TaskError(
        key,
        f"the function of task {key!r} ({name}) cannot be sent to a worker process: "
        f"{type(exc).__name__}: {exc}. To fix it, {hint}.",
    )


def run_error(error: tuple[int, int, object], keys: Sequence[Hashable], cloudpickle: bool) -> BaseException:
    """The exception that a run failing with ``error = (task, status, payload)`` raises.

    ``keys`` maps node ids to keys; ``cloudpickle`` says whether functions were pickled with it.
    The result's ``__cause__`` is set as described in the module docstring.
    """
    task, status, payload = error
    key = keys[task]
    if status == CRASHED:
        return WorkerCrashedError(key, payload)
    if status == UNSENDABLE:
        dep, cause = payload
        what = "its arguments" if dep is None else f"the value of {keys[dep]!r}"
        err = TaskError(
            key,
            f"cannot send the inputs of task {key!r} to a worker process: {what} cannot be pickled "
            f"({type(cause).__name__}: {cause}). Make it picklable, or use backend='threads'.",
        )
    elif status == UNLOADABLE:
        cause = payload
        err = TaskError(
            key,
            f"the result of task {key!r} could not be unpickled in the parent process "
            f"({type(cause).__name__}: {cause})",
        )
    else:
        cause = remote_exception(payload)
        if status == RAISED:
            return _task_failed(key, cause) if isinstance(cause, Exception) else cause
        err = TaskError(key, _worker_message(key, status, payload[1]))
    err.__cause__ = cause
    return err


def _worker_message(key: Hashable, status: int, summary: str) -> str:
    if status == BAD_FUNCTION:
        return (
            f"the function of task {key!r} could not be loaded in a worker process ({summary}). "
            "Define it at module level in a module the workers can import, install the "
            "ftdag[cloudpickle] extra, or use backend='threads'."
        )
    if status == BAD_ARGS:
        return (
            f"the inputs of task {key!r} could not be unpickled in a worker process ({summary}): "
            "their classes must be importable by the workers, or use backend='threads'."
        )
    return (
        f"task {key!r} returned a value that cannot be pickled to send it back from its worker "
        f"process ({summary}). Return a picklable value, or use backend='threads'."
    )
