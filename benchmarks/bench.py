#!/usr/bin/env python3
"""Measure ftdag and its peers on the benchmark workloads, in the interpreter running this script.

    python benchmarks/bench.py [--workload W ...] [--runner R ...] [--workers 2] [--repeat N]
                               [--size quick|full|tiny] [--json out.json]

For every (workload, runner) pair it reports the best and the median of N repetitions of the
runner and of the plain loop (``runners.run_plain``, the zero-overhead reference), measured
in the same process and interleaved with it, so that ratios hold on a noisy machine.  Each
pair runs in a fresh subprocess of this interpreter (``--in-process`` runs them all here
instead), so one runner's imports (dask, say, which could turn the GIL back on in a
free-threaded build) cannot affect another.  Before timing, every runner's outputs are checked
against the plain loop's; a runner that fails or is unavailable gets an ``n/a: <reason>`` cell.

The table shows, per runner, ``x plain``: its time over the plain loop's (below 1 is faster
than not parallelising at all), and for the no-op chain the scheduling overhead per task in
µs, ``(runner - plain) / tasks``.  A ``GIL ON`` flag marks a measurement on a free-threaded
build during which the GIL was (re-)enabled.

``--json`` writes every raw timing; the schema is described in :func:`new_document` and
:func:`measure` (and tested by ``tests/test_benchmarks.py``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for _p in (str(HERE), str(REPO / "examples")):
    if _p not in sys.path:
        sys.path.insert(0, _p)


def _precompile() -> None:
    """Make sure the task modules load from bytecode files, not from source.

    On free-threaded 3.13, a module compiled from source at import time (the first import, or
    any import under ``PYTHONDONTWRITEBYTECODE=1``) keeps mutable reference counts on its code
    constants (``compile()`` turns off their immortalization, CPython gh-118527), so threads
    running the same task function contend on the counts of its integer constants: a
    pure-Python loop then runs *slower* on two threads than on one.  Loaded from a ``.pyc``,
    the constants are immortal and threads scale.  ``py_compile`` writes the ``.pyc`` even
    when ``sys.dont_write_bytecode`` is set; a read-only checkout just skips this.
    """
    import compileall

    for path in (HERE / "workloads.py", HERE / "runners.py", REPO / "examples" / "rollup.py"):
        try:
            compileall.compile_file(str(path), quiet=2)
        except OSError:
            pass


_precompile()

import runners  # noqa: E402
import workloads  # noqa: E402

SCHEMA = "ftdag-bench/1"
DEFAULT_RUNNERS = tuple(r for r in runners.RUNNERS if r != "plain")


def _export_paths() -> None:
    """Let worker processes (spawn/forkserver) import ``workloads`` and ``rollup`` by name."""
    extra = [str(HERE), str(REPO / "examples")]
    old = os.environ.get("PYTHONPATH", "")
    parts = [p for p in old.split(os.pathsep) if p]
    os.environ["PYTHONPATH"] = os.pathsep.join(extra + [p for p in parts if p not in extra])


# -- descriptions ------------------------------------------------------------------------------


def interpreter_info() -> dict[str, Any]:
    ft = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    v = sys.version_info
    return {
        "label": f"{v.major}.{v.minor}{'t' if ft else ''}",
        "version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "build": "free-threaded" if ft else "GIL",
        "free_threaded_build": ft,
        "gil_enabled_at_start": runners.gil_enabled(),
        "executable": sys.executable,
        "sys_version": sys.version,
        "task_constants_immortal": _constants_immortal(),
    }


def _constants_immortal() -> bool:
    """Whether the task functions' integer constants are immortal (see :func:`_precompile`)."""
    big = [c for c in workloads.spin.__code__.co_consts if isinstance(c, int) and c > 256]
    return all(sys.getrefcount(c) >= 1 << 29 for c in big)


def machine_info() -> dict[str, Any]:
    cpu_model = platform.processor() or None
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    return {
        "cpu_count": os.cpu_count(),
        "cpus_available": affinity,
        "cpu_model": cpu_model,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "loadavg": _loadavg(),
    }


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(timespec="seconds")


