"""How process-backend runs fail: ``ftdag._failures.run_error`` directly, every serialisation
path for real (with and without cloudpickle), and worker processes that die while starting
or in their first task.  Task functions live at module level: the workers import this module
by name (pytest puts ``tests/`` on ``sys.path``, which the workers inherit)."""

from __future__ import annotations

import array
import fcntl
import functools
import os
import pickle
import re
import subprocess
import sys
import termios
import threading
import time

import pytest
from helpers import kept_by_fixture
from test_processes import make_locked_function  # a closure over a lock: nothing can pickle it

import ftdag
from ftdag import _failures, _functions, _processes
from ftdag._failures import RemoteError, RemoteTraceback, run_error
from ftdag._process_worker import _error_payload
from ftdag._wire import BAD_ARGS, BAD_FUNCTION, BAD_RESULT, CRASHED, RAISED, UNLOADABLE, UNSENDABLE
from ftdag.testing import DEFAULT_TIMEOUT, shared_manager

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


def test_crash_names_the_task_and_how():
    err = run_error((1, CRASHED, (-9, False)), KEYS, True)
    assert type(err) is ftdag.WorkerCrashedError
    assert (err.key, err.exitcode, err.during_startup) == ("t", -9, False)
    assert str(err) == "worker process died (signal 9) while running task 't'"


def test_crash_while_starting_names_the_missing_main_guard():
    err = run_error((2, CRASHED, (1, True)), KEYS, False)
    assert type(err) is ftdag.WorkerCrashedError
    assert (err.key, err.exitcode, err.during_startup) == (("stage", 2), 1, True)
    message = str(err)
    assert message.startswith("worker process for task ('stage', 2) died while starting (exit code 1). ")
    assert 'without an `if __name__ == "__main__":` guard' in message and "re-import the main module" in message
    assert_plain_sentences(message)
    copy = pickle.loads(pickle.dumps(err))
    assert copy.during_startup is True and str(copy) == message


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
    # (args, not .code: once distributed is imported, tblib's reducer for exceptions, which it
    # registers for every process, rebuilds a SystemExit without running __init__, so .code is None)
    assert type(err) is SystemExit and err.args == (3,)


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
    with ftdag.Executor(backend="processes", max_workers=2) as executor, kept_by_fixture(executor):
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
    assert str(err).endswith("or use backend='threads'.")
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


@pytest.mark.parametrize(
    "make_dag, what, cause, start",
    [
        pytest.param(
            lambda: graph(RefusesToLoad("the function")), "function", LoadRefused,
            "the function of task 't' cannot be loaded in a worker process: LoadRefused: the function refuses to "
            "be unpickled. Define it ",
            id="function-in-worker",
        ),
        pytest.param(
            lambda: graph(identity, extra_source=threading.Lock()), "inputs", TypeError,
            "the inputs of task 't' cannot be sent to a worker process: the value of 'extra' cannot be pickled "
            "(TypeError: cannot pickle '_thread.lock' object). Make it picklable, or use backend='threads'.",
            id="inputs-in-parent",
        ),
        pytest.param(
            lambda: graph(identity, extra_source=RefusesToLoad("the input")), "inputs", LoadRefused,
            "the inputs of task 't' cannot be loaded in a worker process: LoadRefused: the input refuses to be "
            "unpickled. Define their classes ",
            id="inputs-in-worker",
        ),
        pytest.param(
            lambda: graph(return_lock), "result", TypeError,
            "the result of task 't' cannot be sent back from its worker process: TypeError: cannot pickle "
            "'_thread.lock' object. Return a picklable value, or use backend='threads'.",
            id="result-in-worker",
        ),
        pytest.param(
            lambda: graph(return_refusing), "result", LoadRefused,
            "the result of task 't' cannot be loaded in the parent process: LoadRefused: the result refuses to be "
            "unpickled. Return a value that unpickles in the parent process, or use backend='threads'.",
            id="result-in-parent",
        ),
    ],
)
def test_every_other_serialisation_path(ex, pickler, make_dag, what, cause, start):
    # "in-worker": pickled fine, but cannot be unpickled (or pickled back) in the worker.
    err = run_failing(ex, make_dag())
    assert err.what == what
    assert str(err).startswith(start), str(err)
    assert type(err.__cause__) is cause
    if what == "function":  # the advice depends on whether functions are sent with cloudpickle
        assert ("ftdag[cloudpickle]" in str(err)) is (pickler == "pickle")


# -- workers that die -----------------------------------------------------------------------------


def exit_at_once(x):
    os._exit(3)


def test_crash_in_the_first_task_of_a_new_worker_is_not_a_startup_death():
    # The worker's HELLO and its death reach the parent together: HELLO must still count.
    b = ftdag.DagBuilder()
    b.add_source("x", 1)
    b.add_task("victim", ["x"], exit_at_once)
    with ftdag.Executor(backend="processes", max_workers=1) as e, pytest.raises(ftdag.WorkerCrashedError) as info:
        e.run(b.build(), ["victim"])
    err = info.value
    assert (err.key, err.exitcode, err.during_startup) == ("victim", 3, False)
    assert str(err) == "worker process died (exit code 3) while running task 'victim'"


NO_GUARD_SCRIPT = """\
import ftdag


def inc(x):
    return x + 1


b = ftdag.DagBuilder()
b.add_source("a", 1)
b.add_task("b", ["a"], inc)
b.add_task("c", ["b"], inc)
with ftdag.Executor(backend="processes", max_workers=2) as ex:
    print("result:", dict(ex.run(b.build(), ["c"])))
"""


