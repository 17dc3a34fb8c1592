"""The benchmark's typed records, shared by ``bench.py`` (which measures) and ``compare.py`` (which reports).

:class:`Measurement`       one (interpreter, workload, runner) measurement: the runner's and the plain
                           loop's times, measured interleaved in one process.
:class:`SmallGraphResult`  one small-graph case on one interpreter: ftdag threads against a reference
                           runner in the same process, per-run medians.
:class:`StoreRow`          one (store, size) row of ``store_overhead.py``: save + load of one record
                           against ``pickle.dumps`` of its value.
:class:`StoreOverhead`     one run of ``store_overhead.py`` in the comparison: its rows, or why it failed.
:class:`ResumeResult`      one run of ``resume_bench.py`` on one interpreter: the rollup's first run
                           without a store, with one, and its fully cached re-run.
:class:`OrderResult`       one run of ``order.py`` on one interpreter: the makespan of a graph whose
                           ready order matters, in critical-path order and in insertion (FIFO) order.
:class:`DaskGetRow`, :class:`DaskGetResult`
                           one run of ``dask_get.py`` on one interpreter: ``ftdag.get`` against
                           ``dask.threaded.get`` and ``dask.get``, per (workload, scheduler).
:class:`DistributedRow`, :class:`DistributedResult`
                           one run of ``distributed_bench.py`` on one interpreter: the distributed
                           backend against threads and processes, per (workload, backend).
:class:`ScaleResult`       one size of the random DAG of ``scale.py`` on one interpreter: build, run and
                           memory per node, against graphlib and the plain loop.
:class:`Row`               one row of the comparison table.
:class:`Reference`         the plain loops every speed-up of the table is taken against, computed here
                           and nowhere else.

Standard library only, and importing this module runs nothing.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, ClassVar, Protocol, TypeVar

__all__ = ["NOISY_CPUS", "DaskGetResult", "DaskGetRow", "DistributedResult", "DistributedRow", "Measurement",
           "OrderResult", "Reference", "ResumeResult", "Row", "SmallGraphResult",
           "StoreOverhead", "StoreRow", "reference_interpreter", "with_interpreter"]

NOISY_CPUS = 0.25  # other processes using this much CPU during a measurement make it suspect

T = TypeVar("T")


def _best_median(xs: Sequence[float]) -> tuple[float | None, float | None]:
    return (min(xs), statistics.median(xs)) if xs else (None, None)


def _over(num: float | None, den: float | None) -> float | None:
    return num / den if num and den else None


def _fields_of(cls: type[T], data: Mapping[str, Any], **override: Any) -> T:
    """``cls`` from a JSON object, ignoring derived and unknown keys, lists as tuples."""
    kw = {}
    for f in fields(cls):  # type: ignore[arg-type]
        if f.name in data:
            v = data[f.name]
            kw[f.name] = tuple(v) if isinstance(v, list) and f.name.endswith("_s") else v
    kw.update(override)
    return cls(**kw)


class _Timed:
    """What :class:`Measurement` and :class:`SmallGraphResult` share: the CPU other processes took while
    they were timed (fields ``background_cpus``, ``steal_cpus``), the noisy attempts they replaced
    (``discarded_noisy_attempts``), and their JSON form: every field, then the ``DERIVED`` properties."""

    DERIVED: ClassVar[tuple[str, ...]] = ()
    background_cpus: float | None
    steal_cpus: float | None
    discarded_noisy_attempts: tuple[Any, ...]

    @property
    def load(self) -> float:
        """CPUs used on average by other processes and the hypervisor while this was timed."""
        return (self.background_cpus or 0) + (self.steal_cpus or 0)

    @property
    def noisy(self) -> bool:
        """Other processes took enough CPU to understate a parallel speed-up."""
        return self.load >= NOISY_CPUS

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            d[f.name] = [r.to_json() for r in v] if f.name == "discarded_noisy_attempts" else (
                list(v) if isinstance(v, tuple) else v)
        d.update((name, getattr(self, name)) for name in self.DERIVED)
        return d

    @classmethod
    def from_json(cls, data: Mapping[str, Any]):  # -> the subclass
        return _fields_of(cls, data, discarded_noisy_attempts=tuple(
            cls.from_json(d) for d in data.get("discarded_noisy_attempts") or ()))


@dataclass(frozen=True)
class Measurement(_Timed):
    """Runner and plain loop on one workload, timed interleaved in one process (``bench.measure``).

    ``plain_s`` and ``runner_s`` hold every timed repetition in seconds; the best/median times,
    their ratios and the scheduling overhead per task are derived from them.  ``interpreter``
    (a label such as ``3.13t``) is set by the comparison, ``child`` when the measurement ran in a
    subprocess, ``discarded_noisy_attempts`` when a busy-machine attempt was measured again.
    """

    workload: str
    runner: str
    ok: bool
    error: str | None = None
    title: str = ""
    description: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    n_tasks: int | None = None
    n_nodes: int | None = None
    plain_s: tuple[float, ...] = ()
    runner_s: tuple[float, ...] = ()
    gil_enabled_before: bool | None = None
    gil_enabled_after: bool | None = None
    stats: Mapping[str, Any] | None = None
    info: Mapping[str, Any] = field(default_factory=dict)
    loadavg: Sequence[float] | None = None
    background_cpus: float | None = None
    steal_cpus: float | None = None
    interpreter: str | None = None
    child: Mapping[str, Any] | None = None
    discarded_noisy_attempts: tuple[Measurement, ...] = ()

    DERIVED = ("plain_best_s", "plain_median_s", "runner_best_s", "runner_median_s", "ratio_best", "ratio_median",
               "speedup_best", "overhead_us_per_task")

    @classmethod
    def failed(cls, workload: str, runner: str, reason: str, **known: Any) -> Measurement:
        """A measurement that could not be made; ``reason`` goes in the table's n/a cell."""
        return cls(workload=workload, runner=runner, ok=False, error=reason, title=workload, **known)

    @property
    def plain_best_s(self) -> float | None:
        return _best_median(self.plain_s)[0]

    @property
    def plain_median_s(self) -> float | None:
        return _best_median(self.plain_s)[1]

    @property
    def runner_best_s(self) -> float | None:
        return _best_median(self.runner_s)[0]

    @property
    def runner_median_s(self) -> float | None:
        return _best_median(self.runner_s)[1]

    @property
    def ratio_best(self) -> float | None:
        """Runner over plain loop, best times (below 1: faster than not parallelising)."""
        return _over(self.runner_best_s, self.plain_best_s) if self.ok else None

    @property
    def ratio_median(self) -> float | None:
        return _over(self.runner_median_s, self.plain_median_s) if self.ok else None

    @property
    def speedup_best(self) -> float | None:
        """Plain loop over runner, best times: the speed-up over the same process's plain loop."""
        return _over(self.plain_best_s, self.runner_best_s) if self.ok else None

    @property
    def overhead_us_per_task(self) -> float | None:
        """(runner - plain) / tasks, best times, in µs: the scheduling cost of one task."""
        pb, rb = self.plain_best_s, self.runner_best_s
        if not (self.ok and pb and rb and self.n_tasks):
            return None
        return (rb - pb) / self.n_tasks * 1e6


