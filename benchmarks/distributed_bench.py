#!/usr/bin/env python3
"""The distributed backend against ftdag's threads and processes, on the running interpreter.

    python benchmarks/distributed_bench.py [--quick] [--chain N] [--workers W] [--spin-per-ms X] [--json out.json] [--quiet]

Three executors of ``W`` workers (default 2) each: ``threads``, ``processes`` and
``distributed`` (its embedded ``LocalCluster``: W worker processes of one thread, on
127.0.0.1), each started and warmed up by one untimed run of every workload before anything
is timed, so that no start-up cost (processes spawning, the cluster starting) is counted.
Two workloads:

``chain``  a chain of N no-op tasks (``noop``: ``x + 1``), N = 2,000 (``--quick``: 200; ``--chain N``): each
           task waits for the one before, so a run's time over N is the per-task overhead of
           the backend's round trip (``µs/task``).
``cpu``    32 independent tasks of 10 ms of pure-Python CPU work each (``spin``), from one
           source, all requested: ideally ``32 × 10 ms / W`` with W workers (``ideal``).

The task functions are defined in this script, so they run as ``__main__`` functions: the
process backend's workers import this file as their main module (hence the ``__main__``
guard), and ``distributed`` ships them by value (cloudpickle).  Each (workload, backend) is
timed ``REPEATS`` times (full: 5, ``--quick``: 3), the backends interleaved round by round;
the report gives the best and the median, and the ratio of the distributed backend's best
to each other backend's best (above 1: distributed is slower).  Every run's values are
checked against the expected ones.  CPU work is ``spin`` rounds, ``--spin-per-ms`` of them per
ms (default: calibrated here).  The CPU time other processes took while the timings ran is
reported (``background_cpus``): on a busy machine, parallel times suffer first.

``--json`` writes the document (schema ``ftdag-distributed-bench/1``): ``schema``, ``mode``,
``python``, ``free_threaded``, ``gil_enabled``, ``workers``, ``spin_per_ms``, ``loadavg``,
``background_cpus``, ``worker_reports`` (what the distributed backend found on each worker:
free-threaded build, GIL enabled, profiler on), and ``rows``: one per (workload, backend)
with ``workload``, ``backend``, ``tasks``, ``times_s`` (every timed run), ``best_s``,
``median_s``, ``per_task_us`` (best / tasks), and ``vs_distributed`` (the distributed best over
this backend's best).  Exit status 0 if every backend ran, else 1.

Needs the ``ftdag[distributed]`` extra.  Importing this module runs nothing.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from environment import background_load, cpu_snapshot, loadavg  # noqa: E402
from report import fmt_time, fmt_x, markdown_table  # noqa: E402

SCHEMA = "ftdag-distributed-bench/1"
BACKENDS = ("threads", "processes", "distributed")
CHAIN = {"quick": 200, "full": 2000}
CPU_TASKS, CPU_MS = 32, 10.0
REPEATS = {"quick": 3, "full": 5}
MASK64 = (1 << 64) - 1


# -- task functions (this script's: __main__) ----------------------------------------------------


def noop(x: int) -> int:
    return x + 1


def spin(loops: int, seed: int) -> int:
    """Pure-Python CPU work: ``loops`` rounds of a 64-bit LCG."""
    x = seed
    for _ in range(loops):
        x = (x * 6364136223846793005 + 1442695040888963407) & MASK64
    return x


def calibrate() -> float:
    """Rounds of the LCG per ms here, when no ``--spin-per-ms`` is given: ``workloads.calibrate``
    (the same loop as this script's ``spin``, measured the same way as for the main job)."""
    from workloads import calibrate as measure

    return measure()


# -- the workloads -------------------------------------------------------------------------------


def _ftdag():
    try:
        import ftdag
    except ImportError:  # run from a checkout without installing
        sys.path.insert(0, str(REPO / "src"))
        import ftdag
    return ftdag


def chain(n: int) -> tuple[Any, list[str], dict[str, int]]:
    """(dag, outputs, expected values) of a chain of ``n`` no-op tasks."""
    b = _ftdag().DagBuilder()
    b.add_source("c/0", 0)
    for i in range(1, n + 1):
        b.add_task(f"c/{i}", [f"c/{i - 1}"], noop)
    return b.build(), [f"c/{n}"], {f"c/{n}": n}


def cpu(spin_per_ms: float) -> tuple[Any, list[str], dict[str, int]]:
    """(dag, outputs, expected values) of :data:`CPU_TASKS` independent tasks of :data:`CPU_MS` ms."""
    loops = max(1, round(CPU_MS * spin_per_ms))
    b = _ftdag().DagBuilder()
    b.add_source("loops", loops)
    outputs = [f"spin/{i}" for i in range(CPU_TASKS)]
    for i, key in enumerate(outputs):
        b.add_task(key, ["loops"], functools.partial(_spin_from, i + 1))
    return b.build(), outputs, {key: spin(loops, i + 1) for i, key in enumerate(outputs)}


def _spin_from(seed: int, loops: int) -> int:
    return spin(loops, seed)


# -- measuring -----------------------------------------------------------------------------------


def measure(mode: str, workers: int, spin_per_ms: float, say=lambda s: None,
            chain_tasks: int | None = None) -> tuple[list[dict], dict, dict]:
    """Rows (one per workload and backend), the distributed workers' reports, the background load."""
    ftdag = _ftdag()
    workloads = {"chain": chain(chain_tasks or CHAIN[mode]), "cpu": cpu(spin_per_ms)}
    times: dict[tuple[str, str], list[float]] = {(w, b): [] for w in workloads for b in BACKENDS}
    errors: dict[str, str] = {}
    executors = {b: ftdag.Executor(backend=b, max_workers=workers) for b in BACKENDS}
    reports: dict = {}
    try:
        for backend, ex in executors.items():  # start-up and warm-up, untimed
            t0 = time.perf_counter()
            try:
                for name, (dag, outputs, expected) in workloads.items():
                    _check(ex.run(dag, outputs), expected, name, backend)
            except Exception as exc:
                errors[backend] = f"{type(exc).__name__}: {exc}"
                say(f"{backend}: failed: {errors[backend]}")
                continue
            say(f"{backend}: started and warmed up in {time.perf_counter() - t0:.1f} s")
        cpu0, start = cpu_snapshot(), time.perf_counter()
        for r in range(REPEATS[mode]):
            for name, (dag, outputs, expected) in workloads.items():
                for backend in BACKENDS if r % 2 == 0 else reversed(BACKENDS):
                    if backend in errors:
                        continue
                    t0 = time.perf_counter()
                    res = executors[backend].run(dag, outputs)
                    times[name, backend].append(time.perf_counter() - t0)
                    _check(res, expected, name, backend)
            say(f"round {r + 1}/{REPEATS[mode]} done")
        load = background_load(cpu0, cpu_snapshot(), time.perf_counter() - start)
        pool = executors["distributed"]._distributed
        if pool is not None:
            reports = {w: (r._asdict() if hasattr(r, "_asdict") else repr(r)) for w, r in pool.reports.items()}
    finally:
        for ex in executors.values():
            ex.close()
    rows = []
    for name, (dag, _outputs, _expected) in workloads.items():
        tasks = len(dag) - 1
        best_d = min(times[name, "distributed"], default=None)
        for backend in BACKENDS:
            ts = times[name, backend]
            best = min(ts, default=None)
            rows.append({
                "workload": name, "backend": backend, "tasks": tasks, "times_s": [round(t, 6) for t in ts],
                "best_s": best, "median_s": statistics.median(ts) if ts else None,
                "per_task_us": None if best is None else round(best / tasks * 1e6, 1),
                "vs_distributed": None if best is None or best_d is None else round(best_d / best, 3),
                "error": errors.get(backend),
            })
    return rows, reports, load


def _check(res, expected: dict, name: str, backend: str) -> None:
    got = {k: res[k] for k in expected}
    if got != expected:
        raise AssertionError(f"{name} on {backend}: wrong values")


def table(rows: list[dict], workers: int) -> str:
    header = ["workload", "backend", "best", "median", "µs/task", "ideal", "distributed ×"]
    ideal = {"cpu": CPU_TASKS * CPU_MS / 1000 / workers}
    body = []
    for r in rows:
        if r["error"]:
            body.append([r["workload"], r["backend"], "n/a", "", "", "", r["error"][:80]])
            continue
        body.append([
            f"{r['workload']} ({r['tasks']})", r["backend"], fmt_time(r["best_s"]), fmt_time(r["median_s"]),
            f"{r['per_task_us']:.0f}", fmt_time(ideal.get(r["workload"])),
            "" if r["backend"] == "distributed" else fmt_x(r["vs_distributed"]),
        ])
    return markdown_table(header, body)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help=f"a {CHAIN['quick']}-task chain, {REPEATS['quick']} repeats")
    p.add_argument("--chain", type=int, help=f"tasks of the chain (default {CHAIN['full']}, "
                   f"{CHAIN['quick']} with --quick)")
    p.add_argument("--workers", type=int, default=2, help="workers of every backend (default 2)")
    p.add_argument("--spin-per-ms", type=float, help="spin rounds per ms of CPU work (default: calibrated here)")
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--quiet", action="store_true", help="print only the table")
    args = p.parse_args(argv)
    if args.chain is not None and args.chain < 1:
        p.error(f"--chain must be >= 1, got {args.chain}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    mode = "quick" if args.quick else "full"
    say = (lambda s: None) if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True))
    spin_per_ms = args.spin_per_ms or calibrate()
    say(f"distributed bench ({mode}), {args.workers} workers, {spin_per_ms:.0f} spin rounds/ms")
    rows, reports, load = measure(mode, args.workers, spin_per_ms, say, chain_tasks=args.chain)
    free_threaded = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    gil = getattr(sys, "_is_gil_enabled", lambda: True)()
    print(f"Python {sys.version.split()[0]}{' free-threaded' if free_threaded else ''} (GIL {'on' if gil else 'off'}), "
          f"{mode} mode, {args.workers} workers, other processes used {load['background_cpus']} CPU")
    print(table(rows, args.workers))
    if args.json:
        doc = {
            "schema": SCHEMA, "mode": mode, "python": sys.version, "free_threaded": free_threaded, "gil_enabled": gil,
            "workers": args.workers, "spin_per_ms": round(spin_per_ms, 3), "loadavg": loadavg(), **load,
            "worker_reports": reports, "rows": rows,
        }
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    return 1 if any(r["error"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
