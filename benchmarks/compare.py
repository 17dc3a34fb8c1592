#!/usr/bin/env python3
"""The GIL vs no-GIL comparison: every runner on every workload, on the free-threaded and the GIL build.

    python3 benchmarks/compare.py [--full] [--out DIR] [--workers 2]

Runs with any Python >= 3.11 (it only orchestrates).  It

1. obtains the interpreters and one bench venv per interpreter (``environment.py``): the
   free-threaded 3.13t and a GIL 3.13 built from the same source with the same flags, from
   ``scripts/toolchain.py`` (which builds them the first time, which takes minutes; afterwards
   they are cached), plus ``python3.14t`` if it is on ``PATH``;
2. calibrates the CPU tasks once, on the GIL build, so every interpreter does the same work;
3. measures (``measurement.py``), each in a fresh subprocess of that venv's Python: every
   (interpreter, workload, runner) beside the plain loop in the same process; the small-graph
   row (``smallgraph.py``); the break-even task-size sweep; the result store's overhead per
   record (``store_overhead.py``, once, on 3.13t); a fully cached re-run of the rollup against
   its first run (``resume_bench.py``, on every interpreter); the makespan of a graph whose
   ready order matters, critical path against FIFO (``order.py``, on every interpreter, 3.13t
   first); ``ftdag.get`` against ``dask.threaded.get`` and ``dask.get`` (``dask_get.py``, on every
   interpreter with ftdag's default backend, and on the GIL build with threads too); the distributed
   backend on a ``LocalCluster`` against threads and processes (``distributed_bench.py``, on every
   interpreter); build, run and memory per node of a random DAG from 10,000 nodes up (``scale.py``,
   on every interpreter, 3.13t first);
4. writes ``results.md`` and ``results.json`` (``report.py``), ``speedup.png`` (``chart.py``) and
   ``scale.png`` (``scale.py``) into ``benchmarks/results/<mode>/`` (or ``--out``), and prints the
   report.

``--only-extras`` measures only the last six (the "extras", no table and no speed-up chart: a quick
way to check them), ``--no-extras`` everything but them.  In quick mode the extras run their own
``--quick`` sizes.  The store benchmarks write their records to
temporary directories under ``benchmarks/results/``, on the repository's disk (``/tmp`` may be
tmpfs).

``quick`` (the default) uses smaller workloads and at most 5 repetitions (1.5 s) per measurement and
finishes in about 4 minutes on a 2-core machine once the interpreters exist, plus 1–3 for the dask
benchmarks and about 2 for the scale part (``scale.py``: see its docstring for what it costs);
``--full`` uses the full sizes and 7 repetitions.

Reading the table: ``× same plain`` is the speed-up over the plain loop on the same
interpreter, measured in the same process as the runner (robust to machine noise);
``× GIL plain`` is the speed-up over the plain loop on the GIL build, the number that answers
"how much faster than what I run today" (it compares separate processes, so it is noisier).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from environment import (  # noqa: E402  (all of these import the standard library only)
    Interpreter,
    child_env,
    ensure_venv,
    find_interpreters,
    loadavg,
    machine_info,
    now_iso,
    say,
    warn,
)
from measurement import MODES, SWEEP_WORK_US, Measurer, calibrate, store_interpreter  # noqa: E402
from records import reference_interpreter  # noqa: E402
from report import CHART_LINK, SCALE_CHART_LINK, Comparison, Settings, markdown_report  # noqa: E402
from runners import RUNNERS  # noqa: E402
from workloads import WORKLOADS  # noqa: E402

MEASURED_RUNNERS = tuple(r for r in RUNNERS if r != "plain")  # plain is measured beside each of them


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--full", action="store_true", help="full sizes and 7 repetitions (default: quick mode)")
    p.add_argument("--out", type=Path, default=None, help="results folder (default benchmarks/results/<mode>)")
    p.add_argument("--workers", type=int, default=2, help="workers for every parallel runner (default 2)")
    p.add_argument("--repeat", type=int, default=None, help="override the mode's repetitions")
    p.add_argument("--workload", action="extend", nargs="+", choices=WORKLOADS, help="only these workloads")
    p.add_argument("--runner", action="extend", nargs="+", choices=MEASURED_RUNNERS, help="only these runners")
    p.add_argument("--interpreter", action="extend", nargs="+", metavar="LABEL",
                   help="only these interpreters, by label (e.g. 3.13t 3.13)")
    p.add_argument("--no-chart", action="store_true", help="skip the chart (and matplotlib)")
    p.add_argument("--no-sweep", action="store_true", help="skip the break-even task-size sweep")
    extras = p.add_mutually_exclusive_group()
    extras.add_argument("--only-extras", action="store_true",
                        help="measure only the result store's overhead, the cached re-run, the ready order and "
                             "the dask benchmarks and the scale (no table, no speed-up chart)")
    extras.add_argument("--no-extras", action="store_true",
                        help="skip the result store's overhead, the cached re-run, the ready order, the dask "
                             "benchmarks and the scale")
    p.add_argument("--chart-from", type=Path, help=argparse.SUPPRESS)  # internal: draw from a results.json
    p.add_argument("--png", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.workload = list(dict.fromkeys(args.workload or WORKLOADS))
    args.runner = list(dict.fromkeys(args.runner or MEASURED_RUNNERS))
    if args.only_extras:  # no table: no speed-up chart (write() draws it only from a table), nothing to sweep
        args.workload, args.runner, args.no_sweep = [], [], True
    if args.workers < 1 or (args.repeat is not None and args.repeat < 1):
        p.error("--workers and --repeat must be >= 1")
    return args


def prepare_interpreters(args: argparse.Namespace) -> list[Interpreter]:
    """The interpreters to measure, each with a ready bench venv (matplotlib in the reference's)."""
    say("Interpreters:")
    interps = [i for i in find_interpreters() if not args.interpreter or i.label in args.interpreter]
    for i in interps:
        say(f"  {i.label}: Python {i.version} {i.build} at {i.path}")
    if interps and reference_interpreter(interps) is None:
        warn("no GIL interpreter: the '× GIL plain' column stays empty")
    say("Bench venvs:")
    charting = reference_interpreter(interps) or (interps[0] if interps else None)
    usable = []
    for i in interps:
        ready = ensure_venv(i, with_matplotlib=not args.no_chart and i is charting)
        if ready is None:
            warn(f"{i.label}: no usable bench venv; skipped")
            continue
        pk = ready.bench.packages
        say(f"  {i.label}: {ready.bench.venv} (" + ", ".join(f"{k} {v or 'missing'}" for k, v in pk.items()) + ")")
        usable.append(ready)
    return usable


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.chart_from:
        import chart

        chart.draw(args.chart_from, args.png or args.chart_from.with_name("speedup.png"))
        return 0
    if sys.version_info < (3, 11):  # noqa: UP036 - run by whatever python3 the machine has
        warn("needs Python >= 3.11")
        return 1
    started = time.perf_counter()
    mode = MODES["full" if args.full else "quick"]
    if args.repeat:
        mode = replace(mode, repeat=args.repeat)
    out = args.out or HERE / "results" / mode.name
    out.mkdir(parents=True, exist_ok=True)
    machine = machine_info()
    machine["loadavg_start"] = machine.pop("loadavg")
    what = ("the result store's overhead, the cached re-run, the ready order, the dask benchmarks and the scale "
            "only" if args.only_extras else
            f"{len(args.workload)} workloads × {len(args.runner)} runners (+ the plain loop beside each)")
    say(f"ftdag comparison, {mode.name} mode: {what} on {machine['cpu_count']} CPUs; results in {out}")

    interps = prepare_interpreters(args)
    if not interps:
        warn("no interpreter to measure")
        return 1
    calibrated_on = reference_interpreter(interps) or interps[0]
    env = child_env()
    spin_per_ms = calibrate(calibrated_on.bench.python, env)
    if spin_per_ms is None:
        warn("calibration failed")
        return 1
    say(f"Calibrated on {calibrated_on.label}: {spin_per_ms:.0f} loop rounds per ms of CPU work")

    measurer = Measurer(mode, args.workers, spin_per_ms, env, scratch=HERE / "results")
    measurements, small_graph, sweep, store, resume, order = [], [], [], [], [], []
    dask_get, distributed = [], []
    scale: list = []
    if not args.only_extras:
        say(f"Measuring ({len(args.workload) * len(interps) * len(args.runner)} measurements, "
            "each in a fresh process):")
        measurements = measurer.table(interps, args.workload, args.runner)
        say("Small graphs (ftdag threads against a reference in the same process):")
        small_graph = measurer.small_graphs(interps)
    if not args.no_sweep:
        sweep = measurer.sweep(interps)
    if not args.no_extras:
        say("Result store (save + load per record, against pickle.dumps) and a cached re-run of the rollup:")
        store = measurer.store_overhead(store_interpreter(interps) or interps[0])
        resume = measurer.resume(interps)
        say("Ready order (critical path against FIFO, 64 independent 10 ms tasks then a chain of 16):")
        order = measurer.order(interps)
        say("dask: ftdag.get against dask.threaded.get and dask.get; the distributed backend against threads and "
            "processes:")
        dask_get, distributed = measurer.dask_get(interps), measurer.distributed(interps)
        say("Scale (build, run and memory per node of a random DAG, each size in fresh processes):")
        scale = measurer.scale(interps)

    machine["loadavg_end"] = loadavg()
    c = Comparison(
        mode=mode.name, date=now_iso(), duration_s=time.perf_counter() - started, machine=machine,
        interpreters=tuple(interps), interrupted=measurer.interrupted,
        settings=Settings(workers=args.workers, size=mode.size, repeat=mode.repeat, budget_s=mode.budget,
                          timeout_s=mode.timeout, noisy_retries=mode.retries, spin_per_ms=spin_per_ms,
                          calibrated_on=calibrated_on.label, workloads=tuple(args.workload),
                          runners=tuple(args.runner), sweep_work_us=SWEEP_WORK_US),
        measurements=tuple(measurements), small_graph=tuple(small_graph), sweep=tuple(sweep),
        store_overhead=tuple(store), resume=tuple(resume), order=tuple(order),
        dask_get=tuple(dask_get), distributed=tuple(distributed), scale=tuple(scale),
    )
    return write(c, out, with_chart=not args.no_chart, started=started)


def write(c: Comparison, out: Path, with_chart: bool, started: float) -> int:
    """``results.json``, then the charts drawn from it, then ``results.md``; print the report."""
    json_path, md_path, png_path = out / "results.json", out / "results.md", out / "speedup.png"
    json_path.write_text(json.dumps(c.to_json(), indent=1, default=repr) + "\n")
    png_path.unlink(missing_ok=True)
    import chart

    if with_chart and c.measurements:
        chart_msg = chart.make_chart(c.interpreters, json_path, png_path, child_env())
    else:
        chart_msg = "chart skipped (" + ("--no-chart" if not with_chart else "no table") + ")"
    scale_png = out / "scale.png"
    scale_png.unlink(missing_ok=True)
    if with_chart and c.scale:
        chart_msg += "; scale " + chart.make_chart(c.interpreters, json_path, scale_png, child_env(), script="scale.py")
    text = markdown_report(c, chart=png_path.exists(), scale_chart=scale_png.exists())
    md_path.write_text(f"# ftdag benchmark results ({c.mode})\n\n{text}\n")
    say("")
    say(text.replace(CHART_LINK, "").replace(SCALE_CHART_LINK, "").rstrip())
    say("")
    say(chart_msg)
    say(f"Wrote {md_path}, {json_path}" + "".join(f", {p}" for p in (png_path, scale_png) if p.exists())
        + f" in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
