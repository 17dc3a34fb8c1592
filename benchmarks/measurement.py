"""Measuring: the ``bench.py`` children the comparison starts, one fresh process per measurement.

:func:`calibrate`        CPU task sizes, once, on one interpreter (the same work everywhere).
:func:`run_child`        one (workload, runner) measurement as ``bench.py --in-process``.
:func:`run_small_graph`  one small-graph case as ``bench.py --small-graph``.
:func:`run_store_overhead`  ``store_overhead.py``: what a result store costs per record.
:func:`run_resume`       ``resume_bench.py``: the rollup's fully cached re-run against its first run.
:func:`run_order`        ``order.py``: critical-path order against insertion (FIFO) order.
:func:`run_dask_get`     ``dask_get.py``: ``ftdag.get`` against dask's schedulers.
:func:`run_distributed`  ``distributed_bench.py``: the distributed backend against threads and processes.
:func:`run_scale`        ``scale.py``: build, run and memory per node of one size of the random DAG.
:class:`Measurer`        every measurement of the comparison in order (the table, the small-graph
                         row, the break-even sweep, the result store's overhead, the cached re-run,
                         the ready order, the dask benchmarks, the scale),
                         with progress, a second attempt for a parallel runner timed on a busy
                         machine, and a clean stop on Ctrl-C.

Importing this module runs nothing.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from environment import Interpreter, loadavg, say
from records import (
    DaskGetResult,
    DistributedResult,
    Measurement,
    OrderResult,
    ResumeResult,
    ScaleResult,
    SmallGraphResult,
    StoreOverhead,
    with_interpreter,
)
from report import LABELS, dask_get_targets_cell, error_cell, fmt_time, fmt_x, order_targets_cell, size_cell

HERE = Path(__file__).resolve().parent
R = TypeVar("R", Measurement, SmallGraphResult, StoreOverhead, ResumeResult, OrderResult, DaskGetResult,
            DistributedResult, ScaleResult)


@dataclass(frozen=True)
class Mode:
    """How long the comparison measures; ``retries``: how many measurements taken on a busy machine
    (see :attr:`records.Measurement.noisy`) may be redone."""

    name: str
    size: str
    repeat: int
    budget: float
    timeout: float
    retries: int


MODES = {
    "quick": Mode("quick", "quick", repeat=5, budget=1.5, timeout=90, retries=12),
    "full": Mode("full", "full", repeat=7, budget=20.0, timeout=900, retries=72),
}
SWEEP_US = {"quick": (10, 50, 200, 1000), "full": (5, 10, 20, 50, 100, 200, 500, 1000)}
SWEEP_WORK_US = 200_000  # each point runs about this much CPU work, split into tasks of one size


def _run_script(script: str, python: str, argv: list[str], timeout: float | None,
                env: dict[str, str] | None) -> tuple[dict[str, Any] | None, str | None]:
    """Run ``python SCRIPT --quiet ARGV --json F`` (a script of this folder); (its document, None) or
    (None, why not).  The document counts even if the script exits non-zero: it says what failed."""
    with tempfile.TemporaryDirectory(prefix="ftdag-bench-") as tmp:
        out = Path(tmp) / "m.json"
        try:
            proc = subprocess.run([python, str(HERE / script), "--quiet", *argv, "--json", str(out)],
                                  stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            return None, f"timed out after {timeout:g} s"
        except OSError as exc:
            return None, f"could not start {python}: {exc}"
        if not out.exists():
            tail = (proc.stderr or proc.stdout or "").strip().splitlines()
            return None, f"exit {proc.returncode}" + (f": {tail[-1][:200]}" if tail else "")
        try:
            return dict(json.loads(out.read_text()), returncode=proc.returncode), None
        except ValueError as exc:
            return None, f"unreadable result ({type(exc).__name__})"


def _run_bench(python: str, argv: list[str], timeout: float | None,
               env: dict[str, str] | None) -> tuple[dict[str, Any] | None, str | None]:
    """Run ``python bench.py --quiet ARGV --json F``; (its document, None) or (None, why not)."""
    return _run_script("bench.py", python, argv, timeout, env)


def calibrate(python: str, env: dict[str, str] | None = None) -> float | None:
    """Loop rounds per ms of CPU work in ``python`` (``bench.py --calibrate``); None if it fails."""
    try:
        out = subprocess.run([python, str(HERE / "bench.py"), "--calibrate"], capture_output=True, text=True,
                             stdin=subprocess.DEVNULL, env=env, timeout=120, check=True).stdout
        return float(out.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def run_child(python: str, workload: str, runner: str, *, size: str, workers: int, repeat: int,
              budget: float | None, spin_per_ms: float, timeout: float | None,
              env: dict[str, str] | None = None, params: dict[str, float] | None = None) -> Measurement:
    """Run one measurement as ``python bench.py --in-process`` and return its record.

    Never raises for a failing child: a crash, a timeout or unreadable output becomes a record
    with ``ok=False`` and the reason in ``error``.
    """
    argv = ["--in-process", "--workload", workload, "--runner", runner, "--size", size, "--workers", str(workers),
            "--repeat", str(repeat), "--spin-per-ms", repr(spin_per_ms)]
    if budget is not None:
        argv += ["--budget", str(budget)]
    for name, value in (params or {}).items():
        argv += ["--param", f"{name}={value}"]
    doc, reason = _run_bench(python, argv, timeout, env)
    if doc is not None:
        try:
            return replace(Measurement.from_json(doc["measurements"][0]),
                           child={"interpreter": doc["interpreter"], "returncode": doc["returncode"]})
        except (KeyError, IndexError, TypeError) as exc:
            reason = f"unreadable result ({type(exc).__name__})"
    return Measurement.failed(workload, runner, str(reason), params=dict(params or {}), loadavg=loadavg())


def run_small_graph(python: str, case: str, *, workers: int, rounds: int | None = None, runs: int | None = None,
                    timeout: float | None, env: dict[str, str] | None = None) -> SmallGraphResult:
    """Run one small-graph case as ``python bench.py --small-graph CASE``; never raises for a failing child."""
    import smallgraph

    argv = ["--small-graph", case, "--workers", str(workers)]
    if rounds is not None:
        argv += ["--repeat", str(rounds)]
    if runs is not None:
        argv += ["--runs", str(runs)]
    doc, reason = _run_bench(python, argv, timeout, env)
    if doc is not None:
        try:
            return SmallGraphResult.from_json(doc["small_graph"][0])
        except (KeyError, IndexError, TypeError) as exc:
            reason = f"unreadable result ({type(exc).__name__})"
    return smallgraph.record(smallgraph.CASES[case], ok=False, error=str(reason))


def run_store_overhead(python: str, *, quick: bool, where: Path, timeout: float | None,
                       env: dict[str, str] | None = None) -> StoreOverhead:
    """Run ``python store_overhead.py [--quick] --dir WHERE`` and return its record; never raises
    for a failing child (a crash, a timeout, unreadable output: ``ok=False`` and the reason)."""
    where.mkdir(parents=True, exist_ok=True)
    argv = ["--dir", str(where)] + (["--quick"] if quick else [])
    doc, reason = _run_script("store_overhead.py", python, argv, timeout, env)
    if doc is not None:
        try:
            return StoreOverhead.from_document(doc)
        except (KeyError, TypeError, ValueError) as exc:
            reason = f"unreadable result ({type(exc).__name__})"
    return StoreOverhead(ok=False, error=str(reason), mode="quick" if quick else "full")


def run_resume(python: str, *, size: str, quick: bool, rounds: int | None, workers: int, spin_per_ms: float,
               where: Path, timeout: float | None, env: dict[str, str] | None = None) -> ResumeResult:
    """Run ``python resume_bench.py --size SIZE ... --dir WHERE`` and return its record; never raises
    for a failing child.  A measurement that failed inside the child (a run raised, or a check did
    not hold) comes back as the child's own record, with ``ok=False`` and its reason."""
    where.mkdir(parents=True, exist_ok=True)
    argv = ["--size", size, "--workers", str(workers), "--spin-per-ms", repr(spin_per_ms), "--dir", str(where)]
    argv += (["--quick"] if quick else []) + (["--rounds", str(rounds)] if rounds else [])
    doc, reason = _run_script("resume_bench.py", python, argv, timeout, env)
    if doc is not None:
        try:
            return ResumeResult.from_json(doc["result"])
        except (KeyError, TypeError) as exc:
            reason = f"unreadable result ({type(exc).__name__})"
    return ResumeResult(size=size, ok=False, error=str(reason), workers=workers)


