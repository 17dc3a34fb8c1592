#!/usr/bin/env python3
"""Where the order of ready tasks matters: critical-path order against insertion (FIFO) order.

    python benchmarks/order.py [--quick] [--rounds N] [--workers 2] [--task-ms 10]
                               [--spin-per-ms X] [--json out.json] [--quiet]

The workload: 64 independent CPU tasks of ``task-ms`` each, added first, then one chain of
16 such tasks, run by ftdag on ``workers`` worker threads (processes on a GIL build: the auto
backend).  With 2 workers the lower bound on the makespan is the larger of the total work over
the workers and the chain: ``max(80 * 10 / 2, 16 * 10) = 400 ms``.

Three numbers, measured in this process, in the same run:

``critical path``  ftdag's default order (``ready_order``: priority, then the longest path
                   to the end, then insertion order): the chain's head starts first and the
                   chain runs on one worker while the other takes the independent tasks.
``FIFO``           the same graph with ``priority=-i`` for the ``i``-th task added, so that
                   tasks start exactly in insertion order: the chain runs last, alone
                   (about ``64 * 10 / 2 + 16 * 10 = 480 ms``).
``lower bound``    the sum of the task times over the workers, or the chain's, if longer, from
                   one task's time measured alone in this process (every task does the same
                   work): the best of 3 timings before the first round and one before each
                   round, since a VM's speed can drift by 20% within seconds.

After an untimed warm-up run of each graph, each of N rounds (3 with ``--quick``, else 7)
times one run of each, alternating which goes first.  Every run's values are checked against
the warm-up's.  Reported: each makespan (best and median of the rounds), critical path over
the lower bound and over FIFO (best times), and whether the targets are met: within 5% of the
bound and at least 10% shorter than FIFO, on free-threaded builds with the thread backend
(elsewhere "n/a").  Each task also returns its own time, so every critical-path round also
gives the bound those in-run times allow (``critical_over_work``): near 1 while the critical
path misses the lower bound means the tasks ran slower than alone (beside each other or beside
other processes), not that the schedule left a worker idle.

CPU task sizes follow ``--spin-per-ms`` (loop rounds per ms of CPU work; default: calibrated
here); ``benchmarks/compare.py`` passes the one it calibrated on the GIL build, so that every
interpreter does the same work.  The tasks spin a 64-bit LCG in functions of this script, which
runs as ``__main__``: its code is not compiled at import with mortal constants (see README: run
from ``.pyc`` files); keep the tasks here.

``--json`` writes the document (schema ``ftdag-order/1``): ``schema``, ``date``, ``python``,
``free_threaded``, ``gil_enabled``, ``loadavg``, ``settings`` and ``result``: a
:class:`records.OrderResult` as its ``to_json()``.  Exit status 0 if the measurement succeeded,
else 1 (the document is written either way).

Importing this module runs nothing (and imports no ftdag).
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import sysconfig
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from environment import background_load, cpu_snapshot, ftdag_importable, loadavg, now_iso  # noqa: E402
from records import OrderResult  # noqa: E402
from report import fmt_time, fmt_x, order_table  # noqa: E402

__all__ = ["N_CHAIN", "N_INDEPENDENT", "ROUNDS", "SCHEMA", "build", "calibrate", "measure"]

SCHEMA = "ftdag-order/1"
ROUNDS = {"quick": 3, "full": 7}
MASK64 = (1 << 64) - 1
N_INDEPENDENT = 64
N_CHAIN = 16
SEED = (7, 0.0)  # the chain's source, shaped like a task's value


# -- the tasks (run as __main__: see the docstring) ---------------------------------------------


def spin(loops: int, seed: int) -> int:
    x = seed
    for _ in range(loops):
        x = (x * 6364136223846793005 + 1442695040888963407) & MASK64
    return x


def independent(loops: int, seed: int) -> tuple[int, float]:
    """One independent task: its value and its own time in seconds."""
    t0 = time.perf_counter()
    x = spin(loops, seed)
    return x, time.perf_counter() - t0


def link(loops: int, prev: tuple[int, float]) -> tuple[int, float]:
    """One link of the chain, seeded by the previous one's value: its value and its own time."""
    t0 = time.perf_counter()
    x = spin(loops, prev[0])
    return x, time.perf_counter() - t0


