#!/usr/bin/env python3
"""The timeline of a real run: the rollup pipeline (``rollup.py``) traced with ftdag.Trace.

Builds the rollup graph (16 transactions in 4 chunks: leaf commitments -> chunk roots -> the
batch root and an inclusion proof) with CPU-heavy hashing, runs it once to warm the workers
up, then a few more times, each with a :class:`ftdag.Trace`, keeps the trace of the fastest
run (on a busy machine the slower ones mostly show the machine's other work), and writes:

``timeline.json``  the run in the Chrome Trace Event format (open it in Perfetto or
                   ``chrome://tracing``);
``timeline.png``   the timeline, one row per worker (needs matplotlib: ``ftdag[plot]``;
                   without it the script says so and skips the picture);

then prints the trace's summary: wall time, busy time per worker, utilisation, the longest
tasks and the critical path.

Environment:

``FTDAG_HASH_ITERS``    rounds of pure-Python mixing in every hash (default 40000).
``FTDAG_MAX_WORKERS``   workers (default 2).
``FTDAG_TIMELINE_RUNS`` traced runs to keep the fastest of (default 3).
``FTDAG_TIMELINE_DIR``  where to write the two files (default: the repository's ``docs/``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import rollup  # beside this script

import ftdag

DEFAULT_ITERS = 40_000
DEFAULT_WORKERS = 2
DEFAULT_RUNS = 3


def main() -> int:
    iters = rollup._env_int("FTDAG_HASH_ITERS", DEFAULT_ITERS, 0)
    workers = rollup._env_int("FTDAG_MAX_WORKERS", DEFAULT_WORKERS, 1)
    n_runs = rollup._env_int("FTDAG_TIMELINE_RUNS", DEFAULT_RUNS, 1)
    out_dir = Path(os.environ.get("FTDAG_TIMELINE_DIR") or Path(__file__).resolve().parent.parent / "docs")
    out_dir.mkdir(parents=True, exist_ok=True)
    dag = rollup.build_dag(rollup.N_TX, rollup.CHUNK_SIZE, iters, rollup.PROOF_CHUNK)
    chunk, proof = rollup.chunk_key(rollup.PROOF_CHUNK), rollup.proof_key(rollup.PROOF_CHUNK)
    outputs = ["batch", chunk, proof]
    gil = "on" if ftdag.gil_enabled() else "off"
    print(f"timeline: the rollup graph ({len(dag)} nodes), FTDAG_HASH_ITERS={iters}, {workers} workers; "
          f"Python {sys.version.split()[0]}, GIL {gil}")

    with ftdag.Executor(max_workers=workers) as ex:
        ex.run(dag, outputs)  # warm-up: start the workers, so that the trace shows the graph alone
        # Each run traced; the fastest kept: on a busy machine the others show its other work.
        runs = []
        for _ in range(n_runs):
            trace = ftdag.Trace(dag)
            runs.append((ex.run(dag, outputs, callbacks=[trace]), trace))
    res, trace = min(runs, key=lambda run: run[1].wall_s)
    ok = rollup.verify_proof(iters, res[chunk], res[proof], res["batch"])
    print(f"fastest of {n_runs} traced runs: {trace.wall_s:.3f} s on {res.stats.backend}; "
          f"batch root {res['batch'].hex()[:16]}…; inclusion proof {'verified' if ok else 'FAILED'}")

    json_path = trace.save(out_dir / "timeline.json")
    print(f"wrote {json_path}")
    try:
        png_path = trace.plot(out_dir / "timeline.png",
                              title=f"rollup on {workers} workers ({res.stats.backend}, GIL {gil}), "
                                    f"{iters} mixing rounds per hash")
    except ImportError as exc:
        print(f"no timeline.png: {exc}")
    else:
        print(f"wrote {png_path}")
    print()
    trace.summary()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