def run_order(python: str, *, rounds: int | None, workers: int, spin_per_ms: float, task_ms: float | None = None,
              timeout: float | None, env: dict[str, str] | None = None) -> OrderResult:
    """Run ``python order.py --rounds ROUNDS --workers W --spin-per-ms X`` and return its record; never
    raises for a failing child.  A run that failed inside the child comes back as the child's own
    record, with ``ok=False`` and its reason."""
    argv = ["--workers", str(workers), "--spin-per-ms", repr(spin_per_ms)]
    argv += (["--rounds", str(rounds)] if rounds else []) + (["--task-ms", repr(task_ms)] if task_ms else [])
    doc, reason = _run_script("order.py", python, argv, timeout, env)
    if doc is not None:
        try:
            return OrderResult.from_json(doc["result"])
        except (KeyError, TypeError) as exc:
            reason = f"unreadable result ({type(exc).__name__})"
    return OrderResult(ok=False, error=str(reason), workers=workers, task_ms=task_ms)


def run_dask_get(python: str, *, quick: bool, workers: int, backend: str = "auto", timeout: float | None,
                 env: dict[str, str] | None = None, extra: Sequence[str] = ()) -> DaskGetResult:
    """Run ``python dask_get.py [--quick] --workers W --ftdag-backend BACKEND [EXTRA]`` and return its
    record; never raises for a failing child (a crash, a timeout, unreadable output: ``ok=False`` and the
    reason).  ``extra``: further options (the tests' ``--divisor``)."""
    argv = ["--workers", str(workers), "--ftdag-backend", backend] + (["--quick"] if quick else []) + list(extra)
    doc, reason = _run_script("dask_get.py", python, argv, timeout, env)
    if doc is not None:
        try:
            return DaskGetResult.from_document(doc, requested_backend=backend)
        except (KeyError, TypeError, ValueError) as exc:
            reason = f"unreadable result ({type(exc).__name__})"
    return DaskGetResult(ok=False, error=str(reason), mode="quick" if quick else "full", requested_backend=backend,
                         workers=workers)


