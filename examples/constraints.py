#!/usr/bin/env python3
"""Scheduling constraints in one small pipeline: a shared cache, a rate-limited API, a barrier.

    fetch/0..2   call an API that allows 2 requests at once (resource "api", capacity 2)
    parse/0..2   parse each response (data dependencies)
    index        writes the shared in-memory cache "idx" (exclusive access)
    lookup/0..1  read the cache (shared access: they run together, never beside "index")
    -- barrier --
    report       runs after everything added before the barrier; reads the lookups' values

The cache is a plain dict that tasks mutate: on free-threaded Python two tasks writing one
dict at once would be a data race, and the access sets make the scheduler keep them apart,
with no lock in the tasks.  Shared mutable state needs the thread backend (worker processes
would each have their own copy), so the script asks for it.  The script runs the pipeline, prints its static batches, and with
``--dot`` prints the Graphviz DOT of a run that requests ``lookup/0`` only (the nodes that
run would prune are grey): ``docs/constraints.png`` is made from it with

    python examples/constraints.py --dot | dot -Tpng -o docs/constraints.png
"""

from __future__ import annotations

import functools
import sys
import threading

import ftdag

CACHE: dict[str, str] = {}  # shared state, mutated by tasks (threads share it; see the README)
_IN_API = [0, 0]  # [requests in progress, most at once], to show the resource limit holds
_LOCK = threading.Lock()


def fetch(i: int) -> str:
    with _LOCK:
        _IN_API[0] += 1
        _IN_API[1] = max(_IN_API[1], _IN_API[0])
    try:
        return f"doc {i}: " + " ".join(f"word{j}" for j in range(i, i + 3))
    finally:
        with _LOCK:
            _IN_API[0] -= 1


def parse(text: str) -> list[str]:
    return text.split(": ", 1)[1].split()


def index(*docs: list[str]) -> int:
    for n, words in enumerate(docs):
        for w in words:
            CACHE.setdefault(w, f"doc {n}")  # the only writer of the cache
    return len(CACHE)


def lookup(word: str) -> str:
    return CACHE.get(word, "missing")  # a reader


def report(*found: str) -> str:
    return ", ".join(found)


def build() -> ftdag.Dag:
    b = ftdag.DagBuilder()
    for i in range(3):
        b.add_task(f"fetch/{i}", [], functools.partial(fetch, i), resources={"api": 1})
        b.add_task(f"parse/{i}", [f"fetch/{i}"], parse)
    b.add_task("index", [f"parse/{i}" for i in range(3)], index, writes={"idx"})
    for j, word in enumerate(["word2", "word4"]):
        b.add_source(f"word/{j}", word)
        b.add_task(f"lookup/{j}", [f"word/{j}"], lookup, reads={"idx"}, after=["index"])
    b.add_barrier()
    b.add_task("report", ["lookup/0", "lookup/1"], report)
    return b.build()


def main() -> None:
    dag = build()
    if sys.argv[1:] == ["--dot"]:
        print(dag.to_dot(outputs=["lookup/0"]), end="")
        return
    print("Batches:")
    for n, batch in enumerate(dag.batches(), 1):
        print(f"  {n}: {', '.join(map(str, batch))}")
    # Threads, whatever the build: the tasks share CACHE, which worker processes would each
    # have a copy of.  (On a GIL build the threads take turns; the constraints hold the same.)
    with ftdag.Executor(max_workers=4, backend="threads", resources={"api": 2}) as ex:
        res = ex.run(dag, ["report"])
    print(f"report = {res['report']}")
    print(f"most API requests at once: {_IN_API[1]}")


if __name__ == "__main__":
    main()
