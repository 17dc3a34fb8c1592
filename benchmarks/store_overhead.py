#!/usr/bin/env python3
"""What a result store costs per record: ``save`` + ``load`` of one value, against pickling it.

    python benchmarks/store_overhead.py [--quick] [--json out.json] [--dir DIR]

For a 1 KB and a 1 MB value (random ``bytes``: the cheapest value to pickle, so the ratios
show the store's own cost at its largest), it times ``MemoryStore``, ``DirectoryStore`` in each
durability mode (``fast``, ``atomic``, ``durable``) and ``SQLiteStore``, each record saved
under a new fingerprint and loaded back, in the interpreter running this script.  The
reference is ``pickle.dumps`` of the same value, timed in the same run, and every store's time
is also given as a ratio to it (``× pickle``), which holds better than absolute times on a busy
machine.

Timing: for each row, ``ROUNDS`` rounds; each round times single operations until its budget is
spent (at least ``MIN_OPS``) and keeps the median; the row reports the best (lowest) of the
round medians, and the median of them.  ``pickle.dumps`` is timed in batches, since one call of
it on 1 KB is shorter than the clock's resolution warrants.  The records go to a temporary
directory under the current directory (``--dir`` to choose another), on its file system, not
``/tmp`` (often tmpfs, where ``fsync`` is free); the file system type is reported.  The
directory is removed afterwards.

Full mode takes about 15 s, ``--quick`` about 2 s.  ``--json`` writes the document
(schema ``ftdag-store-overhead/1``): ``schema``, ``mode``, ``python``, ``free_threaded``,
``gil_enabled``, ``dir``, ``filesystem``, ``loadavg``, ``background_cpus``, ``reference``
(``{size: µs}``) and ``rows``, one per (store, size): ``store``, ``durability``, ``size``,
``ops``, ``save_us``, ``load_us``, ``total_us`` (best round medians), ``total_median_us``,
``pickle_us``, ``ratio`` (``total_us / pickle_us``).

Importing this module runs nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import shutil
import statistics
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from environment import background_load, cpu_snapshot, filesystem, loadavg  # noqa: E402
from records import StoreRow as Row  # noqa: E402  (one definition of a row, shared with the comparison)
from report import fmt_x, markdown_table  # noqa: E402

SCHEMA = "ftdag-store-overhead/1"
SIZES = {"1 KB": 1024, "1 MB": 1024 * 1024}
STORES = [("memory", None), ("directory", "fast"), ("directory", "atomic"), ("directory", "durable"),
          ("sqlite", None)]
ROUNDS = {"quick": 3, "full": 5}
ROW_BUDGET_S = {"quick": 0.12, "full": 1.2}  # split between the rounds of one row
MIN_OPS = 3
MAX_OPS = 2000  # per round


def _ftdag():
    try:
        import ftdag.store
    except ImportError:  # run from a checkout without installing
        sys.path.insert(0, str(REPO / "src"))
        import ftdag.store
    return ftdag.store


def make_store(kind: str, durability: str | None, where: Path):
    store = _ftdag()
    if kind == "memory":
        return store.MemoryStore()
    if kind == "sqlite":
        return store.SQLiteStore(where / "records.sqlite")
    return store.DirectoryStore(where / f"records-{durability}", durability=durability or "atomic")


def time_pickle(value: bytes, rounds: int, budget_s: float) -> float:
    """µs per ``pickle.dumps(value)``: the best of ``rounds`` round medians, each over batches."""
    dumps, protocol, clock = pickle.dumps, pickle.HIGHEST_PROTOCOL, time.perf_counter
    t0 = clock()
    dumps(value, protocol)
    batch = max(1, min(1000, int(2e-4 / max(clock() - t0, 1e-7))))  # batches of ~0.2 ms
    medians = []
    for _ in range(rounds):
        samples: list[float] = []
        end = clock() + budget_s / rounds
        while len(samples) < MIN_OPS or (clock() < end and len(samples) < MAX_OPS):
            t0 = clock()
            for _ in range(batch):
                dumps(value, protocol)
            samples.append((clock() - t0) / batch)
        medians.append(statistics.median(samples))
    return min(medians) * 1e6


def time_store(store, value: bytes, rounds: int, budget_s: float) -> tuple[float, float, float, float, int]:
    """(save µs, load µs, save+load µs: best round medians; save+load µs: median of round medians; ops)."""
    clock = time.perf_counter
    saves, loads, totals = [], [], []
    ops = 0
    for r in range(rounds):
        store.clear()
        s_samples: list[float] = []
        l_samples: list[float] = []
        end = clock() + budget_s / rounds
        i = 0
        while i < MIN_OPS or (clock() < end and i < MAX_OPS):
            fp = hashlib.sha256(f"{r}/{i}".encode()).hexdigest()  # spread over the shards, as real ones are
            t0 = clock()
            store.save(fp, value)
            t1 = clock()
            got = store.load(fp)
            t2 = clock()
            s_samples.append(t1 - t0)
            l_samples.append(t2 - t1)
            i += 1
        if got != value:
            raise AssertionError(f"{store!r} loaded something else than it saved")
        ops += i
        saves.append(statistics.median(s_samples))
        loads.append(statistics.median(l_samples))
        totals.append(statistics.median(a + b for a, b in zip(s_samples, l_samples)))
    store.clear()
    best = min(range(rounds), key=lambda k: totals[k])
    return saves[best] * 1e6, loads[best] * 1e6, totals[best] * 1e6, statistics.median(totals) * 1e6, ops


def measure(mode: str, where: Path, progress: Callable[[str], None] = lambda s: None) -> tuple[dict, list[Row]]:
    rounds, budget = ROUNDS[mode], ROW_BUDGET_S[mode]
    rows = []
    reference = {}
    for name, size in SIZES.items():
        value = os.urandom(size)
        ref = time_pickle(value, rounds, budget / 2)
        reference[size] = ref
        progress(f"{name}: pickle.dumps {ref:.1f} µs")
        for kind, durability in STORES:
            store = make_store(kind, durability, where)
            try:
                save, load, total, total_median, ops = time_store(store, value, rounds, budget)
            finally:
                if hasattr(store, "close"):
                    store.close()
            row = Row(kind, durability, size, ops, round(save, 2), round(load, 2), round(total, 2),
                      round(total_median, 2), round(ref, 3))
            rows.append(row)
            progress(f"{name}: {row.label} {total:.1f} µs ({fmt_x(row.ratio)} pickle)")
    return reference, rows


def table(rows: list[Row]) -> str:
    header = ["store", "size", "save µs", "load µs", "save+load µs", "median µs", "pickle.dumps µs", "× pickle"]
    names = {v: k for k, v in SIZES.items()}
    body = [[r.label, names.get(r.size, str(r.size)), f"{r.save_us:.1f}", f"{r.load_us:.1f}", f"{r.total_us:.1f}",
             f"{r.total_median_us:.1f}", f"{r.pickle_us:.2f}", f"{r.ratio:.1f}×"] for r in rows]
    return markdown_table(header, body)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer, shorter rounds (about 2 s)")
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--dir", type=Path, default=Path.cwd(),
                   help="where to make the temporary store directory (default: the current directory)")
    p.add_argument("--quiet", action="store_true", help="print only the table")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    mode = "quick" if args.quick else "full"
    where = Path(tempfile.mkdtemp(prefix=".ftdag-store-bench-", dir=args.dir)).resolve()
    fs = filesystem(where)
    say = (lambda s: None) if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True))
    say(f"store overhead ({mode}), records in {where} ({fs})")
    try:
        cpu0, start = cpu_snapshot(), time.perf_counter()
        reference, rows = measure(mode, where, say)
        load = background_load(cpu0, cpu_snapshot(), time.perf_counter() - start)
    finally:
        shutil.rmtree(where, ignore_errors=True)
    gil = getattr(sys, "_is_gil_enabled", lambda: True)()
    print(f"Python {sys.version.split()[0]}{' free-threaded' if sysconfig.get_config_var('Py_GIL_DISABLED') else ''}"
          f" (GIL {'on' if gil else 'off'}), {mode} mode, records on {fs} ({where.parent}), "
          f"other processes used {load['background_cpus']} CPU")
    print(table(rows))
    if args.json:
        doc = {
            "schema": SCHEMA, "mode": mode, "python": sys.version,
            "free_threaded": bool(sysconfig.get_config_var("Py_GIL_DISABLED")), "gil_enabled": gil,
            "dir": str(where), "filesystem": fs, "loadavg": loadavg(), **load,
            "reference": {str(k): round(v, 3) for k, v in reference.items()},
            "rows": [r.to_json() for r in rows],
        }
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
