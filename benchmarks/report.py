"""The comparison's report: the table of every measurement, the small-graph row, the break-even
sweep, the result store's overhead, the cached re-run, the ready order and the dask benchmarks (``ftdag.get``
against dask's schedulers, the distributed backend against threads and processes), as ``results.md`` and
``results.json``; and the cell formatting ``bench.py`` shares.

A :class:`Comparison` holds everything one run of ``compare.py`` measured; its :attr:`rows` are
the table (speed-ups from :class:`records.Reference`, computed nowhere else), :func:`markdown_report`
renders it and :meth:`Comparison.to_json` is ``results.json`` (schema ``ftdag-compare/1``:
``schema``, ``date``, ``mode``, ``duration_s``, ``machine``, ``interrupted``, ``interpreters``,
``settings``, ``reference``, ``measurements``, ``sweep``, ``breakeven``, ``small_graph``, ``summary``,
``store_overhead``: :class:`records.StoreOverhead` records, ``resume``: :class:`records.ResumeResult`
records, ``order``: :class:`records.OrderResult` records, ``dask_get``: :class:`records.DaskGetResult`
records, ``distributed``: :class:`records.DistributedResult` records, ``scale``: :class:`records.ScaleResult`
records).

Importing this module runs nothing.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any

from environment import Interpreter, build_caveat
from records import (
    DaskGetResult,
    DistributedResult,
    Measurement,
    OrderResult,
    Reference,
    ResumeResult,
    Row,
    ScaleResult,
    SmallGraphResult,
    StoreOverhead,
)

SCHEMA = "ftdag-compare/1"
LABELS = {
    "chain": "no-op chain",
    "heavy": "heavy fan-out",
    "fine": "fine-grained",
    "rollup": "rollup",
    "layered": "random layered",
    "gil-release": "GIL-releasing",
}
SWEEP_FASTER = 1.05  # a speed-up counts as "faster than plain" from here: below it is noise
CHART_LINK = "![speed-up over the plain loop](speedup.png)"


# -- cells -------------------------------------------------------------------------------------


def fmt_time(s: float | None) -> str:
    if s is None or not math.isfinite(s):
        return "—"
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.1f} ms"
    return f"{s * 1e6:.0f} µs" if s >= 1e-5 else f"{s * 1e6:.1f} µs"


def fmt_x(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x:.2g}×" if x < 0.095 else f"{x:.2f}×"


def gil_cell(free_threaded_build: bool | None, gil_enabled_after: bool | None) -> str:
    if gil_enabled_after is None:
        return "?"
    if free_threaded_build and gil_enabled_after:
        return "**ON⚠**"  # a free-threaded build whose GIL got re-enabled: parallel numbers are void
    return "on" if gil_enabled_after else "off"


def error_cell(error: str | None) -> str:
    return "n/a: " + str(error or "failed").replace("|", "/").replace("\n", " ")[:160]


def size_cell(n: int) -> str:
    """A record size: ``1 KB``, ``1 MB``, else bytes."""
    for unit, scale in (("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} B"


def markdown_table(header: list[str], rows: list[list[str]], left: int = 2) -> str:
    """A markdown table; the first ``left`` columns are aligned left, the others (numbers) right."""
    aligns = ["---" if i < left else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(aligns) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


# -- the comparison ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    workers: int
    size: str
    repeat: int
    budget_s: float
    timeout_s: float
    noisy_retries: int
    spin_per_ms: float
    calibrated_on: str
    workloads: tuple[str, ...]
    runners: tuple[str, ...]
    sweep_work_us: int  # CPU work of one break-even sweep point, split into tasks of one size


@dataclass(frozen=True)
class BreakEven:
    """One (interpreter, runner) of the sweep: speed-up at each task size, and the smallest size from
    which it and every larger measured size beat the plain loop by ``SWEEP_FASTER`` (None if none)."""

    interpreter: str
    runner: str
    speedup_by_task_us: dict[float, float | None]
    breakeven_us: float | None


@dataclass(frozen=True)
class Comparison:
    """Everything one comparison measured, and where."""

    mode: str
    date: str
    duration_s: float
    machine: dict[str, Any]
    interpreters: tuple[Interpreter, ...]
    settings: Settings
    measurements: tuple[Measurement, ...]
    small_graph: tuple[SmallGraphResult, ...] = ()
    sweep: tuple[Measurement, ...] = ()
    interrupted: bool = False
    store_overhead: tuple[StoreOverhead, ...] = ()
    resume: tuple[ResumeResult, ...] = ()
    order: tuple[OrderResult, ...] = ()
    dask_get: tuple[DaskGetResult, ...] = ()
    distributed: tuple[DistributedResult, ...] = ()
    scale: tuple[ScaleResult, ...] = ()

    @cached_property
    def reference(self) -> Reference:
        return Reference.of(self.interpreters, self.measurements)

    @cached_property
    def rows(self) -> list[Row]:
        return summarise(self.interpreters, self.settings.workloads, self.measurements, self.reference)

    @cached_property
    def breakeven(self) -> list[BreakEven]:
        return breakeven(self.sweep)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "date": self.date,
            "mode": self.mode,
            "duration_s": self.duration_s,
            "machine": self.machine,
            "interrupted": self.interrupted,
            "interpreters": [i.to_json(reference=i.label == self.reference.gil_label) for i in self.interpreters],
            "settings": asdict(self.settings),
            "reference": {"interpreter": self.reference.gil_label, "label": self.reference.label},
            "measurements": [m.to_json() for m in self.measurements],
            "sweep": [m.to_json() for m in self.sweep],
            "breakeven": [asdict(b) for b in self.breakeven],
            "small_graph": [r.to_json() for r in self.small_graph],
            "summary": [r.to_json() for r in self.rows],
            "store_overhead": [r.to_json() for r in self.store_overhead],
            "resume": [r.to_json() for r in self.resume],
            "order": [r.to_json() for r in self.order],
            "dask_get": [r.to_json() for r in self.dask_get],
            "distributed": [r.to_json() for r in self.distributed],
            "scale": [r.to_json() for r in self.scale],
        }


def gil_state(free_threaded_build: bool, recs: Iterable[Measurement]) -> str:
    """``on`` on a GIL build; on a free-threaded one ``off``, ``ON⚠`` if it was re-enabled, ``?`` if unknown."""
    states = {m.gil_enabled_after for m in recs} - {None}
    if not free_threaded_build:
        return "on"
    if True in states:
        return "ON⚠"
    return "off" if states else "?"


def summarise(interpreters: Sequence[Interpreter], workloads: Sequence[str], measurements: Sequence[Measurement],
              reference: Reference) -> list[Row]:
    """One row per (workload, interpreter, runner), the plain loop first."""
    rows = []
    for w in workloads:
        recs = [m for m in measurements if m.workload == w]
        title = next((m.title for m in recs if m.description), LABELS.get(w, w))
        for interp in interpreters:
            mine = [m for m in recs if m.interpreter == interp.label]
            samples = [t for m in mine for t in m.plain_s]
            if samples:
                same, vs_gil = reference.plain_speedups(w, interp.label)
                rows.append(Row(w, title, interp.label, "plain", True, reference.plain(w, interp.label),
                                statistics.median(samples), same, vs_gil, gil_state(interp.ft, mine)))
            for m in mine:
                same, vs_gil = reference.speedups(m)
                rows.append(Row(w, title, interp.label, m.runner, m.ok, m.runner_best_s, m.runner_median_s, same,
                                vs_gil, gil_state(interp.ft, [m]), None if m.ok else error_cell(m.error),
                                m.overhead_us_per_task, m.noisy, m.background_cpus))
    return rows


def markdown(rows: Sequence[Row], reference: Reference) -> str:
    """The comparison table; bold marks the fastest configuration of each workload."""
    header = ["workload", "interpreter", "runner", "best", "median", "× same plain", f"× {reference.label} plain",
              "GIL"]
    best_per_wl: dict[str, float] = {}
    for r in rows:
        if r.ok and r.speedup_vs_gil:
            best_per_wl[r.workload] = max(best_per_wl.get(r.workload, 0), r.speedup_vs_gil)
    out = []
    for r in rows:
        if not r.ok:
            out.append([r.title, r.interpreter, r.runner, str(r.error), "", "", "", r.gil])
            continue
        vs_gil = fmt_x(r.speedup_vs_gil)
        if r.speedup_vs_gil and r.speedup_vs_gil == best_per_wl.get(r.workload):
            vs_gil = f"**{vs_gil}**"
        gil = "**ON⚠**" if r.gil == "ON⚠" else r.gil
        out.append([r.title, r.interpreter, r.runner, fmt_time(r.best_s) + ("†" if r.noisy else ""),
                    fmt_time(r.median_s), fmt_x(r.speedup_same), vs_gil, gil])
    return markdown_table(header, out)


def describe(c: Comparison) -> str:
    m, s = c.machine, c.settings
    lines = [
        f"ftdag GIL vs no-GIL comparison ({c.mode} mode), {c.date}",
        f"Machine: {m['cpu_count']} CPUs ({m.get('cpu_model') or m.get('machine')}), {m['platform']}; "
        f"load average at start {m.get('loadavg_start')}, at end {m.get('loadavg_end')}",
        "Interpreters: " + "; ".join(f"{i.label} = Python {i.version} {i.build} ({i.executable})"
                                     for i in c.interpreters),
        f"Settings: {s.workers} workers; sizes '{s.size}'; best and median of up to {s.repeat} repetitions "
        f"(stopping after {s.budget_s:g} s once 2 are done); CPU tasks calibrated on {s.calibrated_on} "
        f"({s.spin_per_ms:.0f} loop rounds per ms); {c.duration_s:.0f} s in all",
    ]
    if c.interrupted:
        lines.append("Interrupted: this report holds only the measurements made before Ctrl-C")
    noisy = [m for m in c.measurements if m.ok and m.noisy]
    if noisy:
        lines.append(f"Noise: {len(noisy)} of {len(c.measurements)} measurements (marked †) ran while other "
                     "processes took CPU; compare them with care or rerun on a quieter machine")
    caveat = build_caveat(list(c.interpreters))
    if caveat:
        lines.append(f"Caveat: {caveat}")
    return "\n".join(lines)


LEGEND = (
    "best/median: wall time of one run (best and median of the repetitions). × same plain: speed-up over "
    "the plain topological loop on the same interpreter, measured in the same process, interleaved (above 1 = "
    "faster than not parallelising). × {ref} plain: speed-up over the plain loop on the GIL build (the number "
    "for choosing a build; bold = fastest for the workload). GIL: whether the GIL was on during the "
    "measurement; **ON⚠** on a free-threaded build means an imported extension re-enabled it. †: other "
    "processes used at least a quarter of a CPU while this runner was timed (a parallel runner is then measured "
    "again, up to a limit, and the quieter attempt kept), so its speed-up is understated. n/a: the runner could "
    "not run there, with the reason."
)


def headline(c: Comparison) -> str:
    """Per workload: the fastest configuration, and ftdag's best on each interpreter."""
    lines = [f"Fastest per workload (speed-up over the plain loop on {c.reference.label}):"]
    for w in c.settings.workloads:
        ok = [r for r in c.rows if r.workload == w and r.ok and r.speedup_vs_gil]
        if not ok:
            continue
        top = max(ok, key=lambda r: r.speedup_vs_gil)
        parts = []
        for i in c.interpreters:
            fd = [r for r in ok if r.interpreter == i.label and r.runner.startswith("ftdag-")]
            if fd:
                b = max(fd, key=lambda r: r.speedup_vs_gil)
                parts.append(f"ftdag on {i.label}: {b.speedup_vs_gil:.2f}× ({b.runner[6:]})")
        lines.append(f"- {ok[0].title}: {top.interpreter} · {top.runner} {top.speedup_vs_gil:.2f}×"
                     + (f"; {'; '.join(parts)}" if parts else ""))
    return "\n".join(lines)


