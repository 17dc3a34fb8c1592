#!/usr/bin/env python3
"""Resuming from a result store: a fully cached re-run of the rollup against its first run.

    python benchmarks/resume_bench.py [--quick] [--size tiny|quick|full] [--rounds N] [--workers W]
                                      [--spin-per-ms X] [--dir DIR] [--json out.json] [--quiet]

It builds ``examples/rollup.py``'s pipeline at the comparison's rollup size (``workloads.make``:
``quick`` 256 transactions, ``full`` 1,024, in chunks of 16, each hash ~100 µs of pure-Python
mixing; ``tiny`` for tests) and requests the batch root and one inclusion proof, with one
``ftdag.Executor(max_workers=W)`` (auto backend: threads on a free-threaded build, processes
on a GIL build).  After an untimed warm-up round, each of N rounds (``ROUNDS``: 5 with
``--quick``, else 7) times three runs, each with a fresh ``ftdag.DirectoryStore(...,
durability="atomic")`` for the round:

``no store``    ``run(dag, outputs)``: the reference;
``with store``  ``run(dag, outputs, store=S)``, S empty: every task computed and saved;
``cached``      the same call again: the outputs are loaded, nothing is computed.

The two first runs alternate their order from round to round; the cached re-run always
follows the run that filled its store.  Every run's values are checked against the warm-up's,
and the store runs against ``RunStats``: the first saved at least one record and loaded none,
the re-run loaded at least one and saved none (so no task ran).  A failed check, or a run
that raises, makes the result ``ok=False`` with the reason, not a crash.  The report gives the
best and the median of the rounds and two ratios of the best times: ``with store / no store``
(what the store costs a first run) and ``cached / with store`` (what resuming saves).

CPU task sizes follow ``--spin-per-ms`` (loop rounds per ms of CPU work; default: calibrated
here); ``benchmarks/compare.py`` passes the one it calibrated on the GIL build, so that every
interpreter does the same work.  The stores go to a temporary directory made under ``--dir``
(default: the current directory), on its file system, not ``/tmp`` (often tmpfs, where
writes are nearly free), and removed at the end.

``--json`` writes the document (schema ``ftdag-resume/1``): ``schema``, ``date``, ``python``,
``free_threaded``, ``gil_enabled``, ``dir``, ``filesystem``, ``loadavg``, ``settings`` and
``result``: a :class:`records.ResumeResult` as its ``to_json()`` (``no_store_s``,
``with_store_s``, ``cached_s``: one time per round; ``stored``, ``loaded``; the derived best and
median times and ratios).  Exit status 0 if the measurement succeeded, else 1 (the document
is written either way).

Importing this module runs nothing: the task modules are compiled and imported by :func:`main`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Hashable
from dataclasses import replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from environment import background_load, cpu_snapshot, filesystem, loadavg, now_iso  # noqa: E402
from records import ResumeResult  # noqa: E402
from report import error_cell, fmt_time, fmt_x, markdown_table  # noqa: E402

__all__ = ["DURABILITY", "ROUNDS", "SCHEMA", "CheckFailed", "measure"]

SCHEMA = "ftdag-resume/1"
ROUNDS = {"quick": 5, "full": 7}
DURABILITY = "atomic"
SIZES = ("tiny", "quick", "full")  # workloads.SIZES of the rollup workload


class CheckFailed(Exception):
    """A run returned other values than the reference, or did not load or save what it should."""


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise CheckFailed(what)


def _setup_paths() -> None:
    """Make the task modules importable here and in worker processes (which start by spawn/forkserver
    and import ``rollup`` by name), and ftdag too when it is run from a checkout without installing."""
    extra = [str(HERE), str(REPO / "examples")]
    try:
        import ftdag  # noqa: F401
    except ImportError:
        extra.append(str(REPO / "src"))
    for p in reversed(extra):
        if p not in sys.path:
            sys.path.insert(0, p)
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    os.environ["PYTHONPATH"] = os.pathsep.join(extra + [p for p in parts if p not in extra])


def _timed(run: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    res = run()
    return res, time.perf_counter() - t0


def measure(wl, size: str, workers: int | None, rounds: int, where: Path,
            progress: Callable[[str], None] = lambda s: None) -> ResumeResult:
    """Time ``wl`` (a rollup :class:`workloads.Workload`) three ways, ``rounds`` times, in this process.

    Stores are made in a temporary directory under ``where``, removed before returning.  Never
    raises for a failing run or check: the result then has ``ok=False`` and the reason.
    """
    import ftdag

    known: dict[str, Any] = dict(
        size=size, title=wl.title, description=wl.description, params=dict(wl.params), n_tasks=wl.n_tasks,
        durability=DURABILITY, free_threaded_build=bool(sysconfig.get_config_var("Py_GIL_DISABLED")))
    dag, outputs = wl.dag(), list(wl.outputs)
    times: dict[str, list[float]] = {"no_store": [], "with_store": [], "cached": []}
    counts: dict[str, Any] = {}
    base = Path(tempfile.mkdtemp(prefix=".ftdag-resume-bench-", dir=where)).resolve()
    known["filesystem"] = filesystem(base)
    result: ResumeResult
    try:
        with ftdag.Executor(max_workers=workers) as ex:
            reference = dict(ex.run(dag, outputs))  # also starts the pool
            known.update(workers=ex.config.max_workers)

            def same(res: ftdag.RunResult, what: str) -> None:
                got: dict[Hashable, Any] = dict(res)
                _check(got == reference, f"the {what} returned other values than a run without a store")

            def one_round(n: int, timed: bool) -> None:
                store = ftdag.DirectoryStore(base / f"round-{n}", durability=DURABILITY)
                runs = {
                    "no_store": lambda: ex.run(dag, outputs),
                    "with_store": lambda: ex.run(dag, outputs, store=store),
                    "cached": lambda: ex.run(dag, outputs, store=store),
                }
                order = ["no_store", "with_store", "cached"] if n % 2 == 0 else ["with_store", "cached", "no_store"]
                for which in order:
                    res, dt = _timed(runs[which])
                    same(res, which.replace("_", " ") + " run")
                    s = res.stats
                    if which == "with_store":
                        _check(s.stored >= 1 and s.loaded == 0,
                               f"the first run with an empty store loaded {s.loaded} and saved {s.stored} results")
                        counts["stored"] = s.stored
                    elif which == "cached":
                        _check(s.loaded >= 1 and s.stored == 0,
                               f"the cached re-run loaded {s.loaded} and saved {s.stored} results (expected: "
                               "at least one loaded, none saved, i.e. no task ran)")
                        counts["loaded"] = s.loaded
                    counts["backend"] = s.backend
                    if timed:
                        times[which].append(dt)
                shutil.rmtree(store.path, ignore_errors=True)

            one_round(0, timed=False)  # warm-up: the store's code paths, the file system's caches
            cpu0, start = cpu_snapshot(), time.perf_counter()
            for n in range(rounds):
                one_round(n, timed=True)
                progress(f"round {n + 1}/{rounds}: " + ", ".join(
                    f"{k.replace('_', ' ')} {fmt_time(v[-1])}" for k, v in times.items()))
            load = background_load(cpu0, cpu_snapshot(), time.perf_counter() - start)
        result = ResumeResult(ok=True, no_store_s=tuple(times["no_store"]), with_store_s=tuple(times["with_store"]),
                              cached_s=tuple(times["cached"]), **counts, **load, **known)
    except Exception as exc:  # a failing run or check is a result cell, not a crash of the harness
        result = ResumeResult(ok=False, error=f"{type(exc).__name__}: {exc}".strip(), **known)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return replace(result, gil_enabled_after=getattr(sys, "_is_gil_enabled", lambda: True)())


def table(r: ResumeResult) -> str:
    """One line of the comparison's resume table, for this interpreter."""
    header = ["interpreter", "backend", "no store", "with store", "× no store", "cached re-run", "× with store",
              "stored / loaded"]
    if not r.ok:
        return markdown_table(header, [[str(r.interpreter), "", error_cell(r.error), "", "", "", "", ""]])
    row = [str(r.interpreter), str(r.backend), fmt_time(r.no_store_best_s), fmt_time(r.with_store_best_s),
           fmt_x(r.store_ratio), fmt_time(r.cached_best_s), fmt_x(r.cached_ratio), f"{r.stored} / {r.loaded}"]
    return markdown_table(header, [row])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help=f"quick mode: {ROUNDS['quick']} rounds and the quick size (default: "
                        f"{ROUNDS['full']} rounds, full size)")
    p.add_argument("--size", choices=SIZES, default=None,
                   help="the rollup's size (default: quick with --quick, else full; tiny is for tests)")
    p.add_argument("--rounds", type=int, default=None, help="timed rounds (default: the mode's)")
    p.add_argument("--workers", type=int, default=None, help="the executor's max_workers (default: ftdag's)")
    p.add_argument("--spin-per-ms", type=float, default=None,
                   help="loop rounds per ms of CPU work (default: calibrate in this interpreter)")
    p.add_argument("--dir", type=Path, default=Path.cwd(),
                   help="where to make the temporary store directory (default: the current directory)")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument("--quiet", action="store_true", help="print no progress and no table")
    args = p.parse_args(argv)
    args.mode = "quick" if args.quick else "full"
    args.size = args.size or args.mode
    args.rounds = args.rounds or ROUNDS[args.mode]
    if args.rounds < 1 or (args.workers is not None and args.workers < 1):
        p.error("--rounds and --workers must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import bench  # imports nothing but the standard library and this folder's helpers

    bench.precompile()  # before the first import of a task module: see bench.precompile
    _setup_paths()
    import workloads

    say = (lambda s: None) if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True))
    spin_per_ms = args.spin_per_ms or workloads.calibrate()
    wl = workloads.make("rollup", args.size, spin_per_ms)
    where = args.dir.resolve()
    say(f"resume ({args.mode} mode): {wl.title}, {args.rounds} rounds, stores under {where}")
    ft = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    label = f"{sys.version_info.major}.{sys.version_info.minor}{'t' if ft else ''}"
    result = replace(measure(wl, args.size, args.workers, args.rounds, where, say), interpreter=label)
    if not args.quiet:
        print(f"Python {sys.version.split()[0]}{' free-threaded' if ft else ''} "
              f"(GIL {'on' if result.gil_enabled_after else 'off'}), {wl.title}, best of {result.rounds} rounds, "
              f"stores on {result.filesystem}")
        print(table(result))
    if args.json:
        doc = {
            "schema": SCHEMA, "date": now_iso(), "python": sys.version, "free_threaded": ft,
            "gil_enabled": result.gil_enabled_after, "dir": str(where), "filesystem": result.filesystem,
            "loadavg": loadavg(),
            "settings": {"mode": args.mode, "size": args.size, "rounds": args.rounds, "workers": args.workers,
                         "spin_per_ms": spin_per_ms, "durability": DURABILITY},
            "result": result.to_json(),
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=1, default=repr) + "\n")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
