"""The ``ftdag`` command line, run as a user would: ``python -m ftdag`` in a child process,
from a directory holding the modules it is pointed at, with the ftdag under test importable.

The ``--progress`` and ``--trace`` tests need ``ftdag.ProgressBar`` and ``ftdag.Trace``
(written on another branch); they fail until those exist.
"""

from __future__ import annotations

import compileall
import importlib.util
import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from helpers import TIMEOUT

import ftdag

FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
PACKAGE_ROOT = str(Path(ftdag.__file__).resolve().parent.parent)

GRAPHS = '''
import math

import ftdag


def add(x, y):
    return x + y


def times_ten(x):
    return x * 10


def boom(x):
    raise ValueError(f"{x} is out of range")


def make_builder():
    b = ftdag.DagBuilder()
    b.add_source("a", 1)
    b.add_source("b", 2)
    b.add_task("c", ["a", "b"], add)
    b.add_task("d", ["c"], times_ten)            # a sink
    b.add_task(("sum", "eu"), ["a", "c"], add)   # a sink, a tuple key
    b.add_task(3, ["a"], times_ten)              # a sink, an int key
    return b


builder = make_builder()
dag = builder.build()


def make_dag():
    return make_builder().build()


pipe = ftdag.Pipeline()


@pipe.task
def base():
    return 2


@pipe.task
def doubled(base):
    return base * 2


def failing():
    b = ftdag.DagBuilder()
    b.add_source("n", 30)
    b.add_task("bad", ["n"], boom)
    b.add_task("after", ["bad"], times_ten)
    return b.build()


def odd_values():
    b = ftdag.DagBuilder()
    b.add_source("set", {1})
    b.add_source("nan", math.nan)
    b.add_source("tuple_keys", {(1, 2): 3})
    b.add_source("nested", [1, {"x": object}])
    return b.build()


def needs_db():
    b = ftdag.DagBuilder()
    b.add_source("a", 1)
    b.add_task("query", ["a"], times_ten, resources={"db": 1})
    return b.build()


def cyclic():
    b = ftdag.DagBuilder()
    b.add_task("x", ["y"], times_ten)
    b.add_task("y", ["x"], times_ten)
    return b


def raises():
    raise RuntimeError("no graph today")


def returns_int():
    return 42


NUMBER = 7
'''

BROKEN = '''
x = 1
y = x / 0
'''

MISSING_DEPENDENCY = '''
import not_installed_anywhere  # noqa: F401
'''

# Task modules for doctor: the same code twice, one compiled to a .pyc before it is imported.
TASKS = '''
import ftdag


def scale(x):
    return x * 1000003 + 0.5


def dag():
    b = ftdag.DagBuilder()
    b.add_source("x", 2)
    b.add_task("y", ["x"], scale)
    return b
'''

