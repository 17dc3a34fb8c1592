"""A Merkle tree over 16 transactions, as an ftdag graph.

The graph has one node per transaction and one per hash:

    tx/{i}              a source: the bytes of transaction i (i = 0..15)
    leaf/{i}            sha256 of tx/{i}
    node/{level}/{idx}  sha256 of its two children; level 1 hashes pairs of leaves,
                        level 4 is the root, node/4/0

Asking for the root executes all 16 leaf hashes and 15 internal hashes.  Asking for one
internal node executes only what lies beneath it: node/2/1 covers tx/4..tx/7, so 4 leaf
hashes and 3 internal hashes (node/1/2, node/1/3 and node/2/1 itself).

What a run executes is exactly ``dag.ancestors(outputs)``, each node once; this script
counts those nodes by kind, checks the count against the run's own ``res.stats.executed``,
and checks every hash against a plain loop.

Run it from the repository root:  python examples/merkle.py
"""

import hashlib
import sys
from pathlib import Path

try:
    import ftdag
except ImportError:  # a checkout where ftdag is not installed: use its src/
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    import ftdag

N_LEAVES = 16


def hash_leaf(tx: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + tx).digest()


def hash_children(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def transactions(n: int) -> list[bytes]:
    return [f"transaction {i}: alice pays bob {i + 1} coins".encode() for i in range(n)]


def build_merkle_dag(txs: list[bytes]) -> ftdag.Dag:
    """The graph described in the module docstring; ``len(txs)`` must be a power of two."""
    b = ftdag.DagBuilder()
    below = []
    for i, tx in enumerate(txs):
        b.add_source(f"tx/{i}", tx)
        b.add_task(f"leaf/{i}", [f"tx/{i}"], hash_leaf)
        below.append(f"leaf/{i}")
    level = 1
    while len(below) > 1:
        above = []
        for idx in range(len(below) // 2):
            key = f"node/{level}/{idx}"
            b.add_task(key, [below[2 * idx], below[2 * idx + 1]], hash_children)
            above.append(key)
        below = above
        level += 1
    return b.build()


def direct_hashes(txs: list[bytes]) -> dict[str, bytes]:
    """Every hash of the tree by a plain loop, to check ftdag's results against."""
    hashes = {}
    row = []
    for i, tx in enumerate(txs):
        hashes[f"leaf/{i}"] = hash_leaf(tx)
        row.append(hashes[f"leaf/{i}"])
    level = 1
    while len(row) > 1:
        row = [hash_children(row[2 * i], row[2 * i + 1]) for i in range(len(row) // 2)]
        for idx, h in enumerate(row):
            hashes[f"node/{level}/{idx}"] = h
        level += 1
    return hashes


def request(ex: ftdag.Executor, dag: ftdag.Dag, key: str, what: str, expected: dict[str, bytes]) -> None:
    res = ex.run(dag, [key])
    executed = dag.ancestors([key])
    leaves = sum(k.startswith("leaf/") for k in executed)
    internal = sum(k.startswith("node/") for k in executed)
    sources = sum(k.startswith("tx/") for k in executed)
    stats = res.stats
    print(f"Request {key} ({what}):")
    print(f"  leaf hashes executed:     {leaves:3d}")
    print(f"  internal hashes executed: {internal:3d}")
    print(f"  nodes executed: {stats.executed} of {len(dag)} ({sources} of them sources), "
          f"pruned: {stats.pruned}")
    print(f"  backend: {stats.backend}, wall: {stats.wall_s * 1e3:.2f} ms")
    print(f"  {key} = {res[key].hex()}")
    if stats.executed != len(executed) or leaves + internal + sources != len(executed):
        sys.exit(f"error: the run executed {stats.executed} nodes, expected {len(executed)}")
    if res[key] != expected[key]:
        sys.exit(f"error: {key} differs from the hash computed by a plain loop")
    print("  matches the hash computed by a plain loop")
    print()


def main() -> None:
    txs = transactions(N_LEAVES)
    dag = build_merkle_dag(txs)
    expected = direct_hashes(txs)
    root = f"node/{N_LEAVES.bit_length() - 1}/0"
    print(f"Merkle tree over {N_LEAVES} transactions: a graph of {len(dag)} nodes")
    print()
    with ftdag.Executor() as ex:  # the default backend: threads without the GIL, else processes
        request(ex, dag, root, "the root", expected)
        request(ex, dag, "node/2/1", "the subtree over tx/4..tx/7", expected)


if __name__ == "__main__":
    main()