def run_distributed(python: str, *, quick: bool, workers: int, spin_per_ms: float, timeout: float | None,
                    env: dict[str, str] | None = None, extra: Sequence[str] = ()) -> DistributedResult:
    """Run ``python distributed_bench.py [--quick] --workers W --spin-per-ms X [EXTRA]`` and return its
    record; never raises for a failing child.  A backend that failed inside the child (its warm-up
    raised) comes back as an error in its rows.  ``extra``: further options (the tests' ``--chain``)."""
    argv = ["--workers", str(workers), "--spin-per-ms", repr(spin_per_ms)] + (["--quick"] if quick else []) + list(extra)
    doc, reason = _run_script("distributed_bench.py", python, argv, timeout, env)
    if doc is not None:
        try:
            return DistributedResult.from_document(doc)
        except (KeyError, TypeError, ValueError) as exc:
            reason = f"unreadable result ({type(exc).__name__})"
    return DistributedResult(ok=False, error=str(reason), mode="quick" if quick else "full", workers=workers)


def run_scale(python: str, n: int, *, mode: str, workers: int, timeout: float | None = None,
              env: dict[str, str] | None = None) -> ScaleResult:
    """Both children of ``scale.py`` for ``n`` nodes (timing, then memory), with the mode's rounds and
    size limits; never raises for a failing child.  ``timeout``: per child (default: ``scale.py``'s,
    which grows with ``n``)."""
    import scale

    return scale.measure_size(python, n, workers=workers, rounds=scale.rounds_for(n, mode),
                              processes_up_to=scale.PROCESSES_UP_TO[mode], first_threads_up_to=scale.FIRST_THREADS_UP_TO,
                              memory_up_to=scale.MEMORY_UP_TO[mode], timeout=timeout, env=env)


def sweep_runners(interp: Interpreter) -> list[str]:
    """ftdag's parallel backends worth sweeping on a build: threads where the GIL is off; on a
    GIL build processes (the default there) and threads (for comparison)."""
    return ["ftdag-threads"] if interp.ft else ["ftdag-processes", "ftdag-threads"]


def store_interpreter(interps: Sequence[Interpreter]) -> Interpreter | None:
    """Where the result store's overhead is measured: 3.13t (the build ftdag is for), else the first
    free-threaded build, else the first interpreter."""
    return (next((i for i in interps if i.ft and i.label == "3.13t"), None)
            or next((i for i in interps if i.ft), None) or next(iter(interps), None))


