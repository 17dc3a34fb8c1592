#!/usr/bin/env python3
"""A pipeline that fails halfway, is fixed, and resumes from its result store.

The pipeline reads three regional ledgers, cleans each, totals each region and writes a
report.  The first run has a bug: cleaning the ``"apac"`` ledger fails.  With
``on_error="keep_going"`` every part that does not depend on it still runs and is saved in
a :class:`ftdag.DirectoryStore`; the run reports what failed and what was skipped.  Then the
bug is "fixed" (here: the bad record is dropped from the input, which changes the source's
fingerprint) and the pipeline runs again: only what depends on the changed ledger runs; the
rest is loaded from the store.  A third run loads everything and runs nothing.

Each task prints ``ran <key>`` when it runs, so the output shows what ran each time.

Usage: ``python examples/resume.py [STORE_DIR]`` (default: a temporary directory, removed at
the end).  Every function is defined at module level, so it runs on worker processes too.
"""

from __future__ import annotations

import functools
import sys
import tempfile

import ftdag

LEDGERS = {
    "emea": [("fee", "12.50"), ("fee", "7.25"), ("refund", "-3.00")],
    "amer": [("fee", "20.00"), ("fee", "1.75")],
    "apac": [("fee", "4.00"), ("fee", "n/a"), ("fee", "9.10")],  # "n/a" is the bug
}


def ran(key: str) -> None:
    """Say that ``key`` runs, in one write: print() writes the text and the newline apart, so
    two threads printing at once could share a line."""
    sys.stdout.write(f"  ran {key}\n")
    sys.stdout.flush()


def clean(region: str, records: list[tuple[str, str]]) -> list[tuple[str, float]]:
    ran(f"clean/{region}")
    return [(kind, float(amount)) for kind, amount in records]  # float("n/a") raises


def total(region: str, records: list[tuple[str, float]]) -> float:
    ran(f"total/{region}")
    return round(sum(amount for _, amount in records), 2)


def report(*totals: float) -> str:
    ran("report")
    return " | ".join(f"{region} {t:.2f}" for region, t in zip(LEDGERS, totals))


def build(ledgers: dict[str, list[tuple[str, str]]]) -> ftdag.Dag:
    b = ftdag.DagBuilder()
    for region, records in ledgers.items():
        b.add_source(f"ledger/{region}", records)
        b.add_task(f"clean/{region}", [f"ledger/{region}"], functools.partial(clean, region))
        b.add_task(f"total/{region}", [f"clean/{region}"], functools.partial(total, region))
    b.add_task("report", [f"total/{region}" for region in ledgers], report)
    return b.build()


def show(label: str, res: ftdag.RunResult) -> None:
    s = res.stats
    print(f"{label}: loaded {s.loaded}, stored {s.stored}, failed {s.failed}, skipped {s.skipped}")
    for key, err in res.failed.items():
        print(f"  failed {key}: {type(err.__cause__).__name__}: {err.__cause__} (attempts: {err.attempts})")
    if res.skipped:
        print(f"  skipped: {', '.join(sorted(res.skipped))}")
    if "report" in res:
        print(f"  report = {res['report']}")


def main(store_dir: str) -> None:
    # Worker processes (GIL builds) write their "ran" lines straight to the same stdout: flush
    # ours at each line too, so that the lines come out in the order they were written.
    sys.stdout.reconfigure(line_buffering=True)
    store = ftdag.DirectoryStore(store_dir, durability="atomic")
    with ftdag.Executor(max_workers=4) as ex:
        print("Run 1 (apac has a bad record):")
        res = ex.run(build(LEDGERS), ["report"], on_error="keep_going", store=store)
        show("Run 1", res)

        fixed = dict(LEDGERS, apac=[r for r in LEDGERS["apac"] if r[1] != "n/a"])
        print("Run 2 (fixed):")
        res = ex.run(build(fixed), ["report"], on_error="keep_going", store=store)
        show("Run 2", res)
        res.raise_for_failures()

        print("Run 3 (nothing changed):")
        show("Run 3", ex.run(build(fixed), ["report"], store=store))
        print(f"backend: {res.stats.backend}")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(sys.argv[1])
    else:
        with tempfile.TemporaryDirectory(prefix="ftdag-resume-") as tmp:
            main(tmp)
