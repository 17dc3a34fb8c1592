#!/usr/bin/env python3
"""How ftdag's cost grows with the graph: build, run and memory per node on 10k to 1M nodes.

    python benchmarks/scale.py [--quick] [--sizes N [N ...]] [--rounds R] [--workers 2]
                               [--memory-workers 2 16] [--json out.json] [--quiet]
    python benchmarks/scale.py --chart RESULTS_JSON PNG

The graph: keys are the ints ``0..n-1``; node 0 is a source
(value 1); node ``i >= 1`` is a task ``noop(*deps)`` (``def noop(*args): return None``) depending
on 1 to 3 distinct keys drawn uniformly from ``[max(0, i - 1000), i)`` with a seeded
``random.Random`` (the number of dependencies uniform in 1..3, capped by the keys there are).
Every run requests every sink (each node nobody depends on).  Sizes: 10,000, 50,000 and 200,000
nodes with ``--quick`` (the main job's default), else 10,000, 100,000, 200,000 (where the threads
target is stated) and 1,000,000.  Only ftdag's public API is used (``DagBuilder.add_source``,
``add_task``, ``build``, ``Executor(ExecutorConfig(max_workers=W, backend=...))``, ``run``), so
that the numbers stay comparable while the internals change.

Each size is measured in two fresh processes of this interpreter (this script with
``--child``), one after the other:

**time**, in rounds (``ROUNDS``: in quick mode 3 at 10,000 nodes and 1 above; in full mode 5
up to 200,000, the size the threads target is set at, so that one slow phase of the machine
(its speed moves by up to 2x between seconds here) does not decide a best time, then 1): ``graphlib.TopologicalSorter(spec).static_order()`` consumed
into a list, on the spec dict ``{key: tuple_of_deps}`` (the reference for the build);
``add_task`` for every node plus ``build()``, twice per round (one Dag for the sequential runs,
one for the threads runs, each built while no other Dag is alive; above ``FIRST_THREADS_UP_TO``,
1,000,000 nodes, once, and the threads runs reuse the sequential runs' Dag, after one untimed
run); on each, its first run (a new request: its
plan is computed), then a repeated run of the same request (its plan cached), sequential and
on threads; a repeated run on processes, on the sequential runs' Dag, up to
``PROCESSES_UP_TO`` nodes (10,000 in quick mode, 100,000 in full mode: a process run costs
~100 µs per node on either build here, flat with the size, so one run of 1M nodes would take
minutes); and the
plain loop, the reference for the runs: a dict of values over the keys in order, calling
``noop`` on the dependencies' values.  Every run uses ``workers`` workers (2 by default) on an
executor made, and its pool started on a 2-node graph, before the first round; its result is
checked (every sink, each ``None``, every node executed).  Reported per size: the best time per
node (and the median for the repeated runs), and ratios of the best times: build over
graphlib, each backend over the plain loop, threads over sequential, first run over repeated
run.  The garbage collector stays on while timing, as in a user's program (on 3.13t a
collection walks every object on the heap, and a Dag's first run pays for it more per node the
larger the graph); ``gc.collect()`` runs before each timed step, untimed, and the spec is made
with the collector paused (setup, not measured: on 3.13t making a 1M-node spec with the
collector on takes about a minute).

**memory**, with ``tracemalloc`` and nothing timed, up to ``MEMORY_UP_TO`` nodes (10,000 in
quick mode, 100,000 in full mode: tracing makes this process take ~0.7 ms per node on 3.13t):
the traced memory held after ``build()`` with the builder deleted and ``gc.collect()``, minus
that before the first ``add_task`` (the spec and its keys, made before tracing starts, are not
counted), and the peak while building; then, for each worker count of ``--memory-workers`` (2
and 16), on a Dag that has not run yet and an executor on threads whose pool is already
started, what one run leaves held (traced from just before the run; its result dropped,
``gc.collect()``, the executor still open, the Dag's cached plan kept) and the run's peak.

What it costs: the report's last line per interpreter says what a run took ("measuring
took ...").  With the flat graph arrays, on this project's 2-core machine, quick mode takes
about a minute per interpreter; full mode a few minutes, most of it the memory tracing at
100,000 nodes and the 1M-node builds and runs.

The task function lives in this script, which runs as ``__main__``, so its code is not compiled
at import with mortal constants that threads would contend on (see README: run from ``.pyc``
files).

``--json`` writes the document (schema ``ftdag-scale/1``): ``schema``, ``date``, ``python``,
``free_threaded``, ``gil_enabled``, ``loadavg``, ``settings`` and ``results``: one
:class:`records.ScaleResult` per size, as its ``to_json()``.  Exit status 0 if every size was
measured, else 1 (the document is written either way).  ``--chart`` draws ``scale.png`` (time
per node against nodes, log-log, one panel per interpreter) from such a document or from the
main job's ``results.json`` (its ``scale`` key); it needs matplotlib.

Importing this module runs nothing (and imports no ftdag).
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import sysconfig
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from environment import background_load, cpu_snapshot, ftdag_importable, loadavg, now_iso  # noqa: E402
from records import ScaleResult  # noqa: E402

__all__ = ["FIRST_THREADS_UP_TO", "MEMORY_UP_TO", "MEMORY_WORKERS", "PROCESSES_UP_TO", "ROUNDS", "SCHEMA", "SEED", "SIZES", "draw", "make_spec",
           "rounds_for", "sinks_of"]

SCHEMA = "ftdag-scale/1"
SEED = 14  # any fixed seed: every run draws the same graph
SOURCE = 0  # the one source; its value is 1
WINDOW = 1000  # a node's dependencies are among the WINDOW keys before it
MAX_DEPS = 3
SIZES = {"quick": (10_000, 50_000, 200_000), "full": (10_000, 100_000, 200_000, 1_000_000)}
ROUNDS = {"quick": ((10_000, 3), (None, 1)),  # (up to this many nodes, rounds); None: any size
          "full": ((200_000, 5), (None, 1))}  # 200,000: the size the run target is set at
PROCESSES_UP_TO = {"quick": 10_000, "full": 100_000}  # ~100 µs per node: a 1M-node run would take minutes
FIRST_THREADS_UP_TO = 1_000_000  # above, one Dag per round serves both backends (their first runs: one each)
MEMORY_UP_TO = {"quick": 10_000, "full": 100_000}  # tracing takes ~0.7 ms per node on 3.13t
MEMORY_WORKERS = (2, 16)
TINY = 400  # nodes of the graph the tests run


# -- the task (run as __main__: see the docstring) -----------------------------------------------


def noop(*args):
    return None


# -- the graph -----------------------------------------------------------------------------------


def make_spec(n: int, seed: int = SEED) -> dict[int, tuple[int, ...]]:
    """``{key: tuple_of_deps}`` for the ``n``-node graph (node 0, the source, has no dependencies).

    Made with the garbage collector paused: on 3.13t it would walk the growing dict every 2,000
    tuples, which at a million nodes takes a minute (and this is setup, not measured)."""
    rnd = random.Random(seed).random
    spec: dict[int, tuple[int, ...]] = {0: ()}
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for i in range(1, n):
            lo = i - WINDOW if i > WINDOW else 0
            span = i - lo
            k = min(1 + int(rnd() * MAX_DEPS), span)
            deps = [lo + int(rnd() * span)]
            while len(deps) < k:
                d = lo + int(rnd() * span)
                if d not in deps:
                    deps.append(d)
            spec[i] = tuple(deps)
    finally:
        if was_enabled:
            gc.enable()
    return spec


def sinks_of(spec: dict[int, tuple[int, ...]]) -> list[int]:
    """The nodes nobody depends on, in key order: the requested outputs."""
    used = {d for deps in spec.values() for d in deps}
    return [k for k in spec if k not in used]


def rounds_for(n: int, mode: str) -> int:
    return next(r for limit, r in ROUNDS[mode] if limit is None or n <= limit)


def _build(spec: dict[int, tuple[int, ...]]):
    """``add_task`` for every node, then ``build()``: what the build time covers."""
    import ftdag

    b = ftdag.DagBuilder()
    add_task = b.add_task
    for k, deps in spec.items():
        if k == SOURCE:
            b.add_source(k, 1)
        else:
            add_task(k, deps, noop)
    return b.build()


def _plain(spec: dict[int, tuple[int, ...]]) -> dict[int, Any]:
    """The reference for a run: every node's value, in key order (a topological order here)."""
    values: dict[int, Any] = {}
    for k, deps in spec.items():
        values[k] = 1 if k == SOURCE else noop(*[values[d] for d in deps])
    return values