# -- small graphs ------------------------------------------------------------------------------


def small_graph_markdown(results: Sequence[SmallGraphResult]) -> str:
    """The small-graph row: per case and interpreter, ftdag threads against its same-process reference."""
    header = ["graph", "interpreter", "ftdag threads", "reference", "threads / reference", "target",
              "ratio of the best times", "runs × rounds"]
    body = []
    for r in results:
        if not r.ok:
            body.append([r.title, str(r.interpreter), error_cell(r.error), r.reference, "", "", "", ""])
            continue
        if r.free_threaded_build:
            target = f"≤ {r.target:g}×: {'met' if r.meets_target else 'missed'}"
        else:
            target = f"(≤ {r.target:g}× on free-threaded builds)"
        body.append([r.title, str(r.interpreter), fmt_time(r.runner_s) + ("†" if r.noisy else ""),
                     f"{r.reference} {fmt_time(r.reference_s)}", fmt_x(r.ratio), target, fmt_x(r.best_ratio),
                     f"{r.runs} × {r.rounds}"])
    intro = (
        "### Small graphs\n\n"
        "ftdag threads on graphs too small to gain from a second worker, against a reference run in the same "
        "process: ftdag sequential on a 3-task diamond (one source, two tasks on it, one joining them: the fixed "
        "cost of one `Executor.run`), the plain loop on the 10,000-task no-op chain. After a warm-up, each round "
        "times every call one by one, the runner's calls and then the reference's (the other way round the next "
        "round); a time is the best of the rounds' medians, and the ratio, threads over reference (lower is better), "
        "the median over the rounds of each round's ratio: a round's two blocks see the same phase of this machine, "
        "whose speed moves by up to 2×, while the two best times may come from different phases (their ratio is "
        "shown too). "
        "The targets are the project's, for the free-threaded build; the GIL build's rows are for reference. "
        "†: other processes took CPU meanwhile.")
    return intro + "\n\n" + markdown_table(header, body)


