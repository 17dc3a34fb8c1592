#!/usr/bin/env python3
"""A/B of a change to the thread backend: a base version of ftdag timed beside this checkout.

    python benchmarks/ab.py BASE [--rounds R] [--runs N] [--workers 2] [--json out.json]
    python benchmarks/ab.py BASE --graph random [--nodes 200000] [--processes 6] [--rounds 8]

This machine's single-thread speed moves by up to 2x from one second to the next, so two
runs of ``bench.py``, one per version, often differ by more than a change is worth.  This
script times both versions in the same process, block after block, so that each pair of
blocks sees the same phase of the machine:

- **B** is this checkout's ``src/ftdag``, imported as ``ftdag``;
- **A** is ``BASE``: a git revision of this repository (``HEAD~1``, a commit id), whose
  ``src/ftdag`` is extracted with ``git archive``, or a directory holding ``src/ftdag``.
  It is copied to a temporary directory as the package ``ftdag_base`` (ftdag imports itself
  only relatively, so the copy is self-contained) and compiled to ``.pyc`` files, as B is.

The graph is the 3-task diamond of the small-graph row (``smallgraph.py``): what a thread
run pays once.  Each round times a block of ``runs`` calls (default 400) of B's sequential
backend, then of A's and B's thread backend (which goes first alternates from round to
round), then of B's sequential backend again; each thread block's median time per call is
divided by the mean of the two sequential medians (the small-graph row's ratio, threads over
sequential).  Reported: each version's median ratio over the ``rounds`` (default 30), and
the median over rounds of B's ratio over A's, the change's effect (below 1: B is faster).
The two versions' executors are made, their pools started, and their results checked
against each other before timing.

An A/A run (``BASE`` the commit the working tree's ``src`` is at) gave 0.994 to 1.030 here:
read effects under about 3% as nothing.

``--graph random``: what a thread run pays per task, on ``scale.py``'s random DAG
(``--nodes``, default 200,000; every sink requested).  Two versions' graphs of that size
built in one process do not cost the same (the same scheme as above gave 1.13 A/A), so each
version runs in its own processes instead, ``--processes`` of each (default 6), A and B
alternating, each child building its graph and then timing ``rounds`` (default 8) rounds of
one thread run and one sequential run of its own version back to back (``gc.collect()``
before each): the ratio of each pair is measured within a second or two, in one phase of the
machine.  Reported: each version's median of its per-process medians, and B's over A's.  An
A/A run gave 0.993 here (it takes about 3 minutes with the defaults).

The task functions live in this script, which runs as ``__main__`` (see README: run from
``.pyc`` files).

Importing this module runs nothing.
"""

from __future__ import annotations

import argparse
import compileall
import importlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ROUNDS, RUNS = 30, 400
RANDOM_ROUNDS = 8


def inc(x):
    return x + 1


def noop(*args):
    return None


def combine(a, b):
    return a + b


def base_package(base: str, where: Path) -> Path:
    """Put BASE's ``src/ftdag`` in ``where`` as the package ``ftdag_base``; return ``where``."""
    target = where / "ftdag_base"
    given = Path(base)
    if (given / "src" / "ftdag").is_dir():
        shutil.copytree(given / "src" / "ftdag", target, ignore=shutil.ignore_patterns("__pycache__"))
    else:
        done = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", base, "src/ftdag"],
                              capture_output=True)
        if done.returncode != 0:
            raise SystemExit(f"ab.py: BASE {base!r} is neither a directory with src/ftdag nor a git revision "
                             f"of {ROOT}: {done.stderr.decode().strip()}")
        with tarfile.open(fileobj=io.BytesIO(done.stdout)) as tar:
            tar.extractall(where, filter="data")
        (where / "src" / "ftdag").rename(target)
    compileall.compile_dir(str(target), quiet=2)
    return where


def diamond(ftdag: ModuleType) -> tuple[Any, list]:
    """The 3-task diamond (workloads.diamond), built with this version's API, and its output."""
    b = ftdag.DagBuilder()
    b.add_source("src", 0)
    b.add_task("l", ["src"], inc)
    b.add_task("r", ["src"], inc)
    b.add_task("j", ["l", "r"], combine)
    return b.build(), ["j"]


def random_dag(ftdag: ModuleType, nodes: int) -> tuple[Any, list]:
    """scale.py's random DAG, built with this version's API, and every sink."""
    import random

    rng = random.Random(1)
    b = ftdag.DagBuilder()
    b.add_source(0, 1)
    for i in range(1, nodes):
        lo = max(0, i - 1000)
        b.add_task(i, list({rng.randrange(lo, i) for _ in range(rng.randint(1, 3))}), noop)
    dag = b.build()
    return dag, [k for k in dag if not dag.dependents(k)]


def child(package: str, nodes: int, rounds: int, workers: int) -> list[float]:
    """In a child process: the per-round ratios, threads over sequential, of ``package``."""
    import gc

    ftdag = importlib.import_module(package)
    dag, outputs = random_dag(ftdag, nodes)
    threads = ftdag.Executor(ftdag.ExecutorConfig(max_workers=workers, backend="threads"))
    sequential = ftdag.Executor(ftdag.ExecutorConfig(backend="sequential"))
    clock = time.perf_counter
    ratios = []
    try:
        if dict(threads.run(dag, outputs)) != dict(sequential.run(dag, outputs)):
            raise SystemExit(f"ab.py: {package}'s thread and sequential results differ")
        for _ in range(rounds):
            times = []
            for ex in (threads, sequential):
                gc.collect()
                t0 = clock()
                ex.run(dag, outputs)
                times.append(clock() - t0)
            ratios.append(times[0] / times[1])
    finally:
        threads.close()
        sequential.close()
    return ratios


