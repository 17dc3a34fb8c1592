"""The benchmark workloads: each one as an ftdag ``Dag`` and as a plain description every runner can use.

A :class:`Workload` holds the graph as plain data (``sources``: key -> value, ``tasks``: key ->
``(fn, deps)``, ``order``: the task keys in a topological order, ``outputs``: the keys a run
returns) and builds the equivalent :class:`ftdag.Dag` on demand.  Every task function is a
module-level function, or a ``functools.partial`` of one, so the graphs pickle without
cloudpickle and the process runners can ship them.

Workloads (``SIZES`` gives their parameters at the sizes ``tiny`` (tests), ``quick`` and ``full``):

``chain``        no-op chain: each task adds 1 to its predecessor (scheduler overhead).
``heavy``        independent ~10 ms pure-Python CPU tasks (heavy fan-out).
``fine``         independent ~50 µs pure-Python CPU tasks reduced by a binary tree (fine-grained).
``rollup``       ``examples/rollup.py``'s pipeline at a larger size: leaf commitments -> chunk
                 roots -> batch root + an inclusion proof, each hash with pure-Python mixing.
``layered``      a random layered DAG (fixed seed): random fan-in, task costs from 10 to 200 µs.
``gil-release``  ``hashlib.sha256`` over 1 MB buffers: C code that releases the GIL.

and, outside the comparison table (``WORKLOADS``), for the small-graph row only (``ALL_WORKLOADS``):

``diamond``      one source, two no-op tasks on it, one task joining them: the smallest graph with
                 parallel width, so a run's time is the scheduler's fixed cost.

CPU task sizes are given in microseconds and turned into loop counts with ``spin_per_ms``, the
number of :func:`spin` iterations one millisecond buys.  :func:`calibrate` measures it in the
running interpreter; ``benchmarks/compare.py`` measures it once on the GIL build and passes the
same number to every interpreter, so all interpreters do exactly the same work.
"""

from __future__ import annotations

import functools
import hashlib
import math
import random
import sys
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_EXAMPLES = str(Path(__file__).resolve().parent.parent / "examples")
if _EXAMPLES not in sys.path:
    sys.path.append(_EXAMPLES)

import rollup  # noqa: E402  (examples/rollup.py: the rollup workload reuses its graph)

__all__ = [
    "ALL_WORKLOADS", "SIZES", "WORKLOADS", "Workload", "calibrate", "make", "spin",
]

MASK64 = 0xFFFFFFFFFFFFFFFF


# -- task functions (module level: picklable by reference) -------------------------------------


def inc(x: int) -> int:
    """The no-op task: cheap enough that a run's time is the scheduler's."""
    return x + 1


def spin(loops: int, seed: int) -> int:
    """Pure-Python CPU work: ``loops`` rounds of a 64-bit LCG (holds the GIL throughout)."""
    x = seed
    for _ in range(loops):
        x = (x * 6364136223846793005 + 1442695040888963407) & MASK64
    return x


def combine(a: int, b: int) -> int:
    """One step of the reduction tree."""
    return (a * 31 + b) & MASK64


def spin_mix(loops: int, *inputs: int) -> int:
    """A layered-DAG node: spin seeded with its inputs."""
    seed = 17
    for x in inputs:
        seed = (seed * 31 + x) & MASK64
    return spin(loops, seed)


def checksum(*values: int) -> int:
    seed = 0
    for x in values:
        seed = (seed * 1000003 + x) & MASK64
    return seed


def sha256_rounds(rounds: int, buf: bytes) -> str:
    """``rounds`` passes of sha256 over ``buf``; hashlib releases the GIL for large buffers."""
    h = hashlib.sha256()
    for _ in range(rounds):
        h.update(buf)
    return h.hexdigest()


def join_digests(*digests: str) -> str:
    return hashlib.sha256("".join(digests).encode()).hexdigest()


# -- calibration -------------------------------------------------------------------------------


def calibrate(target_s: float = 0.04, tries: int = 5) -> float:
    """:func:`spin` iterations per millisecond in this interpreter (best of ``tries``)."""
    loops = 1000
    while True:  # grow until one call takes long enough to time
        t0 = time.perf_counter()
        spin(loops, 1)
        dt = time.perf_counter() - t0
        if dt >= target_s / 4:
            break
        loops *= 4
    best = math.inf
    for _ in range(tries):
        t0 = time.perf_counter()
        spin(loops, 1)
        best = min(best, time.perf_counter() - t0)
    return loops / (best * 1000)


def loops_for(us: float, spin_per_ms: float) -> int:
    return max(1, round(us * spin_per_ms / 1000))


# -- the workload container --------------------------------------------------------------------


