"""dagga's README example in ftdag: tasks ordered by the shared state they create, read, write
and consume, rather than by values passed between them.

    create-a          creates a
    create-b          creates b
    create-c          reads a and b, creates c
    modify-a          writes a, reads b, and must run before create-c
    reduce-abc-to-d   consumes a, b and c, creates d

No task has a data dependency.  ``build()`` turns the access sets into order edges: a name's
creator runs before every task that uses it, and its consumer after every task that reads or
writes it; readers and writers of a name never overlap.  ``dag.batches()`` is then a static
schedule in layers whose tasks may run in parallel; for this graph it is the one dagga's
README gives:

    create-a, create-b | modify-a | create-c | reduce-abc-to-d

The script prints the batches, then the graph in Graphviz DOT and as a Mermaid flowchart
(data edges solid, order edges dashed; here every edge is an order edge), then runs it on
three workers: the tasks start in an order the batches allow.

Run it from the repository root:    python examples/dagga.py
Only the DOT (docs/dagga.png):      python examples/dagga.py --dot | dot -Tpng -o docs/dagga.png
"""

import functools
import sys
from pathlib import Path

try:
    import ftdag
except ImportError:  # a checkout where ftdag is not installed: use its src/
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    import ftdag


def step(name: str) -> str:
    """What every task does here: say that it ran (in one write, so that two threads never
    share a line), and return its name."""
    sys.stdout.write(f"  ran {name}\n")
    sys.stdout.flush()
    return name


def build() -> ftdag.Dag:
    b = ftdag.DagBuilder()
    b.add_task("create-a", [], functools.partial(step, "create-a"), creates="a")
    b.add_task("create-b", [], functools.partial(step, "create-b"), creates="b")
    b.add_task("create-c", [], functools.partial(step, "create-c"), reads=["a", "b"], creates="c")
    b.add_task(
        "modify-a", [], functools.partial(step, "modify-a"), writes="a", reads="b", before=["create-c"]
    )
    b.add_task(
        "reduce-abc-to-d", [], functools.partial(step, "reduce-abc-to-d"), consumes=["a", "b", "c"], creates="d"
    )
    return b.build()


def main() -> None:
    # Worker processes (GIL builds) write their "ran" lines straight to the same stdout: flush
    # ours at each line too, so that the lines come out in the order they were written.
    sys.stdout.reconfigure(line_buffering=True)
    dag = build()
    if sys.argv[1:] == ["--dot"]:
        print(dag.to_dot(), end="")
        return
    print("Batches (the tasks of a batch may run in parallel):")
    for n, batch in enumerate(dag.batches(), 1):
        print(f"  {n}: {', '.join(batch)}")
    print("\nOrder edges (each task runs after these, receiving no value):")
    for key in dag:
        print(f"  {key}: {', '.join(dag.order_dependencies(key)) or '(none)'}")
    print("\nGraphviz DOT:")
    print(dag.to_dot(), end="")
    print("\nMermaid:")
    print(dag.to_mermaid(), end="")
    print("\nRun on 3 workers (every batch boundary holds; readers and writers never overlap):")
    with ftdag.Executor(max_workers=3) as ex:
        res = ex.run(dag, dag.keys())
    print(f"backend: {res.stats.backend}, ran {len(res)} tasks")


if __name__ == "__main__":
    main()
