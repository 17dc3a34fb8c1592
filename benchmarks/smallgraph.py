"""The small-graph row: what ftdag threads cost on graphs too small to gain from a second worker.

Two cases, each against a reference runner timed in the same process, in the same run:

``diamond``  a 3-task diamond (:func:`workloads.diamond`): ftdag threads over ftdag sequential,
             the time of one ``Executor.run``; target: at most 2x.
``chain``    the 10,000-task no-op chain (full size): ftdag threads over the plain loop;
             target: at most 1.2x.

Timing (:func:`measure`): after a warm-up, each round times ``runs`` calls of the runner one by
one, then as many of the reference (the next round the other way round), and keeps the median
of each; a runner's time is the best of its ``rounds`` medians, and the ratio is the median over
the rounds of each round's ratio (:attr:`records.SmallGraphResult.ratio`: the two blocks of a
round see the same phase of this machine, the two best times may not).  Outputs are
checked against the plain loop's before and after timing.  ``bench.py --small-graph CASE`` runs
one case in a fresh process; ``compare.py`` does so on every interpreter.

Importing this module runs nothing (the task modules are imported when :func:`measure` runs).
"""

from __future__ import annotations

import statistics
import sysconfig
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from environment import background_load, cpu_snapshot
from records import SmallGraphResult

__all__ = ["CASES", "ROUNDS", "Case", "measure", "record"]

ROUNDS = 5


@dataclass(frozen=True)
class Case:
    name: str
    title: str
    workload: str  # a name for workloads.make, at size "full"
    runner: str
    reference: str
    runs: int  # timed calls of each runner per round
    warmup: int  # untimed calls of each before the first round
    target: float  # runner time over reference time the project aims for, on 3.13t


CASES = {
    "diamond": Case("diamond", "3-task diamond", "diamond", "ftdag-threads", "ftdag-sequential",
                    runs=2000, warmup=200, target=2.0),
    "chain": Case("chain", "no-op chain 10000", "chain", "ftdag-threads", "plain", runs=50, warmup=5, target=1.2),
}


def record(case: Case, *, ok: bool, **fields: Any) -> SmallGraphResult:
    """A result of ``case``; one with ``ok=False`` carries the reason it could not be measured in ``error``."""
    fields.setdefault("runs", case.runs)
    return SmallGraphResult(case=case.name, title=case.title, runner=case.runner, reference=case.reference,
                            target=case.target, ok=ok, **fields)


def _timed(fn: Callable[[], Any], n: int) -> list[float]:
    clock = time.perf_counter
    out = []
    for _ in range(n):
        t0 = clock()
        fn()
        out.append(clock() - t0)
    return out


def measure(case: Case, workers: int, rounds: int = ROUNDS, runs: int | None = None) -> SmallGraphResult:
    """Time ``case`` in this process; a runner that fails or is unavailable gives ``ok=False`` and the reason."""
    import runners
    import workloads

    runs = runs or case.runs
    wl = workloads.make(case.workload, "full", spin_per_ms=1.0)  # no CPU tasks: spin_per_ms is unused
    known: dict[str, Any] = dict(runs=runs, n_tasks=wl.n_tasks, free_threaded_build=_free_threaded())
    made = []
    try:
        expected = runners.run_plain(wl)
        for name in (case.runner, case.reference):
            r = runners.make_runner(name, workers)
            made.append(r)
            r.prepare(wl)
            runners.check_same(name, r.run(wl), expected)  # also starts its pools
        calls = [r.call(wl) for r in made]
        for fn in calls:
            _timed(fn, case.warmup)
        medians: list[list[float]] = [[], []]
        cpu0, start = cpu_snapshot(), time.perf_counter()
        for i in range(rounds):
            for k in ((0, 1) if i % 2 == 0 else (1, 0)):
                medians[k].append(statistics.median(_timed(calls[k], runs)))
        load = background_load(cpu0, cpu_snapshot(), time.perf_counter() - start)
        for name, r in zip((case.runner, case.reference), made):
            runners.check_same(name, r.run(wl), expected)  # warmed up, still right
        result = record(case, ok=True, runner_medians_s=tuple(medians[0]), reference_medians_s=tuple(medians[1]),
                        **load, **known)
    except runners.RunnerUnavailable as exc:
        result = record(case, ok=False, error=str(exc), **known)
    except Exception as exc:  # a runner failure is a result cell, not a crash of the harness
        result = record(case, ok=False, error=f"{type(exc).__name__}: {exc}".strip(), **known)
    for r in made:
        try:
            r.close()
        except Exception as exc:
            if result.ok:
                result = replace(result, ok=False, error=f"close() failed: {type(exc).__name__}: {exc}")
    return replace(result, gil_enabled_after=runners.gil_enabled())


def _free_threaded() -> bool:
    return bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