@dataclass
class Workload:
    """A graph as plain data, plus how to build it as an :class:`ftdag.Dag`."""

    name: str
    title: str  # short label for tables, e.g. "fine-grained 4096x50us"
    description: str
    sources: dict[Hashable, Any]
    tasks: dict[Hashable, tuple[Callable[..., Any], tuple[Hashable, ...]]]
    order: list[Hashable]  # task keys, every dependency before its dependents
    outputs: list[Hashable]
    params: dict[str, Any] = field(default_factory=dict)
    dag_factory: Callable[[], Any] | None = None  # builds the ftdag.Dag; default: from the data
    _dag: Any = field(default=None, repr=False)

    @property
    def n_tasks(self) -> int:
        return len(self.tasks)

    @property
    def n_nodes(self) -> int:
        return len(self.sources) + len(self.tasks)

    def steps(self) -> list[tuple[Hashable, Callable[..., Any], tuple[Hashable, ...]]]:
        """``(key, fn, deps)`` in topological order: the plain loop's program."""
        tasks = self.tasks
        return [(k, tasks[k][0], tasks[k][1]) for k in self.order]

    def dag(self):
        """The equivalent :class:`ftdag.Dag` (built once, then cached)."""
        if self._dag is None:
            if self.dag_factory is not None:
                self._dag = self.dag_factory()
            else:
                import ftdag

                b = ftdag.DagBuilder()
                for key, value in self.sources.items():
                    b.add_source(key, value)
                for key in self.order:
                    fn, deps = self.tasks[key]
                    b.add_task(key, deps, fn)
                self._dag = b.build()
        return self._dag

    def check(self) -> None:
        """Assert the description is consistent (a test aid)."""
        seen = set(self.sources)
        assert len(self.order) == len(self.tasks) == len(set(self.order))
        for key in self.order:
            assert key not in self.sources
            for d in self.tasks[key][1]:
                assert d in seen, f"{key!r} depends on {d!r}, which comes later or does not exist"
            seen.add(key)
        assert all(k in seen for k in self.outputs)


def _from_list(name, title, description, sources, task_list, outputs, params, dag_factory=None) -> Workload:
    tasks = {k: (fn, tuple(deps)) for k, deps, fn in task_list}
    return Workload(name, title, description, sources, tasks, [k for k, _, _ in task_list], list(outputs),
                    params, dag_factory)


# -- the workloads -----------------------------------------------------------------------------


def chain(n: int, spin_per_ms: float | None = None) -> Workload:
    tasks = [(f"c/{i}", (f"c/{i - 1}",), inc) for i in range(1, n + 1)]
    return _from_list(
        "chain", f"no-op chain {n}", f"a chain of {n} no-op tasks (x + 1): pure scheduler overhead",
        {"c/0": 0}, tasks, [f"c/{n}"], {"n": n},
    )


def diamond(spin_per_ms: float | None = None) -> Workload:
    tasks = [("d/left", ("d/src",), inc), ("d/right", ("d/src",), inc), ("d/join", ("d/left", "d/right"), combine)]
    return _from_list(
        "diamond", "3-task diamond", "one source, two no-op tasks on it and one joining them: a run's fixed cost",
        {"d/src": 0}, tasks, ["d/join"], {},
    )


def heavy(n: int, task_us: float, spin_per_ms: float) -> Workload:
    loops = loops_for(task_us, spin_per_ms)
    tasks = [(f"h/{i}", (), functools.partial(spin, loops, i + 1)) for i in range(n)]
    return _from_list(
        "heavy", f"heavy {n}x{task_us / 1000:g}ms",
        f"{n} independent ~{task_us / 1000:g} ms pure-Python CPU tasks ({loops} loop rounds each)",
        {}, tasks, [k for k, _, _ in tasks], {"n": n, "task_us": task_us, "loops": loops},
    )


