#!/usr/bin/env python3
"""``ftdag.get`` as a dask scheduler against dask's own, on the interpreter running this script.

    python benchmarks/dask_get.py [--quick] [--divisor N] [--json out.json] [--workers 2] [--ftdag-backend auto] [--quiet]

Three dask workloads, each computed by ``ftdag.get`` (its shared executor, backend ``auto``:
threads when the GIL is off, processes otherwise; or an executor of ``--ftdag-backend``),
``dask.threaded.get`` and ``dask.get``
(dask's synchronous scheduler), each with ``--workers`` workers (default 2):

``chain``  a linear chain of 10,000 no-op ``dask.delayed`` tasks: the time per task is the
           scheduler's per-task overhead.  Target: ftdag at most 0.1× ``dask.threaded.get``.
           (The chain is a ``Delayed`` over a dict of task-spec tasks: calling
           ``dask.delayed(f)(x)`` 10,000 times over takes dask about a minute here, since
           each call merges the graph so far; the graph dask then schedules is the same.)
``bag``    ``dask.bag`` map and sum over 1,000 partitions of one element each, the map
           spinning ~100 µs of pure Python (calibrated at start).  Target: ftdag at most 0.6×
           the time of ``dask.threaded.get``.
``array``  ``dask.array`` ``(x ** 2).sum()`` over 4,096 chunks of 256 elements (reported;
           needs numpy).

What is timed is the scheduler call on exactly what ``dask.compute`` hands its scheduler (an
expression object, whose graph each scheduler materialises and converts itself), so graph
conversion is included and dask's collection optimisation, the same for all, is not; every
result is checked against ``dask.get``'s.  Each repetition runs every scheduler once, in
turn (after one warm-up run each), so all see the same machine; a row reports the best and
the median of the repetitions, and ratios are ftdag's time over the reference's, best over
best and median over median, both measured in this run.

The task functions are defined in this script, run as ``__main__``: on 3.13t, code compiled
at import without a ``.pyc`` keeps mortal constants, on whose reference counts threads
contend (the README's pitfall), and ``__main__``'s are immortal.  For the same reason, an
ftdag imported from this checkout (when none is installed) is compiled to ``.pyc`` files first.

``--quick`` makes each workload 5 times smaller and repeats 3 times instead of 5 (about
30 s on 3.13t here, the full mode 2 minutes; the targets are for the full sizes); ``--divisor N``
makes them N times smaller instead (the tests' tiny runs).  ``--json`` writes the document (schema
``ftdag-dask-get/1``): ``schema``, ``mode``, ``python``, ``free_threaded``, ``gil_enabled``,
``workers``, ``ftdag_backend``, ``dask``, ``numpy``, ``work_us`` (the calibrated map's time),
``loadavg``, ``background_cpus``, ``steal_cpus``, ``skipped`` (the workloads not measured, each
with why) and ``rows``, one per (workload, scheduler): ``workload``, ``size``, ``tasks``,
``scheduler``, ``runs``, ``best_s``, ``median_s``, ``times_s`` (every timed run),
``per_task_us`` (best / tasks), ``vs_threaded`` and ``vs_sync`` (best ratios),
``vs_threaded_median``, and for ftdag's rows with a target ``target`` and ``met``.

Importing this module runs nothing.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import sysconfig
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from environment import background_load, cpu_snapshot, loadavg  # noqa: E402
from report import fmt_time, fmt_x, markdown_table  # noqa: E402

SCHEMA = "ftdag-dask-get/1"
SIZES = {"chain": 10_000, "bag": 1_000, "array": 4_096}
QUICK_DIVISOR = 5
REPEATS = {"quick": 3, "full": 5}
TARGETS = {"chain": 0.1, "bag": 0.6}  # ftdag's time over dask.threaded.get's, at most
WORK_US = 100.0
SCHEDULERS = ("ftdag", "threaded", "sync")


def _ftdag():
    """ftdag, installed or else from this checkout, whose modules are first compiled to ``.pyc``
    files (``compileall`` writes them even under ``PYTHONDONTWRITEBYTECODE=1``): compiled at
    import, the scheduler's own code would have mortal constants on 3.13t too."""
    try:
        import ftdag
    except ImportError:  # run from a checkout without installing
        import compileall

        try:
            compileall.compile_dir(str(REPO / "src" / "ftdag"), quiet=2)
        except OSError:  # a read-only checkout: measure it as it is
            pass
        sys.path.insert(0, str(REPO / "src"))
        import ftdag
    return ftdag