# -- break-even sweep --------------------------------------------------------------------------


def breakeven(sweep: Sequence[Measurement]) -> list[BreakEven]:
    """Per (interpreter, runner) of the sweep, in the order measured: see :class:`BreakEven`."""
    rows = []
    for key in dict.fromkeys((m.interpreter, m.runner) for m in sweep):
        mine = sorted((m for m in sweep if (m.interpreter, m.runner) == key), key=lambda m: m.params["task_us"])
        speedups = {m.params["task_us"]: m.speedup_best for m in mine}
        even = None
        for us in reversed(list(speedups)):
            if not speedups[us] or speedups[us] < SWEEP_FASTER:
                break
            even = us
        rows.append(BreakEven(str(key[0]), key[1], speedups, even))
    return rows


def breakeven_markdown(rows: Sequence[BreakEven], work_us: float) -> str:
    sizes = sorted({us for r in rows for us in r.speedup_by_task_us})
    header = ["interpreter", "runner"] + [f"{us:g} µs" for us in sizes] + ["faster than plain from"]
    body = []
    for r in rows:
        cells = [fmt_x(r.speedup_by_task_us.get(us)) for us in sizes]
        even = f"{r.breakeven_us:g} µs" if r.breakeven_us else f"never (up to {sizes[-1]:g} µs)"
        body.append([r.interpreter, r.runner, *cells, even])
    intro = ("### Break-even task size\n\nIndependent pure-Python tasks of one size (about "
             f"{work_us / 1000:g} ms of work in all, at least 64 tasks), speed-up of the runner over the plain "
             "loop in the same process (best of the repetitions), and the smallest task size from which ftdag beats not "
             f"parallelising at all (by at least {SWEEP_FASTER - 1:.0%}, at that size and every larger one).")
    return intro + "\n\n" + markdown_table(header, body)


# -- the result store and resuming ---------------------------------------------------------------


def store_overhead_markdown(results: Sequence[StoreOverhead]) -> str:
    """What a result store costs per record: save + load of one value, against ``pickle.dumps`` of it."""
    header = ["store", "durability", "size", "save µs", "load µs", "total µs per record", "× pickle"]
    parts = [
        "### Result store\n\n"
        "`benchmarks/store_overhead.py` in a fresh process: each record saved under a new fingerprint and "
        "loaded back, for a 1 KB and a 1 MB value (random bytes: the cheapest value to pickle, so the ratios show "
        "the store's own cost at its largest). Each row is the best of its rounds: the round whose median save + load "
        "was the lowest, with that round's median save and load (the median over the rounds is in results.json); "
        "× pickle: that total over "
        "`pickle.dumps` of the same value, timed in the same run (lower is better). "
        "The records go to a temporary directory under the repository, on its disk."]
    for r in results:
        if not r.ok:
            parts.append(f"On {r.interpreter}:\n\n" + markdown_table(header, [[error_cell(r.error)] + [""] * 6], left=3))
            continue
        build = ("free-threaded, GIL " + ("on" if r.gil_enabled else "off")) if r.free_threaded_build else "GIL"
        refs = ", ".join(f"{size_cell(int(size))} {us:.2f} µs" for size, us in r.reference.items())
        noise = f"; other processes used {r.load:.2f} CPU meanwhile†" if r.noisy else ""
        body = [[row.store, row.durability or "—", size_cell(row.size), f"{row.save_us:.1f}", f"{row.load_us:.1f}",
                 f"{row.total_us:.1f}", fmt_x(row.ratio)] for row in r.rows]
        parts.append(f"On {r.interpreter} ({build}), {r.mode} mode, records on {r.filesystem}; "
                     f"`pickle.dumps`: {refs}{noise}.\n\n" + markdown_table(header, body, left=3))
    return "\n\n".join(parts)