@dataclass(frozen=True)
class SmallGraphResult(_Timed):
    """One small-graph case (``benchmarks/smallgraph.py``) on one interpreter.

    ``runs`` calls of ``runner`` and as many of ``reference`` are timed one by one, in blocks,
    in one process, for each of ``rounds`` rounds (alternating which goes first);
    ``runner_medians_s`` and ``reference_medians_s`` hold each round's median time of one call.
    The reported times are the best of those medians; the ratio, runner over reference, is the
    median over the rounds of each round's two medians' ratio (``best_ratio`` is the ratio of
    the two best times); ``target`` is the ratio the project aims for on the free-threaded build.
    """

    case: str
    title: str
    runner: str
    reference: str
    target: float
    runs: int
    ok: bool
    error: str | None = None
    runner_medians_s: tuple[float, ...] = ()
    reference_medians_s: tuple[float, ...] = ()
    n_tasks: int | None = None
    free_threaded_build: bool | None = None
    gil_enabled_after: bool | None = None
    background_cpus: float | None = None
    steal_cpus: float | None = None
    interpreter: str | None = None
    discarded_noisy_attempts: tuple[SmallGraphResult, ...] = ()

    DERIVED = ("rounds", "runner_s", "reference_s", "ratio", "best_ratio", "meets_target")

    @property
    def rounds(self) -> int:
        return len(self.runner_medians_s)

    @property
    def runner_s(self) -> float | None:
        return _best_median(self.runner_medians_s)[0]

    @property
    def reference_s(self) -> float | None:
        return _best_median(self.reference_medians_s)[0]

    @property
    def ratio(self) -> float | None:
        """Runner time over reference time (lower is better): the median over the rounds of the
        ratio of the round's two medians, timed back to back in the same process.

        Paired by round, not the ratio of the two best times (:attr:`best_ratio`): this
        machine's single-thread speed can sit in a phase up to 2x slower for most of a case's
        rounds, and the best of each runner's medians may then come from different phases (in
        one full run the diamond's reference caught a fast phase in one round of five and the
        runner in none: the ratio of the bests was 3.58x where the other four rounds gave 1.8x).
        A round's two blocks follow each other within a fraction of a second.
        """
        if not self.ok or not self.runner_medians_s or len(self.runner_medians_s) != len(self.reference_medians_s):
            return None
        return statistics.median(r / f for r, f in zip(self.runner_medians_s, self.reference_medians_s))

    @property
    def best_ratio(self) -> float | None:
        """The ratio of the two best times, ``runner_s / reference_s`` (see :attr:`ratio`)."""
        return _over(self.runner_s, self.reference_s) if self.ok else None

    @property
    def meets_target(self) -> bool | None:
        return None if self.ratio is None else self.ratio <= self.target


@dataclass(frozen=True)
class StoreRow:
    """One (store, size) row of ``benchmarks/store_overhead.py``: ``save`` + ``load`` of one record.

    ``save_us``, ``load_us`` and ``total_us`` are from the round whose median save + load was the
    lowest (each a median over that round's records), ``total_median_us`` the median of the rounds'
    medians, ``ops`` the records timed in all rounds, ``pickle_us`` the reference: ``pickle.dumps``
    of the same ``size``-byte value, timed in the same run.  ``durability`` is ``DirectoryStore``'s
    mode (None for the other stores).
    """

    store: str
    durability: str | None
    size: int
    ops: int
    save_us: float
    load_us: float
    total_us: float
    total_median_us: float
    pickle_us: float

    @property
    def label(self) -> str:
        return f"{self.store} ({self.durability})" if self.durability else self.store

    @property
    def ratio(self) -> float:
        """Save + load over ``pickle.dumps`` of the same value (how many pickles one record costs)."""
        return self.total_us / self.pickle_us

    def to_json(self) -> dict[str, Any]:
        return dict(asdict(self), ratio=round(self.ratio, 2))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StoreRow:
        return _fields_of(cls, data)


