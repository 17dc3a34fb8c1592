"""Scheduling constraints as the schedulers keep them: shared and exclusive access to named
state, resource limits, priorities and critical-path order, order-only edges and barriers.

Every claim is checked with gates the test controls.  "X does not start" is made observable
with a *probe* task of lower priority than X: with a free worker, the probe can start only if
X was held back, so the test waits for the probe and then checks that X never arrived.
(The graph-side rules, build errors and ``batches`` are in ``test_constraints_graph.py``.)
"""

from __future__ import annotations

import functools
import random

import pytest
from helpers import CallLog, CallManager, kept_by_fixture

import ftdag
from ftdag.testing import ConcurrencyProbe, Gate, shared_manager

BACKENDS = ["sequential", "threads", "processes"]
PARALLEL = ["threads", "processes"]


@pytest.fixture(scope="module")
def manager():
    with shared_manager(CallManager) as m, kept_by_fixture(m):
        yield m


def shared(backend, manager, kind):
    """A Gate or ConcurrencyProbe that the backend's tasks can reach."""
    if backend == "processes":
        return getattr(manager, kind)()
    return {"Gate": Gate, "ConcurrencyProbe": ConcurrencyProbe}[kind]()


def gated(gate, probe, key, *args):
    with probe.track(key):
        gate.wait(key)
    return key


def tracked(probe, key, *args):
    with probe.track(key):
        x = 0
        for i in range(2000):  # a little work, so that tasks can overlap
            x += i
    return key


def arrive(gate, key, *args):
    gate.wait(key)
    return key


def args_of(*args):
    return args


# -- shared and exclusive access ------------------------------------------------------------------


@pytest.mark.parametrize("backend", PARALLEL)
def test_readers_share_a_name_and_the_writer_waits_then_runs_alone(backend, manager):
    gate, probe, probe_gate = (shared(backend, manager, k) for k in ("Gate", "ConcurrencyProbe", "Gate"))
    b = ftdag.DagBuilder()
    for k in ("r1", "r2", "r3"):
        b.add_task(k, [], functools.partial(gated, gate, probe, k), reads={"x"}, priority=2)
    b.add_task("w", [], functools.partial(gated, gate, probe, "w"), writes={"x"}, priority=1)
    b.add_task("probe", [], functools.partial(arrive, probe_gate, "probe"))  # priority 0: after w
    dag = b.build()
    with ftdag.Executor(backend=backend, max_workers=4) as ex:
        from helpers import Background

        bg = Background(ex.run, dag, dag.keys())
        assert sorted(gate.wait_for_arrivals(3)) == ["r1", "r2", "r3"]  # the readers run together
        probe_gate.wait_for_arrivals(1)  # the 4th worker took the probe: w was held back
        assert sorted(gate.arrived) == ["r1", "r2", "r3"]
        probe_gate.open()
        gate.open()
        assert dict(bg.result()) == {k: k for k in ("r1", "r2", "r3", "w", "probe")}
    events = [(kind, key) for _, kind, key in probe.events()]
    w_start, w_end = events.index(("start", "w")), events.index(("end", "w"))
    assert w_end == w_start + 1  # nobody started or ended while the writer ran
    assert all(events.index(("end", r)) < w_start for r in ("r1", "r2", "r3"))


def overlapping(events, a, b):
    """Whether the runs of keys ``a`` and ``b`` overlap in ``events`` ((seq, kind, key) list)."""
    pos = {(kind, key): seq for seq, kind, key in events}
    return pos[("start", a)] < pos[("end", b)] and pos[("start", b)] < pos[("end", a)]