def new_document(settings: dict[str, Any]) -> dict[str, Any]:
    """The JSON document bench.py writes.

    ``schema``        ``"ftdag-bench/1"``
    ``date``          ISO date and time the run started
    ``machine``       ``cpu_count``, ``cpus_available``, ``cpu_model``, ``platform``, ``machine``, ``loadavg``
    ``interpreter``   ``label`` (e.g. ``3.13t``), ``version``, ``build`` (``free-threaded``/``GIL``),
                      ``free_threaded_build``, ``gil_enabled_at_start``, ``executable``, ...
    ``settings``      ``workers``, ``repeat``, ``size``, ``spin_per_ms``, ``budget_s``
    ``measurements``  one record per (workload, runner): see :func:`measure`
    """
    return {
        "schema": SCHEMA,
        "date": now_iso(),
        "machine": machine_info(),
        "interpreter": interpreter_info(),
        "settings": settings,
        "measurements": [],
    }


# -- measuring ---------------------------------------------------------------------------------


NOISY_CPUS = 0.25  # other processes using this much CPU during a measurement make it suspect


def _tree_jiffies(root: int) -> dict[int, int]:
    """CPU time (clock ticks) of process ``root`` and each of its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    cpu: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", encoding="ascii", errors="replace") as f:
                data = f.read()
        except OSError:
            continue  # the process ended meanwhile
        rest = data[data.rindex(")") + 2:].split()
        pid = int(entry.name)
        children.setdefault(int(rest[1]), []).append(pid)
        cpu[pid] = int(rest[11]) + int(rest[12])  # utime + stime, all threads
    tree, stack = {}, [root]
    while stack:
        pid = stack.pop()
        tree[pid] = cpu.get(pid, 0)
        stack.extend(children.get(pid, ()))
    return tree


def cpu_snapshot() -> tuple[int, int, dict[int, int]] | None:
    """(busy ticks of the whole machine, steal ticks, ticks per process of this tree); None off Linux."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            vals = [int(x) for x in f.readline().split()[1:]] + [0] * 10
        user, nice, system, _idle, _iowait, irq, softirq, steal = vals[:8]
        return user + nice + system + irq + softirq, steal, _tree_jiffies(os.getpid())
    except (OSError, ValueError, IndexError):
        return None


def background_load(before, after, wall_s: float) -> dict[str, float | None]:
    """CPUs used on average by other processes (``background_cpus``) and by the hypervisor
    (``steal_cpus``) between two :func:`cpu_snapshot` calls: a measurement taken while they were
    high had fewer free cores than it asked for, so its parallel speed-up is understated.
    Clock ticks are coarse (10 ms), so windows under 0.2 s are not judged."""
    if before is None or after is None or wall_s < 0.2:
        return {"background_cpus": None, "steal_cpus": None}
    ticks = wall_s * os.sysconf("SC_CLK_TCK")
    # Our share: what each process of the tree used in between (one that started meanwhile, all
    # of its time; one that ended meanwhile is left out, so at worst we over-count others).
    ours = sum(t - before[2].get(pid, 0) for pid, t in after[2].items())
    others = (after[0] - before[0]) - ours
    return {"background_cpus": round(max(0.0, others / ticks), 2),
            "steal_cpus": round(max(0.0, (after[1] - before[1]) / ticks), 2)}


def is_noisy(rec: dict[str, Any]) -> bool:
    return (rec.get("background_cpus") or 0) + (rec.get("steal_cpus") or 0) >= NOISY_CPUS


def _summary(xs: list[float]) -> tuple[float | None, float | None]:
    return (min(xs), statistics.median(xs)) if xs else (None, None)