@dataclass(frozen=True)
class StoreOverhead(_Timed):
    """One run of ``benchmarks/store_overhead.py`` (a fresh process), as the comparison keeps it.

    ``rows`` are its :class:`StoreRow` records and ``reference`` its ``pickle.dumps`` times (µs by
    size in bytes, as a string); ``filesystem`` is the type of the file system the records were
    written to, ``dir`` where.  ``ok=False`` with the reason in ``error`` when it could not run.
    """

    ok: bool
    error: str | None = None
    mode: str = ""
    rows: tuple[StoreRow, ...] = ()
    reference: Mapping[str, float] = field(default_factory=dict)
    filesystem: str | None = None
    dir: str | None = None
    free_threaded_build: bool | None = None
    gil_enabled: bool | None = None
    background_cpus: float | None = None
    steal_cpus: float | None = None
    interpreter: str | None = None
    discarded_noisy_attempts: tuple[StoreOverhead, ...] = ()

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> StoreOverhead:
        """The record of a ``store_overhead.py --json`` document (schema ``ftdag-store-overhead/1``)."""
        return cls(ok=True, mode=doc["mode"], rows=tuple(StoreRow.from_json(r) for r in doc["rows"]),
                   reference=dict(doc["reference"]), filesystem=doc.get("filesystem"), dir=doc.get("dir"),
                   free_threaded_build=doc.get("free_threaded"), gil_enabled=doc.get("gil_enabled"),
                   background_cpus=doc.get("background_cpus"), steal_cpus=doc.get("steal_cpus"))

    def to_json(self) -> dict[str, Any]:
        return dict(super().to_json(), rows=[r.to_json() for r in self.rows])

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StoreOverhead:
        rec = super().from_json(data)
        return replace(rec, rows=tuple(StoreRow.from_json(r) for r in data.get("rows") or ()))


@dataclass(frozen=True)
class ResumeResult(_Timed):
    """The rollup pipeline, three ways, on one interpreter (``benchmarks/resume_bench.py``).

    Each round, in one process with one executor: ``no_store_s``, a run without a store (the
    reference); ``with_store_s``, the first run with a fresh ``DirectoryStore`` (every result
    computed and saved); ``cached_s``, the same graph run again with that store (the outputs are
    loaded, nothing is computed).  The tuples hold one time per round, in seconds; best and median
    over the rounds, and the ratios of the best times, are derived.  ``stored`` is what the first
    run with the store saved, ``loaded`` what the cached re-run loaded (both from ``RunStats``).
    """

    size: str
    ok: bool
    error: str | None = None
    title: str = ""
    description: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    n_tasks: int | None = None
    workers: int | None = None
    backend: str | None = None
    durability: str = "atomic"
    filesystem: str | None = None
    no_store_s: tuple[float, ...] = ()
    with_store_s: tuple[float, ...] = ()
    cached_s: tuple[float, ...] = ()
    stored: int | None = None
    loaded: int | None = None
    free_threaded_build: bool | None = None
    gil_enabled_after: bool | None = None
    background_cpus: float | None = None
    steal_cpus: float | None = None
    interpreter: str | None = None
    discarded_noisy_attempts: tuple[ResumeResult, ...] = ()

    DERIVED = ("rounds", "no_store_best_s", "no_store_median_s", "with_store_best_s", "with_store_median_s",
               "cached_best_s", "cached_median_s", "store_ratio", "cached_ratio", "resume_speedup")

    @property
    def rounds(self) -> int:
        return len(self.cached_s)

    @property
    def no_store_best_s(self) -> float | None:
        return _best_median(self.no_store_s)[0]

    @property
    def no_store_median_s(self) -> float | None:
        return _best_median(self.no_store_s)[1]

    @property
    def with_store_best_s(self) -> float | None:
        return _best_median(self.with_store_s)[0]

    @property
    def with_store_median_s(self) -> float | None:
        return _best_median(self.with_store_s)[1]

    @property
    def cached_best_s(self) -> float | None:
        return _best_median(self.cached_s)[0]

    @property
    def cached_median_s(self) -> float | None:
        return _best_median(self.cached_s)[1]

    @property
    def store_ratio(self) -> float | None:
        """First run with the store over without, best times: what saving every result costs a first run."""
        return _over(self.with_store_best_s, self.no_store_best_s) if self.ok else None

    @property
    def cached_ratio(self) -> float | None:
        """Cached re-run over the first run with the store, best times (lower is better)."""
        return _over(self.cached_best_s, self.with_store_best_s) if self.ok else None

    @property
    def resume_speedup(self) -> float | None:
        """First run with the store over the cached re-run, best times: how much faster resuming is."""
        return _over(self.with_store_best_s, self.cached_best_s) if self.ok else None