@pytest.mark.parametrize("backend", PARALLEL)
def test_random_graphs_never_overlap_a_writer_with_another_accessor(backend, manager):
    names = ["a", "b", "c"]
    with ftdag.Executor(backend=backend, max_workers=4) as ex:
        for seed in range(4 if backend == "processes" else 10):
            rng = random.Random(seed)
            probe = shared(backend, manager, "ConcurrencyProbe")
            b = ftdag.DagBuilder()
            access = {}
            for i in range(30):
                reads = {n for n in names if rng.random() < 0.3}
                writes = {n for n in names if rng.random() < 0.15}
                deps = [j for j in range(i) if rng.random() < 0.05]
                access[i] = (reads, writes)
                b.add_task(i, deps, functools.partial(tracked, probe, i), reads=reads, writes=writes)
            res = ex.run(b.build(), list(range(30)))
            assert len(res) == 30
            events = probe.events()
            for x in names:
                writers = [i for i, (_, w) in access.items() if x in w]
                users = [i for i, (r, w) in access.items() if x in r or x in w]
                for w in writers:
                    for u in users:
                        assert u == w or not overlapping(events, w, u), (seed, x, w, u)


# -- resources ------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", PARALLEL)
def test_a_resource_of_capacity_2_runs_2_of_8_while_other_tasks_run(backend, manager):
    db_gate, other_gate, probe_gate = (shared(backend, manager, "Gate") for _ in range(3))
    probe = shared(backend, manager, "ConcurrencyProbe")
    b = ftdag.DagBuilder()
    for i in range(8):
        b.add_task(("db", i), [], functools.partial(gated, db_gate, probe, ("db", i)), resources={"db": 1}, priority=2)
    for i in range(2):
        b.add_task(("other", i), [], functools.partial(arrive, other_gate, ("other", i)), priority=1)
    b.add_task("probe", [], functools.partial(arrive, probe_gate, "probe"))
    dag = b.build()
    from helpers import Background

    with ftdag.Executor(backend=backend, max_workers=5, resources={"db": 2}) as ex:
        bg = Background(ex.run, dag, dag.keys())
        db_gate.wait_for_arrivals(2)
        other_gate.wait_for_arrivals(2)  # unrelated tasks run on the other workers meanwhile
        probe_gate.wait_for_arrivals(1)  # and a 5th worker found nothing it could start but the probe
        assert len(db_gate.arrived) == 2
        other_gate.open()
        probe_gate.open()
        db_gate.open()
        assert len(bg.result()) == 11
    assert probe.peak == 2


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_resource_the_executor_lacks_or_cannot_hold_fails_before_anything_runs(backend, manager):
    log = CallLog(manager if backend == "processes" else None)
    b = ftdag.DagBuilder()
    b.add_task("first", [], log.task("first", functools.partial(args_of, 1)))
    b.add_task("gpu", ["first"], log.task("gpu", args_of), resources={"gpu": 1})
    b.add_task("db3", ["first"], log.task("db3", args_of), resources={"db": 3})
    dag = b.build()
    with ftdag.Executor(backend=backend, max_workers=2, resources={"db": 2}) as ex:
        with pytest.raises(ftdag.ResourceError, match="'gpu'.*does not declare") as info:
            ex.run(dag, ["gpu"])
        assert (info.value.task, info.value.resource, info.value.capacity) == ("gpu", "gpu", None)
        with pytest.raises(ftdag.ResourceError, match="3 units of resource 'db'.*capacity of 2"):
            ex.run(dag, ["db3"])
        assert log.ran == set()
        assert ex.run(dag, ["first"])["first"] == (1,)  # the executor is still usable


def test_invalid_resource_capacities_are_named():
    with pytest.raises(ValueError, match=r"resources\['db'\] must be >= 1"):
        ftdag.ExecutorConfig(resources={"db": 0})
    with pytest.raises(TypeError, match="resource names must be str"):
        ftdag.ExecutorConfig(resources={1: 2})
    with pytest.raises(TypeError, match="mapping"):
        ftdag.ExecutorConfig(resources=[("db", 1)])
    config = ftdag.ExecutorConfig(resources={"gpu": 1, "db": 2})
    assert dict(config.resources) == {"db": 2, "gpu": 1} and hash(config) == hash(ftdag.ExecutorConfig(
        resources={"db": 2, "gpu": 1}))