# -- the task functions (in __main__, see the docstring) ----------------------------------------


def noop(x):
    return x


def spin(x, iters):
    """Pure-Python work: ``iters`` loop turns (calibrated to ~100 µs)."""
    acc = x
    for i in range(iters):
        acc = (acc * 31 + i) & 0xFFFF
    return acc


def calibrate(target_us: float = WORK_US) -> int:
    """Loop turns of :func:`spin` taking ``target_us`` on this interpreter, on one thread."""
    iters = 1000
    for _ in range(3):
        best = float("inf")
        for _ in range(20):
            t0 = time.perf_counter()
            spin(1, iters)
            best = min(best, time.perf_counter() - t0)
        iters = max(1, round(iters * target_us * 1e-6 / best))
    return iters


# -- the workloads --------------------------------------------------------------------------


def chain(n: int):
    from dask._task_spec import Task, TaskRef
    from dask.delayed import Delayed

    graph = {"noop-0": Task("noop-0", noop, 0)}
    for i in range(1, n):
        graph[f"noop-{i}"] = Task(f"noop-{i}", noop, TaskRef(f"noop-{i - 1}"))
    return Delayed(f"noop-{n - 1}", graph)


def bag(n: int, iters: int):
    import dask.bag as db

    return db.from_sequence(range(n), npartitions=n).map(spin, iters=iters).sum()


def array(n: int):
    import dask.array as da

    x = da.arange(n * 256, chunks=256)
    return (x**2).sum()


def handed_to_scheduler(collection) -> tuple[Any, Any]:
    """``(dsk, keys)`` as ``dask.compute(collection)`` passes them to its scheduler."""
    import dask

    seen: list[tuple[Any, Any]] = []

    def capture(dsk, keys, **kwargs):
        seen.append((dsk, keys))
        return dask.get(dsk, keys)

    dask.compute(collection, scheduler=capture)
    return seen[0]


def schedulers(workers: int, executor: Any = None) -> dict[str, Callable[..., Any]]:
    """The three schedulers; ftdag's on ``executor`` if given, else on its shared one."""
    import dask
    import dask.threaded

    ftdag = _ftdag()
    return {
        "ftdag": functools.partial(ftdag.get, num_workers=workers, executor=executor),
        "threaded": functools.partial(dask.threaded.get, num_workers=workers),
        "sync": dask.get,
    }


def _same(a, b) -> bool:
    return bool(a == b)  # tuples of Python values or numpy scalars


