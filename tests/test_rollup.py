"""examples/rollup.py: run as a script (small settings) and its Merkle helpers."""

from __future__ import annotations

import re
import sys

import pytest
from helpers import EXAMPLES, example_output, run_example

sys.path.insert(0, str(EXAMPLES))

import rollup


@pytest.mark.parametrize("workers", ["1", "2"])
def test_example_runs_and_verifies(workers):
    out = example_output("rollup.py", FTDAG_HASH_ITERS="0", FTDAG_MAX_WORKERS=workers)
    assert "16 transactions in 4 chunks of 4" in out
    assert f"{workers} workers" in out
    assert re.search(r"batch root: [0-9a-f]{16}… .*roots agree", out)
    assert "4 of 16 leaves hashed (leaf/08, leaf/09, leaf/10, leaf/11)" in out
    assert "9 of 38 nodes executed, 29 pruned" in out
    assert re.search(r"inclusion proof \[left:[0-9a-f]{8} right:[0-9a-f]{8}\] verified against batch root [0-9a-f]{16}…: OK", out)
    assert "FTDAG_HASH_ITERS=20000" in out  # the hint, since hashing is light


def test_example_with_hashing_work_prints_the_speedup():
    out = example_output("rollup.py", FTDAG_HASH_ITERS="50", FTDAG_MAX_WORKERS="2")
    assert "FTDAG_HASH_ITERS=50" in out
    assert ": OK" in out
    assert re.search(r"parallel speed-up: \d+\.\d\dx with 2 workers", out)


def test_example_rejects_bad_settings():
    proc = run_example("rollup.py", FTDAG_HASH_ITERS="lots")
    assert proc.returncode != 0 and "FTDAG_HASH_ITERS must be an integer" in proc.stderr


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8])
@pytest.mark.parametrize("iters", [0, 3])
def test_merkle_proofs_verify_for_every_item(n, iters):
    items = [rollup.hash_leaf(iters, b"item %d" % i) for i in range(n)]
    root = rollup.merkle_root(iters, items)
    for i, item in enumerate(items):
        proof = rollup.merkle_proof(iters, items, i)
        assert rollup.verify_proof(iters, item, proof, root)
        assert not rollup.verify_proof(iters, rollup.hash_leaf(iters, b"forged"), proof, root)


def test_pruned_request_runs_only_one_chunk():
    import ftdag

    dag = rollup.build_dag()
    assert len(dag) == 16 + 16 + 4 + 1 + 1
    leaves = {k for k in dag.ancestors("chunk/2") if k.startswith("leaf/")}
    assert leaves == {"leaf/08", "leaf/09", "leaf/10", "leaf/11"}
    with ftdag.Executor(ftdag.ExecutorConfig(backend="sequential")) as ex:
        full = ex.run(dag, ["batch", "chunk/2"])
        one = ex.run(dag, "chunk/2")
    assert one["chunk/2"] == full["chunk/2"]
    assert one.stats.executed == 9