# -- order ----------------------------------------------------------------------------------------


def expected_order(dag, outputs):
    """The start order of one worker, simulated: the best ready task by (-priority, -critical
    path, id), with ids, costs and priorities read from the graph."""
    ids = dag._closure(dag._output_ids(outputs))
    planned = set(ids)
    preds = {i: [d for d in dag._deps[i] if d in planned] + [d for d in (dag._after[i] if dag._after else ())]
             for i in ids}
    succ = {i: [] for i in ids}
    for i in ids:
        for d in preds[i]:
            succ[d].append(i)
    opts = {i: dag.options(dag._keys[i]) for i in ids}
    path = {}
    for i in sorted(ids, reverse=True):
        path[i] = opts[i].cost + max((path[u] for u in succ[i]), default=0.0)
    done, order = set(), []
    while len(order) < len(ids):
        ready = [i for i in ids if i not in done and all(d in done for d in preds[i])]
        best = min(ready, key=lambda i: (-opts[i].priority, -path[i], i))
        done.add(best)
        order.append(dag._keys[best])
    return order


@pytest.mark.parametrize("backend", BACKENDS)
def test_with_one_worker_tasks_start_exactly_in_priority_then_critical_path_order(backend, manager):
    with ftdag.Executor(backend=backend, max_workers=1) as ex:
        for seed in range(5):
            rng = random.Random(seed)
            probe = shared(backend, manager, "ConcurrencyProbe")
            b = ftdag.DagBuilder()
            for i in range(25):
                deps = [j for j in range(i) if rng.random() < 0.08]
                b.add_task(i, deps, functools.partial(tracked, probe, i),
                           priority=rng.choice([0, 0, 1, 5]), cost=rng.choice([1.0, 2.0, 0.5]))
            dag = b.build()
            ex.run(dag, list(range(25)))
            started = [k for _, kind, k in probe.events() if kind == "start"]
            assert started == expected_order(dag, list(range(25))), seed


@pytest.mark.parametrize("backend", BACKENDS)
def test_critical_path_goes_first_without_priorities(backend, manager):
    """One worker, no options: a chain added after independent tasks still starts first."""
    probe = shared(backend, manager, "ConcurrencyProbe")
    b = ftdag.DagBuilder()
    for i in range(4):
        b.add_task(("free", i), [], functools.partial(tracked, probe, ("free", i)))
    prev = []
    for i in range(3):
        b.add_task(("chain", i), prev, functools.partial(tracked, probe, ("chain", i)))
        prev = [("chain", i)]
    dag = b.build()
    with ftdag.Executor(backend=backend, max_workers=1) as ex:
        ex.run(dag, dag.keys())
    started = [k for _, kind, k in probe.events() if kind == "start"]
    if backend == "sequential":  # a plain sequential run goes in topological (insertion) order
        assert started == dag.keys()
    else:  # one worker: exactly the ready order, the chain first
        assert started == expected_order(dag, dag.keys())
        assert started[:2] == [("chain", 0), ("chain", 1)]  # then a tie (path 1): insertion order


@pytest.mark.parametrize("backend", PARALLEL)
def test_with_one_worker_and_no_options_tasks_start_exactly_in_critical_path_order(backend, manager):
    with ftdag.Executor(backend=backend, max_workers=1) as ex:
        for seed in range(5):
            rng = random.Random(100 + seed)
            probe = shared(backend, manager, "ConcurrencyProbe")
            b = ftdag.DagBuilder()
            for i in range(25):
                deps = [j for j in range(i) if rng.random() < 0.1]
                b.add_task(i, deps, functools.partial(tracked, probe, i))
            dag = b.build()
            ex.run(dag, list(range(25)))
            started = [k for _, kind, k in probe.events() if kind == "start"]
            assert started == expected_order(dag, list(range(25))), seed


