"""How process-backend runs fail: ``ftdag._failures.run_error`` directly, every serialisation
path for real (with and without cloudpickle).  Task functions live at module level: the workers import this module
by name (pytest puts ``tests/`` on ``sys.path``, which the workers inherit)."""

from __future__ import annotations

import re
import sys
import threading

import pytest

import ftdag
from ftdag import _failures, _functions
from ftdag._failures import RemoteError, RemoteTraceback, run_error
from ftdag._process_worker import _error_payload
from ftdag._wire import BAD_ARGS, BAD_FUNCTION, BAD_RESULT, RAISED, UNLOADABLE, UNSENDABLE

KEYS = ["src", "t", ("stage", 2)]


def assert_plain_sentences(message: str) -> None:
    """One lower-case clause, then sentences that each start with a capital or a quoted name."""
    assert message.endswith("."), message
    assert ".." not in message and "To fix it" not in message, message
    for sentence in message.split(". ")[1:]:
        assert re.match(r"[A-Z'\"`]", sentence), f"{sentence!r} does not start a sentence in: {message}"


def error_payload(exc: BaseException) -> tuple:
    """What a worker sends back for ``exc`` (raised, so that it has a traceback)."""
    try:
        raise exc
    except BaseException as raised:
        return _error_payload(raised)


# -- run_error, directly ------------------------------------------------------------------------


LOCK_ERROR = TypeError("cannot pickle '_thread.lock' object")


@pytest.mark.parametrize("cloudpickle", [True, False], ids=["cloudpickle", "pickle"])
@pytest.mark.parametrize(
    "status, payload, what, start",
    [
        (UNSENDABLE, (0, LOCK_ERROR), "inputs",
         "the inputs of task 't' cannot be sent to a worker process: the value of 'src' cannot be pickled "
         "(TypeError: cannot pickle '_thread.lock' object). Make it picklable, or use backend='threads'."),
        (UNSENDABLE, (None, LOCK_ERROR), "inputs",
         "the inputs of task 't' cannot be sent to a worker process: they cannot be pickled"),
        (UNLOADABLE, TypeError("__init__() missing 1 required positional argument: 'b'"), "result",
         "the result of task 't' cannot be loaded in the parent process: TypeError: __init__() missing"),
        (BAD_FUNCTION, error_payload(ModuleNotFoundError("No module named 'gone'")), "function",
         "the function of task 't' cannot be loaded in a worker process: ModuleNotFoundError: No module named 'gone'. "),
        (BAD_ARGS, error_payload(AttributeError("Can't get attribute 'Gone' on <module 'm'>")), "inputs",
         "the inputs of task 't' cannot be loaded in a worker process: AttributeError: Can't get attribute"),
        (BAD_RESULT, error_payload(LOCK_ERROR), "result",
         "the result of task 't' cannot be sent back from its worker process: TypeError: cannot pickle "
         "'_thread.lock' object. Return a picklable value, or use backend='threads'."),
    ],
    ids=["unsendable-dep", "unsendable-all", "unloadable", "bad-function", "bad-args", "bad-result"],
)
def test_serialisation_records_give_serialization_error(status, payload, what, start, cloudpickle):
    err = run_error((1, status, payload), KEYS, cloudpickle)
    assert type(err) is ftdag.SerializationError
    assert err.key == "t" and err.what == what
    message = str(err)
    assert message.startswith(start), message
    assert message.endswith("or use backend='threads'.")
    assert_plain_sentences(message)
    assert err.__cause__ is not None and err.__suppress_context__
    if status in (BAD_FUNCTION, BAD_ARGS, BAD_RESULT):  # the worker's exception, with its traceback
        assert isinstance(err.__cause__.__cause__, RemoteTraceback)
    if status == BAD_FUNCTION:
        assert ("ftdag[cloudpickle]" in message) is not cloudpickle


def test_message_gets_one_full_stop_after_an_error_that_has_one():
    err = run_error((1, BAD_RESULT, error_payload(ValueError("it ended."))), KEYS, True)
    assert "ValueError: it ended. Return a picklable value" in str(err)
    err = run_error((1, BAD_RESULT, error_payload(ValueError())), KEYS, True)
    assert "worker process: ValueError. Return" in str(err)


def test_task_exception_becomes_task_error_with_its_remote_traceback():
    err = run_error((1, RAISED, error_payload(KeyError("missing"))), KEYS, True)
    assert type(err) is ftdag.TaskError and err.key == "t"
    assert type(err.__cause__) is KeyError and err.__cause__.args == ("missing",)
    assert isinstance(err.__cause__.__cause__, RemoteTraceback)
    assert "KeyError: 'missing'" in str(err.__cause__.__cause__)


def test_base_exception_of_a_task_is_returned_as_it_is():
    err = run_error((1, RAISED, error_payload(SystemExit(3))), KEYS, True)
    assert type(err) is SystemExit and err.code == 3


def test_exception_that_does_not_unpickle_is_stood_in_for():
    blob, summary, text = error_payload(ValueError("odd"))
    err = run_error((1, RAISED, (b"not a pickle", summary, text)), KEYS, True)
    assert type(err.__cause__) is RemoteError and "ValueError: odd" in str(err.__cause__)