def measure(name: str, size: int, collection, gets: dict[str, Callable[..., Any]], repeats: int,
            say: Callable[[str], None]) -> list[dict[str, Any]]:
    """Rows of one workload: each scheduler warmed up once, then ``repeats`` interleaved runs."""
    dsk, keys = handed_to_scheduler(collection)
    tasks = len(dsk.__dask_graph__()) if hasattr(dsk, "__dask_graph__") else len(dsk)
    expected = gets["sync"](dsk, keys)
    times: dict[str, list[float]] = {s: [] for s in gets}
    for s, get in gets.items():  # warm-up: pools, imports, caches
        if not _same(get(dsk, keys), expected):
            raise AssertionError(f"{name}: {s} computed a different result")
    for r in range(repeats):
        for s, get in gets.items():
            t0 = time.perf_counter()
            got = get(dsk, keys)
            times[s].append(time.perf_counter() - t0)
            if not _same(got, expected):
                raise AssertionError(f"{name}: {s} computed a different result")
        say(f"{name} {r + 1}/{repeats}: " + ", ".join(f"{s} {fmt_time(times[s][-1])}" for s in gets))
    best = {s: min(v) for s, v in times.items()}
    median = {s: statistics.median(v) for s, v in times.items()}
    rows = []
    for s in gets:
        row: dict[str, Any] = {
            "workload": name, "size": size, "tasks": tasks, "scheduler": s, "runs": repeats,
            "best_s": round(best[s], 6), "median_s": round(median[s], 6), "times_s": [round(t, 6) for t in times[s]],
            "per_task_us": round(best[s] / tasks * 1e6, 2),
            "vs_threaded": round(best[s] / best["threaded"], 4),
            "vs_sync": round(best[s] / best["sync"], 4),
            "vs_threaded_median": round(median[s] / median["threaded"], 4),
        }
        if s == "ftdag" and name in TARGETS:
            row["target"] = TARGETS[name]
            row["met"] = row["vs_threaded"] <= TARGETS[name]
        rows.append(row)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    header = ["workload", "scheduler", "tasks", "best", "median", "µs/task", "× threaded (best / median)",
              "× sync", "target"]
    body = []
    for r in rows:
        target = ""
        if "target" in r:
            target = f"≤ {r['target']}×: " + ("met" if r["met"] else "**missed**")
        body.append([r["workload"], r["scheduler"], str(r["tasks"]), fmt_time(r["best_s"]), fmt_time(r["median_s"]),
                     f"{r['per_task_us']:.1f}", f"{fmt_x(r['vs_threaded'])} / {fmt_x(r['vs_threaded_median'])}",
                     fmt_x(r["vs_sync"]), target])
    return markdown_table(header, body)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help=f"workloads {QUICK_DIVISOR}× smaller, 3 repetitions")
    p.add_argument("--divisor", type=int, help=f"workloads this many times smaller (default 1, {QUICK_DIVISOR} "
                   "with --quick)")
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--workers", type=int, default=2, help="workers of every scheduler (default 2)")
    p.add_argument("--ftdag-backend", choices=["auto", "threads", "processes", "sequential"], default="auto",
                   help="the backend of ftdag's executor (default auto: ftdag.get's shared executor)")
    p.add_argument("--quiet", action="store_true", help="print only the summary and the table")
    args = p.parse_args(argv)
    if args.workers < 1:
        p.error(f"--workers must be >= 1, got {args.workers}")
    if args.divisor is not None and args.divisor < 1:
        p.error(f"--divisor must be >= 1, got {args.divisor}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    mode = "quick" if args.quick else "full"
    say = (lambda s: None) if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True))
    ftdag = _ftdag()
    import dask

    try:
        import numpy
    except ImportError:
        numpy = None
    divisor = args.divisor or (QUICK_DIVISOR if args.quick else 1)
    sizes = {k: max(1, v // divisor) for k, v in SIZES.items()}
    iters = calibrate()
    t0 = time.perf_counter()
    spin(1, iters)
    work_us = (time.perf_counter() - t0) * 1e6
    say(f"dask {dask.__version__}, {mode} mode, {args.workers} workers, spin({iters}) ~{work_us:.0f} µs")
    executor = None
    if args.ftdag_backend != "auto":
        executor = ftdag.Executor(max_workers=args.workers, backend=args.ftdag_backend)
    gets = schedulers(args.workers, executor)
    workloads: list[tuple[str, Callable[[], Any]]] = [
        ("chain", lambda: chain(sizes["chain"])),
        ("bag", lambda: bag(sizes["bag"], iters)),
    ]
    skipped = []
    if numpy is not None:
        workloads.append(("array", lambda: array(sizes["array"])))
    else:
        skipped.append("array (numpy is not installed)")
    rows: list[dict[str, Any]] = []
    cpu0, start = cpu_snapshot(), time.perf_counter()
    try:
        for name, make in workloads:
            rows += measure(name, sizes[name], make(), gets, REPEATS[mode], say)
    finally:
        ftdag._dask.close_shared_executors()
        if executor is not None:
            executor.close()
    load = background_load(cpu0, cpu_snapshot(), time.perf_counter() - start)
    backend = args.ftdag_backend
    if backend == "auto":
        backend = "threads" if not ftdag.gil_enabled() else "processes"
    gil = ftdag.gil_enabled()
    free_threaded = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    print(f"Python {sys.version.split()[0]}{' free-threaded' if free_threaded else ''} (GIL {'on' if gil else 'off'}), "
          f"dask {dask.__version__}, {mode} mode, {args.workers} workers, ftdag on {backend}, "
          f"other processes used {load['background_cpus']} CPU")
    print(table(rows))
    for s in skipped:
        print(f"not measured: {s}")
    if args.json:
        doc = {
            "schema": SCHEMA, "mode": mode, "python": sys.version, "free_threaded": free_threaded,
            "gil_enabled": gil, "workers": args.workers, "ftdag_backend": backend, "dask": dask.__version__,
            "numpy": getattr(numpy, "__version__", None), "work_us": round(work_us, 1), "loadavg": loadavg(),
            **load, "skipped": skipped, "rows": rows,
        }
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
