"""The ``ftdag`` command (also ``python -m ftdag``): run a graph, draw it, check the interpreter.

::

    ftdag run MODULE:NAME [-o KEY ...] [--workers N] [--backend B] [--resource NAME=N ...]
                          [--progress] [--trace FILE.json] [--json]
    ftdag graph MODULE:NAME [-o KEY ...] [--format text|dot|mermaid]
    ftdag doctor [MODULE | MODULE:NAME ...]

``MODULE:NAME`` names a :class:`~ftdag.Dag`, a :class:`~ftdag.DagBuilder`, a
:class:`~ftdag.Pipeline`, or a function of no arguments returning one; ``-o KEY`` requests
an output (a string, else a Python literal such as ``3`` or ``"('sum', 'eu')"``): see
:mod:`ftdag._target` for both rules.  Without ``-o``, ``run`` requests every sink (every node
no other node depends on).

``run`` prints one line per requested output, ``KEY = repr(value)`` (keys written as ``-o``
reads them: a ``str`` as it is, anything else as its ``repr``), or with ``--json`` one JSON
object mapping each key, so written, to its value.  A value JSON cannot encode is written in
place as its ``repr`` (a string): objects of other types than JSON's wherever they occur
(``default=repr``), and the whole value when it still cannot be encoded (a dict with keys
JSON cannot have, NaN or infinity, a reference cycle).

Exit status: 0 success; 1 a task failed (``run``: ``ftdag: task KEY failed`` and the task's
traceback on stderr) or problems were found (``doctor``); 2 bad input (a bad option, with
argparse's usage; anything else with one line, ``ftdag: error: ...``, and no traceback);
130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import traceback
import types
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

from ._target import UsageError, load_dag, parse_outputs, show_key, sinks
from .config import BACKENDS
from .graph import Dag

__all__ = ["main"]

PROG = "ftdag"

_KEY_HELP = (
    "an output to request (repeatable); a string, or if the graph has no such key, a Python "
    "literal: -o 3, -o \"('sum', 'eu')\""
)


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {n}")
    return n


def _resource(text: str) -> tuple[str, int]:
    name, sep, units = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=UNITS, such as db=2, got {text!r}")
    return name, _positive_int(units)


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Run, draw and check ftdag graphs.",
        epilog="Exit status: 0 ok, 1 a task failed or doctor found problems, 2 bad input, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser(
        "run",
        help="run a graph and print its outputs",
        description=(
            "Run the graph MODULE:NAME (a Dag, a DagBuilder, a Pipeline, or a function of no arguments "
            "returning one) for the requested outputs, or every sink when none is requested, and print "
            "each output as KEY = repr(value)."
        ),
        epilog="Exit status: 0 ok, 1 a task failed (its key and traceback on stderr), 2 bad input.",
    )
    run.add_argument("target", metavar="MODULE:NAME", help="the graph, e.g. mypkg.pipeline:dag")
    run.add_argument("-o", "--output", dest="outputs", metavar="KEY", action="append", default=[], help=_KEY_HELP)
    run.add_argument("--workers", type=_positive_int, metavar="N", help="tasks that may run at once (default: CPUs)")
    run.add_argument("--backend", choices=BACKENDS, default="auto",
                     help="where tasks run (default: auto, threads when the GIL is off, else processes)")
    run.add_argument("--resource", dest="resources", metavar="NAME=UNITS", type=_resource, action="append",
                     default=[], help="a resource's capacity, for tasks added with resources= (repeatable)")
    run.add_argument("--progress", action="store_true", help="show a progress bar on stderr (ftdag.ProgressBar)")
    run.add_argument("--trace", metavar="FILE.json", help="save a trace of the run to FILE.json (ftdag.Trace)")
    run.add_argument("--json", action="store_true",
                     help="print one JSON object mapping each output's key to its value (repr for what "
                          "JSON cannot encode)")
    run.set_defaults(handler=_run)

    graph = commands.add_parser(
        "graph",
        help="print a graph as text, DOT or Mermaid",
        description=(
            "Print the graph MODULE:NAME. text: one node per line in topological order with its "
            "dependencies; dot: Graphviz (dot -Tsvg); mermaid: a Mermaid flowchart. With -o, mark the "
            "outputs and the nodes a run for them would prune."
        ),
    )
    graph.add_argument("target", metavar="MODULE:NAME", help="the graph, e.g. mypkg.pipeline:dag")
    graph.add_argument("-o", "--output", dest="outputs", metavar="KEY", action="append", default=[], help=_KEY_HELP)
    graph.add_argument("--format", choices=("text", "dot", "mermaid"), default="text", help="default: text")
    graph.set_defaults(handler=_graph)

    doctor = commands.add_parser(
        "doctor",
        help="check that this interpreter runs ftdag graphs free-threaded",
        description=(
            "Report the interpreter, whether it is a free-threaded build and whether the GIL is on; then "
            "import each MODULE and report any that turned the GIL on, and any whose functions have code "
            "constants that are not immortal (compiled at import without a .pyc: threads running them "
            "contend on reference counts). MODULE:NAME checks the modules of that graph's task functions "
            "too."
        ),
        epilog="Exit status: 0 no problem found, 1 problems found (each with its fix), 2 bad input.",
    )
    doctor.add_argument("modules", metavar="MODULE", nargs="*",
                        help="a module to import and check, or MODULE:NAME for a graph's task modules")
    doctor.set_defaults(handler=_doctor)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit status.

    A bad option (and ``--help``, ``--version``) ends in argparse's own ``SystemExit`` (status
    2, or 0), after its usage message; every other bad input returns 2 after one line.
    """
    args = _parser().parse_args(argv)
    try:
        return args.handler(args)
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`ftdag graph ... | head`): stop quietly, and keep Python from
        # complaining again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