def _best_and_median(best: float | None, median: float | None) -> str:
    return f"{fmt_time(best)} / {fmt_time(median)}"


def resume_markdown(results: Sequence[ResumeResult]) -> str:
    """The rollup's first run without a store, with one, and its fully cached re-run, per interpreter."""
    header = ["interpreter", "backend", "first run, no store", "first run, with store", "× no store",
              "cached re-run", "× first run", "stored / loaded", "rounds"]
    first = next((r for r in results if r.ok), None)
    what = (f"{first.title} ({first.n_tasks} tasks; {first.params.get('hash_iters')} mixing rounds per hash)"
            if first else "the rollup")
    intro = (
        "### Resuming: a fully cached re-run of the rollup\n\n"
        f"`benchmarks/resume_bench.py` in a fresh process per interpreter: examples/rollup.py's pipeline, {what}, "
        "requesting the batch root and one inclusion proof, on one `ftdag.Executor` (auto backend) with a fresh "
        f"`DirectoryStore(durability=\"{first.durability if first else 'atomic'}\")` under the repository each "
        "round. First run, no store: the reference. First run, with store: every task computed and its result "
        "saved. Cached re-run: the same graph and store again; the outputs are loaded and no task runs (checked: "
        "at least one result loaded, none saved, the same values). Times: best / median of the rounds (the two "
        "first runs alternate their order). × no store: first run with the store over without, what the store "
        "costs a first run; × first run: cached re-run over the first run with the store (lower is better). "
        "Both ratios are of the best times. †: other processes took CPU meanwhile.")
    body = []
    for r in results:
        if not r.ok:
            body.append([str(r.interpreter), str(r.backend or ""), error_cell(r.error)] + [""] * 6)
            continue
        body.append([str(r.interpreter), str(r.backend), _best_and_median(r.no_store_best_s, r.no_store_median_s),
                     _best_and_median(r.with_store_best_s, r.with_store_median_s), fmt_x(r.store_ratio),
                     _best_and_median(r.cached_best_s, r.cached_median_s) + ("†" if r.noisy else ""),
                     fmt_x(r.cached_ratio), f"{r.stored} / {r.loaded}", str(r.rounds)])
    lines = [f"- {r.interpreter} ({r.backend}): resuming from the store is {r.resume_speedup:.1f}× faster than the "
             f"first run; saving every result made the first run {fmt_x(r.store_ratio)} as long as without a store "
             f"(on {r.filesystem})." for r in results if r.ok and r.resume_speedup]
    return intro + "\n\n" + markdown_table(header, body) + ("\n\n" + "\n".join(lines) if lines else "")


# -- the ready order -----------------------------------------------------------------------------


def order_targets_cell(r: OrderResult) -> str:
    """Whether the critical path met both targets, or why they do not apply."""
    if not r.ok:
        return ""
    if not r.targets_apply:
        why = ("GIL build" if not r.free_threaded_build else
               "GIL re-enabled" if r.gil_enabled_after else f"{r.backend} backend")
        return f"n/a ({why})"

    def verdict(met: bool | None) -> str:
        return "met" if met else "**missed**"

    return (f"≤ {r.BOUND_TARGET:g}× bound: {verdict(r.meets_bound_target)}; "
            f"≥ {r.FIFO_TARGET:.0%} shorter: {verdict(r.meets_fifo_target)}")


def order_table(results: Sequence[OrderResult]) -> str:
    """The ready-order table: one row per interpreter (``order.py`` prints it for its own run)."""
    header = ["interpreter", "backend", "workers", "task (alone)", "lower bound", "critical path", "× bound", "FIFO",
              "critical path shorter than FIFO", "targets", "rounds"]
    body = []
    for r in results:
        if not r.ok:
            body.append([str(r.interpreter), str(r.backend or ""), str(r.workers or ""), error_cell(r.error)]
                        + [""] * 7)
            continue
        shorter = "—" if r.shorter_than_fifo is None else f"{r.shorter_than_fifo:.1%}"
        body.append([str(r.interpreter), str(r.backend), str(r.workers), fmt_time(r.task_s),
                     fmt_time(r.lower_bound_s),
                     _best_and_median(r.critical_best_s, r.critical_median_s) + ("†" if r.noisy else ""),
                     fmt_x(r.critical_over_bound), _best_and_median(r.fifo_best_s, r.fifo_median_s), shorter,
                     order_targets_cell(r), str(r.rounds)])
    return markdown_table(header, body)