def fine(n: int, task_us: float, spin_per_ms: float) -> Workload:
    loops = loops_for(task_us, spin_per_ms)
    tasks = [(f"f/0/{i}", (), functools.partial(spin, loops, i + 1)) for i in range(n)]
    level, width = 0, n
    while width > 1:
        for j in range(width // 2):
            tasks.append((f"f/{level + 1}/{j}", (f"f/{level}/{2 * j}", f"f/{level}/{2 * j + 1}"), combine))
        if width % 2:  # carry the odd one up
            tasks.append((f"f/{level + 1}/{width // 2}", (f"f/{level}/{width - 1}",), inc))
        level, width = level + 1, (width + 1) // 2
    return _from_list(
        "fine", f"fine-grained {n}x{task_us:g}us",
        f"{n} independent ~{task_us:g} µs pure-Python CPU tasks ({loops} loop rounds) reduced by a binary tree",
        {}, tasks, [f"f/{level}/0"], {"n": n, "task_us": task_us, "loops": loops},
    )


def rollup_workload(n_tx: int, chunk_size: int, hash_us: float, spin_per_ms: float) -> Workload:
    # One mixing round of rollup._hash costs about what one spin round costs, plus a shift.
    iters = loops_for(hash_us, spin_per_ms)
    sources, task_list = rollup.rollup_nodes(n_tx, chunk_size, iters, proof_chunk=0)
    n_chunks = -(-n_tx // chunk_size)
    return _from_list(
        "rollup", f"rollup {n_tx}tx/{n_chunks}chunks",
        f"examples/rollup.py's pipeline: {n_tx} transactions in {n_chunks} chunks of {chunk_size}, "
        f"leaf commitments -> chunk roots -> batch root + an inclusion proof; {iters} mixing rounds per hash",
        sources, task_list, ["batch", rollup.proof_key(0)],
        {"n_tx": n_tx, "chunk_size": chunk_size, "hash_us": hash_us, "hash_iters": iters},
        dag_factory=functools.partial(rollup.build_dag, n_tx, chunk_size, iters, 0),
    )


def layered(layers: int, width: int, spin_per_ms: float, seed: int = 20240613,
            min_us: float = 10, max_us: float = 200) -> Workload:
    rng = random.Random(seed)
    sources = {f"in/{j}": rng.randrange(1 << 32) for j in range(width)}
    prev = list(sources)
    tasks = []
    has_user: set[str] = set()
    older: list[str] = []
    for layer in range(layers):
        cur = []
        for j in range(width):
            k = rng.randint(1, 4)
            deps = rng.sample(prev, min(k, len(prev)))
            if older and rng.random() < 0.2:  # an occasional edge that skips a layer
                deps.append(rng.choice(older))
            us = math.exp(rng.uniform(math.log(min_us), math.log(max_us)))
            key = f"L/{layer}/{j}"
            tasks.append((key, tuple(deps), functools.partial(spin_mix, loops_for(us, spin_per_ms))))
            has_user.update(deps)
            cur.append(key)
        older, prev = prev, cur
    sinks = [k for k, _, _ in tasks if k not in has_user]
    tasks.append(("L/out", tuple(sinks), checksum))
    n = len(tasks)
    return _from_list(
        "layered", f"random layered {n}",
        f"a random layered DAG (seed {seed}): {layers} layers of {width} tasks, fan-in 1-4, "
        f"task costs log-uniform in {min_us:g}-{max_us:g} µs, all sinks folded into one output",
        sources, tasks, ["L/out"], {"layers": layers, "width": width, "seed": seed},
    )


def gil_release(n: int, rounds: int, mb: int = 1, spin_per_ms: float | None = None) -> Workload:
    size = mb << 20
    sources = {f"buf/{i}": random.Random(i).randbytes(size) for i in range(n)}
    hasher = functools.partial(sha256_rounds, rounds)
    tasks = [(f"sha/{i}", (f"buf/{i}",), hasher) for i in range(n)]
    tasks.append(("sha/all", tuple(f"sha/{i}" for i in range(n)), join_digests))
    return _from_list(
        "gil-release", f"sha256 {n}x{mb}MBx{rounds}",
        f"{n} tasks each hashing a {mb} MB buffer {rounds} times with hashlib.sha256 (releases the GIL)",
        sources, tasks, ["sha/all"], {"n": n, "rounds": rounds, "mb": mb},
    )


_BUILDERS: dict[str, Callable[..., Workload]] = {
    "chain": chain,
    "heavy": heavy,
    "fine": fine,
    "rollup": rollup_workload,
    "layered": layered,
    "gil-release": gil_release,
    "diamond": diamond,
}

ALL_WORKLOADS = tuple(_BUILDERS)
WORKLOADS = tuple(w for w in ALL_WORKLOADS if w != "diamond")  # the comparison table's

SIZES: dict[str, dict[str, dict[str, Any]]] = {
    "tiny": {
        "chain": {"n": 20},
        "heavy": {"n": 4, "task_us": 200},
        "fine": {"n": 16, "task_us": 20},
        "rollup": {"n_tx": 16, "chunk_size": 4, "hash_us": 10},
        "layered": {"layers": 4, "width": 6},
        "gil-release": {"n": 3, "rounds": 1, "mb": 1},
    },
    "quick": {
        "chain": {"n": 2000},
        "heavy": {"n": 16, "task_us": 10_000},
        "fine": {"n": 2048, "task_us": 50},
        "rollup": {"n_tx": 256, "chunk_size": 16, "hash_us": 100},
        "layered": {"layers": 20, "width": 50},
        "gil-release": {"n": 16, "rounds": 4, "mb": 1},
    },
    "full": {
        "chain": {"n": 10_000},
        "heavy": {"n": 32, "task_us": 10_000},
        "fine": {"n": 4096, "task_us": 50},
        "rollup": {"n_tx": 1024, "chunk_size": 16, "hash_us": 100},
        "layered": {"layers": 40, "width": 75},
        "gil-release": {"n": 64, "rounds": 4, "mb": 1},
    },
}


def make(name: str, size: str = "full", spin_per_ms: float | None = None, **overrides: Any) -> Workload:
    """Build workload ``name`` at ``size`` (``tiny``, ``quick``, ``full``); ``overrides`` replace parameters."""
    if name not in _BUILDERS:
        raise KeyError(f"unknown workload {name!r}; choose from {', '.join(WORKLOADS)}")
    if size not in SIZES:
        raise KeyError(f"unknown size {size!r}; choose from {', '.join(SIZES)}")
    if spin_per_ms is None:
        spin_per_ms = calibrate()
    params = {**SIZES[size].get(name, {}), **overrides}
    return _BUILDERS[name](spin_per_ms=spin_per_ms, **params)