# -- run ------------------------------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    from .config import ExecutorConfig
    from .errors import ResourceError, TaskError
    from .executor import Executor

    dag = load_dag(args.target)
    outputs = parse_outputs(dag, args.outputs) if args.outputs else sinks(dag)
    callbacks: list[Any] = []
    if args.progress:
        callbacks.append(_optional("ProgressBar", "--progress")())
    trace = None
    if args.trace is not None:
        parent = Path(args.trace).parent
        if not parent.is_dir():
            raise UsageError(f"--trace {args.trace}: directory {str(parent)!r} does not exist")
        trace = _optional("Trace", "--trace")()
        callbacks.append(trace)
    resources = dict(args.resources)
    try:
        config = ExecutorConfig(max_workers=args.workers, backend=args.backend, resources=resources or None)
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None

    failed: TaskError | None = None
    try:
        with Executor(config) as ex:
            result = ex.run(dag, outputs, callbacks=callbacks or None)
    except TaskError as exc:
        failed = exc
    except ResourceError as exc:
        raise UsageError(f"{exc} (give it with --resource {exc.resource}=UNITS)") from None
    finally:
        if trace is not None:
            try:
                trace.save(args.trace)
            except OSError as exc:
                raise UsageError(f"--trace: cannot write {args.trace}: {exc.strerror or exc}") from None
    if failed is not None:
        _report_failure(failed)
        return 1
    if args.json:
        print(_json_object([(show_key(k), result[k]) for k in outputs]))
    else:
        for k in outputs:
            print(f"{show_key(k)} = {result[k]!r}")
    return 0


def _optional(name: str, option: str) -> Any:
    """``ftdag.<name>``, which ``option`` needs: a :class:`UsageError` if this ftdag lacks it."""
    import ftdag

    found = getattr(ftdag, name, None)
    if found is None:
        raise UsageError(f"{option} needs ftdag.{name}, which this version of ftdag ({ftdag.__file__}) lacks")
    return found