def measure(wl, runner_name: str, workers: int, repeat: int, budget_s: float | None = None,
            min_repeat: int = 2) -> dict[str, Any]:
    """Time ``runner_name`` and the plain loop on ``wl``, interleaved, and return the record.

    Record fields: ``workload``, ``title``, ``description``, ``params``, ``n_tasks``, ``n_nodes``,
    ``runner``, ``ok``, ``error`` (``None`` or the reason it could not run), ``plain_s`` and
    ``runner_s`` (every repetition, seconds), ``plain_best_s``, ``plain_median_s``,
    ``runner_best_s``, ``runner_median_s``, ``ratio_best`` and ``ratio_median`` (runner over
    plain), ``speedup_best`` (plain over runner), ``overhead_us_per_task`` ((runner - plain) /
    tasks, best times), ``gil_enabled_before``, ``gil_enabled_after``, ``stats`` (ftdag's
    ``RunStats`` of the last run, else ``None``), ``info`` (runner details), ``loadavg``, and
    ``background_cpus`` / ``steal_cpus``: the CPUs that *other* processes (and the hypervisor)
    used on average during the timed rounds (Linux only, else ``None``; see
    :func:`background_load`).

    The plain loop runs first, untimed, as the reference result; then the runner once,
    untimed (it starts its pools) and checked against it; then ``repeat`` timed rounds, each
    plain + runner, alternating which goes first; the last round's outputs are checked too.  With ``budget_s``, rounds stop once that many
    seconds have passed and ``min_repeat`` rounds are done.
    """
    rec: dict[str, Any] = {
        "workload": wl.name, "title": wl.title, "description": wl.description, "params": wl.params,
        "n_tasks": wl.n_tasks, "n_nodes": wl.n_nodes, "runner": runner_name,
        "ok": False, "error": None, "plain_s": [], "runner_s": [],
        "gil_enabled_before": runners.gil_enabled(), "stats": None, "info": {}, "loadavg": _loadavg(),
        "background_cpus": None, "steal_cpus": None,
    }
    plain = runners.make_runner("plain", workers)
    plain.prepare(wl)
    expected = plain.run(wl)
    runner = None
    try:
        runner = runners.make_runner(runner_name, workers)
        rec["info"] = runner.info
        runner.prepare(wl)
        runners.check_same(runner_name, runner.run(wl), expected)
        cpu0 = cpu_snapshot()
        start = time.perf_counter()
        for i in range(repeat):
            pair = [("plain", plain), ("runner", runner)]
            if i % 2:
                pair.reverse()
            for which, r in pair:
                t0 = time.perf_counter()
                out = r.run(wl)
                rec[f"{which}_s"].append(time.perf_counter() - t0)
                if which == "runner":
                    last = out
            if budget_s is not None and i + 1 >= min_repeat and time.perf_counter() - start > budget_s:
                break
        rec.update(background_load(cpu0, cpu_snapshot(), time.perf_counter() - start))
        runners.check_same(runner_name, last, expected)  # the warmed-up runner is right too
        rec["stats"] = runner.last_stats
        rec["ok"] = True
    except runners.RunnerUnavailable as exc:
        rec["error"] = str(exc)
    except Exception as exc:  # a runner failure is a result cell, not a crash of the harness
        rec["error"] = f"{type(exc).__name__}: {exc}".strip()
    finally:
        if runner is not None:
            try:
                runner.close()
            except Exception as exc:
                if rec["error"] is None:
                    rec["error"] = f"close() failed: {type(exc).__name__}: {exc}"
                    rec["ok"] = False
    rec["gil_enabled_after"] = runners.gil_enabled()
    pb, pm = _summary(rec["plain_s"])
    rb, rm = _summary(rec["runner_s"])
    rec.update(plain_best_s=pb, plain_median_s=pm, runner_best_s=rb, runner_median_s=rm)
    ok = rec["ok"] and pb and rb
    rec["ratio_best"] = rb / pb if ok else None
    rec["ratio_median"] = rm / pm if ok else None
    rec["speedup_best"] = pb / rb if ok else None
    rec["overhead_us_per_task"] = (rb - pb) / wl.n_tasks * 1e6 if ok and wl.n_tasks else None
    return rec


def run_in_process(args, spin_per_ms: float, doc: dict[str, Any], progress=None) -> None:
    for w in args.workload:
        wl = workloads.make(w, args.size, spin_per_ms, **args.param)
        for r in args.runner:
            if progress:
                progress(w, r)
            doc["measurements"].append(measure(wl, r, args.workers, args.repeat, args.budget))


def run_isolated(args, spin_per_ms: float, doc: dict[str, Any]) -> None:
    """Each (workload, runner) in a fresh subprocess of this interpreter."""
    pairs = [(w, r) for w in args.workload for r in args.runner]
    for n, (w, r) in enumerate(pairs, 1):
        if not args.quiet:
            print(f"[{n}/{len(pairs)}] {doc['interpreter']['label']} · {w} · {r}", file=sys.stderr, flush=True)
        doc["measurements"].append(run_child(
            sys.executable, w, r, size=args.size, workers=args.workers, repeat=args.repeat,
            budget=args.budget, spin_per_ms=spin_per_ms, timeout=args.timeout, params=args.param,
        ))


