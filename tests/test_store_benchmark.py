"""benchmarks/store_overhead.py runs (``--quick``, in a subprocess) and writes every row of its
documented JSON; no timing assertions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from helpers import REPO, TIMEOUT

import ftdag

SCRIPT = REPO / "benchmarks" / "store_overhead.py"


def test_quick_run_writes_every_row(tmp_path):
    out = tmp_path / "out.json"
    work = tmp_path / "work"
    work.mkdir()
    src = str(Path(ftdag.__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--json", str(out)], cwd=work, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=3 * TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    assert doc["schema"] == "ftdag-store-overhead/1" and doc["mode"] == "quick"
    assert Path(doc["dir"]).parent == work.resolve()  # under the current directory...
    assert list(work.iterdir()) == []  # ...and removed afterwards
    assert doc["filesystem"]
    assert set(doc["reference"]) == {"1024", "1048576"}
    expected = {(store, durability, size)
                for store, durability in [("memory", None), ("directory", "fast"), ("directory", "atomic"),
                                          ("directory", "durable"), ("sqlite", None)]
                for size in (1024, 1048576)}
    rows = doc["rows"]
    assert {(r["store"], r["durability"], r["size"]) for r in rows} == expected and len(rows) == len(expected)
    for r in rows:
        assert r["ops"] >= 9  # three rounds of at least three records
        assert r["save_us"] > 0 and r["load_us"] > 0
        assert 0 < r["total_us"] <= r["total_median_us"]
        assert r["pickle_us"] == doc["reference"][str(r["size"])]
        assert abs(r["ratio"] - r["total_us"] / r["pickle_us"]) < 0.01
    # The table printed on stdout has a line per row, under its header and rule.
    assert sum(line.startswith("| ") for line in proc.stdout.splitlines()) == len(rows) + 2