@dataclass(frozen=True)
class OrderResult(_Timed):
    """Where the order of ready tasks matters, on one interpreter (``benchmarks/order.py``).

    The graph: ``n_independent`` independent CPU tasks added first, then one chain of ``n_chain``
    tasks, each of ``task_ms`` of work (``loops`` spin rounds), run on ``workers`` workers.  Each
    round, in one process with one executor, times one run in ftdag's default order (critical path
    first: ``critical_s``) and one with ``priority=-i`` for the ``i``-th task added, which starts
    the tasks in insertion order (FIFO: ``fifo_s``; the chain then runs last, alone).

    ``task_alone_s`` holds timings of one task alone, in this process between the runs (3 before the
    first round, then one before each round, so that they see the machine's speed throughout);
    their best, ``task_s``, gives the lower bound on the makespan: the total work over the
    workers, or the chain, whichever is longer.
    ``critical_work_s`` and ``critical_chain_s`` hold, per critical-path round, the sum of every
    task's own time in that run and the chain's: the bound those times allow
    (:attr:`critical_over_work`) tells the scheduler's share of a gap to the lower bound from tasks
    that ran slower beside each other (or beside other processes) than alone.

    The targets (the project's): on a free-threaded build with the thread
    backend, the critical-path makespan within ``BOUND_TARGET`` of the lower bound, and shorter than
    FIFO's by at least ``FIFO_TARGET``, both on the best times; elsewhere they do not apply (None).
    """

    ok: bool
    error: str | None = None
    workers: int | None = None
    backend: str | None = None
    task_ms: float | None = None
    loops: int | None = None
    n_independent: int = 64
    n_chain: int = 16
    task_alone_s: tuple[float, ...] = ()
    critical_s: tuple[float, ...] = ()
    fifo_s: tuple[float, ...] = ()
    critical_work_s: tuple[float, ...] = ()
    critical_chain_s: tuple[float, ...] = ()
    free_threaded_build: bool | None = None
    gil_enabled_after: bool | None = None
    background_cpus: float | None = None
    steal_cpus: float | None = None
    interpreter: str | None = None
    discarded_noisy_attempts: tuple[OrderResult, ...] = ()

    BOUND_TARGET: ClassVar[float] = 1.05  # critical path / lower bound, at most
    FIFO_TARGET: ClassVar[float] = 0.10  # critical path shorter than FIFO by at least this fraction
    DERIVED = ("rounds", "task_s", "lower_bound_s", "critical_best_s", "critical_median_s", "fifo_best_s", "fifo_median_s",
               "critical_over_bound", "critical_over_fifo", "shorter_than_fifo", "critical_over_work",
               "targets_apply", "meets_bound_target", "meets_fifo_target")

    @property
    def rounds(self) -> int:
        return len(self.critical_s)

    @property
    def task_s(self) -> float | None:
        """One task's time alone: the best of its timings."""
        return _best_median(self.task_alone_s)[0]

    @property
    def lower_bound_s(self) -> float | None:
        """No schedule can be shorter: the total work over the workers, or the chain if longer."""
        if not (self.task_s and self.workers):
            return None
        return max((self.n_independent + self.n_chain) * self.task_s / self.workers, self.n_chain * self.task_s)

    @property
    def critical_best_s(self) -> float | None:
        return _best_median(self.critical_s)[0]

    @property
    def critical_median_s(self) -> float | None:
        return _best_median(self.critical_s)[1]

    @property
    def fifo_best_s(self) -> float | None:
        return _best_median(self.fifo_s)[0]

    @property
    def fifo_median_s(self) -> float | None:
        return _best_median(self.fifo_s)[1]

    @property
    def critical_over_bound(self) -> float | None:
        """Best critical-path makespan over the lower bound (1 is optimal)."""
        return _over(self.critical_best_s, self.lower_bound_s) if self.ok else None

    @property
    def critical_over_fifo(self) -> float | None:
        """Best critical-path makespan over the best FIFO one (lower is better)."""
        return _over(self.critical_best_s, self.fifo_best_s) if self.ok else None

    @property
    def shorter_than_fifo(self) -> float | None:
        """How much shorter the critical path's best makespan is than FIFO's, as a fraction of FIFO's."""
        ratio = self.critical_over_fifo
        return None if ratio is None else 1 - ratio

    @property
    def critical_over_work(self) -> float | None:
        """Median over the critical-path rounds of the makespan over the bound the tasks' own times in
        that run allow (their sum over the workers, or the chain's, if longer): 1 is a schedule with
        no idle worker that the chain did not force."""
        if not (self.ok and self.workers and self.critical_work_s
                and len(self.critical_work_s) == len(self.critical_chain_s) == len(self.critical_s)):
            return None
        bounds = [max(w / self.workers, c) for w, c in zip(self.critical_work_s, self.critical_chain_s, strict=True)]
        if not all(bounds):
            return None
        return statistics.median(m / b for m, b in zip(self.critical_s, bounds, strict=True))

    @property
    def targets_apply(self) -> bool:
        """The targets are for free-threaded builds on threads, with the GIL off."""
        return bool(self.ok and self.free_threaded_build and self.backend == "threads"
                    and self.gil_enabled_after is not True)

    @property
    def meets_bound_target(self) -> bool | None:
        r = self.critical_over_bound
        return None if not self.targets_apply or r is None else r <= self.BOUND_TARGET

    @property
    def meets_fifo_target(self) -> bool | None:
        s = self.shorter_than_fifo
        return None if not self.targets_apply or s is None else s >= self.FIFO_TARGET


@dataclass(frozen=True)
class DaskGetRow:
    """One (workload, scheduler) row of ``benchmarks/dask_get.py``: every timed run of one dask
    scheduler (``ftdag``: ``ftdag.get``; ``threaded``: ``dask.threaded.get``; ``sync``: ``dask.get``)
    on one workload, interleaved with the other schedulers in one process.  ``target``: on ftdag's
    rows with one, the ratio to ``dask.threaded.get`` that the project aims for (at the full sizes, on 3.13t)."""

    workload: str
    scheduler: str
    tasks: int
    size: int | None = None
    runs: int | None = None
    best_s: float | None = None
    median_s: float | None = None
    times_s: tuple[float, ...] = ()
    target: float | None = None

    @property
    def per_task_us(self) -> float | None:
        return _over(self.best_s, self.tasks / 1e6 if self.tasks else None)

    def to_json(self) -> dict[str, Any]:
        return dict(asdict(self), times_s=list(self.times_s), per_task_us=self.per_task_us)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DaskGetRow:
        return _fields_of(cls, data)


