#!/usr/bin/env python3
"""Measure ftdag and its peers on the benchmark workloads, in the interpreter running this script.

    python benchmarks/bench.py [--workload W ...] [--runner R ...] [--workers 2] [--repeat N]
                               [--size quick|full|tiny] [--json out.json]
    python benchmarks/bench.py --small-graph diamond|chain [--repeat ROUNDS] [--runs N] [--json out.json]

For every (workload, runner) pair it reports the best and the median of N repetitions of the
runner and of the plain loop (``runners.run_plain``, the zero-overhead reference), measured
in the same process and interleaved with it, so that ratios hold on a noisy machine.  Each
pair runs in a fresh subprocess of this interpreter (``--in-process`` runs them all here
instead), so one runner's imports (dask, say, which could turn the GIL back on in a
free-threaded build) cannot affect another.  Before timing, every runner's outputs are checked
against the plain loop's; a runner that fails or is unavailable gets an ``n/a: <reason>`` cell.

The table shows, per runner, ``x plain``: its time over the plain loop's (below 1 is faster
than not parallelising at all), and for the no-op chain the scheduling overhead per task in
µs, ``(runner - plain) / tasks``.  A ``GIL ON`` flag marks a measurement on a free-threaded
build during which the GIL was (re-)enabled.

``--small-graph CASE`` measures one case of the small-graph row in this process instead (see
``smallgraph.py``).

``--json`` writes every raw timing; the schema is described in :func:`new_document` and
:class:`records.Measurement` (and tested by ``tests/test_benchmarks.py``).

Importing this module runs nothing: the task modules are compiled and imported by :func:`main`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for _p in (str(HERE), str(REPO / "examples")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from environment import background_load, cpu_snapshot, loadavg, machine_info, now_iso  # noqa: E402
from records import NOISY_CPUS, Measurement  # noqa: E402
from report import error_cell, fmt_time, fmt_x, gil_cell, markdown_table  # noqa: E402

SCHEMA = "ftdag-bench/1"
TASK_MODULES = (HERE / "workloads.py", HERE / "runners.py", REPO / "examples" / "rollup.py")


def precompile() -> None:
    """Make sure the task modules load from bytecode files, not from source: call before importing them.

    On free-threaded 3.13, a module compiled from source at import time (the first import, or
    any import under ``PYTHONDONTWRITEBYTECODE=1``, which this project's machines set) keeps
    mutable reference counts on its code constants (``compile()`` turns off their
    immortalization, CPython gh-118527), so threads running the same task function contend on
    the counts of its integer constants: a pure-Python loop then runs *slower* on two threads
    than on one.  Loaded from a ``.pyc``, the constants are immortal and threads scale.
    ``py_compile`` (which ``compileall`` calls) writes the ``.pyc`` even when
    ``sys.dont_write_bytecode`` is set; a read-only checkout just skips this.
    """
    import compileall

    for path in TASK_MODULES:
        try:
            compileall.compile_file(str(path), quiet=2)
        except OSError:
            pass


def _export_paths() -> None:
    """Let worker processes (spawn/forkserver) import ``workloads`` and ``rollup`` by name."""
    extra = [str(HERE), str(REPO / "examples")]
    old = os.environ.get("PYTHONPATH", "")
    parts = [p for p in old.split(os.pathsep) if p]
    os.environ["PYTHONPATH"] = os.pathsep.join(extra + [p for p in parts if p not in extra])


# -- descriptions ------------------------------------------------------------------------------


def interpreter_info() -> dict[str, Any]:
    import runners

    ft = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    v = sys.version_info
    return {
        "label": f"{v.major}.{v.minor}{'t' if ft else ''}",
        "version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "build": "free-threaded" if ft else "GIL",
        "free_threaded_build": ft,
        "gil_enabled_at_start": runners.gil_enabled(),
        "executable": sys.executable,
        "sys_version": sys.version,
        "task_constants_immortal": constants_immortal(),
    }


def constants_immortal() -> bool:
    """Whether the task functions' integer constants are immortal (see :func:`precompile`)."""
    import workloads

    big = [c for c in workloads.spin.__code__.co_consts if isinstance(c, int) and c > 256]
    return all(sys.getrefcount(c) >= 1 << 29 for c in big)


def new_document(settings: dict[str, Any]) -> dict[str, Any]:
    """The JSON document bench.py writes.

    ``schema``        ``"ftdag-bench/1"``
    ``date``          ISO date and time the run started
    ``machine``       ``cpu_count``, ``cpus_available``, ``cpu_model``, ``platform``, ``machine``, ``loadavg``
    ``interpreter``   ``label`` (e.g. ``3.13t``), ``version``, ``build`` (``free-threaded``/``GIL``),
                      ``free_threaded_build``, ``gil_enabled_at_start``, ``executable``, ...
    ``settings``      ``workers``, ``repeat``, ``size``, ``spin_per_ms``, ``budget_s``
    ``measurements``  one :class:`records.Measurement` per (workload, runner), as its ``to_json()``
    ``small_graph``   with ``--small-graph``: one :class:`records.SmallGraphResult`, as its ``to_json()``
    """
    return {
        "schema": SCHEMA,
        "date": now_iso(),
        "machine": machine_info(),
        "interpreter": interpreter_info(),
        "settings": settings,
        "measurements": [],
        "small_graph": [],
    }


# -- measuring ---------------------------------------------------------------------------------


def measure(wl, runner_name: str, workers: int, repeat: int, budget_s: float | None = None,
            min_repeat: int = 2) -> Measurement:
    """Time ``runner_name`` and the plain loop on ``wl``, interleaved, and return the record.

    The plain loop runs first, untimed, as the reference result; then the runner once,
    untimed (it starts its pools) and checked against it; then ``repeat`` timed rounds, each
    plain + runner, alternating which goes first; the last round's outputs are checked too.
    With ``budget_s``, rounds stop once that many seconds have passed and ``min_repeat`` rounds
    are done.  ``background_cpus`` / ``steal_cpus`` are the CPUs that *other* processes (and the
    hypervisor) used on average during the timed rounds (Linux only, else ``None``; see
    :func:`environment.background_load`).
    """
    import runners

    times: dict[str, list[float]] = {"plain": [], "runner": []}
    known: dict[str, Any] = dict(
        workload=wl.name, title=wl.title, description=wl.description, params=wl.params, n_tasks=wl.n_tasks,
        n_nodes=wl.n_nodes, runner=runner_name, gil_enabled_before=runners.gil_enabled(), loadavg=loadavg())
    ok, error, stats, info, load = False, None, None, {}, {}
    plain = runners.make_runner("plain", workers)
    plain.prepare(wl)
    expected = plain.run(wl)
    runner = None
    try:
        runner = runners.make_runner(runner_name, workers)
        info = runner.info
        runner.prepare(wl)
        runners.check_same(runner_name, runner.run(wl), expected)
        cpu0 = cpu_snapshot()
        start = time.perf_counter()
        for i in range(repeat):
            pair = [("plain", plain), ("runner", runner)]
            if i % 2:
                pair.reverse()
            for which, r in pair:
                t0 = time.perf_counter()
                out = r.run(wl)
                times[which].append(time.perf_counter() - t0)
                if which == "runner":
                    last = out
            if budget_s is not None and i + 1 >= min_repeat and time.perf_counter() - start > budget_s:
                break
        load = background_load(cpu0, cpu_snapshot(), time.perf_counter() - start)
        runners.check_same(runner_name, last, expected)  # the warmed-up runner is right too
        stats, ok = runner.last_stats, True
    except runners.RunnerUnavailable as exc:
        error = str(exc)
    except Exception as exc:  # a runner failure is a result cell, not a crash of the harness
        error = f"{type(exc).__name__}: {exc}".strip()
    finally:
        if runner is not None:
            try:
                runner.close()
            except Exception as exc:
                if error is None:
                    ok, error = False, f"close() failed: {type(exc).__name__}: {exc}"
    return Measurement(ok=ok, error=error, plain_s=tuple(times["plain"]), runner_s=tuple(times["runner"]) if ok else (),
                       gil_enabled_after=runners.gil_enabled(), stats=stats, info=info, **load, **known)


def run_in_process(args, spin_per_ms: float, doc: dict[str, Any], progress=None) -> None:
    import workloads

    for w in args.workload:
        wl = workloads.make(w, args.size, spin_per_ms, **args.param)
        for r in args.runner:
            if progress:
                progress(w, r)
            doc["measurements"].append(measure(wl, r, args.workers, args.repeat, args.budget))


def run_isolated(args, spin_per_ms: float, doc: dict[str, Any]) -> None:
    """Each (workload, runner) in a fresh subprocess of this interpreter."""
    from measurement import run_child

    pairs = [(w, r) for w in args.workload for r in args.runner]
    for n, (w, r) in enumerate(pairs, 1):
        if not args.quiet:
            print(f"[{n}/{len(pairs)}] {doc['interpreter']['label']} · {w} · {r}", file=sys.stderr, flush=True)
        doc["measurements"].append(run_child(
            sys.executable, w, r, size=args.size, workers=args.workers, repeat=args.repeat,
            budget=args.budget, spin_per_ms=spin_per_ms, timeout=args.timeout, params=args.param,
        ))


# -- output ------------------------------------------------------------------------------------


def table(doc: dict[str, Any]) -> str:
    """The bench table: one block of rows per workload, the plain loop first."""
    ft = doc["interpreter"]["free_threaded_build"]
    header = ["workload", "runner", "best", "median", "× plain (best)", "× plain (median)",
              "overhead µs/task", "GIL"]
    rows = []
    by_wl: dict[str, list[Measurement]] = {}
    for rec in doc["measurements"]:
        by_wl.setdefault(rec.workload, []).append(rec)
    for w, recs in by_wl.items():
        title = next((r.title for r in recs if r.title), w)
        plain = [t for r in recs for t in r.plain_s]
        if plain:
            rows.append([title, "plain", fmt_time(min(plain)), fmt_time(statistics.median(plain)),
                         "1.00×", "1.00×", "0", "on" if not ft else "off*"])
        for rec in recs:
            if not rec.ok:
                rows.append([title, rec.runner, error_cell(rec.error), "", "", "", "", gil_cell(ft, rec.gil_enabled_after)])
                continue
            oh = rec.overhead_us_per_task if w == "chain" else None
            rows.append([title, rec.runner, fmt_time(rec.runner_best_s) + ("†" if rec.noisy else ""),
                         fmt_time(rec.runner_median_s), fmt_x(rec.ratio_best), fmt_x(rec.ratio_median),
                         "" if oh is None else f"{oh:.1f}", gil_cell(ft, rec.gil_enabled_after)])
    it, m, s = doc["interpreter"], doc["machine"], doc["settings"]
    head = (f"Python {it['version']} ({it['build']}) · {m['cpu_count']} CPUs · {s['workers']} workers · "
            f"size {s['size']} · best/median of {s['repeat']} · {doc['date']}")
    note = ("× plain: the runner's time over the plain loop's, measured in the same process (below 1 = faster "
            "than serial). overhead: (runner - plain) / tasks, chain only. †: other processes used "
            f">= {NOISY_CPUS} CPU during the measurement (background_cpus in the JSON), so it had fewer free cores.")
    if ft:
        note += " *plain: GIL state of the process, see each runner's cell; **ON⚠** = GIL re-enabled during the run."
    return head + "\n\n" + markdown_table(header, rows) + "\n\n" + note


def to_json(doc: dict[str, Any]) -> str:
    out = dict(doc, measurements=[m.to_json() for m in doc["measurements"]],
               small_graph=[r.to_json() for r in doc["small_graph"]])
    return json.dumps(out, indent=1, default=repr) + "\n"


# -- command line ------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    import runners
    import smallgraph
    import workloads

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workload", action="extend", nargs="+", choices=workloads.ALL_WORKLOADS,
                   help="workloads to run (default: all of the comparison table's)")
    p.add_argument("--runner", action="extend", nargs="+", choices=runners.RUNNERS,
                   help="runners to measure (default: all but plain, which is always measured as the reference)")
    p.add_argument("--workers", type=int, default=2, help="workers for every parallel runner (default 2)")
    p.add_argument("--repeat", type=int, default=None,
                   help="timed repetitions (default 5), or rounds with --small-graph (default "
                        f"{smallgraph.ROUNDS}); best and median are reported")
    p.add_argument("--size", choices=tuple(workloads.SIZES), default="full",
                   help="workload sizes (default full: the sizes the README's results are for)")
    p.add_argument("--budget", type=float, default=None,
                   help="stop repeating a measurement after this many seconds (at least 2 repetitions)")
    p.add_argument("--spin-per-ms", type=float, default=None,
                   help="loop rounds per ms of CPU work (default: calibrate in this interpreter)")
    p.add_argument("--json", type=Path, default=None, help="write every raw timing to this file")
    p.add_argument("--param", type=_param, action="append", default=[], metavar="NAME=NUMBER",
                   help="override a workload parameter of the chosen size, e.g. --param task_us=20")
    p.add_argument("--in-process", action="store_true",
                   help="measure everything in this process instead of one fresh subprocess per (workload, runner)")
    p.add_argument("--timeout", type=float, default=900, help="per-measurement timeout when isolated (s)")
    p.add_argument("--quiet", action="store_true", help="print no progress and no table")
    p.add_argument("--calibrate", action="store_true", help="print spin rounds per ms for this interpreter and exit")
    p.add_argument("--small-graph", choices=tuple(smallgraph.CASES), default=None,
                   help="measure this small-graph case in this process instead of the table")
    p.add_argument("--runs", type=int, default=None,
                   help="with --small-graph: timed calls per round (default: the case's)")
    args = p.parse_args(argv)
    args.param = dict(args.param)
    args.workload = list(dict.fromkeys(args.workload or workloads.WORKLOADS))
    args.runner = list(dict.fromkeys(args.runner or (r for r in runners.RUNNERS if r != "plain")))
    if args.repeat is None:
        args.repeat = smallgraph.ROUNDS if args.small_graph else 5
    if args.workers < 1 or args.repeat < 1 or (args.runs is not None and args.runs < 1):
        p.error("--workers, --repeat and --runs must be >= 1")
    return args