def order_markdown(results: Sequence[OrderResult]) -> str:
    """The makespan of a graph whose ready order matters, critical path against FIFO, per interpreter."""
    first = next((r for r in results if r.ok), None)
    n_ind, n_chain, task_ms = (first.n_independent, first.n_chain, first.task_ms) if first else (64, 16, 10)
    intro = (
        "### Ready order: critical path against FIFO\n\n"
        f"`benchmarks/order.py` in a fresh process per interpreter: {n_ind} independent CPU tasks added first, then "
        f"one chain of {n_chain} tasks, each {task_ms:g} ms of CPU work on the build the work was calibrated on, on one "
        "`ftdag.Executor` (auto backend). Critical path: ftdag's default ready order, which starts the chain's "
        "head first; FIFO: the same graph with `priority=-i` for the i-th task added, which starts the tasks in "
        "insertion order, so the chain runs last, alone. Task (alone): one task's time alone, the best of timings between the rounds. "
        "Lower bound: the total work over the workers, or the chain, whichever is longer, from that time. "
        "Times: best / median of the rounds (each round runs both, alternating which goes first); × bound and "
        "\"shorter\" are of the best times. Targets (free-threaded builds, thread backend): the critical path "
        f"within {OrderResult.BOUND_TARGET - 1:.0%} of the lower bound and at least {OrderResult.FIFO_TARGET:.0%} "
        "shorter than FIFO; on a GIL build (processes) the numbers are for reference. †: other processes took "
        "CPU meanwhile.")
    lines = [f"- {r.interpreter} ({r.backend}): a critical-path run took {fmt_x(r.critical_over_work)} the bound its "
             "tasks' own times in that run allow (median of the rounds; 1.00× = no worker idle but for the chain), "
             f"against {fmt_x(r.critical_over_bound)} the lower bound from their time alone."
             for r in results if r.ok and r.critical_over_work]
    return intro + "\n\n" + order_table(results) + ("\n\n" + "\n".join(lines) if lines else "")


# -- the dask benchmarks ---------------------------------------------------------------------------


def dask_get_backend_cell(r: DaskGetResult) -> str:
    """``auto → threads (default)``: what ftdag ran ``ftdag.get`` on, and whether that was its default."""
    if r.requested_backend == "auto":
        return f"auto → {r.ftdag_backend} (default)" if r.ftdag_backend else "auto (default)"
    return r.requested_backend


def dask_get_targets_cell(r: DaskGetResult, workload: str) -> str:
    """Whether ftdag met the project's target on ``workload``, or why it does not apply ("" if it has none)."""
    target = r.target(workload)
    if not r.ok or target is None:
        return ""
    if not r.targets_apply:
        return (f"(≤ {target:g}× on free-threaded builds)" if not r.free_threaded_build else
                f"n/a (GIL {'re-enabled' if r.gil_enabled else 'unknown'})")
    verdict = "met" if r.meets_target(workload) else "**missed**"
    return f"≤ {target:g}×: {verdict}" + (f" ({r.mode} sizes)" if r.mode != "full" else "")


def _fmt_ratio(x: float | None) -> str:
    """:func:`fmt_x`, without decimals from 100× up (the distributed backend's chain)."""
    return f"{x:,.0f}×" if x is not None and x >= 100 else fmt_x(x)


def _ratio_pair(best: float | None, median: float | None) -> str:
    return f"{_fmt_ratio(best)} / {_fmt_ratio(median)}"


def _per_task(*rows: Any) -> str:
    """The rows' µs per task, ``a / b / c`` (``—`` for a row that is missing or has no time)."""
    def cell(us: float | None) -> str:
        return "—" if us is None else f"{us:.1f}" if us < 100 else f"{us:,.0f}"

    return " / ".join(cell(None if r is None else r.per_task_us) for r in rows)


def dask_get_markdown(results: Sequence[DaskGetResult]) -> str:
    """``ftdag.get`` against ``dask.threaded.get`` and ``dask.get``, per interpreter, ftdag backend and workload."""
    first = next((r for r in results if r.ok and r.rows), None)
    sizes = {row.workload: row.size for row in first.rows} if first else {}
    workers = first.workers if first else 2
    quick = any(r.mode == "quick" for r in results)
    intro = (
        "### ftdag.get as a dask scheduler\n\n"
        "`benchmarks/dask_get.py` in a fresh process per interpreter and ftdag backend: `ftdag.get`, "
        f"`dask.threaded.get` and `dask.get` (dask's synchronous scheduler), each with {workers} workers, on a chain "
        f"of {sizes.get('chain', 'N')} no-op `dask.delayed` tasks, a `dask.bag` map and sum over "
        f"{sizes.get('bag', 'N')} one-element partitions (each map ~100 µs of pure Python) and a `dask.array` "
        f"`(x ** 2).sum()` over {sizes.get('array', 'N')} chunks. Each scheduler gets exactly what `dask.compute` "
        "hands it (graph conversion included) and every result is checked against `dask.get`'s; after one warm-up "
        "each, every repetition runs the three schedulers in turn. ftdag backend: `auto` is `ftdag.get`'s default, "
        "its shared executor (threads when the GIL is off, processes on a GIL build); on the GIL build it is also "
        "measured on `threads` (an executor passed as `executor=`). Times: best / median of the repetitions; "
        "µs/task: best time over the graph's tasks; × threaded: ftdag's time over `dask.threaded.get`'s, best over "
        "best / median over median, both timed in the same run (lower is better); × sync: the same over `dask.get`, "
        "best over best. Targets (the project's: free-threaded build, GIL off, full sizes): ftdag at most 0.1× "
        "`dask.threaded.get` on the chain and 0.6× on the bag; on the GIL build the rows are for reference."
        + (" Quick mode: the workloads are 5 times smaller than the full sizes the targets are for." if quick else "")
        + " †: other processes took CPU meanwhile.")
    header = ["interpreter", "ftdag backend", "workload", "tasks", "ftdag", "dask.threaded.get", "dask.get",
              "µs/task ftdag / threaded", "ftdag × threaded", "ftdag × sync", "target", "runs"]
    body, lines = [], []
    for r in results:
        if not r.ok:
            body.append([str(r.interpreter), dask_get_backend_cell(r), error_cell(r.error)] + [""] * 9)
            continue
        for w in r.workloads:
            f, t, s = r.row(w, "ftdag"), r.row(w, "threaded"), r.row(w, "sync")
            cells = [_best_and_median(x.best_s, x.median_s) if x else "—" for x in (f, t, s)]
            body.append([str(r.interpreter), dask_get_backend_cell(r), w, str(f.tasks if f else ""),
                         cells[0] + ("†" if r.noisy else ""), cells[1], cells[2], _per_task(f, t),
                         _ratio_pair(r.ratio(w), r.ratio(w, median=True)), fmt_x(r.ratio(w, reference="sync")),
                         dask_get_targets_cell(r, w), str(f.runs if f else "")])
        for why in r.skipped:
            body.append([str(r.interpreter), dask_get_backend_cell(r), f"not measured: {why}"] + [""] * 9)
        verdicts = []
        for w in r.workloads:
            target = r.target(w)
            met = r.meets_target(w)
            verdicts.append(f"{w} {fmt_x(r.ratio(w))}" + ("" if target is None or met is None else
                                                          f" (target ≤ {target:g}×: {'met' if met else 'missed'})"))
        which = f"ftdag's default ({r.ftdag_backend})" if r.requested_backend == "auto" else r.requested_backend
        note = "" if r.targets_apply else " (the targets are for free-threaded builds)"
        lines.append(f"- {r.interpreter}, {which}: ftdag's time over `dask.threaded.get`'s, best: "
                     + ", ".join(verdicts) + f"{note}.")
    return intro + "\n\n" + markdown_table(header, body, left=3) + ("\n\n" + "\n".join(lines) if lines else "")