@dataclass(frozen=True)
class DaskGetResult(_Timed):
    """One run of ``benchmarks/dask_get.py`` on one interpreter: ``ftdag.get`` against dask's own
    schedulers on the chain, bag and array workloads (:class:`DaskGetRow`), every ratio taken
    between schedulers timed in that run.

    ``requested_backend`` is what the comparison asked ftdag for (``auto``: ``ftdag.get``'s shared
    executor, its default; or ``threads``), ``ftdag_backend`` what that was (``auto`` is threads
    when the GIL is off, processes otherwise).  The targets (the project's: ftdag's best time at most
    the row's ``target`` times ``dask.threaded.get``'s) are for the free-threaded build with the GIL
    off and the full sizes; elsewhere the ratios are reported without a verdict.
    """

    ok: bool
    error: str | None = None
    mode: str = ""
    requested_backend: str = "auto"
    ftdag_backend: str | None = None
    workers: int | None = None
    dask: str | None = None
    numpy: str | None = None
    work_us: float | None = None
    rows: tuple[DaskGetRow, ...] = ()
    skipped: tuple[str, ...] = ()
    free_threaded_build: bool | None = None
    gil_enabled: bool | None = None
    background_cpus: float | None = None
    steal_cpus: float | None = None
    interpreter: str | None = None
    discarded_noisy_attempts: tuple[DaskGetResult, ...] = ()

    REFERENCE: ClassVar[str] = "threaded"
    DERIVED = ("targets_apply", "ratios", "verdicts")

    @classmethod
    def from_document(cls, doc: Mapping[str, Any], requested_backend: str = "auto") -> DaskGetResult:
        """The record of a ``dask_get.py --json`` document (schema ``ftdag-dask-get/1``)."""
        return cls(ok=True, mode=doc["mode"], requested_backend=requested_backend, ftdag_backend=doc["ftdag_backend"],
                   workers=doc.get("workers"), dask=doc.get("dask"), numpy=doc.get("numpy"),
                   work_us=doc.get("work_us"), rows=tuple(DaskGetRow.from_json(r) for r in doc["rows"]),
                   skipped=tuple(doc.get("skipped") or ()), free_threaded_build=doc.get("free_threaded"),
                   gil_enabled=doc.get("gil_enabled"), background_cpus=doc.get("background_cpus"),
                   steal_cpus=doc.get("steal_cpus"))

    @property
    def workloads(self) -> list[str]:
        return list(dict.fromkeys(r.workload for r in self.rows))

    def row(self, workload: str, scheduler: str) -> DaskGetRow | None:
        return next((r for r in self.rows if (r.workload, r.scheduler) == (workload, scheduler)), None)

    def ratio(self, workload: str, scheduler: str = "ftdag", reference: str = REFERENCE,
              median: bool = False) -> float | None:
        """``scheduler``'s time over ``reference``'s on ``workload``, best over best (or median over
        median), both timed in this run (below 1: ``scheduler`` is faster)."""
        mine, ref = self.row(workload, scheduler), self.row(workload, reference)
        if not (self.ok and mine and ref):
            return None
        return _over(mine.median_s, ref.median_s) if median else _over(mine.best_s, ref.best_s)

    @property
    def ratios(self) -> dict[str, list[float | None]]:
        """Per workload, ftdag over ``dask.threaded.get``: [best, median]."""
        return {w: [self.ratio(w), self.ratio(w, median=True)] for w in self.workloads}

    def target(self, workload: str) -> float | None:
        row = self.row(workload, "ftdag")
        return row.target if row else None

    @property
    def targets_apply(self) -> bool:
        """The targets are for a free-threaded build with the GIL off."""
        return bool(self.ok and self.free_threaded_build and self.gil_enabled is False)

    def meets_target(self, workload: str) -> bool | None:
        target, ratio = self.target(workload), self.ratio(workload)
        return None if not self.targets_apply or target is None or ratio is None else ratio <= target

    @property
    def verdicts(self) -> dict[str, bool | None]:
        """Per workload with a target: met, missed, or None where the targets do not apply."""
        return {w: self.meets_target(w) for w in self.workloads if self.target(w) is not None}

    def to_json(self) -> dict[str, Any]:
        return dict(super().to_json(), rows=[r.to_json() for r in self.rows])

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DaskGetResult:
        rec = super().from_json(data)
        return replace(rec, rows=tuple(DaskGetRow.from_json(r) for r in data.get("rows") or ()),
                       skipped=tuple(data.get("skipped") or ()))


@dataclass(frozen=True)
class DistributedRow:
    """One (workload, backend) row of ``benchmarks/distributed_bench.py``: every timed run of one ftdag
    backend (``threads``, ``processes``, ``distributed``) on one workload, or why it could not run."""

    workload: str
    backend: str
    tasks: int
    times_s: tuple[float, ...] = ()
    error: str | None = None

    @property
    def best_s(self) -> float | None:
        return _best_median(self.times_s)[0]

    @property
    def median_s(self) -> float | None:
        return _best_median(self.times_s)[1]

    @property
    def per_task_us(self) -> float | None:
        return _over(self.best_s, self.tasks / 1e6 if self.tasks else None)

    def to_json(self) -> dict[str, Any]:
        return dict(asdict(self), times_s=list(self.times_s), best_s=self.best_s, median_s=self.median_s,
                    per_task_us=self.per_task_us)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DistributedRow:
        return _fields_of(cls, data)