def measure_random(nodes: int, processes: int, rounds: int, workers: int, base_dir: Path) -> dict[str, Any]:
    compileall.compile_dir(str(ROOT / "src" / "ftdag"), quiet=2)
    medians: dict[str, list[float]] = {"A": [], "B": []}
    for i in range(processes):
        for v in ("AB" if i % 2 == 0 else "BA"):
            argv = [sys.executable, str(Path(__file__).resolve()), "--child", "ftdag_base" if v == "A" else "ftdag",
                    "--nodes", str(nodes), "--rounds", str(rounds), "--workers", str(workers)]
            env = {**os.environ, "PYTHONPATH": os.pathsep.join((str(base_dir), str(ROOT / "src")))}
            done = subprocess.run(argv, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
            if done.returncode != 0:
                raise SystemExit(f"ab.py: the child for {v} failed: {done.stderr.strip()[-2000:]}")
            medians[v].append(statistics.median(json.loads(done.stdout)))
    a, b = statistics.median(medians["A"]), statistics.median(medians["B"])
    return {"graph": "random", "nodes": nodes, "processes": processes, "rounds": rounds, "workers": workers,
            "ratio_a": a, "ratio_b": b, "b_over_a": b / a, "medians_a": medians["A"], "medians_b": medians["B"]}


def block(run: Any, dag: Any, outputs: list, runs: int) -> float:
    """The median time of ``runs`` calls of ``run(dag, outputs)``."""
    clock = time.perf_counter
    times = []
    for _ in range(runs):
        t0 = clock()
        run(dag, outputs)
        times.append(clock() - t0)
    return statistics.median(times)


def measure(rounds: int, runs: int, workers: int, base_dir: Path) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "src"))
    sys.path.insert(0, str(base_dir))
    compileall.compile_dir(str(ROOT / "src" / "ftdag"), quiet=2)
    new = importlib.import_module("ftdag")
    old = importlib.import_module("ftdag_base")
    graphs = {v: diamond(m) for v, m in (("A", old), ("B", new))}
    threads = {v: m.Executor(m.ExecutorConfig(max_workers=workers, backend="threads")) for v, m in (("A", old), ("B", new))}
    sequential = new.Executor(new.ExecutorConfig(backend="sequential"))
    try:
        results = {v: dict(threads[v].run(*graphs[v])) for v in "AB"}
        if results["A"] != results["B"] or results["B"] != dict(sequential.run(*graphs["B"])):
            raise SystemExit("ab.py: the two versions' results differ")
        for v in "AB":  # warm up
            block(threads[v].run, *graphs[v], max(1, runs // 4))
        block(sequential.run, *graphs["B"], max(1, runs // 4))
        ratios: dict[str, list[float]] = {"A": [], "B": []}
        for i in range(rounds):
            before = block(sequential.run, *graphs["B"], runs)
            times = {}
            for v in ("AB" if i % 2 else "BA"):
                times[v] = block(threads[v].run, *graphs[v], runs)
            reference = (before + block(sequential.run, *graphs["B"], runs)) / 2
            for v in "AB":
                ratios[v].append(times[v] / reference)
    finally:
        for ex in (*threads.values(), sequential):
            ex.close()
    effect = [b / a for a, b in zip(ratios["A"], ratios["B"])]
    return {"rounds": rounds, "runs": runs, "workers": workers, "ratio_a": statistics.median(ratios["A"]), "ratio_b": statistics.median(ratios["B"]),
            "b_over_a": statistics.median(effect), "ratios_a": ratios["A"], "ratios_b": ratios["B"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("base", metavar="BASE", nargs="?", help="git revision, or a directory holding src/ftdag: version A")
    p.add_argument("--graph", choices=("diamond", "random"), default="diamond")
    p.add_argument("--rounds", type=int, default=None, help=f"rounds (default {ROUNDS}; {RANDOM_ROUNDS} with --graph random)")
    p.add_argument("--runs", type=int, default=RUNS, help=f"diamond: calls per block (default {RUNS})")
    p.add_argument("--nodes", type=int, default=200_000, help="random: nodes (default 200000)")
    p.add_argument("--processes", type=int, default=6, help="random: processes of each version (default 6)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--json", type=Path, default=None, help="write the result and every ratio to this file")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)  # random: one version's process
    args = p.parse_args(argv)
    rounds = args.rounds or (RANDOM_ROUNDS if args.graph == "random" or args.child else ROUNDS)
    if min(rounds, args.runs, args.workers, args.processes) < 1 or args.nodes < 2:
        p.error("--rounds, --runs, --processes and --workers must be >= 1, --nodes >= 2")
    if args.child:
        print(json.dumps(child(args.child, args.nodes, rounds, args.workers)))
        return 0
    if args.base is None:
        p.error("BASE is required")
    with tempfile.TemporaryDirectory(prefix="ftdag-ab-") as tmp:
        base_dir = base_package(args.base, Path(tmp))
        if args.graph == "random":
            result = measure_random(args.nodes, args.processes, rounds, args.workers, base_dir)
        else:
            result = measure(rounds, args.runs, args.workers, base_dir)
    result["base"] = args.base
    if args.graph == "random":
        print(f"random DAG ({args.nodes:,} nodes, {args.processes} processes of {rounds} rounds each, "
              f"{args.workers} workers): threads over sequential: A ({args.base}) {result['ratio_a']:.3f}, "
              f"B (this checkout) {result['ratio_b']:.3f}; B over A: {result['b_over_a']:.3f}")
    else:
        print(f"3-task diamond ({rounds} rounds of {args.runs} calls, {args.workers} workers): "
              f"threads over sequential: A ({args.base}) {result['ratio_a']:.3f}, B (this checkout) "
              f"{result['ratio_b']:.3f}; B over A, median per round: {result['b_over_a']:.3f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