def _workers_line(r: DistributedResult) -> str:
    reps = [rep for rep in r.worker_reports.values() if isinstance(rep, dict)]
    if not reps:
        return f"- {r.interpreter}: no worker reports."
    states = sorted({(bool(x.get("free_threaded")), bool(x.get("gil_enabled")), bool(x.get("profiler")))
                     for x in reps})
    desc = "; ".join(f"{'free-threaded' if ft else 'GIL build'}, GIL {'on' if gil else 'off'}, "
                     f"profiler {'on' if prof else 'off'}" for ft, gil, prof in states)
    warnings = r.worker_warnings()
    return (f"- {r.interpreter}: {len(reps)} distributed workers ({desc})"
            + (f"; **⚠ {', '.join(warnings)}**" if warnings else "") + ".")


def distributed_markdown(results: Sequence[DistributedResult]) -> str:
    """ftdag's distributed backend against its threads and processes backends, per interpreter and workload."""
    first = next((r for r in results if r.ok and r.rows), None)
    tasks = {row.workload: row.tasks for row in first.rows} if first else {}
    workers = first.workers if first else 2
    intro = (
        "### The distributed backend against threads and processes\n\n"
        f"`benchmarks/distributed_bench.py` in a fresh process per interpreter: three `ftdag.Executor`s of {workers} "
        f"workers, `threads`, `processes` and `distributed` (an embedded `LocalCluster` of {workers} single-threaded "
        "worker processes on 127.0.0.1, with dask's statistical profiler off on free-threaded builds), each started "
        "and warmed up by an untimed run of every workload, so that no start-up is timed; a chain of "
        f"{tasks.get('chain', 'N')} no-op tasks (each waits for the one before: the time per task is a backend's "
        f"round trip) and {tasks.get('cpu', 32)} independent tasks of 10 ms of pure-Python CPU work. The backends "
        "alternate round by round. Times: best / median of the rounds; µs/task: best time over the tasks; "
        "distributed ×: the distributed backend's time over the other backend's, best over best / median over "
        "median, both timed in the same run (above 1: distributed is slower). No target: the numbers are reported. "
        "†: other processes took CPU meanwhile.")
    header = ["interpreter", "workload", "tasks", "threads", "processes", "distributed",
              "µs/task threads / processes / distributed", "distributed × threads", "distributed × processes", "rounds"]
    body, lines = [], []
    for r in results:
        if not r.ok:
            body.append([str(r.interpreter), error_cell(r.error)] + [""] * 8)
            continue
        for w in r.workloads:
            rows = [r.row(w, b) for b in r.BACKENDS]
            cells = ["—" if x is None else error_cell(x.error) if x.error else _best_and_median(x.best_s, x.median_s)
                     for x in rows]
            cells[2] += "†" if r.noisy else ""
            n = next((x.tasks for x in rows if x), "")
            rounds = max((len(x.times_s) for x in rows if x), default=0)
            body.append([str(r.interpreter), w, str(n), *cells, _per_task(*rows),
                         _ratio_pair(r.distributed_over(w, "threads"), r.distributed_over(w, "threads", median=True)),
                         _ratio_pair(r.distributed_over(w, "processes"),
                                     r.distributed_over(w, "processes", median=True)), str(rounds)])
        lines.append(_workers_line(r))
    return intro + "\n\n" + markdown_table(header, body) + ("\n\n" + "\n".join(lines) if lines else "")


# -- scale -----------------------------------------------------------------------------------------

SCALE_CHART_LINK = "![time per node against graph size](scale.png)"


def fmt_per_node(s: float | None) -> str:
    """A time per node, in µs."""
    if s is None or not math.isfinite(s):
        return "—"
    us = s * 1e6
    return f"{us:.2f} µs" if us < 10 else f"{us:.1f} µs" if us < 100 else f"{us:.0f} µs"