def _graphlib(spec: dict[int, tuple[int, ...]]) -> list[Hashable]:
    import graphlib

    return list(graphlib.TopologicalSorter(spec).static_order())


def _tiny_dag():
    """Two nodes: starts an executor's pool, and sends ``noop`` to process workers."""
    import ftdag

    b = ftdag.DagBuilder()
    b.add_source("x", 1)
    b.add_task("y", ["x"], noop)
    return b.build()


class CheckFailed(Exception):
    """A run returned something else than every sink, each ``None``, or did not run every task."""


def _check(res, sinks: list[int], n: int, what: str) -> None:
    if len(res) != len(sinks) or any(res[k] is not None for k in sinks):
        raise CheckFailed(f"the {what} returned {len(res)} outputs, not the {len(sinks)} sinks, each None")
    if res.stats.executed != n:  # RunStats counts the source too
        raise CheckFailed(f"the {what} executed {res.stats.executed} nodes, not all {n}")


def _timed(fn: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    """``fn(*args)`` and its wall time, after a ``gc.collect()`` (not timed)."""
    gc.collect()
    t0 = time.perf_counter()
    res = fn(*args)
    return res, time.perf_counter() - t0


def _shape(spec: dict[int, tuple[int, ...]], sinks: list[int]) -> dict[str, int]:
    return {"n_edges": sum(len(d) for d in spec.values()), "n_sinks": len(sinks)}


# -- the two children ----------------------------------------------------------------------------


def measure_time(n: int, workers: int, rounds: int, processes: bool, seed: int = SEED, first_threads: bool = True,
                 progress: Callable[[str], None] = lambda s: None) -> ScaleResult:
    """The timing child's measurement, in this process.  ``first_threads``: build a second Dag per round
    for the threads runs, to time its first run (else they run on the sequential runs' Dag, once
    untimed, then timed).  Never raises for a failing run or check: the result then has ``ok=False``
    and the reason."""
    started = time.perf_counter()
    known: dict[str, Any] = dict(n_nodes=n, seed=seed, workers=workers,
                                 free_threaded_build=bool(sysconfig.get_config_var("Py_GIL_DISABLED")))
    if not processes:
        known["processes_skipped"] = "not measured"
    if not first_threads:
        known["first_threads_skipped"] = "not measured"
    times: dict[str, list[float]] = {k: [] for k in ("build", "graphlib", "plain", "first_sequential",
                                                     "first_threads", "sequential", "threads", "processes")}
    result: ScaleResult
    try:
        import ftdag

        spec = make_spec(n, seed)
        sinks = sinks_of(spec)
        known.update(_shape(spec, sinks))
        backends = ["sequential", "threads"] + (["processes"] if processes else [])
        exs = {b: ftdag.Executor(ftdag.ExecutorConfig(max_workers=workers, backend=b)) for b in backends}
        try:
            for ex in exs.values():
                ex.run(_tiny_dag(), "y")
            cpu0, start = cpu_snapshot(), time.perf_counter()
            for r in range(rounds):
                order, dt = _timed(_graphlib, spec)
                if len(order) != n:
                    raise CheckFailed(f"graphlib ordered {len(order)} nodes, not {n}")
                times["graphlib"].append(dt)
                del order
                dag = None
                for backend in ("sequential", "threads"):  # one fresh Dag each, built alone on the heap
                    fresh = dag is None or first_threads
                    if fresh:
                        dag = None
                        dag, dt = _timed(_build, spec)
                        times["build"].append(dt)
                        if len(dag) != n:
                            raise CheckFailed(f"the Dag has {len(dag)} nodes, not {n}")
                    for which in (f"first_{backend}", backend):
                        res, dt = _timed(exs[backend].run, dag, sinks)
                        _check(res, sinks, n, f"{which.replace('_', ' ')} run")
                        if fresh or which == backend:  # else the plan was cached by the sequential runs
                            times[which].append(dt)
                        del res
                    if backend == "sequential" and processes:
                        res, dt = _timed(exs["processes"].run, dag, sinks)
                        _check(res, sinks, n, "processes run")
                        times["processes"].append(dt)
                        del res
                dag = None
                values, dt = _timed(_plain, spec)
                times["plain"].append(dt)
                del values
                progress(f"{n:,} nodes, round {r + 1}/{rounds}: " + ", ".join(
                    f"{k.replace('_', ' ')} {v[-1] / n * 1e6:.2f} µs/node" for k, v in times.items() if v))
            load = background_load(cpu0, cpu_snapshot(), time.perf_counter() - start)
        finally:
            for ex in exs.values():
                ex.close()
        result = ScaleResult(ok=True, **{f"{k}_s": tuple(v) for k, v in times.items()}, **load, **known)
    except Exception as exc:  # a failing run is a result cell, not a crash of the harness
        result = ScaleResult(ok=False, error=f"{type(exc).__name__}: {exc}".strip(), **known)
    return replace(result, time_child_s=time.perf_counter() - started,
                   gil_enabled_after=getattr(sys, "_is_gil_enabled", lambda: True)())


def measure_memory(n: int, memory_workers: Sequence[int], seed: int = SEED,
                   progress: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    """The memory child's measurement, in this process: :class:`records.ScaleResult`'s memory fields
    (``memory_error`` and the reason if it failed)."""
    import tracemalloc

    started = time.perf_counter()
    out: dict[str, Any] = {"memory_workers": list(memory_workers)}
    try:
        import ftdag

        spec = make_spec(n, seed)
        sinks = sinks_of(spec)
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        dag: Any = _build(spec)  # the builder is gone when _build returns
        gc.collect()
        held, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        out.update(dag_bytes=held - before, build_peak_bytes=peak - before)
        progress(f"{n:,} nodes: the Dag holds {(held - before) / n:.0f} B/node (peak {(peak - before) / n:.0f})")
        run_bytes, run_peaks = [], []
        for k, w in enumerate(memory_workers):
            with ftdag.Executor(ftdag.ExecutorConfig(max_workers=w, backend="threads")) as ex:
                ex.run(_tiny_dag(), "y")  # the pool is started
                if k:  # a Dag that has not run yet (the first one has not)
                    del dag
                    gc.collect()
                    dag = _build(spec)
                gc.collect()
                tracemalloc.start()
                before = tracemalloc.get_traced_memory()[0]
                tracemalloc.reset_peak()
                res = ex.run(dag, sinks)
                _check(res, sinks, n, f"run on {w} threads")
                del res
                gc.collect()
                held, peak = tracemalloc.get_traced_memory()
                tracemalloc.stop()
            run_bytes.append(held - before)
            run_peaks.append(peak - before)
            progress(f"{n:,} nodes: a run on {w} threads leaves {(held - before) / n:.0f} B/node held "
                     f"(peak {(peak - before) / n:.0f})")
        out.update(run_bytes=run_bytes, run_peak_bytes=run_peaks)
    except Exception as exc:  # a failing run is a result cell, not a crash of the harness
        tracemalloc.stop()
        out["memory_error"] = f"{type(exc).__name__}: {exc}".strip()
    out["memory_child_s"] = time.perf_counter() - started
    return out


# -- the parent ----------------------------------------------------------------------------------


def child_timeout(n: int) -> float:
    """Seconds one child may take: to catch a hang, not to judge speed (the memory child of the
    current code takes ~0.3 ms per node on 3.13t, tracing a 16-thread run)."""
    return 300 + 2e-3 * n


def measure_size(python: str, n: int, *, workers: int, rounds: int, processes_up_to: int | None = None,
                 first_threads_up_to: int | None = None, memory_up_to: int | None = None,
                 memory_workers: Sequence[int] = MEMORY_WORKERS, seed: int = SEED, timeout: float | None = None,
                 env: dict[str, str] | None = None) -> ScaleResult:
    """Both children of size ``n``, each a fresh ``python scale.py --child ...``; processes only up to
    ``processes_up_to`` nodes, the threads' first run up to ``first_threads_up_to``, the memory child
    up to ``memory_up_to`` (None: at any size).  Never raises for a failing child (the timings'
    failure is ``error``, the memory's ``memory_error``)."""
    from measurement import _run_script

    timeout = child_timeout(n) if timeout is None else timeout
    processes = processes_up_to is None or n <= processes_up_to
    first_threads = first_threads_up_to is None or n <= first_threads_up_to
    common = ["--size", str(n), "--seed", str(seed)]
    argv = ["--child", "time", *common, "--workers", str(workers), "--rounds", str(rounds)]
    argv += ([] if processes else ["--no-processes"]) + ([] if first_threads else ["--no-first-threads"])
    doc, reason = _run_script("scale.py", python, argv, timeout, env)
    rec = ScaleResult(n_nodes=n, ok=False, error=reason, seed=seed, workers=workers)
    if doc is not None:
        try:
            rec = ScaleResult.from_json(doc["result"])
        except (KeyError, TypeError) as exc:
            rec = replace(rec, error=f"unreadable result ({type(exc).__name__})")
    if not processes:
        rec = replace(rec, processes_skipped=f"not measured above {processes_up_to:,} nodes")
    if not first_threads:
        rec = replace(rec, first_threads_skipped=f"not measured above {first_threads_up_to:,} nodes")
    if memory_up_to is not None and n > memory_up_to:
        return replace(rec, memory_skipped=f"not measured above {memory_up_to:,} nodes")
    argv = ["--child", "memory", *common, "--memory-workers", *map(str, memory_workers)]
    doc, reason = _run_script("scale.py", python, argv, timeout, env)
    try:
        mem = dict(doc["result"]) if doc is not None else {"memory_error": reason}
        return ScaleResult.from_json(dict(rec.to_json(), **mem))
    except (KeyError, TypeError) as exc:
        return replace(rec, memory_error=f"unreadable result ({type(exc).__name__})")


def summary(r: ScaleResult) -> str:
    """One line per size, for the progress of a run by hand or of the main job."""
    from report import fmt_bytes, fmt_per_node, fmt_x

    if not r.ok:
        timing = f"n/a: {r.error}"
    else:
        timing = (f"build {fmt_per_node(r.per_node(r.build_best_s))} ({fmt_x(r.build_over_graphlib)} graphlib), "
                  f"sequential {fmt_per_node(r.per_node(r.sequential_best_s))}, threads "
                  f"{fmt_per_node(r.per_node(r.threads_best_s))} ({fmt_x(r.threads_over_sequential)} sequential)")
    if r.memory_error or r.memory_skipped:
        memory = f"memory n/a: {r.memory_error}" if r.memory_error else f"memory {r.memory_skipped}"
    else:
        memory = (f"Dag {fmt_bytes(r.dag_bytes_per_node)}/node, a run adds "
                  + " / ".join(f"{fmt_bytes(b)}" for b in r.run_bytes_per_node)
                  + f" per node ({' / '.join(map(str, r.memory_workers))} workers)")
    return f"{timing}; {memory}"


def _positive(p: argparse.ArgumentParser, name: str, values: Sequence[int] | int | None) -> None:
    if values is not None and min([values] if isinstance(values, int) else values, default=1) < 1:
        p.error(f"{name} must be >= 1")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help=f"sizes {', '.join(f'{n:,}' for n in SIZES['quick'])} "
                   f"and fewer rounds (default: {', '.join(f'{n:,}' for n in SIZES['full'])})")
    p.add_argument("--sizes", type=int, nargs="+", default=None, help="these sizes instead (nodes)")
    p.add_argument("--rounds", type=int, default=None, help="timed rounds at every size (default: the mode's)")
    p.add_argument("--workers", type=int, default=2, help="the executors' max_workers (default 2)")
    p.add_argument("--memory-workers", type=int, nargs="+", default=list(MEMORY_WORKERS),
                   help="the worker counts of the memory runs (default 2 16)")
    p.add_argument("--seed", type=int, default=SEED, help=f"the graph's seed (default {SEED})")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument("--quiet", action="store_true", help="print no progress and no table")
    p.add_argument("--chart", nargs=2, type=Path, metavar=("RESULTS_JSON", "PNG"),
                   help="draw scale.png from a document of this script or the main job's results.json")
    # internal: one child's measurement of one size
    p.add_argument("--child", choices=("time", "memory"), help=argparse.SUPPRESS)
    p.add_argument("--size", type=int, help=argparse.SUPPRESS)
    p.add_argument("--no-processes", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--no-first-threads", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.mode = "quick" if args.quick else "full"
    args.sizes = list(dict.fromkeys(args.sizes or SIZES[args.mode]))
    for name in ("sizes", "rounds", "workers", "memory_workers", "size"):
        _positive(p, f"--{name.replace('_', '-')}", getattr(args, name))
    if args.child and not args.size:
        p.error("--child needs --size")
    if args.size is not None and args.size < 2:
        p.error("--size must be >= 2")
    if min(args.sizes) < 2:
        p.error("--sizes must be >= 2")
    return args


def _label() -> str:
    ft = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    return f"{sys.version_info.major}.{sys.version_info.minor}{'t' if ft else ''}"


def _header(gil_enabled: bool | None) -> dict[str, Any]:
    return {"schema": SCHEMA, "date": now_iso(), "python": sys.version,
            "free_threaded": bool(sysconfig.get_config_var("Py_GIL_DISABLED")), "gil_enabled": gil_enabled,
            "loadavg": loadavg()}


def _write(path: Path | None, doc: dict[str, Any]) -> None:
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc, indent=1, default=repr) + "\n")