@dataclass(frozen=True)
class DistributedResult(_Timed):
    """One run of ``benchmarks/distributed_bench.py`` on one interpreter: ftdag's ``distributed``
    backend (an embedded ``LocalCluster`` of ``workers`` single-threaded worker processes) against its
    ``threads`` and ``processes`` backends, the backends interleaved round by round in one process
    (:class:`DistributedRow`).  ``worker_reports``: what the distributed backend found on each worker
    (``free_threaded``, ``gil_enabled``, ``profiler``).  There is no target: the numbers are reported.
    """

    ok: bool
    error: str | None = None
    mode: str = ""
    workers: int | None = None
    spin_per_ms: float | None = None
    rows: tuple[DistributedRow, ...] = ()
    worker_reports: Mapping[str, Any] = field(default_factory=dict)
    free_threaded_build: bool | None = None
    gil_enabled: bool | None = None
    background_cpus: float | None = None
    steal_cpus: float | None = None
    interpreter: str | None = None
    discarded_noisy_attempts: tuple[DistributedResult, ...] = ()

    BACKENDS: ClassVar[tuple[str, ...]] = ("threads", "processes", "distributed")
    DERIVED = ("ratios",)

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> DistributedResult:
        """The record of a ``distributed_bench.py --json`` document (schema ``ftdag-distributed-bench/1``)."""
        return cls(ok=True, mode=doc["mode"], workers=doc.get("workers"), spin_per_ms=doc.get("spin_per_ms"),
                   rows=tuple(DistributedRow.from_json(r) for r in doc["rows"]),
                   worker_reports=dict(doc.get("worker_reports") or {}), free_threaded_build=doc.get("free_threaded"),
                   gil_enabled=doc.get("gil_enabled"), background_cpus=doc.get("background_cpus"),
                   steal_cpus=doc.get("steal_cpus"))

    @property
    def workloads(self) -> list[str]:
        return list(dict.fromkeys(r.workload for r in self.rows))

    def row(self, workload: str, backend: str) -> DistributedRow | None:
        return next((r for r in self.rows if (r.workload, r.backend) == (workload, backend)), None)

    def distributed_over(self, workload: str, backend: str, median: bool = False) -> float | None:
        """The distributed backend's time over ``backend``'s on ``workload``, best over best (or median
        over median), both timed in this run (above 1: distributed is slower)."""
        d, other = self.row(workload, "distributed"), self.row(workload, backend)
        if not (self.ok and d and other):
            return None
        return _over(d.median_s, other.median_s) if median else _over(d.best_s, other.best_s)

    @property
    def ratios(self) -> dict[str, dict[str, list[float | None]]]:
        """Per workload and other backend, distributed over it: [best, median]."""
        return {w: {b: [self.distributed_over(w, b), self.distributed_over(w, b, median=True)]
                    for b in self.BACKENDS if b != "distributed"} for w in self.workloads}

    def worker_warnings(self) -> list[str]:
        """What would make the distributed rows void or unsafe on the workers: a free-threaded worker
        whose GIL is on, or whose statistical profiler is on (it samples other threads' frames)."""
        out = []
        for address, rep in self.worker_reports.items():
            if isinstance(rep, Mapping) and rep.get("free_threaded"):
                if rep.get("gil_enabled"):
                    out.append(f"{address}: GIL on")
                if rep.get("profiler"):
                    out.append(f"{address}: profiler on")
        return out

    def to_json(self) -> dict[str, Any]:
        return dict(super().to_json(), rows=[r.to_json() for r in self.rows])

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DistributedResult:
        rec = super().from_json(data)
        return replace(rec, rows=tuple(DistributedRow.from_json(r) for r in data.get("rows") or ()))