def run_child(python: str, workload: str, runner: str, *, size: str, workers: int, repeat: int,
              budget: float | None, spin_per_ms: float, timeout: float | None,
              env: dict[str, str] | None = None, params: dict[str, float] | None = None) -> dict[str, Any]:
    """Run one measurement as ``python bench.py --in-process`` and return its record.

    Never raises for a failing child: a crash, a timeout or unreadable output becomes a record
    with ``ok: False`` and the reason in ``error``.
    """
    with tempfile.TemporaryDirectory(prefix="ftdag-bench-") as tmp:
        out = Path(tmp) / "m.json"
        cmd = [python, str(HERE / "bench.py"), "--in-process", "--quiet", "--workload", workload,
               "--runner", runner, "--size", size, "--workers", str(workers), "--repeat", str(repeat),
               "--spin-per-ms", repr(spin_per_ms), "--json", str(out)]
        if budget is not None:
            cmd += ["--budget", str(budget)]
        for name, value in (params or {}).items():
            cmd += ["--param", f"{name}={value}"]
        reason = None
        try:
            proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  timeout=timeout, env=env)
            if out.exists():
                try:
                    child = json.loads(out.read_text())
                    rec = child["measurements"][0]
                    rec["child"] = {"interpreter": child["interpreter"], "returncode": proc.returncode}
                    return rec
                except (ValueError, KeyError, IndexError) as exc:
                    reason = f"unreadable result ({type(exc).__name__})"
            else:
                tail = (proc.stderr or proc.stdout or "").strip().splitlines()
                reason = f"exit {proc.returncode}" + (f": {tail[-1][:200]}" if tail else "")
        except subprocess.TimeoutExpired:
            reason = f"timed out after {timeout:g} s"
        except OSError as exc:
            reason = f"could not start {python}: {exc}"
        return {"workload": workload, "runner": runner, "ok": False, "error": reason,
                "plain_s": [], "runner_s": [], "plain_best_s": None, "plain_median_s": None,
                "runner_best_s": None, "runner_median_s": None, "ratio_best": None, "ratio_median": None,
                "speedup_best": None, "overhead_us_per_task": None, "gil_enabled_before": None,
                "gil_enabled_after": None, "stats": None, "info": {}, "n_tasks": None, "n_nodes": None,
                "title": workload, "description": None, "params": {}, "loadavg": _loadavg(),
                "background_cpus": None, "steal_cpus": None}


# -- output ------------------------------------------------------------------------------------


def fmt_time(s: float | None) -> str:
    if s is None or not math.isfinite(s):
        return "—"
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.1f} ms"
    return f"{s * 1e6:.0f} µs"


def fmt_x(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x:.2g}×" if x < 0.095 else f"{x:.2f}×"


def gil_cell(free_threaded_build: bool | None, rec: dict[str, Any]) -> str:
    on = rec.get("gil_enabled_after")
    if on is None:
        return "?"
    if free_threaded_build and on:
        return "**ON⚠**"  # a free-threaded build whose GIL got re-enabled: parallel numbers are void
    return "on" if on else "off"


