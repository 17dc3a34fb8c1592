"""How a failed run of the process backend becomes the exception its caller sees.

A run records its first failure as ``(task, status, payload)``, with a status of
:mod:`ftdag._wire`; :func:`run_error` turns that record into the exception, without side
effects.  A task's own exception comes back pickled, with its traceback text: it becomes
the ``__cause__`` of :class:`~ftdag.TaskError`, its own ``__cause__`` being a
:class:`RemoteTraceback` holding that text.  A ``BaseException`` that is not an
``Exception`` (``SystemExit``, ``KeyboardInterrupt``) raised by a task is returned as it is,
as the thread backend re-raises it.  A function, inputs or result that cannot cross between
the processes gives :class:`~ftdag.SerializationError`; a worker that died gives
:class:`~ftdag.WorkerCrashedError`.

Messages are sentences: ``"<what> cannot <cross>: <Type>: <error>. <Advice.>"``.
"""

from __future__ import annotations

import pickle
from collections.abc import Hashable, Sequence
from typing import Any

from ._wire import BAD_ARGS, BAD_FUNCTION, BAD_RESULT, CRASHED, RAISED, UNLOADABLE, UNSENDABLE
from .errors import SerializationError, WorkerCrashedError, _task_failed

__all__ = ["RemoteError", "RemoteTraceback", "remote_exception", "run_error", "unpicklable_function"]

_THREADS = "use backend='threads'"


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


def describe(exc: BaseException) -> str:
    """``"Type: message"``, or ``"Type"`` when the message is empty (as the workers summarise)."""
    message = str(exc)
    name = type(exc).__qualname__
    return f"{name}: {message}" if message else name


def _serialization_error(key: Hashable, what: str, problem: str, error: str, advice: str) -> SerializationError:
    """``"<problem>: <error>. <advice>"``, the error ending in exactly one full stop."""
    error = error.rstrip()
    if not error.endswith((".", "!", "?")):
        error += "."
    return SerializationError(key, f"{problem}: {error} {advice}", what)


def unpicklable_function(key: Hashable, fn: object, exc: Exception, cloudpickle: bool) -> SerializationError:
    """The error for task ``key``'s function ``fn`` failing to pickle (the caller chains ``exc``)."""
    name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    if cloudpickle:
        advice = (
            "Even cloudpickle cannot pickle it: it probably refers to an object that cannot be pickled "
            f"(a lock, a file, a connection). Pass such objects another way, or {_THREADS}."
        )
    else:
        advice = (
            "Without cloudpickle, functions are pickled by reference, so lambdas, closures and nested "
            "functions cannot be sent. Define it at module level, install the ftdag[cloudpickle] extra, "
            f"or {_THREADS}."
        )
    problem = f"the function of task {key!r} ({name}) cannot be sent to a worker process"
    return _serialization_error(key, "function", problem, describe(exc), advice)


def run_error(error: tuple[int, int, Any], keys: Sequence[Hashable], cloudpickle: bool) -> BaseException:
    """The exception that a run failing with ``error = (task, status, payload)`` raises.

    ``keys`` maps node ids to keys; ``cloudpickle`` says whether functions were pickled with it.
    The result's ``__cause__`` is set as described in the module docstring.
    """
    task, status, payload = error
    key = keys[task]
    if status == CRASHED:
        exitcode, during_startup = payload
        return WorkerCrashedError(key, exitcode, during_startup)
    if status == UNSENDABLE:
        dep, cause = payload
        if dep is None:
            problem, advice = "they cannot be pickled", "Make them picklable"
        else:
            problem, advice = f"the value of {keys[dep]!r} cannot be pickled", "Make it picklable"
        err = _serialization_error(
            key, "inputs", f"the inputs of task {key!r} cannot be sent to a worker process",
            f"{problem} ({describe(cause)})", f"{advice}, or {_THREADS}.",
        )
    elif status == UNLOADABLE:
        cause = payload
        err = _serialization_error(
            key, "result", f"the result of task {key!r} cannot be loaded in the parent process",
            describe(cause), f"Return a value that unpickles in the parent process, or {_THREADS}.",
        )
    else:
        cause = remote_exception(payload)
        if status == RAISED:
            return _task_failed(key, cause) if isinstance(cause, Exception) else cause
        err = _worker_serialization_error(key, status, payload[1], cloudpickle)
    err.__cause__ = cause
    return err


def _worker_serialization_error(key: Hashable, status: int, summary: str, cloudpickle: bool) -> SerializationError:
    """The error for a function or inputs a worker could not load, or a result it could not send."""
    if status == BAD_FUNCTION:
        if cloudpickle:
            advice = f"Define it in a module the worker processes can import, or {_THREADS}."
        else:
            advice = (
                "Define it at module level in a module the worker processes can import, install the "
                f"ftdag[cloudpickle] extra, or {_THREADS}."
            )
        return _serialization_error(
            key, "function", f"the function of task {key!r} cannot be loaded in a worker process", summary, advice
        )
    if status == BAD_ARGS:
        return _serialization_error(
            key, "inputs", f"the inputs of task {key!r} cannot be loaded in a worker process", summary,
            f"Define their classes in modules the worker processes can import, or {_THREADS}.",
        )
    assert status == BAD_RESULT, status
    return _serialization_error(
        key, "result", f"the result of task {key!r} cannot be sent back from its worker process", summary,
        f"Return a picklable value, or {_THREADS}.",
    )