# -- order-only edges and barriers ----------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_order_only_edges_order_the_runs_and_pass_no_value(backend, manager):
    probe = shared(backend, manager, "ConcurrencyProbe")
    b = ftdag.DagBuilder()
    b.add_source("s", 1)
    b.add_task("setup", [], functools.partial(tracked, probe, "setup"))
    b.add_task("use", ["s"], functools.partial(args_of), after=["setup"])
    b.add_task("teardown", [], functools.partial(tracked, probe, "teardown"), after=["use"])
    dag = b.build()
    with ftdag.Executor(backend=backend, max_workers=2) as ex:
        res = ex.run(dag, ["use", "teardown"])
    assert res["use"] == (1,)  # only its data dependency
    assert [k for _, kind, k in probe.events() if kind == "start"] == ["setup", "teardown"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_barrier_runs_everything_before_it_first(backend, manager):
    probe = shared(backend, manager, "ConcurrencyProbe")
    b = ftdag.DagBuilder()
    for i in range(4):
        b.add_task(("load", i), [], functools.partial(tracked, probe, ("load", i)))
    b.add_barrier()
    for i in range(4):
        b.add_task(("use", i), [], functools.partial(tracked, probe, ("use", i)))
    dag = b.build()
    with ftdag.Executor(backend=backend, max_workers=3) as ex:
        ex.run(dag, [("use", 0)])  # requesting one node after the barrier runs every node before it
    events = probe.events()
    last_load_end = max(seq for seq, kind, k in events if kind == "end" and k[0] == "load")
    first_use_start = min(seq for seq, kind, k in events if kind == "start" and k[0] == "use")
    assert last_load_end < first_use_start
    assert {k for _, kind, k in events if kind == "start"} == {("load", i) for i in range(4)} | {("use", 0)}


def fails(*args):
    raise ValueError("no")


@pytest.mark.parametrize("backend", BACKENDS)
def test_keep_going_skips_the_order_followers_of_a_failed_task(backend):
    b = ftdag.DagBuilder()
    b.add_task("bad", [], fails)
    b.add_task("after_bad", [], args_of, after=["bad"])
    b.add_task("fine", [], args_of)
    with ftdag.Executor(backend=backend, max_workers=2) as ex:
        res = ex.run(b.build(), ["after_bad", "fine"], on_error="keep_going")
    assert set(res.failed) == {"bad"} and res.skipped == {"after_bad"} and res["fine"] == ()


@pytest.mark.parametrize("backend", BACKENDS)
def test_dagga_example_runs_in_a_valid_order(backend, manager):
    """dagga's README example, run: every order and access constraint holds."""
    probe = shared(backend, manager, "ConcurrencyProbe")
    b = ftdag.DagBuilder()
    t = lambda k: functools.partial(tracked, probe, k)
    b.add_task("create-a", [], t("create-a"), creates={"a"})
    b.add_task("create-b", [], t("create-b"), creates={"b"})
    b.add_task("create-c", [], t("create-c"), reads={"a", "b"}, creates={"c"})
    b.add_task("modify-a", [], t("modify-a"), writes={"a"}, reads={"b"}, before=["create-c"])
    b.add_task("reduce-abc-to-d", [], t("reduce-abc-to-d"), consumes={"a", "b", "c"}, creates={"d"})
    dag = b.build()
    with ftdag.Executor(backend=backend, max_workers=3) as ex:
        ex.run(dag, dag.keys())
    pos = {(kind, k): seq for seq, kind, k in probe.events()}
    before = lambda x, y: pos[("end", x)] < pos[("start", y)]
    assert before("create-a", "modify-a") and before("create-b", "modify-a")
    assert before("modify-a", "create-c") and before("create-c", "reduce-abc-to-d")
    assert dag.batches() == [["create-a", "create-b"], ["modify-a"], ["create-c"], ["reduce-abc-to-d"]]