@dataclass(frozen=True)
class ScaleResult(_Timed):
    """One size of the random DAG of the scale issue on one interpreter (``benchmarks/scale.py``).

    Two fresh processes measure it.  The timing one, in rounds: ``build_s``, ``add_task`` for every
    node and ``build()`` (two per round, each on a heap holding only the graph's spec); ``graphlib_s``,
    ``graphlib.TopologicalSorter(spec).static_order()`` consumed into a list (the reference for the
    build); ``plain_s``, the plain loop over the keys in order (the reference for the runs);
    ``first_sequential_s`` and ``first_threads_s``, the first run of a freshly built Dag; and
    ``sequential_s``, ``threads_s``, ``processes_s``, a repeated run of that request (its plan cached).
    Every run requests every sink, on ``workers`` workers.  ``processes_s`` is empty, with the reason in
    ``processes_skipped``, above the mode's size limit; so is ``first_threads_s`` (``first_threads_skipped``)
    above its own, where one Dag per round serves both backends (and only one build is timed).
    ``time_child_s``: that process's wall time.

    The memory one, with ``tracemalloc`` (never timed): ``dag_bytes``, the traced memory held after
    ``build()`` with the builder deleted and ``gc.collect()``, minus that before the first ``add_task``
    (the spec, made before tracing, is not counted); ``build_peak_bytes``, the peak over that baseline
    while building; per entry of ``memory_workers``, ``run_bytes`` and ``run_peak_bytes``: what one run
    on threads with that many workers left held (its result dropped, its cached plan kept, the executor
    open) and its peak, each on a Dag that had not run yet.  ``memory_error`` says why they are
    missing, ``memory_skipped`` why they were not measured (the largest sizes: tracing is slow);
    ``error`` why the timings are (``ok=False``).

    Targets (the project's; free-threaded builds with the GIL off, 2 workers): threads at most
    ``THREADS_TARGET`` × sequential on ``THREADS_TARGET_NODES`` nodes; a first run at most
    ``FIRST_RUN_TARGET`` × a repeated one; ``add_task`` + ``build()`` at most ``BUILD_TARGET`` ×
    graphlib on ``BUILD_TARGET_NODES`` nodes; a run adding at most ``RUN_BYTES_TARGET`` bytes per node,
    the same for every worker count (within ``RUN_BYTES_SAME`` bytes or ``RUN_BYTES_SAME_FRACTION`` of
    the least); a Dag of at most ``DAG_BYTES_TARGET`` bytes per node.  All ratios are of best times.
    """

    n_nodes: int
    ok: bool
    error: str | None = None
    seed: int | None = None
    n_edges: int | None = None
    n_sinks: int | None = None
    workers: int | None = None
    build_s: tuple[float, ...] = ()
    graphlib_s: tuple[float, ...] = ()
    plain_s: tuple[float, ...] = ()
    first_sequential_s: tuple[float, ...] = ()
    first_threads_s: tuple[float, ...] = ()
    first_threads_skipped: str | None = None
    sequential_s: tuple[float, ...] = ()
    threads_s: tuple[float, ...] = ()
    processes_s: tuple[float, ...] = ()
    processes_skipped: str | None = None
    time_child_s: float | None = None
    memory_error: str | None = None
    memory_skipped: str | None = None
    dag_bytes: int | None = None
    build_peak_bytes: int | None = None
    memory_workers: tuple[int, ...] = ()
    run_bytes: tuple[int, ...] = ()
    run_peak_bytes: tuple[int, ...] = ()
    memory_child_s: float | None = None
    free_threaded_build: bool | None = None
    gil_enabled_after: bool | None = None
    background_cpus: float | None = None
    steal_cpus: float | None = None
    interpreter: str | None = None
    discarded_noisy_attempts: tuple[ScaleResult, ...] = ()

    THREADS_TARGET: ClassVar[float] = 2.0
    THREADS_TARGET_NODES: ClassVar[int] = 200_000
    FIRST_RUN_TARGET: ClassVar[float] = 1.5
    BUILD_TARGET: ClassVar[float] = 1.0
    BUILD_TARGET_NODES: ClassVar[int] = 1_000_000
    RUN_BYTES_TARGET: ClassVar[float] = 100.0
    RUN_BYTES_SAME: ClassVar[float] = 10.0
    RUN_BYTES_SAME_FRACTION: ClassVar[float] = 0.10
    DAG_BYTES_TARGET: ClassVar[float] = 300.0
    _INTS: ClassVar[tuple[str, ...]] = ("memory_workers", "run_bytes", "run_peak_bytes")
    DERIVED = ("rounds", "build_best_s", "graphlib_best_s", "plain_best_s", "sequential_best_s",
               "sequential_median_s", "threads_best_s", "threads_median_s", "processes_best_s", "processes_median_s",
               "first_sequential_best_s", "first_threads_best_s", "build_over_graphlib", "sequential_over_plain",
               "threads_over_plain", "processes_over_plain", "threads_over_sequential", "first_over_repeated_sequential",
               "first_over_repeated_threads", "dag_bytes_per_node", "run_bytes_per_node", "targets_apply",
               "meets_threads_target", "meets_first_run_target", "meets_build_target", "meets_run_bytes_target",
               "meets_dag_bytes_target")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ScaleResult:
        rec = super().from_json(data)
        return replace(rec, **{name: tuple(data.get(name) or ()) for name in cls._INTS})

    def per_node(self, seconds: float | None) -> float | None:
        """``seconds`` over the graph's nodes: the time per node."""
        return seconds / self.n_nodes if seconds is not None and self.n_nodes else None

    @property
    def rounds(self) -> int:
        return len(self.sequential_s)

    @property
    def build_best_s(self) -> float | None:
        return _best_median(self.build_s)[0]

    @property
    def graphlib_best_s(self) -> float | None:
        return _best_median(self.graphlib_s)[0]

    @property
    def plain_best_s(self) -> float | None:
        return _best_median(self.plain_s)[0]

    @property
    def sequential_best_s(self) -> float | None:
        return _best_median(self.sequential_s)[0]

    @property
    def sequential_median_s(self) -> float | None:
        return _best_median(self.sequential_s)[1]

    @property
    def threads_best_s(self) -> float | None:
        return _best_median(self.threads_s)[0]

    @property
    def threads_median_s(self) -> float | None:
        return _best_median(self.threads_s)[1]

    @property
    def processes_best_s(self) -> float | None:
        return _best_median(self.processes_s)[0]

    @property
    def processes_median_s(self) -> float | None:
        return _best_median(self.processes_s)[1]

    @property
    def first_sequential_best_s(self) -> float | None:
        return _best_median(self.first_sequential_s)[0]

    @property
    def first_threads_best_s(self) -> float | None:
        return _best_median(self.first_threads_s)[0]

    @property
    def build_over_graphlib(self) -> float | None:
        """``add_task`` + ``build()`` over graphlib's ``static_order`` on the same spec (lower is better)."""
        return _over(self.build_best_s, self.graphlib_best_s) if self.ok else None

    @property
    def sequential_over_plain(self) -> float | None:
        return _over(self.sequential_best_s, self.plain_best_s) if self.ok else None

    @property
    def threads_over_plain(self) -> float | None:
        return _over(self.threads_best_s, self.plain_best_s) if self.ok else None

    @property
    def processes_over_plain(self) -> float | None:
        return _over(self.processes_best_s, self.plain_best_s) if self.ok else None

    @property
    def threads_over_sequential(self) -> float | None:
        return _over(self.threads_best_s, self.sequential_best_s) if self.ok else None

    @property
    def first_over_repeated_sequential(self) -> float | None:
        """A freshly built Dag's first run over a repeated run of the same request, sequential."""
        return _over(self.first_sequential_best_s, self.sequential_best_s) if self.ok else None

    @property
    def first_over_repeated_threads(self) -> float | None:
        return _over(self.first_threads_best_s, self.threads_best_s) if self.ok else None

    @property
    def dag_bytes_per_node(self) -> float | None:
        return self.dag_bytes / self.n_nodes if self.dag_bytes is not None and self.n_nodes else None

    @property
    def run_bytes_per_node(self) -> tuple[float, ...]:
        """Per entry of ``memory_workers``: the bytes per node one run left held."""
        return tuple(b / self.n_nodes for b in self.run_bytes) if self.n_nodes else ()

    @property
    def targets_apply(self) -> bool:
        """The targets are for free-threaded builds with the GIL off, on 2 workers."""
        return bool(self.free_threaded_build and self.gil_enabled_after is not True and self.workers == 2)

    @property
    def meets_threads_target(self) -> bool | None:
        """None unless the target applies to this record (its build, and its size)."""
        r = self.threads_over_sequential
        if not self.targets_apply or self.n_nodes != self.THREADS_TARGET_NODES or r is None:
            return None
        return r <= self.THREADS_TARGET

    @property
    def meets_first_run_target(self) -> bool | None:
        """Every first run measured (sequential, threads) within the target of its repeated run."""
        rs = [r for r in (self.first_over_repeated_sequential, self.first_over_repeated_threads) if r is not None]
        if not self.targets_apply or not rs:
            return None
        return all(r <= self.FIRST_RUN_TARGET for r in rs)

    @property
    def meets_build_target(self) -> bool | None:
        r = self.build_over_graphlib
        if not self.targets_apply or self.n_nodes != self.BUILD_TARGET_NODES or r is None:
            return None
        return r <= self.BUILD_TARGET

    @property
    def meets_run_bytes_target(self) -> bool | None:
        """Every worker count's run at most the target per node, and all of them the same."""
        per = self.run_bytes_per_node
        if not self.targets_apply or not per:
            return None
        low = min(per)
        same = max(per) - low <= max(self.RUN_BYTES_SAME, self.RUN_BYTES_SAME_FRACTION * low)
        return max(per) <= self.RUN_BYTES_TARGET and same

    @property
    def meets_dag_bytes_target(self) -> bool | None:
        b = self.dag_bytes_per_node
        if not self.targets_apply or b is None:
            return None
        return b <= self.DAG_BYTES_TARGET