def _param(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    try:
        number = float(value)
    except ValueError:
        number = None
    if not sep or not name or number is None:
        raise argparse.ArgumentTypeError(f"expected NAME=NUMBER, got {text!r}")
    return name, int(number) if number.is_integer() else number


def main(argv: list[str] | None = None) -> int:
    precompile()  # before the first import of a task module (parse_args imports them)
    args = parse_args(argv)
    _export_paths()
    import runners
    import workloads

    if args.calibrate:
        print(f"{workloads.calibrate():.1f}")
        return 0
    if args.small_graph:
        import smallgraph

        doc = new_document({"workers": args.workers, "repeat": args.repeat, "runs": args.runs})
        result = smallgraph.measure(smallgraph.CASES[args.small_graph], args.workers, args.repeat, args.runs)
        doc["small_graph"].append(result)
        if not args.quiet:
            print(f"{result.title}: {result.runner} {fmt_time(result.runner_s)}, {result.reference} "
                  f"{fmt_time(result.reference_s)}: {fmt_x(result.ratio)} per round, {fmt_x(result.best_ratio)} "
                  f"on the best times (target ≤ {result.target:g}×)"
                  if result.ok else f"{result.title}: {error_cell(result.error)}")
    else:
        spin_per_ms = args.spin_per_ms or workloads.calibrate()
        doc = new_document({"workers": args.workers, "repeat": args.repeat, "size": args.size,
                            "spin_per_ms": spin_per_ms, "budget_s": args.budget,
                            "isolated": not args.in_process})
        if args.in_process:
            def progress(w, r):
                print(f"· {w} · {r}", file=sys.stderr, flush=True)
            run_in_process(args, spin_per_ms, doc, None if args.quiet else progress)
        else:
            run_isolated(args, spin_per_ms, doc)
        if not args.quiet:
            print(table(doc))
    doc["interpreter"]["gil_enabled_at_end"] = runners.gil_enabled()
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(to_json(doc))
    mismatched = [m for m in doc["measurements"] + doc["small_graph"]
                  if str(m.error or "").startswith("ResultMismatch")]
    return 2 if mismatched else 0


if __name__ == "__main__":
    sys.exit(main())