def run_script(tmp_path, text: str, *args: str) -> subprocess.CompletedProcess:
    script = tmp_path / "script.py"
    script.write_text(text)
    src = os.path.dirname(os.path.dirname(ftdag.__file__))  # this ftdag, installed or not
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])))
    return subprocess.run(
        [sys.executable, str(script), *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=DEFAULT_TIMEOUT,
    )


def test_script_without_main_guard_fails_with_a_message_that_says_so(tmp_path):
    # The workers re-import the script as their main module, and it starts a run there:
    # multiprocessing refuses to start processes from it, so each worker dies while starting.
    proc = run_script(tmp_path, NO_GUARD_SCRIPT)
    assert proc.returncode == 1 and "result:" not in proc.stdout, (proc.stdout, proc.stderr)
    last = proc.stderr.rstrip().splitlines()[-1]
    assert last == (
        "ftdag.errors.WorkerCrashedError: worker process for task 'b' died while starting (exit code 1). The usual "
        'cause: the script runs ftdag at import time without an `if __name__ == "__main__":` guard; worker '
        "processes re-import the main module. Put the code that builds and runs the graph under that guard."
    ), proc.stderr
    # Each of the two workers died once (the idle one too), and none was started again in its
    # place: a worker that dies while starting is not replaced during the run.
    assert proc.stderr.count("bootstrapping phase") == 2, proc.stderr


IDLE_DIES_FIRST_SCRIPT = """\
import multiprocessing
import os
import sys

import ftdag

RECORD, FIFO = sys.argv[1], sys.argv[2]
me = multiprocessing.current_process().name  # set before a worker re-imports this module
if me == "ftdag-worker-1":  # idle (the one task goes to worker 0); dies while starting
    with open(RECORD, "a") as f:
        f.write("worker 1 started\\n")
    with open(FIFO, "w") as f:  # (opening a FIFO waits for its other end: worker 0)
        f.write("dying")
    os._exit(1)
if me == "ftdag-worker-0":  # has the task; dies while starting, but only after worker 1
    with open(FIFO) as f:
        f.read()
    os._exit(1)


def inc(x):
    return x + 1


if __name__ == "__main__":
    b = ftdag.DagBuilder()
    b.add_source("a", 1)
    b.add_task("b", ["a"], inc)
    with ftdag.Executor(backend="processes", max_workers=2) as ex:
        ex.run(b.build(), ["b"])
"""


def test_worker_that_dies_idle_while_starting_is_not_replaced_during_the_run(tmp_path):
    # Its replacement would die the same way, again and again while the run lasts.
    record, fifo = tmp_path / "record", tmp_path / "fifo"
    os.mkfifo(fifo)
    proc = run_script(tmp_path, IDLE_DIES_FIRST_SCRIPT, str(record), str(fifo))
    assert proc.returncode == 1
    assert proc.stderr.rstrip().splitlines()[-1].startswith(
        "ftdag.errors.WorkerCrashedError: worker process for task 'b' died while starting (exit code 1). "
    ), proc.stderr
    assert record.read_text().splitlines() == ["worker 1 started"]  # once: no replacement was started


def gated_inc(gate, x):
    gate.wait("t")
    return x + 1


def fail_now(x):
    raise ValueError("failed on purpose")


def pid_once_both_run(key, gate):
    """This worker's pid, once two of these run at once (so on two workers)."""
    gate.wait(key)
    gate.wait_for_arrivals(2)
    return os.getpid()


def unread_bytes(sock) -> int:
    """Bytes sent on ``sock`` that its peer has not read yet (Linux's SIOCOUTQ)."""
    buf = array.array("i", [0])
    fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, buf)
    return buf[0]


def test_idle_worker_survives_the_message_that_ends_a_run(monkeypatch):
    # A run that fails while t runs ends with t's result kept in its worker for u, which is
    # never sent (no room behind t: max_in_flight=2).  The parent then tells that worker, idle
    # by now, to drop the result.  That message, read alone, has no task in it: the worker
    # must go back to waiting, not fail on an empty queue.
    original_stop = _processes.ProcessPool._stop

    def stop_then_open(self, run):  # t finishes only after the failure stopped the run
        original_stop(self, run)
        gate.open()

    with shared_manager() as manager, ftdag.Executor(backend="processes", max_workers=2, max_in_flight=2) as e:
        gate, both = manager.Gate(), manager.Gate()
        both.open()
        b = ftdag.DagBuilder()
        b.add_source("x", 1)
        b.add_source("gate", gate)
        b.add_task("t", ["gate", "x"], gated_inc)
        b.add_task("bad", ["x"], fail_now)
        b.add_task("u", ["t"], identity)
        b.add_source("both", both)
        b.add_task("p0", ["both"], functools.partial(pid_once_both_run, "p0"))
        b.add_task("p1", ["both"], functools.partial(pid_once_both_run, "p1"))
        dag = b.build()
        pids = set(e.run(dag, ["p0", "p1"]).values())  # both workers run
        monkeypatch.setattr(_processes.ProcessPool, "_stop", stop_then_open)
        with pytest.raises(ftdag.TaskError) as info:
            e.run(dag, ["u", "bad"])
        assert info.value.key == "bad"
        monkeypatch.undo()
        # Wait until each worker has read everything sent to it, the run's last message
        # included, so that the next run's message cannot arrive together with it.
        deadline = time.monotonic() + DEFAULT_TIMEOUT
        for w in e._processes._workers.all:
            while unread_bytes(w.pipe.sock) and time.monotonic() < deadline:
                os.sched_yield()
            assert unread_bytes(w.pipe.sock) == 0
        # Both workers still take tasks: p0 and p1 finish only while running at the same time.
        assert set(e.run(dag, ["p0", "p1"]).values()) == pids
