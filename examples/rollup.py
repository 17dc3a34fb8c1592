#!/usr/bin/env python3
"""A rollup batch as a DAG: leaf commitments -> chunk roots -> batch root, plus an inclusion proof.

16 transactions are split into 4 chunks of 4.  Each transaction gets a leaf commitment (a
hash); each chunk's leaves are folded into a chunk root (a Merkle root); the chunk roots are
folded into the batch root; and an inclusion-proof node produces the Merkle path that proves
one chunk root is part of the batch root::

    tx/00 -> leaf/00 --.
    tx/01 -> leaf/01 ---+-> chunk/0 --.
    ...                               +-> batch
    tx/15 -> leaf/15 ---+-> chunk/3 --'
                                  (all chunk roots) -> proof/chunk/1

The script computes the batch root sequentially and in parallel (and checks they agree), then
asks for one chunk root only (ftdag runs just its ancestors: 4 of the 16 leaves are hashed),
then for a chunk root with its inclusion proof, which it verifies against the batch root.

Environment:

``FTDAG_HASH_ITERS``   rounds of pure-Python mixing in every hash (default 0: plain sha256).
                       Large values (e.g. 20000) make each node CPU-heavy Python code, which is
                       where free-threaded CPython runs nodes in parallel; with any value above 0
                       the script prints the speed-up it measured.
``FTDAG_MAX_WORKERS``  workers of the parallel run (default ``min(CPUs, 4)``).

Every task function is defined at module level, so the graph can also run on worker
processes.  ``benchmarks/workloads.py`` imports :func:`rollup_nodes` to benchmark the same
pipeline at a larger size.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

N_TX = 16
CHUNK_SIZE = 4
PROOF_CHUNK = 1

_MASK = 0xFFFFFFFFFFFFFFFF
_LEAF, _NODE = b"\x00", b"\x01"  # domain separation: a leaf hash can never pass for a node hash


# -- hashing ---------------------------------------------------------------------------------


def _hash(data: bytes, iters: int) -> bytes:
    """sha256 of ``data``, followed by ``iters`` rounds of pure-Python mixing folded back in."""
    digest = hashlib.sha256(data).digest()
    if iters:
        x = int.from_bytes(digest[:8], "little")
        for _ in range(iters):
            x = (x * 6364136223846793005 + 1442695040888963407) & _MASK
            x ^= x >> 29
        digest = hashlib.sha256(digest + x.to_bytes(8, "little")).digest()
    return digest


def hash_leaf(iters: int, data: bytes) -> bytes:
    return _hash(_LEAF + data, iters)


def hash_pair(iters: int, left: bytes, right: bytes) -> bytes:
    return _hash(_NODE + left + right, iters)


def _levels(iters: int, items: Sequence[bytes]) -> list[list[bytes]]:
    """The Merkle tree over ``items``, bottom level first; an odd node is paired with itself."""
    if not items:
        raise ValueError("a Merkle tree needs at least one item")
    levels = [list(items)]
    while len(levels[-1]) > 1:
        level = levels[-1]
        if len(level) % 2:
            level = level + [level[-1]]
        levels.append([hash_pair(iters, level[i], level[i + 1]) for i in range(0, len(level), 2)])
    return levels


def merkle_root(iters: int, items: Sequence[bytes]) -> bytes:
    return _levels(iters, items)[-1][0]


def merkle_proof(iters: int, items: Sequence[bytes], index: int) -> list[tuple[str, bytes]]:
    """The siblings on the path from ``items[index]`` to the root: ``[(side, hash), ...]``."""
    proof = []
    for level in _levels(iters, items)[:-1]:
        if len(level) % 2:
            level = level + [level[-1]]
        sibling = index ^ 1
        proof.append(("left" if sibling < index else "right", level[sibling]))
        index //= 2
    return proof


def verify_proof(iters: int, item: bytes, proof: Sequence[tuple[str, bytes]], root: bytes) -> bool:
    """Whether ``proof`` links ``item`` to ``root``."""
    h = item
    for side, sibling in proof:
        h = hash_pair(iters, sibling, h) if side == "left" else hash_pair(iters, h, sibling)
    return h == root


# -- the graph's task functions (module level: picklable for worker processes) -----------------


def leaf_commitment(iters: int, tx: bytes) -> bytes:
    return hash_leaf(iters, tx)


def chunk_root(iters: int, *leaves: bytes) -> bytes:
    return merkle_root(iters, leaves)


def batch_root(iters: int, *chunk_roots: bytes) -> bytes:
    return merkle_root(iters, chunk_roots)


def inclusion_proof(iters: int, index: int, *chunk_roots: bytes) -> list[tuple[str, bytes]]:
    return merkle_proof(iters, chunk_roots, index)


# -- the graph ---------------------------------------------------------------------------------


def transactions(n: int) -> list[bytes]:
    """``n`` deterministic transactions."""
    return [f"tx {i:05d}: account {i % 7} pays account {(i * 3 + 1) % 11} {(i * 37) % 1000 + 1} units".encode()
            for i in range(n)]


def tx_key(i: int, n_tx: int) -> str:
    return f"tx/{i:0{len(str(n_tx - 1))}d}"


def leaf_key(i: int, n_tx: int) -> str:
    return f"leaf/{i:0{len(str(n_tx - 1))}d}"


def chunk_key(c: int) -> str:
    return f"chunk/{c}"


def proof_key(c: int) -> str:
    return f"proof/chunk/{c}"


def rollup_nodes(
    n_tx: int = N_TX, chunk_size: int = CHUNK_SIZE, hash_iters: int = 0, proof_chunk: int = PROOF_CHUNK
) -> tuple[dict[str, bytes], list[tuple[str, tuple[str, ...], Callable[..., Any]]]]:
    """The rollup graph as plain data: ``(sources, tasks)``.

    ``sources`` maps each transaction's key to its bytes; ``tasks`` lists ``(key, deps, fn)`` in
    a topological order (leaf commitments, chunk roots, the batch root, the inclusion proof of
    chunk ``proof_chunk``).  Every ``fn`` is a ``functools.partial`` of a module-level function.
    """
    if n_tx < 1 or chunk_size < 1:
        raise ValueError("n_tx and chunk_size must be >= 1")
    n_chunks = -(-n_tx // chunk_size)
    if not 0 <= proof_chunk < n_chunks:
        raise ValueError(f"proof_chunk must be in [0, {n_chunks}), got {proof_chunk}")
    txs = transactions(n_tx)
    sources = {tx_key(i, n_tx): tx for i, tx in enumerate(txs)}
    leaf = functools.partial(leaf_commitment, hash_iters)
    tasks: list[tuple[str, tuple[str, ...], Callable[..., Any]]] = [
        (leaf_key(i, n_tx), (tx_key(i, n_tx),), leaf) for i in range(n_tx)
    ]
    chunk = functools.partial(chunk_root, hash_iters)
    for c in range(n_chunks):
        members = range(c * chunk_size, min((c + 1) * chunk_size, n_tx))
        tasks.append((chunk_key(c), tuple(leaf_key(i, n_tx) for i in members), chunk))
    roots = tuple(chunk_key(c) for c in range(n_chunks))
    tasks.append(("batch", roots, functools.partial(batch_root, hash_iters)))
    tasks.append((proof_key(proof_chunk), roots, functools.partial(inclusion_proof, hash_iters, proof_chunk)))
    return sources, tasks


def build_dag(n_tx: int = N_TX, chunk_size: int = CHUNK_SIZE, hash_iters: int = 0, proof_chunk: int = PROOF_CHUNK):
    """The rollup graph as an :class:`ftdag.Dag`."""
    import ftdag

    sources, tasks = rollup_nodes(n_tx, chunk_size, hash_iters, proof_chunk)
    b = ftdag.DagBuilder()
    for key, value in sources.items():
        b.add_source(key, value)
    for key, deps, fn in tasks:
        b.add_task(key, deps, fn)
    return b.build()


# -- the demo ----------------------------------------------------------------------------------


def _env_int(name: str, default: int, minimum: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(f"rollup.py: {name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise SystemExit(f"rollup.py: {name} must be >= {minimum}, got {value}")
    return value


def _short(h: bytes) -> str:
    return h.hex()[:16] + "…"


def _best_of(n: int, run: Callable[[], Any]) -> tuple[Any, float]:
    """The last result of ``n`` calls of ``run`` and the shortest wall time among them."""
    best = float("inf")
    for _ in range(n):
        t0 = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - t0)
    return result, best


def main() -> int:
    import ftdag

    iters = _env_int("FTDAG_HASH_ITERS", 0, 0)
    workers = _env_int("FTDAG_MAX_WORKERS", min(ftdag.available_cpus(), 4), 1)
    n_chunks = N_TX // CHUNK_SIZE
    dag = build_dag(N_TX, CHUNK_SIZE, iters, PROOF_CHUNK)
    leaves = {leaf_key(i, N_TX) for i in range(N_TX)}
    gil = "on" if ftdag.gil_enabled() else "off"
    print(f"rollup: {N_TX} transactions in {n_chunks} chunks of {CHUNK_SIZE}; {len(dag)} nodes; "
          f"FTDAG_HASH_ITERS={iters}; {workers} workers; Python {sys.version.split()[0]}, GIL {gil}")

    with ftdag.Executor(ftdag.ExecutorConfig(max_workers=workers)) as ex:
        # 1. The batch root, sequentially and in parallel.
        # Best of 3 each, so that neither side pays the interpreter's warm-up or the pool's start.
        seq, t_seq = _best_of(3, lambda: ex.run_sequential(dag, "batch"))
        par, t_par = _best_of(3, lambda: ex.run(dag, "batch"))
        if par["batch"] != seq["batch"]:
            print("ERROR: the parallel batch root differs from the sequential one", file=sys.stderr)
            return 1
        print(f"batch root: {_short(seq['batch'])}  sequential {t_seq * 1e3:.1f} ms, "
              f"parallel ({par.stats.backend}, {par.stats.workers} workers) {t_par * 1e3:.1f} ms; "
              f"{par.stats.executed} nodes executed; roots agree")

        # 2. One chunk root: only its ancestors run.
        key = chunk_key(2)
        one = ex.run(dag, key)
        hashed = sorted(leaves & dag.ancestors(key))
        print(f"chunk root 2: {_short(one[key])}  {len(hashed)} of {N_TX} leaves hashed "
              f"({', '.join(hashed)}); {one.stats.executed} of {len(dag)} nodes executed, {one.stats.pruned} pruned")

        # 3. A chunk root with its inclusion proof, verified against the batch root.
        key, pkey = chunk_key(PROOF_CHUNK), proof_key(PROOF_CHUNK)
        res = ex.run(dag, [key, pkey, "batch"])
        proof = res[pkey]
        ok = verify_proof(iters, res[key], proof, res["batch"])
        path = " ".join(f"{side}:{h.hex()[:8]}" for side, h in proof)
        print(f"chunk root {PROOF_CHUNK}: {_short(res[key])}  inclusion proof [{path}] "
              f"verified against batch root {_short(res['batch'])}: {'OK' if ok else 'FAILED'}")
        if not ok:
            return 1
        if verify_proof(iters, hash_leaf(iters, b"a forged chunk"), proof, res["batch"]):
            print("ERROR: the proof also verified a different chunk root", file=sys.stderr)
            return 1

    # 4. The measured speed-up, when there is hashing work to speed up.
    if iters:
        print(f"parallel speed-up: {t_seq / t_par:.2f}x with {par.stats.workers} workers "
              f"({par.stats.backend}; sequential {t_seq:.3f} s, parallel {t_par:.3f} s)")
    else:
        print("hashing is light: set FTDAG_HASH_ITERS=20000 to make every hash CPU-heavy and measure the parallel speed-up")
    return 0


if __name__ == "__main__":
    sys.exit(main())