def child_main(args: argparse.Namespace) -> int:
    """``--child time|memory --size N``: one measurement in this process, as ``{"result": ...}``."""
    say = (lambda s: None) if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True))
    if args.child == "time":
        rounds = args.rounds or rounds_for(args.size, args.mode)
        rec = replace(measure_time(args.size, args.workers, rounds, not args.no_processes, args.seed,
                                   not args.no_first_threads, say), interpreter=_label())
        _write(args.json, dict(_header(rec.gil_enabled_after), result=rec.to_json()))
        return 0 if rec.ok else 1
    mem = measure_memory(args.size, args.memory_workers, args.seed, say)
    _write(args.json, dict(_header(getattr(sys, "_is_gil_enabled", lambda: True)()), result=mem))
    return 0 if "memory_error" not in mem else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.chart:
        draw(*args.chart)
        return 0
    ftdag_importable()  # (the task code lives in this script, ``__main__``)
    if args.child:
        return child_main(args)
    say = (lambda s: None) if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True))
    say(f"scale ({args.mode} mode): the random DAG at {', '.join(f'{n:,}' for n in args.sizes)} nodes, "
        f"{args.workers} workers; memory with {' and '.join(map(str, args.memory_workers))} workers")
    results = []
    up_to, memory_up_to = PROCESSES_UP_TO[args.mode], MEMORY_UP_TO[args.mode]
    for n in args.sizes:
        rounds = args.rounds or rounds_for(n, args.mode)
        say(f"{n:,} nodes: {rounds} round{'s' * (rounds > 1)}{'' if n <= up_to else ', no processes'}"
            f"{'' if n <= FIRST_THREADS_UP_TO else ', no first run on threads'}"
            f"{'' if n <= memory_up_to else ', no memory'}")
        rec = measure_size(sys.executable, n, workers=args.workers, rounds=rounds, processes_up_to=up_to,
                           first_threads_up_to=FIRST_THREADS_UP_TO, memory_up_to=memory_up_to,
                           memory_workers=args.memory_workers, seed=args.seed)
        results.append(rec)
        say(f"{n:,} nodes: {summary(rec)}")
    if not args.quiet:
        from report import scale_table

        print(f"Python {sys.version.split()[0]} ({_label()}), {args.mode} mode")
        print(scale_table(results))
    doc = dict(_header(next((r.gil_enabled_after for r in results if r.gil_enabled_after is not None), None)),
               settings={"mode": args.mode, "sizes": args.sizes, "workers": args.workers,
                         "memory_workers": args.memory_workers, "seed": args.seed, "rounds": args.rounds,
                         "processes_up_to": up_to, "first_threads_up_to": FIRST_THREADS_UP_TO,
                         "memory_up_to": memory_up_to},
               results=[r.to_json() for r in results])
    _write(args.json, doc)
    return 0 if all(r.ok and not r.memory_error for r in results) else 1