def order_interpreters(interps: Sequence[Interpreter]) -> list[Interpreter]:
    """Every interpreter, 3.13t first (the build the targets are for), then the other free-threaded
    builds, then the GIL ones."""
    return sorted(interps, key=lambda i: (i.label != "3.13t", not i.ft))


def dask_get_backends(interp: Interpreter) -> list[str]:
    """ftdag's backends for ``dask_get.py`` on a build: ``ftdag.get``'s default (``auto``) everywhere;
    on a GIL build, where ``auto`` means processes, threads as well, so that both are reported."""
    return ["auto"] if interp.ft else ["auto", "threads"]


def missing_packages(interp: Interpreter, *packages: str) -> str | None:
    """Why ``interp``'s bench venv cannot run a benchmark that needs ``packages`` (None if it can):
    a package that could not be installed costs only the cells that need it."""
    have = interp.bench.packages if interp.bench else {}
    missing = [p for p in packages if not have.get(p)]
    if not missing:
        return None
    where = interp.bench.venv if interp.bench else "no bench venv"
    return f"{', '.join(missing)} not installed in the bench venv ({where})"


def _noise(rec: Measurement | SmallGraphResult | StoreOverhead | ResumeResult | OrderResult | DaskGetResult
           | DistributedResult | ScaleResult) -> str:
    return f"other processes used {rec.load:.2f} CPU"


