#!/usr/bin/env python3
"""Where the order of ready tasks matters: critical-path order against insertion (FIFO) order.

    python benchmarks/order.py [--quick] [--json out.json] [--workers 2] [--task-ms 10]

The workload: 64 independent CPU tasks of ``task-ms`` each, added first, then one chain of
16 such tasks, run by ftdag on ``workers`` worker threads (processes on a GIL build).  With
2 workers the lower bound on the makespan is the larger of the total work over the workers
and the chain: ``max(80 * 10 / 2, 16 * 10) = 400 ms``.

Three numbers, measured in this process, in the same run:

``critical path``  ftdag's default order (``ready_order``: priority, then the longest path
                   to the end, then insertion order): the chain's head starts first and the
                   chain runs on one worker while the other takes the independent tasks.
``FIFO``           the same graph with ``priority=-i`` for the ``i``-th task added, so that
                   tasks start exactly in insertion order: the chain runs last, alone
                   (about ``64 * 10 / 2 + 16 * 10 = 480 ms``).
``lower bound``    the sum of the measured task times over the workers, or the chain's, if
                   longer: each task's own time is measured alone first (best of 3).

Reported: each makespan (best and median of ``rounds`` runs), critical path over the lower
bound, and critical path over FIFO.  The tasks spin a 64-bit LCG for a calibrated number of
rounds; the script runs as ``__main__``, so their code is not compiled at import with mortal
constants (see README: run from ``.pyc`` files).  Importing this module runs nothing.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import time

MASK64 = (1 << 64) - 1
N_INDEPENDENT = 64
N_CHAIN = 16


def spin(loops: int, seed: int) -> int:
    x = seed
    for _ in range(loops):
        x = (x * 6364136223846793005 + 1442695040888963407) & MASK64
    return x


def link(loops: int, x: int) -> int:
    return spin(loops, x)


def calibrate(task_ms: float) -> int:
    """Loop rounds for one task of ``task_ms`` in this interpreter (best of 5)."""
    loops = 10_000
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        spin(loops, 1)
        best = min(best, time.perf_counter() - t0)
    return max(1, round(loops * task_ms / (best * 1000)))


def build(loops: int, fifo: bool):
    import ftdag

    b = ftdag.DagBuilder()
    i = 0

    def prio() -> dict[str, int]:
        nonlocal i
        i += 1
        return {"priority": -i} if fifo else {}

    for k in range(N_INDEPENDENT):
        b.add_task(("independent", k), [], functools.partial(spin, loops, k + 1), **prio())
    b.add_source("seed", 7)
    prev = "seed"
    for k in range(N_CHAIN):
        b.add_task(("chain", k), [prev], functools.partial(link, loops), **prio())
        prev = ("chain", k)
    outputs = [("independent", k) for k in range(N_INDEPENDENT)] + [prev]
    return b.build(), outputs


def makespans(ex, dag, outputs, rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        ex.run(dag, outputs)
        out.append(time.perf_counter() - t0)
    return out


def measure(workers: int, task_ms: float, rounds: int) -> dict:
    import ftdag

    loops = calibrate(task_ms)
    task_s = min(_timed(lambda: spin(loops, 1)) for _ in range(3))
    critical, crit_outputs = build(loops, fifo=False)
    fifo, fifo_outputs = build(loops, fifo=True)
    with ftdag.Executor(max_workers=workers) as ex:
        ex.run(critical, crit_outputs)  # warm-up: starts the workers
        backend = ex.run(critical, ["seed"]).stats.backend
        crit, fifo_times = [], []
        for _ in range(rounds):  # interleaved, so that load changes hit both alike
            crit += makespans(ex, critical, crit_outputs, 1)
            fifo_times += makespans(ex, fifo, fifo_outputs, 1)
    total = (N_INDEPENDENT + N_CHAIN) * task_s
    bound = max(total / workers, N_CHAIN * task_s)
    best_crit, best_fifo = min(crit), min(fifo_times)
    return {
        "schema": "ftdag-order/1",
        "python": sys.version.split()[0],
        "free_threaded": bool(__import__("sysconfig").get_config_var("Py_GIL_DISABLED")),
        "backend": backend,
        "workers": workers,
        "task_ms": task_s * 1000,
        "rounds": rounds,
        "lower_bound_s": bound,
        "critical_path_s": best_crit,
        "critical_path_median_s": statistics.median(crit),
        "fifo_s": best_fifo,
        "fifo_median_s": statistics.median(fifo_times),
        "critical_over_bound": best_crit / bound,
        "critical_over_fifo": best_crit / best_fifo,
    }


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def report(r: dict) -> str:
    return (
        f"order ({r['backend']}, {r['workers']} workers, {N_INDEPENDENT} independent + chain of {N_CHAIN}, "
        f"{r['task_ms']:.1f} ms tasks, best of {r['rounds']}):\n"
        f"  lower bound    {r['lower_bound_s'] * 1000:7.1f} ms\n"
        f"  critical path  {r['critical_path_s'] * 1000:7.1f} ms (median {r['critical_path_median_s'] * 1000:.1f}): "
        f"{r['critical_over_bound']:.3f}x the bound\n"
        f"  FIFO           {r['fifo_s'] * 1000:7.1f} ms (median {r['fifo_median_s'] * 1000:.1f}): "
        f"critical path is {(1 - r['critical_over_fifo']) * 100:.1f}% shorter"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="3 rounds instead of 7")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--task-ms", type=float, default=10.0)
    p.add_argument("--json", default=None, help="write the result to this file")
    args = p.parse_args(argv)
    result = measure(args.workers, args.task_ms, 3 if args.quick else 7)
    print(report(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