def fmt_bytes(b: float | None) -> str:
    return "—" if b is None else f"{b:,.0f} B"


def _verdict(met: bool | None) -> str:
    return "met" if met else "**missed**"


def _run_cell(r: ScaleResult, best: float | None, median: float | None, over_plain: float | None) -> str:
    if best is None:
        return "—"
    return f"{fmt_per_node(r.per_node(best))} / {fmt_per_node(r.per_node(median))} ({fmt_x(over_plain)})"


def scale_table(results: Sequence[ScaleResult]) -> str:
    """One row per size (``scale.py`` prints it for its own run; the report has one per interpreter)."""
    header = ["nodes", "edges", "add_task + build", "graphlib", "build ÷ graphlib", "plain loop",
              "sequential (÷ plain)", "threads (÷ plain)", "processes (÷ plain)", "threads ÷ sequential",
              "first run ÷ repeated (sequential / threads)", "Dag per node (peak)",
              "a run adds per node", "rounds"]
    body = []
    for r in results:
        nodes = f"{r.n_nodes:,}" + ("†" if r.noisy else "")
        if r.ok:
            processes = (_run_cell(r, r.processes_best_s, r.processes_median_s, r.processes_over_plain)
                         if r.processes_s else f"— ({r.processes_skipped or 'not measured'})")
            timing = [f"{r.n_edges:,}", fmt_per_node(r.per_node(r.build_best_s)),
                      fmt_per_node(r.per_node(r.graphlib_best_s)), fmt_x(r.build_over_graphlib),
                      fmt_per_node(r.per_node(r.plain_best_s)),
                      _run_cell(r, r.sequential_best_s, r.sequential_median_s, r.sequential_over_plain),
                      _run_cell(r, r.threads_best_s, r.threads_median_s, r.threads_over_plain), processes,
                      fmt_x(r.threads_over_sequential),
                      f"{fmt_x(r.first_over_repeated_sequential)} / {fmt_x(r.first_over_repeated_threads)}"]
        else:
            timing = [f"{r.n_edges:,}" if r.n_edges else "", error_cell(r.error)] + [""] * 8
        if r.memory_error:
            memory = [error_cell(r.memory_error), ""]
        elif r.memory_skipped:
            memory = [f"— ({r.memory_skipped})", "—"]
        elif r.dag_bytes is None:
            memory = ["—", "—"]
        else:
            peak = r.build_peak_bytes / r.n_nodes if r.build_peak_bytes is not None else None
            memory = [f"{fmt_bytes(r.dag_bytes_per_node)} ({fmt_bytes(peak)})",
                      " / ".join(fmt_bytes(b) for b in r.run_bytes_per_node)
                      + f" ({' / '.join(map(str, r.memory_workers))} workers)" if r.run_bytes else "—"]
        body.append([nodes, *timing, *memory, str(r.rounds)])
    return markdown_table(header, body, left=1)


def _at(r: ScaleResult) -> str:
    return f"{r.n_nodes:,} nodes"


def scale_targets(results: Sequence[ScaleResult]) -> list[str]:
    """The project's targets, met or missed, for one interpreter's sizes (free-threaded builds only)."""
    ok = [r for r in results if r.ok]
    mem = [r for r in results if not r.memory_error and r.dag_bytes is not None]
    first = next(iter(results), None)
    if first is None:
        return []
    if not first.targets_apply:
        why = ("a GIL build" if not first.free_threaded_build else "the GIL was re-enabled"
               if first.gil_enabled_after else f"{first.workers} workers, not 2")
        return [f"- Targets: n/a ({why}); the numbers are for reference."]
    lines = []
    at = next((r for r in ok if r.n_nodes == ScaleResult.THREADS_TARGET_NODES), None)
    what = f"threads ≤ {ScaleResult.THREADS_TARGET:g}× sequential on {ScaleResult.THREADS_TARGET_NODES:,} nodes"
    lines.append(f"- {what}: {fmt_x(at.threads_over_sequential)}: {_verdict(at.meets_threads_target)}" if at else
                 f"- {what}: not measured (no graph of that size)")
    firsts = [r for r in ok if r.meets_first_run_target is not None]
    if firsts:
        missed = [r for r in firsts if not r.meets_first_run_target]
        ranges = []
        for name in ("sequential", "threads"):
            xs = [x for x in (getattr(r, f"first_over_repeated_{name}") for r in firsts) if x is not None]
            if xs:
                ranges.append(f"{name} {fmt_x(min(xs))}–{fmt_x(max(xs))}")
        lines.append(f"- first run of a freshly built Dag ≤ {ScaleResult.FIRST_RUN_TARGET:g}× a repeated run "
                     f"(sequential and threads, every size): {', '.join(ranges)}: "
                     + ("met" if not missed else f"**missed** at {len(missed)} of {len(firsts)} sizes"))
    at = next((r for r in ok if r.n_nodes == ScaleResult.BUILD_TARGET_NODES), None)
    what = f"add_task + build ≤ graphlib's static_order on {ScaleResult.BUILD_TARGET_NODES:,} nodes"
    if at:
        lines.append(f"- {what}: {fmt_x(at.build_over_graphlib)}: {_verdict(at.meets_build_target)}")
    elif ok:
        largest = max(ok, key=lambda r: r.n_nodes)
        lines.append(f"- {what}: not measured (full mode only); {fmt_x(largest.build_over_graphlib)} on "
                     f"{_at(largest)}")
    if mem:
        largest = max(mem, key=lambda r: r.n_nodes)
        def verdict(missed: list[ScaleResult]) -> str:
            if missed:
                return f"**missed** at {len(missed)} of {len(mem)} sizes measured"
            return "met at the one size measured" if len(mem) == 1 else f"met at all {len(mem)} sizes measured"

        missed = [r for r in mem if not r.meets_run_bytes_target]
        per = " / ".join(f"{fmt_bytes(b)} ({w} workers)" for w, b in zip(largest.memory_workers,
                                                                        largest.run_bytes_per_node))
        lines.append(f"- a run adds ≤ {ScaleResult.RUN_BYTES_TARGET:g} B/node, the same for "
                     f"{' and '.join(map(str, largest.memory_workers))} workers (within "
                     f"{ScaleResult.RUN_BYTES_SAME:g} B or {ScaleResult.RUN_BYTES_SAME_FRACTION:.0%}): {per} on "
                     f"{_at(largest)}: {verdict(missed)}")
        missed = [r for r in mem if not r.meets_dag_bytes_target]
        lines.append(f"- a Dag ≤ {ScaleResult.DAG_BYTES_TARGET:g} B/node: {fmt_bytes(largest.dag_bytes_per_node)} "
                     f"on {_at(largest)}: {verdict(missed)}")
    return lines