# -- the chart -----------------------------------------------------------------------------------

SERIES = (("build_best_s", "add_task + build"), ("graphlib_best_s", "graphlib static_order"),
          ("sequential_best_s", "sequential run"), ("threads_best_s", "threads run"),
          ("processes_best_s", "processes run"), ("plain_best_s", "plain loop"))


def draw(json_path: Path, png_path: Path) -> None:
    """Time per node against nodes (log-log), one panel per interpreter, one line per series (best times)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    doc = json.loads(Path(json_path).read_text())
    if "results" in doc:  # this script's own document: one interpreter
        recs = [ScaleResult.from_json(r) for r in doc["results"]]
        recs = [r if r.interpreter else replace(r, interpreter="") for r in recs]
        title = f"{doc.get('settings', {}).get('mode', '')} mode, {doc.get('date', '')[:10]}"
    else:  # the main job's results.json
        recs = [ScaleResult.from_json(r) for r in doc.get("scale") or ()]
        title = f"{doc.get('mode', '')} mode, {doc.get('date', '')[:10]}"
    interps = list(dict.fromkeys(str(r.interpreter) for r in recs))
    panels = max(1, len(interps))
    fig, axes = plt.subplots(1, panels, figsize=(max(9.0, 6.2 * panels), 4.8), squeeze=False, sharey=True)
    cmap = plt.get_cmap("tab10")
    for ax, label in zip(axes.flat, interps):
        mine = sorted((r for r in recs if str(r.interpreter) == label and r.ok), key=lambda r: r.n_nodes)
        for k, (attr, name) in enumerate(SERIES):
            pts = [(r.n_nodes, r.per_node(getattr(r, attr)) * 1e6) for r in mine if getattr(r, attr)]
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, marker="o", label=name, color=cmap(k), linestyle="--" if k in (1, 5) else "-")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"Python {label}" if label else "ftdag", fontsize=10)
        ax.set_xlabel("nodes")
        ax.set_xticks([r.n_nodes for r in mine])  # the sizes measured
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.grid(alpha=0.3, which="both")
    axes.flat[0].set_ylabel("µs per node (best; log scale)")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(SERIES) if panels > 1 else 3, fontsize=8,
               frameon=False)
    workers = next((r.workers for r in recs if r.workers), "?")
    fig.suptitle(f"ftdag at scale: time per node on the random DAG, {workers} workers, {title}\n"
                 "(lower is better; a flat line is a cost linear in the graph's size)", fontsize=10)
    fig.tight_layout(rect=(0, 0.1 if panels > 1 else 0.13, 1, 0.93))
    fig.savefig(png_path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