# Loads an extension module that has not declared free-threading support, which turns the GIL
# on in 3.13t: PyInit__testmultiphase_null_slots, in CPython's own test extension, has no
# Py_mod_gil slot.  (No third-party extension without free-threading support is installed
# here, and Python code cannot turn the GIL on by itself.)
GIL_ON = '''
import importlib.machinery
import importlib.util

import _testmultiphase

_name = "_testmultiphase_null_slots"
_loader = importlib.machinery.ExtensionFileLoader(_name, _testmultiphase.__file__)
ext = importlib.util.module_from_spec(importlib.util.spec_from_file_location(_name, _testmultiphase.__file__,
                                                                             loader=_loader))
_loader.exec_module(ext)
'''


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A directory holding the test modules (``graphs``, ``broken``, ``missing_dependency``)."""
    (tmp_path / "graphs.py").write_text(GRAPHS)
    (tmp_path / "broken.py").write_text(BROKEN)
    (tmp_path / "missing_dependency.py").write_text(MISSING_DEPENDENCY)
    return tmp_path


def ftdag_cli(cwd: Path, *args: str, **env: str | None) -> subprocess.CompletedProcess:
    """``python -m ftdag ARGS`` in ``cwd`` with the ftdag under test importable; ``env`` is
    added to the environment (a value of None removes the variable)."""
    full_env = dict(os.environ)
    for name, value in env.items():
        if value is None:
            full_env.pop(name, None)
        else:
            full_env[name] = value
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_ROOT, full_env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "ftdag", *args], cwd=cwd, env=full_env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=3 * TIMEOUT)


def assert_usage_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    """Exit status 2, nothing on stdout, and one line on stderr, ``ftdag: error: ...``,
    holding each fragment."""
    assert proc.returncode == 2, proc
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("ftdag: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr


# -- help and options -----------------------------------------------------------------------------


@pytest.mark.parametrize("command", [[], ["run"], ["graph"], ["doctor"]])
def test_help_of_every_command(tmp_path, command):
    proc = ftdag_cli(tmp_path, *command, "--help")
    assert proc.returncode == 0, proc
    assert proc.stdout.startswith(f"usage: ftdag {' '.join(command)}".rstrip())
    assert proc.stderr == ""


def test_no_command_is_a_usage_error(tmp_path):
    proc = ftdag_cli(tmp_path)
    assert proc.returncode == 2
    assert "usage: ftdag" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("option", [["--workers", "0"], ["--backend", "gpu"], ["--resource", "db"]])
def test_bad_option(workdir, option):
    proc = ftdag_cli(workdir, "run", "graphs:dag", *option)
    assert proc.returncode == 2
    assert proc.stderr.startswith("usage: ftdag run") and "ftdag run: error: argument " in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


# -- run ------------------------------------------------------------------------------------------


def test_run_prints_every_sink_without_outputs(workdir):
    proc = ftdag_cli(workdir, "run", "graphs:dag")
    assert proc.returncode == 0, proc
    # the sinks, in topological order (here the order they were added); a str key as it is,
    # any other as its repr
    assert proc.stdout.splitlines() == ["d = 30", "('sum', 'eu') = 4", "3 = 10"]


def test_run_requested_outputs_parsed_as_keys_or_literals(workdir):
    proc = ftdag_cli(workdir, "run", "graphs:dag", "-o", "c", "-o", "('sum', 'eu')", "-o", "3", "-o", "c")
    assert proc.returncode == 0, proc
    assert proc.stdout.splitlines() == ["c = 3", "('sum', 'eu') = 4", "3 = 10"]


@pytest.mark.parametrize("name", ["builder", "make_builder", "make_dag"])
def test_run_takes_a_builder_or_a_function(workdir, name):
    proc = ftdag_cli(workdir, "run", f"graphs:{name}", "-o", "c")
    assert (proc.returncode, proc.stdout) == (0, "c = 3\n"), proc


def test_run_takes_a_pipeline(workdir):
    proc = ftdag_cli(workdir, "run", "graphs:pipe")
    assert (proc.returncode, proc.stdout) == (0, "doubled = 4\n"), proc


@pytest.mark.parametrize("backend", ["sequential", "threads", "processes"])
def test_run_on_each_backend(workdir, backend):
    proc = ftdag_cli(workdir, "run", "graphs:dag", "-o", "d", "--backend", backend, "--workers", "2")
    assert (proc.returncode, proc.stdout) == (0, "d = 30\n"), proc


def test_run_json(workdir):
    proc = ftdag_cli(workdir, "run", "graphs:dag", "-o", "c", "-o", "('sum', 'eu')", "-o", "3", "--json")
    assert proc.returncode == 0, proc
    assert proc.stdout.count("\n") == 1
    assert json.loads(proc.stdout) == {"c": 3, "('sum', 'eu')": 4, "3": 10}
    assert list(json.loads(proc.stdout)) == ["c", "('sum', 'eu')", "3"]  # in request order


def test_run_json_writes_what_json_cannot_encode_as_repr(workdir):
    proc = ftdag_cli(workdir, "run", "graphs:odd_values", "--json")
    assert proc.returncode == 0, proc
    assert json.loads(proc.stdout) == {
        "set": "{1}",                             # not a JSON type: its repr, in place
        "nested": [1, {"x": "<class 'object'>"}],
        "nan": "nan",                             # JSON has no NaN: the whole value's repr
        "tuple_keys": "{(1, 2): 3}",              # JSON has no tuple keys: the whole value's repr
    }


@pytest.mark.parametrize("backend", ["sequential", "threads", "processes"])
def test_failing_task_exits_1_with_its_key_and_traceback(workdir, backend):
    proc = ftdag_cli(workdir, "run", "graphs:failing", "--backend", backend)
    assert proc.returncode == 1, proc
    assert proc.stdout == ""
    first, *rest = proc.stderr.splitlines()
    assert first == "ftdag: task 'bad' failed: ValueError: 30 is out of range"
    assert any(line.startswith("Traceback") for line in rest)
    assert f'File "{workdir / "graphs.py"}"' in proc.stderr and "in boom" in proc.stderr
    assert rest[-1] == "ValueError: 30 is out of range"


@pytest.mark.parametrize(
    ("target", "fragments"),
    [
        ("no_such_module:dag", ["no module named 'no_such_module'"]),
        ("graphs", ["expected MODULE:NAME", "'graphs'"]),
        ("graphs:nope", ["'graphs' has no attribute 'nope'"]),
        ("graphs:dag.nope", ["'graphs:dag' has no attribute 'nope'"]),
        ("graphs:NUMBER", ["graphs:NUMBER is an int, not a Dag"]),
        ("graphs:add", ["graphs:add is a function that takes arguments"]),
        ("graphs:returns_int", ["graphs:returns_int() returned an int, not a Dag"]),
        ("graphs:raises", ["calling graphs:raises() raised RuntimeError: no graph today", "graphs.py, line"]),
        ("graphs:cyclic", ["graphs:cyclic().build() failed: CycleError"]),
        ("broken:dag", ["importing module 'broken' raised ZeroDivisionError: division by zero", "broken.py, line 3"]),
        ("missing_dependency:dag", ["importing module 'missing_dependency' failed: ModuleNotFoundError",
                                    "not_installed_anywhere"]),
    ],
)
def test_bad_target_exits_2_with_one_line(workdir, target, fragments):
    assert_usage_error(ftdag_cli(workdir, "run", target), *fragments)


def test_bad_target_of_graph(workdir):
    assert_usage_error(ftdag_cli(workdir, "graph", "graphs:nope"), "'graphs' has no attribute 'nope'")


def test_unknown_output_exits_2_with_the_unknown_key_message(workdir):
    proc = ftdag_cli(workdir, "run", "graphs:dag", "-o", "c", "-o", "zz", "-o", "('sum', 'us')")
    message = str(ftdag.UnknownKeyError(["zz", "('sum', 'us')"], "requested output"))
    assert_usage_error(proc, message)


def test_resources(workdir):
    assert_usage_error(ftdag_cli(workdir, "run", "graphs:needs_db"), "resource 'db'", "--resource db=UNITS")
    proc = ftdag_cli(workdir, "run", "graphs:needs_db", "--resource", "db=1")
    assert (proc.returncode, proc.stdout) == (0, "query = 10\n"), proc


def test_trace_into_a_missing_directory(workdir):
    assert_usage_error(ftdag_cli(workdir, "run", "graphs:dag", "--trace", "no/such/dir/t.json"),
                       "--trace no/such/dir/t.json", "does not exist")


# -- run: progress and trace (ftdag.ProgressBar and ftdag.Trace) ----------------------------------


def test_run_with_progress(workdir):
    proc = ftdag_cli(workdir, "run", "graphs:dag", "-o", "d", "--progress")
    assert proc.returncode == 0, proc
    assert proc.stdout == "d = 30\n"  # the bar does not mix with the outputs


def test_run_with_trace(workdir):
    proc = ftdag_cli(workdir, "run", "graphs:dag", "--trace", "trace.json")
    assert proc.returncode == 0, proc
    json.loads((workdir / "trace.json").read_text())


def test_trace_of_a_failed_run_is_saved(workdir):
    proc = ftdag_cli(workdir, "run", "graphs:failing", "--trace", "trace.json")
    assert proc.returncode == 1, proc
    json.loads((workdir / "trace.json").read_text())


# -- graph ----------------------------------------------------------------------------------------


def test_graph_text(workdir):
    proc = ftdag_cli(workdir, "graph", "graphs:dag")
    assert proc.returncode == 0, proc
    assert proc.stdout.splitlines() == [
        "a (source)",
        "b (source)",
        "c <- a, b",
        "d <- c",
        "('sum', 'eu') <- a, c",
        "3 <- a",
        "# 6 nodes: 2 sources, 4 tasks; sinks: d, ('sum', 'eu'), 3",
    ]


def test_graph_text_marks_outputs_and_pruned(workdir):
    proc = ftdag_cli(workdir, "graph", "graphs:dag", "-o", "c", "-o", "3")
    assert proc.returncode == 0, proc
    assert proc.stdout.splitlines() == [
        "a (source)",
        "b (source)",
        "c <- a, b [output]",
        "d <- c [pruned]",
        "('sum', 'eu') <- a, c [pruned]",
        "3 <- a [output]",
        "# 6 nodes: 2 sources, 4 tasks; -o c 3 runs 4, prunes 2: d, ('sum', 'eu')",
    ]


@pytest.fixture
def graphs_module(workdir):
    """The test graphs imported in this process, to compare with what the command prints."""
    spec = importlib.util.spec_from_file_location("graphs", workdir / "graphs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("fmt", "start"), [("dot", "digraph"), ("mermaid", "flowchart")])
@pytest.mark.parametrize("outputs", [[], ["c", "3"]])
def test_graph_dot_and_mermaid(workdir, graphs_module, fmt, start, outputs):
    proc = ftdag_cli(workdir, "graph", "graphs:dag", "--format", fmt, *(a for o in outputs for a in ("-o", o)))
    assert proc.returncode == 0, proc
    assert proc.stdout.startswith(start)
    draw = graphs_module.dag.to_dot if fmt == "dot" else graphs_module.dag.to_mermaid
    expected = draw(["c", 3] if outputs else None)
    assert proc.stdout == expected.rstrip("\n") + "\n"


# -- doctor ---------------------------------------------------------------------------------------


def problems(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("PROBLEM")]


def test_doctor_alone(tmp_path):
    proc = ftdag_cli(tmp_path, "doctor", PYTHON_GIL=None)
    assert proc.returncode == 0, proc
    assert proc.stdout.startswith(f"info    interpreter {sys.executable}: ")
    if FREE_THREADED:
        assert "ok      free-threaded build (Py_GIL_DISABLED = 1)" in proc.stdout
        assert "ok      the GIL is off" in proc.stdout
    else:
        assert "not a free-threaded build" in proc.stdout
    assert proc.stdout.endswith("ok      no problems found\n")


@pytest.fixture
def task_modules(tmp_path):
    """``clean_tasks`` compiled to a .pyc, ``mortal_tasks`` not: the same code."""
    (tmp_path / "clean_tasks.py").write_text(TASKS)
    (tmp_path / "mortal_tasks.py").write_text(TASKS)
    assert compileall.compile_file(str(tmp_path / "clean_tasks.py"), quiet=2)
    return tmp_path


def test_doctor_constants_of_a_module_loaded_from_a_pyc(task_modules):
    proc = ftdag_cli(task_modules, "doctor", "clean_tasks", "clean_tasks:dag", PYTHONDONTWRITEBYTECODE="1")
    assert proc.returncode == 0, proc
    if FREE_THREADED:
        assert "ok      module clean_tasks: code constants immortal (2 functions; loaded from a .pyc)" in proc.stdout
        assert "ok      module clean_tasks: importing it left the GIL off" in proc.stdout
    else:
        assert "n/a     module clean_tasks: the code-constants check (not a free-threaded build)" in proc.stdout
    assert problems(proc.stdout) == []


@pytest.mark.parametrize("target", ["mortal_tasks", "mortal_tasks:dag"])
def test_doctor_mortal_constants(task_modules, target):
    proc = ftdag_cli(task_modules, "doctor", target, PYTHONDONTWRITEBYTECODE="1")
    if not FREE_THREADED:
        assert proc.returncode == 0, proc
        assert "n/a     module mortal_tasks: the code-constants check (not a free-threaded build)" in proc.stdout
        return
    assert proc.returncode == 1, proc
    found = problems(proc.stdout)
    assert found[0].startswith("PROBLEM module mortal_tasks: 2 code constants not immortal, in scale "
                               "(1000003, 0.5); compiled from source at import (no up-to-date .pyc: "
                               "PYTHONDONTWRITEBYTECODE is set)")
    assert found[1:] == ["PROBLEM 1 problem found"]
    fix = f"fix: compile it to a .pyc: {sys.executable} -m compileall -q {task_modules / 'mortal_tasks.py'}"
    assert fix in proc.stdout
    # the fix works
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(task_modules / "mortal_tasks.py")], check=True)
    assert ftdag_cli(task_modules, "doctor", target, PYTHONDONTWRITEBYTECODE="1").returncode == 0


def test_doctor_module_that_wrote_its_pyc_is_fine(task_modules):
    proc = ftdag_cli(task_modules, "doctor", "mortal_tasks", PYTHONDONTWRITEBYTECODE=None)
    assert proc.returncode == 0, proc
    if FREE_THREADED:
        assert "ok      module mortal_tasks: compiled from source by this import, which wrote its .pyc" in proc.stdout


needs_test_extension = pytest.mark.skipif(
    importlib.util.find_spec("_testmultiphase") is None,
    reason="CPython's test extension _testmultiphase is not installed (built with --disable-test-modules)",
)


@needs_test_extension
def test_doctor_module_that_turns_the_gil_on(task_modules):
    (task_modules / "gil_on.py").write_text(GIL_ON)
    proc = ftdag_cli(task_modules, "doctor", "clean_tasks", "gil_on", "mortal_tasks", PYTHONDONTWRITEBYTECODE="1",
                     PYTHON_GIL=None)
    if not FREE_THREADED:
        assert proc.returncode == 0, proc
        assert "n/a     module gil_on: the GIL check (not a free-threaded build)" in proc.stdout
        return
    assert proc.returncode == 1, proc
    assert "ok      module clean_tasks: importing it left the GIL off" in proc.stdout
    found = problems(proc.stdout)
    assert found[0].startswith("PROBLEM module gil_on: importing it turned the GIL on: extension "
                               "'_testmultiphase_null_slots' has not declared that it can run without the GIL")
    assert "fix: use a build of that extension that supports free-threading" in proc.stdout
    # once the GIL is on, later imports cannot be judged
    assert "n/a     module mortal_tasks: the GIL check (an earlier module turned the GIL on; check this one " \
           "alone: ftdag doctor mortal_tasks)" in proc.stdout
    assert found[1].startswith("PROBLEM module mortal_tasks: 2 code constants not immortal")
    assert found[2:] == ["PROBLEM 2 problems found"]
    assert "RuntimeWarning" not in proc.stderr  # recorded, and named in the report instead


def test_doctor_bad_module_exits_2(tmp_path):
    (tmp_path / "broken.py").write_text(BROKEN)
    (tmp_path / "clean.py").write_text("")
    assert_usage_error(ftdag_cli(tmp_path, "doctor", "clean", "no_such_module"), "no module named 'no_such_module'")
    assert_usage_error(ftdag_cli(tmp_path, "doctor", "clean:"), "expected MODULE or MODULE:NAME")
    # a module that raises is only found out by importing it: the report so far is on stdout
    proc = ftdag_cli(tmp_path, "doctor", "broken")
    assert proc.returncode == 2 and proc.stdout.startswith("info    interpreter ")
    assert proc.stderr.startswith("ftdag: error: importing module 'broken' raised ZeroDivisionError")
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_doctor_gil_on_from_the_start(task_modules):
    proc = ftdag_cli(task_modules, "doctor", "clean_tasks", PYTHON_GIL="1", PYTHONDONTWRITEBYTECODE="1")
    if not FREE_THREADED:  # PYTHON_GIL means nothing on a GIL build: the GIL is on, as it should be
        assert proc.returncode == 0, proc
        assert "PROBLEM" not in proc.stdout
        return
    assert proc.returncode == 1, proc
    assert problems(proc.stdout)[0].startswith("PROBLEM the GIL is on (PYTHON_GIL=1): ")
    assert "fix: unset PYTHON_GIL and -X gil" in proc.stdout
    assert "n/a     module clean_tasks: the GIL check (the GIL was on from the start)" in proc.stdout