def _report_failure(exc: BaseException) -> None:
    """The error's message (``task KEY failed[ after N attempts]: Type: message``, or what a
    crashed worker or a value that does not pickle says), then the traceback of the task's
    exception (``__cause__``, if any), on stderr."""
    print(f"{PROG}: {exc}", file=sys.stderr)
    cause = exc.__cause__
    if cause is not None:
        traceback.print_exception(cause.with_traceback(_user_frames(cause.__traceback__)), file=sys.stderr)
    sys.stderr.flush()


def _user_frames(tb: types.TracebackType | None) -> types.TracebackType | None:
    """``tb`` without its leading frames in ftdag's own modules (the scheduler that called the
    task), unless they are all ftdag's."""
    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    first = tb
    while first is not None and first.tb_frame.f_code.co_filename.startswith(package):
        first = first.tb_next
    return first if first is not None else tb


def _json_value(value: Any) -> str:
    """``value`` as JSON text: unknown types as their ``repr`` in place; ``repr(value)`` as a
    string if it still cannot be encoded (see the module docstring)."""
    try:
        return json.dumps(value, default=repr, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return json.dumps(repr(value))


def _json_object(pairs: Sequence[tuple[str, Any]]) -> str:
    """One JSON object of ``pairs``, in order."""
    return "{" + ", ".join(f"{json.dumps(k)}: {_json_value(v)}" for k, v in pairs) + "}"


# -- graph ----------------------------------------------------------------------------------------


def _graph(args: argparse.Namespace) -> int:
    dag = load_dag(args.target)
    outputs = parse_outputs(dag, args.outputs) if args.outputs else None
    if args.format == "dot":
        text = dag.to_dot(outputs)
    elif args.format == "mermaid":
        text = dag.to_mermaid(outputs)
    else:
        text = graph_text(dag, outputs)
    print(text.rstrip("\n"))
    return 0


def graph_text(dag: Dag, outputs: list[Hashable] | None = None) -> str:
    """The graph as text: one line per node, in topological order.

    ``KEY (source)`` for a source; ``KEY <- DEP, DEP`` for a task (``KEY (task, no
    dependencies)`` without any), followed by ``; after KEY, ...`` for order-only
    predecessors.  With ``outputs``, each line ends with ``[output]`` or ``[pruned]`` for
    the requested outputs and for the nodes a run for them would not execute.  A last line,
    starting with ``#``, sums up: the counts, and the sinks or what the outputs prune.
    """
    planned = dag.ancestors(outputs) if outputs is not None else None
    wanted = set(outputs) if outputs is not None else set()
    lines = []
    n_sources = 0
    for key in dag:
        name = show_key(key)
        if dag.is_source(key):
            n_sources += 1
            line = f"{name} (source)"
        else:
            deps = dag.dependencies(key)
            line = f"{name} <- {', '.join(map(show_key, deps))}" if deps else f"{name} (task, no dependencies)"
            order = dag.order_dependencies(key)
            if order:
                line += f"; after {', '.join(map(show_key, order))}"
        if planned is not None:
            if key in wanted:
                line += " [output]"
            elif key not in planned:
                line += " [pruned]"
        lines.append(line)
    summary = f"# {_count(len(dag), 'node')}: {_count(n_sources, 'source')}, {_count(len(dag) - n_sources, 'task')}"
    if outputs is None or planned is None:
        summary += f"; sinks: {', '.join(map(show_key, sinks(dag)))}"
    else:
        pruned = [k for k in dag if k not in planned]
        summary += f"; -o {' '.join(map(_quoted, outputs))} runs {len(planned)}, prunes {len(pruned)}"
        if pruned:
            summary += f": {', '.join(map(show_key, pruned))}"
    lines.append(summary)
    return "\n".join(lines)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _quoted(key: Hashable) -> str:
    """``key`` as a shell word that ``-o`` reads back."""
    return shlex.quote(show_key(key))


# -- doctor ---------------------------------------------------------------------------------------


def _doctor(args: argparse.Namespace) -> int:
    from ._doctor import doctor

    return doctor(args.modules, sys.stdout)


if __name__ == "__main__":  # pragma: no cover - `python -m ftdag.cli`; ftdag/__main__.py is the usual way
    sys.exit(main())
