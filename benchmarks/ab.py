#!/usr/bin/env python3
"""A/B of a change to the thread backend: two versions of ftdag in one process, interleaved.

    python benchmarks/ab.py BASE [--rounds R] [--runs N] [--workers 2] [--json out.json]

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
read effects under about 3% as nothing.  (The same scheme on scale.py's 200,000-node random
DAG, one run per block, gave 1.13 A/A: the two versions' graphs, each built in this process,
do not cost the same, so that case is not offered.)  The task functions live in this
script, which runs as ``__main__`` (see README: run from ``.pyc`` files).

Importing this module runs nothing.
"""

from __future__ import annotations

import argparse
import compileall
import importlib
import io
import json
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


def inc(x):
    return x + 1


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
    p.add_argument("base", metavar="BASE", help="git revision, or a directory holding src/ftdag: version A")
    p.add_argument("--rounds", type=int, default=ROUNDS, help=f"rounds (default {ROUNDS})")
    p.add_argument("--runs", type=int, default=RUNS, help=f"calls per block (default {RUNS})")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--json", type=Path, default=None, help="write the result and every ratio to this file")
    args = p.parse_args(argv)
    if min(args.rounds, args.runs, args.workers) < 1:
        p.error("--rounds, --runs and --workers must be >= 1")
    with tempfile.TemporaryDirectory(prefix="ftdag-ab-") as tmp:
        result = measure(args.rounds, args.runs, args.workers, base_package(args.base, Path(tmp)))
    result["base"] = args.base
    print(f"3-task diamond ({args.rounds} rounds of {args.runs} calls, {args.workers} workers): "
          f"threads over sequential: A ({args.base}) {result['ratio_a']:.3f}, B (this checkout) "
          f"{result['ratio_b']:.3f}; B over A, median per round: {result['b_over_a']:.3f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