def test_unpicklable_function_message():
    def local(x):
        return x

    for cloudpickle, advice in [
        (True, "Even cloudpickle cannot pickle it: it probably refers to an object that cannot be pickled "
               "(a lock, a file, a connection). Pass such objects another way, or use backend='threads'."),
        (False, "Without cloudpickle, functions are pickled by reference, so lambdas, closures and nested "
                "functions cannot be sent. Define it at module level, install the ftdag[cloudpickle] extra, "
                "or use backend='threads'."),
    ]:
        err = _failures.unpicklable_function("t", local, LOCK_ERROR, cloudpickle)
        assert type(err) is ftdag.SerializationError and err.what == "function"
        assert str(err) == (
            "the function of task 't' (test_unpicklable_function_message.<locals>.local) cannot be sent to a "
            f"worker process: TypeError: cannot pickle '_thread.lock' object. {advice}"
        )
        assert_plain_sentences(str(err))


# -- every serialisation path, for real -----------------------------------------------------------


def identity(x, *rest):
    return x


def return_lock(x):
    return threading.Lock()


def make_locked_function():
    lock = threading.Lock()

    def locked(x):
        with lock:
            return x

    return locked


class LoadRefused(Exception):
    pass


def _refuse_to_load(what):
    raise LoadRefused(f"{what} refuses to be unpickled")


class RefusesToLoad:
    """Pickles fine; unpickling it raises (in whichever process does it)."""

    def __init__(self, what="this object"):
        self.what = what

    def __call__(self, x):
        return x

    def __reduce__(self):
        return (_refuse_to_load, (self.what,))


def return_refusing(x):
    return RefusesToLoad("the result")


@pytest.fixture(scope="module")
def ex():
    with ftdag.Executor(backend="processes", max_workers=2) as executor:
        yield executor


@pytest.fixture(params=["cloudpickle", "pickle"])
def pickler(request, monkeypatch):
    """Functions are pickled with cloudpickle, or (its import failing) with pickle."""
    if request.param == "pickle":
        monkeypatch.setitem(sys.modules, "cloudpickle", None)  # makes "import cloudpickle" fail
    monkeypatch.setattr(_functions, "_cloudpickle", None)  # forget an earlier import (or failure)
    assert _functions.cloudpickle_available() is (request.param == "cloudpickle")
    return request.param


def graph(task_fn, source=1, extra_source=None):
    b = ftdag.DagBuilder()
    b.add_source("x", source)
    deps = ["x"]
    if extra_source is not None:
        b.add_source("extra", extra_source)
        deps.append("extra")
    b.add_task("first", ["x"], identity)
    b.add_task("t", ["first", *deps[1:]], task_fn)
    b.add_task("after", ["t"], identity)
    return b.build()


def run_failing(ex, dag) -> ftdag.SerializationError:
    with pytest.raises(ftdag.SerializationError) as info:
        ex.run(dag, ["after", "t"])  # t is requested: its result is sent back, not only passed to "after"
    err = info.value
    assert type(err) is ftdag.SerializationError and err.key == "t"
    assert_plain_sentences(str(err))
    assert err.__cause__ is not None
    assert dict(ex.run(graph(identity), ["after"])) == {"after": 1}  # the pool is still fine
    return err


def test_function_that_does_not_pickle(ex, pickler):
    err = run_failing(ex, graph(make_locked_function()))
    assert err.what == "function"
    message = str(err)
    assert message.startswith(
        "the function of task 't' (make_locked_function.<locals>.locked) cannot be sent to a worker process: "
    )
    if pickler == "cloudpickle":
        assert "cannot pickle '_thread.lock' object. Even cloudpickle cannot pickle it: it probably refers" in message
    else:
        assert "Define it at module level, install the ftdag[cloudpickle] extra, or use backend='threads'." in message


def test_function_that_does_not_unpickle_in_the_worker(ex, pickler):
    err = run_failing(ex, graph(RefusesToLoad("the function")))
    assert err.what == "function"
    assert str(err).startswith(
        "the function of task 't' cannot be loaded in a worker process: LoadRefused: the function refuses to be "
        "unpickled. Define it "
    )
    assert type(err.__cause__) is LoadRefused
    assert ("ftdag[cloudpickle]" in str(err)) is (pickler == "pickle")


def test_input_that_does_not_pickle_names_the_dependency(ex, pickler):
    err = run_failing(ex, graph(identity, extra_source=threading.Lock()))
    assert err.what == "inputs"
    assert str(err) == (
        "the inputs of task 't' cannot be sent to a worker process: the value of 'extra' cannot be pickled "
        "(TypeError: cannot pickle '_thread.lock' object). Make it picklable, or use backend='threads'."
    )
    assert type(err.__cause__) is TypeError


def test_input_that_does_not_unpickle_in_the_worker(ex, pickler):
    err = run_failing(ex, graph(identity, extra_source=RefusesToLoad("the input")))
    assert err.what == "inputs"
    assert str(err).startswith(
        "the inputs of task 't' cannot be loaded in a worker process: LoadRefused: the input refuses to be unpickled. "
    )
    assert type(err.__cause__) is LoadRefused


def test_result_that_does_not_pickle(ex, pickler):
    err = run_failing(ex, graph(return_lock))
    assert err.what == "result"
    assert str(err) == (
        "the result of task 't' cannot be sent back from its worker process: TypeError: cannot pickle "
        "'_thread.lock' object. Return a picklable value, or use backend='threads'."
    )
    assert type(err.__cause__) is TypeError


def test_result_that_does_not_unpickle_in_the_parent(ex, pickler):
    err = run_failing(ex, graph(return_refusing))
    assert err.what == "result"
    assert str(err) == (
        "the result of task 't' cannot be loaded in the parent process: LoadRefused: the result refuses to be "
        "unpickled. Return a value that unpickles in the parent process, or use backend='threads'."
    )
    assert type(err.__cause__) is LoadRefused