def scale_notes(results: Sequence[ScaleResult]) -> list[str]:
    """What was not measured, and what measuring took."""
    lines = []
    skipped = [r for r in results if r.ok and not r.processes_s]
    measured = [r for r in results if r.ok and r.processes_s]
    if skipped and measured:
        ref = max(measured, key=lambda r: r.n_nodes)
        per = ref.per_node(ref.processes_best_s) or 0
        lines.append(f"- processes: {skipped[0].processes_skipped or 'not measured on the larger graphs'}; at "
                     f"{fmt_per_node(per)} per node ({_at(ref)}), one run would take "
                     + " and ".join(f"~{fmt_time(per * r.n_nodes)} at {_at(r)}" for r in skipped) + ".")
    no_first = [r for r in results if r.ok and r.first_threads_skipped]
    if no_first:
        lines.append(f"- first run on threads: {no_first[0].first_threads_skipped} (there one Dag per round serves "
                     "both backends: the threads runs reuse the plan of the sequential ones).")
    spent = [(r, (r.time_child_s or 0) + (r.memory_child_s or 0)) for r in results]
    if spent:
        lines.append("- measuring took " + ", ".join(
            f"{fmt_time(s)} at {r.n_nodes:,} nodes (timing {fmt_time(r.time_child_s)}, memory "
            f"{fmt_time(r.memory_child_s)})" for r, s in spent) + ".")
    return lines


def scale_markdown(results: Sequence[ScaleResult]) -> str:
    """How cost grows with the graph, per interpreter: a table of every size, the targets, notes."""
    first = next((r for r in results if r.ok), None)
    intro = (
        "### Scale: the random DAG from 10k nodes up\n\n"
        "`benchmarks/scale.py`, two fresh processes per interpreter and size: node 0 a source, node i a no-op task on "
        "1–3 distinct keys drawn from the 1,000 before it (seeded), every sink requested, "
        f"{first.workers if first else 2} workers. Times are per node: best of the rounds, and best / median for the "
        "repeated runs. add_task + build: `add_task` for every node and `build()`, against "
        "`graphlib.TopologicalSorter(spec).static_order()` on the same dict, in the same process. Runs: a repeated "
        "run of the same request (its plan cached), against the plain loop over the keys in order (÷ plain). First "
        "run: a freshly built Dag's first run, over the repeated run. Memory (`tracemalloc`, in its own process, "
        "not timed): what the Dag holds per node after `build()` (the builder deleted; the peak while building in "
        "brackets), and what one run on threads leaves held per node (result dropped, plan kept, executor open), "
        "with each worker count. Targets (the project's; free-threaded build, 2 workers) below each table. †: other "
        "processes took CPU meanwhile.")
    parts = [intro]
    for label in dict.fromkeys(str(r.interpreter) for r in results):
        mine = [r for r in results if str(r.interpreter) == label]
        build = ("free-threaded, GIL " + ("on" if mine[0].gil_enabled_after else "off")
                 if mine[0].free_threaded_build else "GIL" if mine[0].free_threaded_build is False else "?")
        lines = scale_targets(mine) + scale_notes(mine)
        parts.append(f"On {label} ({build}):\n\n" + scale_table(mine) + ("\n\n" + "\n".join(lines) if lines else ""))
    return "\n\n".join(parts)


# -- the whole report --------------------------------------------------------------------------


def markdown_report(c: Comparison, chart: bool, scale_chart: bool = False) -> str:
    """``results.md`` without its title: description, table, legend, headline, small graphs, sweep, result
    store, resuming, ready order, ftdag.get, the distributed backend, scale (with its chart if
    ``scale_chart``), chart (each section only if it was measured)."""
    parts = [describe(c)]
    if c.measurements:
        parts += [markdown(c.rows, c.reference), LEGEND.format(ref=c.reference.label), headline(c)]
    if c.small_graph:
        parts.append(small_graph_markdown(c.small_graph))
    if c.breakeven:
        parts.append(breakeven_markdown(c.breakeven, c.settings.sweep_work_us))
    if c.store_overhead:
        parts.append(store_overhead_markdown(c.store_overhead))
    if c.resume:
        parts.append(resume_markdown(c.resume))
    if c.order:
        parts.append(order_markdown(c.order))
    if c.dask_get:
        parts.append(dask_get_markdown(c.dask_get))
    if c.distributed:
        parts.append(distributed_markdown(c.distributed))
    if c.scale:
        parts.append(scale_markdown(c.scale) + (f"\n\n{SCALE_CHART_LINK}" if scale_chart else ""))
    if chart:
        parts.append(CHART_LINK)
    return "\n\n".join(parts)