# -- measuring -------------------------------------------------------------------------------


def calibrate() -> float:
    """Rounds of the LCG per ms here, when no ``--spin-per-ms`` is given: ``workloads.calibrate``
    (the same loop as this script's ``spin``, measured the same way as for the main job)."""
    from workloads import calibrate as measure

    return measure()


def _chain_key(k: int) -> tuple[str, int]:
    return ("chain", k)


def build(loops: int, fifo: bool):
    """The graph (independent tasks first, then the chain) and its outputs: every task, so that each
    task's own time comes back.  ``fifo``: ``priority=-i`` for the ``i``-th task added."""
    import ftdag

    b = ftdag.DagBuilder()
    added = 0

    def prio() -> dict[str, int]:
        nonlocal added
        added += 1
        return {"priority": -added} if fifo else {}

    for k in range(N_INDEPENDENT):
        b.add_task(("independent", k), [], functools.partial(independent, loops, k + 1), **prio())
    b.add_source("seed", SEED)
    prev: Any = "seed"
    for k in range(N_CHAIN):
        b.add_task(_chain_key(k), [prev], functools.partial(link, loops), **prio())
        prev = _chain_key(k)
    outputs = [("independent", k) for k in range(N_INDEPENDENT)] + [_chain_key(k) for k in range(N_CHAIN)]
    return b.build(), outputs


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    res = fn()
    return res, time.perf_counter() - t0


def measure(workers: int, task_ms: float, rounds: int, spin_per_ms: float,
            progress: Callable[[str], None] = lambda s: None) -> OrderResult:
    """Time the graph in critical-path and in FIFO order, ``rounds`` times each, in this process.

    Never raises for a failing run: the result then has ``ok=False`` and the reason.
    """
    loops = max(1, round(task_ms * spin_per_ms))
    known: dict[str, Any] = dict(workers=workers, task_ms=task_ms, loops=loops, n_independent=N_INDEPENDENT,
                                 n_chain=N_CHAIN, free_threaded_build=bool(sysconfig.get_config_var("Py_GIL_DISABLED")))
    times: dict[str, list[float]] = {"alone": [], "critical": [], "fifo": [], "work": [], "chain": []}
    result: OrderResult
    try:
        import ftdag

        def alone(n: int) -> None:
            times["alone"].extend(_timed(lambda: spin(loops, 1))[1] for _ in range(n))

        graphs = {"critical": build(loops, fifo=False), "fifo": build(loops, fifo=True)}
        chain_keys = {_chain_key(k) for k in range(N_CHAIN)}
        with ftdag.Executor(max_workers=workers) as ex:
            warm = {which: ex.run(dag, outputs) for which, (dag, outputs) in graphs.items()}  # also starts the pool
            reference = {k: v[0] for k, v in warm["critical"].items()}
            if {k: v[0] for k, v in warm["fifo"].items()} != reference:
                raise RuntimeError("the FIFO graph returned other values than the critical-path one")
            backend = warm["critical"].stats.backend
            alone(3)
            cpu0, start = cpu_snapshot(), time.perf_counter()
            for n in range(rounds):  # interleaved, so that load changes hit both alike
                alone(1)
                for which in ("critical", "fifo") if n % 2 == 0 else ("fifo", "critical"):
                    dag, outputs = graphs[which]
                    res, dt = _timed(lambda: ex.run(dag, outputs))
                    if {k: v[0] for k, v in res.items()} != reference:
                        raise RuntimeError(f"a {which} run returned other values than the warm-up")
                    times[which].append(dt)
                    if which == "critical":
                        times["work"].append(sum(v[1] for v in res.values()))
                        times["chain"].append(sum(v[1] for k, v in res.items() if k in chain_keys))
                progress(f"round {n + 1}/{rounds}: critical path {fmt_time(times['critical'][-1])}, "
                         f"FIFO {fmt_time(times['fifo'][-1])}")
            load = background_load(cpu0, cpu_snapshot(), time.perf_counter() - start)
        result = OrderResult(ok=True, backend=backend, task_alone_s=tuple(times["alone"]), critical_s=tuple(times["critical"]),
                             fifo_s=tuple(times["fifo"]), critical_work_s=tuple(times["work"]),
                             critical_chain_s=tuple(times["chain"]), **load, **known)
    except Exception as exc:  # a failing run is a result cell, not a crash of the harness
        result = OrderResult(ok=False, error=f"{type(exc).__name__}: {exc}".strip(), **known)
    return replace(result, gil_enabled_after=getattr(sys, "_is_gil_enabled", lambda: True)())


