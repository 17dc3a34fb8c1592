"""Every ftdag exception survives pickling with its attributes and its message."""

from __future__ import annotations

import pickle

import pytest

import ftdag

CASES = [
    (ftdag.BuildError("bad graph"), {}),
    (ftdag.DuplicateKeyError(("k", 1)), {"key": ("k", 1)}),
    (ftdag.MissingDependencyError("t", ["x", ("y", 2)]), {"task": "t", "missing": ["x", ("y", 2)]}),
    (ftdag.CycleError(["a", "b", "a"]), {"cycle": ["a", "b", "a"]}),
    (ftdag.EmptyGraphError(), {}),
    (ftdag.UnknownKeyError(["nope", ("a", "b")], "requested output"), {"keys": ["nope", ("a", "b")], "what": "requested output"}),
    (ftdag.UnknownKeyError([3]), {"keys": [3], "what": "key"}),
    (ftdag.TaskError(("stage", 3)), {"key": ("stage", 3)}),
    (ftdag.TaskError("t", "task 't' failed: boom"), {"key": "t"}),
    (ftdag.SerializationError("t", "cannot pickle", "result"), {"key": "t", "what": "result"}),
    (ftdag.WorkerCrashedError("t", -9), {"key": "t", "exitcode": -9}),
    (ftdag.WorkerCrashedError("t", 1), {"key": "t", "exitcode": 1, "during_startup": False}),
    (ftdag.WorkerCrashedError("t", 1, during_startup=True), {"key": "t", "exitcode": 1, "during_startup": True}),
    (ftdag.TaskTimeoutError(("k", 2), 1.5), {"key": ("k", 2), "timeout": 1.5}),
    (ftdag.RunCancelledError("cancelled", {"partial": 1}), {"result": {"partial": 1}}),
    (ftdag.RunTimeoutError("too late"), {"result": None}),
    (ftdag.ResourceError("t", "db", 3, 2), {"task": "t", "resource": "db", "requested": 3, "capacity": 2}),
    (ftdag.ResourceError("t", "gpu", 1, None), {"task": "t", "resource": "gpu", "capacity": None}),
    (ftdag.CorruptRecordWarning("record of task 't' is corrupt"), {}),
    (ftdag.CallbackWarning("callback raised"), {}),
]


def _with_attempts(err, attempts):
    err.attempts = attempts
    return err


CASES += [
    (_with_attempts(ftdag.TaskError("t", "task 't' failed after 3 attempts"), 3), {"key": "t", "attempts": 3}),
    (_with_attempts(ftdag.WorkerCrashedError("t", -9), 2), {"exitcode": -9, "attempts": 2}),
]

CASES += [
    (ftdag.AccessError("a", ["x", ("y", 2)], "create"), {"name": "a", "tasks": ("x", ("y", 2)), "kind": "create"}),
    (ftdag.AccessError("a", ["r", "c"], "read"), {"name": "a", "tasks": ("r", "c"), "kind": "read"}),
    (ftdag.OrderError("t", "src", "after"), {"task": "t", "source": "src", "argument": "after"}),
]


@pytest.mark.parametrize("exc, attrs", CASES, ids=lambda c: type(c).__name__ if isinstance(c, BaseException) else "")
def test_exceptions_survive_pickling(exc, attrs):
    copy = pickle.loads(pickle.dumps(exc, pickle.HIGHEST_PROTOCOL))
    assert type(copy) is type(exc)
    assert str(copy) == str(exc)
    assert copy.args == exc.args
    for name, value in attrs.items():
        assert getattr(copy, name) == value


def test_run_failed_error_survives_pickling_with_its_exceptions_and_result():
    errors = [ftdag.TaskError("a", "task 'a' failed"), _with_attempts(ftdag.TaskError("b"), 2)]
    group = ftdag.RunFailedError("2 task(s) failed", errors, {"result": 1})
    copy = pickle.loads(pickle.dumps(group, pickle.HIGHEST_PROTOCOL))
    assert type(copy) is ftdag.RunFailedError and isinstance(copy, ExceptionGroup)
    assert copy.message == group.message and copy.result == {"result": 1}
    assert [(e.key, e.attempts, str(e)) for e in copy.exceptions] == [(e.key, e.attempts, str(e)) for e in errors]
    # except* splits keep the subclass and its result
    match, rest = group.split(lambda e: isinstance(e, ftdag.TaskError) and e.key == "a")
    assert type(match) is ftdag.RunFailedError and match.result == {"result": 1}
    assert [e.key for e in rest.exceptions] == ["b"]


def test_every_public_exception_is_covered():
    public = {obj for name in ftdag.__all__ if isinstance(obj := getattr(ftdag, name), type) and issubclass(obj, BaseException)}
    assert public <= {type(exc) for exc, _ in CASES} | {ftdag.RunFailedError}


def test_class_hierarchy():
    assert issubclass(ftdag.SerializationError, ftdag.TaskError)
    assert issubclass(ftdag.WorkerCrashedError, ftdag.TaskError)
    assert issubclass(ftdag.UnknownKeyError, KeyError)
    assert issubclass(ftdag.TaskTimeoutError, TimeoutError)
    assert issubclass(ftdag.RunTimeoutError, ftdag.RunCancelledError) and issubclass(ftdag.RunTimeoutError, TimeoutError)
    assert issubclass(ftdag.RunFailedError, ExceptionGroup)
    assert ftdag.UnknownOutputError is ftdag.UnknownKeyError
    for cls in (ftdag.DuplicateKeyError, ftdag.MissingDependencyError, ftdag.CycleError, ftdag.EmptyGraphError):
        assert issubclass(cls, ftdag.BuildError) and issubclass(cls, ValueError)