class Measurer:
    """Every measurement of one comparison, each in a fresh child (``bench.py``, ``store_overhead.py``,
    ``resume_bench.py``, ``order.py``, ``dask_get.py``, ``distributed_bench.py``, ``scale.py``) of an
    interpreter's venv."""

    def __init__(self, mode: Mode, workers: int, spin_per_ms: float, env: dict[str, str],
                 scratch: Path = HERE / "results") -> None:
        """``scratch``: where the store benchmarks make their temporary directories (under the
        repository by default, on its disk: ``/tmp`` may be tmpfs, where writes cost nothing)."""
        self.mode, self.workers, self.spin_per_ms, self.env = mode, workers, spin_per_ms, env
        self.scratch = scratch
        self.retries_left = mode.retries
        self.interrupted = False

    def table(self, interps: Sequence[Interpreter], workloads: Sequence[str],
              runners: Sequence[str]) -> list[Measurement]:
        """Each runner on each workload on each interpreter, beside the plain loop in its process."""
        def measure(w, interp, r):
            return run_child(interp.bench.python, w, r, size=self.mode.size, workers=self.workers,
                             repeat=self.mode.repeat, budget=self.mode.budget, spin_per_ms=self.spin_per_ms,
                             timeout=self.mode.timeout, env=self.env)

        def show(rec, interp):
            flag = "  GIL ON⚠" if interp.ft and rec.gil_enabled_after else ""
            return f"{fmt_time(rec.runner_best_s)} ({fmt_x(rec.speedup_best)} plain){flag}"

        plan = [(w, i, r) for w in workloads for i in interps for r in runners]
        return self._each("", plan, lambda w, i, r: f"{i.label} · {LABELS.get(w, w)} · {r}", measure, show,
                          retry=lambda w, i, r: r != "ftdag-sequential")

    def small_graphs(self, interps: Sequence[Interpreter]) -> list[SmallGraphResult]:
        """Every small-graph case, on the free-threaded builds first, then on the GIL build for reference."""
        import smallgraph

        def measure(case, interp):
            return run_small_graph(interp.bench.python, case, workers=self.workers, timeout=self.mode.timeout,
                                   env=self.env)

        def show(rec, interp):
            return (f"{fmt_time(rec.runner_s)} vs {fmt_time(rec.reference_s)}: {fmt_x(rec.ratio)} per round, "
                    f"{fmt_x(rec.best_ratio)} on the best times (target ≤ {rec.target:g}× on free-threaded builds)")

        plan = [(c, i) for c in smallgraph.CASES for i in sorted(interps, key=lambda i: not i.ft)]
        return self._each("small graph ", plan, lambda c, i: f"{i.label} · {smallgraph.CASES[c].title}", measure,
                          show, retry=lambda c, i: True)

    def sweep(self, interps: Sequence[Interpreter]) -> list[Measurement]:
        """The heavy fan-out workload at several task sizes: from what size does ftdag beat the plain loop?"""
        def tasks(us):
            return max(64, min(4096, SWEEP_WORK_US // us))

        def measure(interp, r, us):
            return run_child(interp.bench.python, "heavy", r, size=self.mode.size, workers=self.workers,
                             repeat=self.mode.repeat, budget=self.mode.budget, spin_per_ms=self.spin_per_ms,
                             timeout=self.mode.timeout, env=self.env, params={"n": tasks(us), "task_us": us})

        plan = [(i, r, us) for i in interps for r in sweep_runners(i) for us in SWEEP_US[self.mode.size]]
        return self._each("sweep ", plan, lambda i, r, us: f"{i.label} · {tasks(us)} tasks of {us} µs · {r}",
                          measure, lambda rec, i: f"{fmt_x(rec.speedup_best)} plain", retry=lambda *_: False)

    def store_overhead(self, interp: Interpreter) -> list[StoreOverhead]:
        """``store_overhead.py`` once, on ``interp`` (see :func:`store_interpreter`)."""
        def measure(interp):
            return run_store_overhead(interp.bench.python, quick=self.mode.name == "quick", where=self.scratch,
                                      timeout=self.mode.timeout, env=self.env)

        def show(rec, interp):
            cells = [f"{r.label} {size_cell(r.size)} {r.total_us:.0f} µs ({fmt_x(r.ratio)} pickle)"
                     for r in rec.rows if r.durability == "atomic"]
            return f"{len(rec.rows)} rows, records on {rec.filesystem}; " + ", ".join(cells)

        return self._each("store ", [(interp,)], lambda i: f"{i.label} · result store overhead per record",
                          measure, show, retry=lambda i: False)

    def resume(self, interps: Sequence[Interpreter]) -> list[ResumeResult]:
        """``resume_bench.py`` on every interpreter, the free-threaded builds first."""
        def measure(interp):
            return run_resume(interp.bench.python, size=self.mode.size, quick=self.mode.name == "quick",
                              rounds=self.mode.repeat, workers=self.workers, spin_per_ms=self.spin_per_ms,
                              where=self.scratch, timeout=self.mode.timeout, env=self.env)

        def show(rec, interp):
            return (f"{rec.backend}: first run {fmt_time(rec.no_store_best_s)} without a store, "
                    f"{fmt_time(rec.with_store_best_s)} with one ({fmt_x(rec.store_ratio)}); cached re-run "
                    f"{fmt_time(rec.cached_best_s)} ({fmt_x(rec.cached_ratio)} the first run)")

        plan = [(i,) for i in sorted(interps, key=lambda i: not i.ft)]
        return self._each("resume ", plan, lambda i: f"{i.label} · cached re-run of the rollup", measure, show,
                          retry=lambda i: True)

    def order(self, interps: Sequence[Interpreter]) -> list[OrderResult]:
        """``order.py`` on every interpreter, 3.13t first (see :func:`order_interpreters`)."""
        def measure(interp):
            return run_order(interp.bench.python, rounds=self.mode.repeat, workers=self.workers,
                             spin_per_ms=self.spin_per_ms, timeout=self.mode.timeout, env=self.env)

        def show(rec, interp):
            return (f"{rec.backend}: critical path {fmt_time(rec.critical_best_s)} ({fmt_x(rec.critical_over_bound)} "
                    f"the bound {fmt_time(rec.lower_bound_s)}), FIFO {fmt_time(rec.fifo_best_s)}; targets "
                    f"{order_targets_cell(rec)}")

        plan = [(i,) for i in order_interpreters(interps)]
        return self._each("order ", plan, lambda i: f"{i.label} · ready order, critical path against FIFO", measure,
                          show, retry=lambda i: True)

    def dask_get(self, interps: Sequence[Interpreter]) -> list[DaskGetResult]:
        """``dask_get.py`` on every interpreter, 3.13t first, with ftdag's default backend, and on GIL
        builds with threads too (see :func:`dask_get_backends`).  Twice the mode's timeout: one child
        measures three schedulers on three workloads."""
        def measure(interp, backend):
            missing = missing_packages(interp, "dask")
            if missing:
                return DaskGetResult(ok=False, error=missing, mode=self.mode.name, requested_backend=backend)
            return run_dask_get(interp.bench.python, quick=self.mode.name == "quick", workers=self.workers,
                                backend=backend, timeout=2 * self.mode.timeout, env=self.env)

        def show(rec, interp):
            parts = [f"{w} {fmt_x(rec.ratio(w))}" + (f" [{dask_get_targets_cell(rec, w)}]" if rec.target(w) else "")
                     for w in rec.workloads]
            return f"ftdag on {rec.ftdag_backend} over dask.threaded.get: " + ", ".join(parts)

        plan = [(i, b) for i in order_interpreters(interps) for b in dask_get_backends(i)]
        return self._each("dask ", plan, lambda i, b: f"{i.label} · ftdag.get ({b}) against dask's schedulers",
                          measure, show, retry=lambda i, b: True)

    def distributed(self, interps: Sequence[Interpreter]) -> list[DistributedResult]:
        """``distributed_bench.py`` on every interpreter, 3.13t first; twice the mode's timeout (it starts
        a cluster and two pools)."""
        def measure(interp):
            missing = missing_packages(interp, "distributed")
            if missing:
                return DistributedResult(ok=False, error=missing, mode=self.mode.name, workers=self.workers)
            return run_distributed(interp.bench.python, quick=self.mode.name == "quick", workers=self.workers,
                                   spin_per_ms=self.spin_per_ms, timeout=2 * self.mode.timeout, env=self.env)

        def show(rec, interp):
            parts = []
            for w in rec.workloads:
                d = rec.row(w, "distributed")
                parts.append(f"{w} {fmt_time(d.best_s if d else None)} ({fmt_x(rec.distributed_over(w, 'threads'))} "
                             f"threads, {fmt_x(rec.distributed_over(w, 'processes'))} processes)")
            return "distributed: " + ", ".join(parts)

        plan = [(i,) for i in order_interpreters(interps)]
        return self._each("distributed ", plan, lambda i: f"{i.label} · distributed backend against threads and "
                          "processes", measure, show, retry=lambda i: True)

    def scale(self, interps: Sequence[Interpreter]) -> list[ScaleResult]:
        """``scale.py`` at each of the mode's sizes, on every interpreter, 3.13t first; no second attempt
        on a busy machine (one size takes up to minutes: noisy ones are marked instead)."""
        import scale

        def measure(interp, n):
            return run_scale(interp.bench.python, n, mode=self.mode.name, workers=self.workers, env=self.env)

        plan = [(i, n) for i in order_interpreters(interps) for n in scale.SIZES[self.mode.name]]
        return self._each("scale ", plan, lambda i, n: f"{i.label} · random DAG of {n:,} nodes", measure,
                          lambda rec, i: scale.summary(rec), retry=lambda i, n: False)

    def _each(self, tag: str, plan: list[tuple], describe: Callable[..., str], measure: Callable[..., R],
              show: Callable[[R, Interpreter], str], retry: Callable[..., bool]) -> list[R]:
        """Measure each item of ``plan`` (whose interpreter is its ``Interpreter`` element), printing
        progress; after Ctrl-C, return what was measured and skip every later phase."""
        results: list[R] = []
        if self.interrupted:
            return results
        try:
            for n, item in enumerate(plan, 1):
                interp = next(x for x in item if isinstance(x, Interpreter))
                prefix = f"[{tag}{n}/{len(plan)}] {describe(*item)}"
                print(prefix, end="", flush=True)
                rec, discarded = self._attempts(lambda: measure(*item), retry(*item), prefix)
                results.append(with_interpreter(rec, interp.label, discarded))
                noisy = f"  † {_noise(rec)}" if rec.noisy else ""
                say(f"  {show(rec, interp)}{noisy}" if rec.ok else f"  {error_cell(rec.error)}")
        except KeyboardInterrupt:
            say(f"\ninterrupted: writing the {len(results)} {tag}measurements done so far")
            self.interrupted = True
        return results

    def _attempts(self, measure: Callable[[], R], retry: bool, prefix: str) -> tuple[R, list[R]]:
        """Measure; if a parallel runner was timed while other processes took CPU, once more (while
        the mode's retries last), keeping the quieter attempt.  Returns (kept, discarded)."""
        rec = measure()
        if not (retry and rec.ok and rec.noisy and self.retries_left > 0):
            return rec, []
        self.retries_left -= 1
        say(f"  busy machine ({_noise(rec)}): measuring again")
        print(" " * len(prefix), end="", flush=True)
        again = measure()
        if again.noisy and rec.load < again.load:
            return rec, [again]
        return again, [rec]