def error_cell(rec: dict[str, Any]) -> str:
    return "n/a: " + str(rec.get("error") or "failed").replace("|", "/").replace("\n", " ")[:160]


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    aligns = ["---" if i < 2 else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(aligns) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def table(doc: dict[str, Any]) -> str:
    """The bench table: one block of rows per workload, the plain loop first."""
    ft = doc["interpreter"]["free_threaded_build"]
    header = ["workload", "runner", "best", "median", "× plain (best)", "× plain (median)",
              "overhead µs/task", "GIL"]
    rows = []
    by_wl: dict[str, list[dict]] = {}
    for rec in doc["measurements"]:
        by_wl.setdefault(rec["workload"], []).append(rec)
    for w, recs in by_wl.items():
        title = next((r["title"] for r in recs if r.get("title")), w)
        plain = [t for r in recs for t in r["plain_s"]]
        if plain:
            rows.append([title, "plain", fmt_time(min(plain)), fmt_time(statistics.median(plain)),
                         "1.00×", "1.00×", "0", "on" if not ft else "off*"])
        for rec in recs:
            if not rec["ok"]:
                rows.append([title, rec["runner"], error_cell(rec), "", "", "", "", gil_cell(ft, rec)])
                continue
            oh = rec["overhead_us_per_task"] if w == "chain" else None
            rows.append([title, rec["runner"], fmt_time(rec["runner_best_s"]) + ("†" if is_noisy(rec) else ""),
                         fmt_time(rec["runner_median_s"]),
                         fmt_x(rec["ratio_best"]), fmt_x(rec["ratio_median"]),
                         "" if oh is None else f"{oh:.1f}", gil_cell(ft, rec)])
    it, m, s = doc["interpreter"], doc["machine"], doc["settings"]
    head = (f"Python {it['version']} ({it['build']}) · {m['cpu_count']} CPUs · {s['workers']} workers · "
            f"size {s['size']} · best/median of {s['repeat']} · {doc['date']}")
    note = ("× plain: the runner's time over the plain loop's, measured in the same process (below 1 = faster "
            "than serial). overhead: (runner - plain) / tasks, chain only. †: other processes used "
            f">= {NOISY_CPUS} CPU during the measurement (background_cpus in the JSON), so it had fewer free cores.")
    if ft:
        note += " *plain: GIL state of the process, see each runner's cell; **ON⚠** = GIL re-enabled during the run."
    return head + "\n\n" + markdown_table(header, rows) + "\n\n" + note


# -- command line ------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workload", action="extend", nargs="+", choices=workloads.WORKLOADS,
                   help="workloads to run (default: all)")
    p.add_argument("--runner", action="extend", nargs="+", choices=runners.RUNNERS,
                   help="runners to measure (default: all but plain, which is always measured as the reference)")
    p.add_argument("--workers", type=int, default=2, help="workers for every parallel runner (default 2)")
    p.add_argument("--repeat", type=int, default=5, help="timed repetitions (default 5); best and median are reported")
    p.add_argument("--size", choices=tuple(workloads.SIZES), default="full",
                   help="workload sizes (default full: the sizes the issues' targets name)")
    p.add_argument("--budget", type=float, default=None,
                   help="stop repeating a measurement after this many seconds (at least 2 repetitions)")
    p.add_argument("--spin-per-ms", type=float, default=None,
                   help="loop rounds per ms of CPU work (default: calibrate in this interpreter)")
    p.add_argument("--json", type=Path, default=None, help="write every raw timing to this file")
    p.add_argument("--param", type=_param, action="append", default=[], metavar="NAME=NUMBER",
                   help="override a workload parameter of the chosen size, e.g. --param task_us=20")
    p.add_argument("--in-process", action="store_true",
                   help="measure everything in this process instead of one fresh subprocess per (workload, runner)")
    p.add_argument("--timeout", type=float, default=900, help="per-measurement timeout when isolated (s)")
    p.add_argument("--quiet", action="store_true", help="print no progress and no table")
    p.add_argument("--calibrate", action="store_true", help="print spin rounds per ms for this interpreter and exit")
    args = p.parse_args(argv)
    args.param = dict(args.param)
    args.workload = list(dict.fromkeys(args.workload or workloads.WORKLOADS))
    args.runner = list(dict.fromkeys(args.runner or DEFAULT_RUNNERS))
    if args.workers < 1 or args.repeat < 1:
        p.error("--workers and --repeat must be >= 1")
    return args


def _param(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    try:
        number = float(value)
    except ValueError:
        number = None
    if not sep or not name or number is None:
        raise argparse.ArgumentTypeError(f"expected NAME=NUMBER, got {text!r}")
    return name, int(number) if number.is_integer() else number


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    _export_paths()
    if args.calibrate:
        print(f"{workloads.calibrate():.1f}")
        return 0
    spin_per_ms = args.spin_per_ms or workloads.calibrate()
    doc = new_document({"workers": args.workers, "repeat": args.repeat, "size": args.size,
                        "spin_per_ms": spin_per_ms, "budget_s": args.budget,
                        "isolated": not args.in_process})
    if args.in_process:
        def progress(w, r):
            print(f"· {w} · {r}", file=sys.stderr, flush=True)
        run_in_process(args, spin_per_ms, doc, None if args.quiet else progress)
    else:
        run_isolated(args, spin_per_ms, doc)
    doc["interpreter"]["gil_enabled_at_end"] = runners.gil_enabled()
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=1, default=repr) + "\n")
    if not args.quiet:
        print(table(doc))
    mismatched = [m for m in doc["measurements"] if str(m.get("error") or "").startswith("ResultMismatch")]
    return 2 if mismatched else 0


if __name__ == "__main__":
    sys.exit(main())