__all__ += ["ScaleResult"]


@dataclass(frozen=True)
class Row:
    """One row of the comparison table: a runner, or the plain loop, on one interpreter and workload.

    ``speedup_same`` is over the plain loop of the same process (1 for the plain row itself),
    ``speedup_vs_gil`` over the GIL build's plain loop; both come from :class:`Reference`.
    ``gil`` is ``on``, ``off``, ``ON⚠`` (re-enabled on a free-threaded build) or ``?``.
    """

    workload: str
    title: str
    interpreter: str
    runner: str
    ok: bool
    best_s: float | None = None
    median_s: float | None = None
    speedup_same: float | None = None
    speedup_vs_gil: float | None = None
    gil: str = "?"
    error: str | None = None
    overhead_us_per_task: float | None = None
    noisy: bool = False
    background_cpus: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Row:
        return _fields_of(cls, data)


class _Build(Protocol):
    label: str
    ft: bool


B = TypeVar("B", bound=_Build)


def reference_interpreter(interpreters: Iterable[B]) -> B | None:
    """The GIL build every "× GIL plain" speed-up is taken against: the first GIL interpreter, if any."""
    return next((i for i in interpreters if not i.ft), None)


@dataclass(frozen=True)
class Reference:
    """The plain loops the comparison's speed-ups are taken against; the one place they are computed.

    ``gil_label`` is the GIL build (:func:`reference_interpreter`), ``plain_best`` the best plain-loop
    time per (workload, interpreter label) over every process that measured it.  A runner's speed-up
    "same" is over the plain loop timed in its own process (the robust one); "vs GIL" is over the GIL
    build's best plain loop for the workload (the one for choosing a build, noisier: other processes).
    """

    gil_label: str | None
    plain_best: Mapping[tuple[str, str], float]

    @classmethod
    def of(cls, interpreters: Iterable[_Build], measurements: Iterable[Measurement]) -> Reference:
        gil = reference_interpreter(interpreters)
        best: dict[tuple[str, str], float] = {}
        for m in measurements:
            pb = m.plain_best_s
            if pb and m.interpreter is not None:
                key = (m.workload, m.interpreter)
                best[key] = min(best.get(key, pb), pb)
        return cls(gil.label if gil else None, best)

    @property
    def label(self) -> str:
        """How tables name the GIL build's plain loop (``GIL`` when none was measured)."""
        return self.gil_label or "GIL"

    def plain(self, workload: str, interpreter: str) -> float | None:
        """The best plain-loop time of ``workload`` on ``interpreter``."""
        return self.plain_best.get((workload, interpreter))

    def vs_gil(self, workload: str, seconds: float | None) -> float | None:
        """Speed-up of a run taking ``seconds`` over the GIL build's plain loop on ``workload``."""
        return _over(self.plain(workload, self.gil_label), seconds) if self.gil_label else None

    def speedups(self, m: Measurement) -> tuple[float | None, float | None]:
        """(over the same process's plain loop, over the GIL build's) for a runner's measurement."""
        return m.speedup_best, (self.vs_gil(m.workload, m.runner_best_s) if m.ok else None)

    def plain_speedups(self, workload: str, interpreter: str) -> tuple[float, float | None]:
        """The same pair for the plain loop's own row (1 over itself, by definition)."""
        return 1.0, self.vs_gil(workload, self.plain(workload, interpreter))


def with_interpreter(rec: T, label: str, discarded: Sequence[T] = ()) -> T:
    """``rec`` labelled with the interpreter that measured it (and the noisy attempts it replaced)."""
    return replace(rec, interpreter=label, discarded_noisy_attempts=tuple(discarded))  # type: ignore[type-var]