def summary(r: OrderResult) -> str:
    """What a run by hand prints above the table."""
    if not r.ok:
        return f"order: {r.error}"
    return (f"order ({r.backend}, {r.workers} workers, {r.n_independent} independent + chain of {r.n_chain}, "
            f"{fmt_time(r.task_s)} tasks, best of {r.rounds}): lower bound {fmt_time(r.lower_bound_s)}; "
            f"critical path {fmt_time(r.critical_best_s)} ({fmt_x(r.critical_over_bound)} the bound, "
            f"{fmt_x(r.critical_over_work)} the bound from its tasks' own times in the run); FIFO "
            f"{fmt_time(r.fifo_best_s)}; critical path {r.shorter_than_fifo:.1%} shorter")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help=f"{ROUNDS['quick']} rounds instead of {ROUNDS['full']}")
    p.add_argument("--rounds", type=int, default=None, help="timed rounds (default: the mode's)")
    p.add_argument("--workers", type=int, default=2, help="the executor's max_workers (default 2)")
    p.add_argument("--task-ms", type=float, default=10.0, help="CPU work of one task in ms (default 10)")
    p.add_argument("--spin-per-ms", type=float, default=None,
                   help="loop rounds per ms of CPU work (default: calibrate in this interpreter)")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument("--quiet", action="store_true", help="print no progress and no table")
    args = p.parse_args(argv)
    args.mode = "quick" if args.quick else "full"
    args.rounds = ROUNDS[args.mode] if args.rounds is None else args.rounds
    if args.rounds < 1 or args.workers < 1:
        p.error("--rounds and --workers must be >= 1")
    if not args.task_ms > 0 or (args.spin_per_ms is not None and not args.spin_per_ms > 0):
        p.error("--task-ms and --spin-per-ms must be > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ftdag_importable()  # (the task code lives in this script, ``__main__``)
    say = (lambda s: None) if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True))
    spin_per_ms = args.spin_per_ms or calibrate()
    say(f"order ({args.mode} mode): {N_INDEPENDENT} independent tasks then a chain of {N_CHAIN}, "
        f"{args.task_ms:g} ms each ({spin_per_ms:.0f} loop rounds per ms"
        f"{'' if args.spin_per_ms else ', calibrated here'}), {args.workers} workers, {args.rounds} rounds")
    ft = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    label = f"{sys.version_info.major}.{sys.version_info.minor}{'t' if ft else ''}"
    result = replace(measure(args.workers, args.task_ms, args.rounds, spin_per_ms, say), interpreter=label)
    if not args.quiet:
        print(summary(result))
        print(order_table([result]))
    if args.json:
        doc = {
            "schema": SCHEMA, "date": now_iso(), "python": sys.version, "free_threaded": ft,
            "gil_enabled": result.gil_enabled_after, "loadavg": loadavg(),
            "settings": {"mode": args.mode, "rounds": args.rounds, "workers": args.workers, "task_ms": args.task_ms,
                         "spin_per_ms": spin_per_ms, "calibrated_here": args.spin_per_ms is None},
            "result": result.to_json(),
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=1, default=repr) + "\n")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
