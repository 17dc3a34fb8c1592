"""Scheduling constraints on the graph side: the add_task options, their compilation into order
edges at build(), barriers, the errors, Dag.batches() and the DOT / Mermaid pictures."""

import math
import random
import re
import shutil
import subprocess

import pytest
from helpers import random_graph

import ftdag


def noop(*args):
    return None


def dagga():
    """dagga's README example: every task has no data dependencies."""
    b = ftdag.DagBuilder()
    b.add_task("create-a", [], noop, creates="a")
    b.add_task("create-b", [], noop, creates="b")
    b.add_task("create-c", [], noop, reads=["a", "b"], creates="c")
    b.add_task("modify-a", [], noop, writes="a", reads="b", before=["create-c"])
    b.add_task("reduce-abc-to-d", [], noop, consumes=["a", "b", "c"], creates="d")
    return b.build()


def order_edges(dag):
    """``{(u, v)}``: every order-only edge, by key."""
    return {(u, v) for v in dag for u in dag.order_dependencies(v)}


def preds(dag, key):
    """Data and order predecessors of ``key``."""
    return set(dag.dependencies(key)) | set(dag.order_dependencies(key))


def assert_topological(dag):
    position = {k: i for i, k in enumerate(dag.keys())}
    for k in dag:
        for d in preds(dag, k):
            assert position[d] < position[k], (d, k)


def assert_tables_consistent(dag):
    """_after, _followers and _next agree with each other and with the data edges."""
    n = len(dag)
    if dag._after is None:
        assert dag._followers is None
        assert dag._next is dag._dependents
        return
    assert len(dag._after) == len(dag._followers) == len(dag._next) == n
    for i in range(n):
        row = dag._after[i]
        assert list(row) == sorted(set(row))
        assert not set(row) & set(dag._deps[i])  # data deps are not repeated as order edges
        assert all(p < i for p in row)  # ids are topological over order edges too
        assert all(dag._fns[p] is not None for p in row) and (not row or dag._fns[i] is not None)
        assert dag._followers[i] == tuple(j for j in range(n) if i in dag._after[j])
        assert dag._next[i] == dag._dependents[i] + dag._followers[i]


# -- options ------------------------------------------------------------------------------------


BAD_OPTIONS = [
    ("priority", "1", TypeError), ("priority", 1.5, TypeError), ("priority", True, TypeError),
    ("cost", 0, ValueError), ("cost", -1.0, ValueError), ("cost", math.nan, ValueError),
    ("cost", math.inf, ValueError), ("cost", "1", TypeError), ("cost", True, TypeError),
    ("resources", ["db"], TypeError), ("resources", "db", TypeError), ("resources", {1: 1}, TypeError),
    ("resources", {"": 1}, ValueError), ("resources", {"db": 0}, ValueError), ("resources", {"db": -2}, ValueError),
    ("resources", {"db": 1.5}, TypeError), ("resources", {"db": True}, TypeError),
    ("reads", 1, TypeError), ("reads", b"x", TypeError), ("reads", [1], TypeError), ("reads", [""], ValueError),
    ("writes", ["a", None], TypeError), ("creates", {"a": 1, 2: 3}, TypeError), ("consumes", [b"a"], TypeError),
    ("after", [["x"]], TypeError), ("before", [{"x": 1}], TypeError), ("after", ("x", ["y"]), TypeError),
]


class TestOptions:
    @pytest.mark.parametrize("arg, value, error", BAD_OPTIONS, ids=lambda v: repr(v) if not isinstance(v, type) else "")
    def test_invalid_values_name_the_task_and_the_argument(self, arg, value, error):
        b = ftdag.DagBuilder()
        with pytest.raises(error) as cm:
            b.add_task(("task", 1), [], noop, **{arg: value})
        assert type(cm.value) is error
        message = str(cm.value)
        assert "('task', 1)" in message and arg in message
        b.add_source("other", 0)
        assert ("task", 1) not in b.build()  # not added

    def test_defaults_make_no_options(self):
        b = ftdag.DagBuilder()
        b.add_task("t", [], noop, priority=0, cost=1.0, resources={}, reads=[], writes=(), creates=None,
                   consumes=set(), after=None, before=[])
        dag = b.build()
        assert dag._options is None
        assert dag.options("t") == ftdag.TaskOptions()

    def test_stored_forms(self):
        b = ftdag.DagBuilder()
        b.add_task("x", [], noop)
        b.add_task(("y", 1), [], noop)
        b.add_task("t", [], noop, priority=-3, cost=2, resources={"gpu": 1, "db": 2}, reads="a",
                   writes=["b", "b"], creates=iter(["c"]), consumes={"d", "e"}, after=("y", 1),
                   before=["x", "x"])
        o = b.build().options("t")
        assert o.priority == -3
        assert o.cost == 2.0 and isinstance(o.cost, float)
        assert o.resources == (("db", 2), ("gpu", 1))  # sorted by name
        assert o.reads == frozenset({"a"}) and o.writes == frozenset({"b"})
        assert o.creates == frozenset({"c"}) and o.consumes == frozenset({"d", "e"})
        assert o.after == (("y", 1),)  # a tuple is one key
        assert o.before == ("x",)  # deduplicated
        # The six original fields come first, in order.
        assert ftdag.TaskOptions(1, (OSError,), 0.5, 2.0, False, "v", 5).priority == 5
        hash(o)  # frozen and hashable

    def test_key_arguments_follow_the_outputs_rule(self):
        b = ftdag.DagBuilder()
        for k in ["s", b"b", ("t", 1), 7, "u", "v"]:
            b.add_task(k, [], noop)
        b.add_task("one-str", [], noop, after="s")
        b.add_task("one-bytes", [], noop, after=b"b")
        b.add_task("one-tuple", [], noop, after=("t", 1))
        b.add_task("one-int", [], noop, after=7)
        b.add_task("a-set", [], noop, after={"u", "v"})
        b.add_task("a-generator", [], noop, before=(k for k in ["u", "v"]))
        dag = b.build()
        assert dag.options("one-str").after == ("s",)
        assert dag.options("one-bytes").after == (b"b",)
        assert dag.options("one-tuple").after == (("t", 1),)
        assert dag.options("one-int").after == (7,)
        assert set(dag.options("a-set").after) == {"u", "v"}
        assert dag.options("a-generator").before == ("u", "v")

    def test_a_name_both_read_and_written_is_written(self):
        b = ftdag.DagBuilder()
        b.add_task("t", [], noop, reads=["a", "b"], writes="a")
        o = b.build().options("t")
        assert o.reads == frozenset({"b"}) and o.writes == frozenset({"a"})

    def test_ordered_and_guarded(self):
        T = ftdag.TaskOptions
        assert not T().ordered and not T().guarded and not T().scheduled
        assert T(priority=1).ordered and T(cost=0.5).ordered
        assert not T(retries=2).ordered and T(retries=2).scheduled
        assert T(resources=(("db", 1),)).guarded
        assert T(reads=frozenset("a")).guarded and T(writes=frozenset("a")).guarded
        assert not T(creates=frozenset("a"), consumes=frozenset("b"), after=("x",)).guarded


# -- the compiled tables ------------------------------------------------------------------------


class TestTables:
    def test_plain_graph_pays_nothing(self):
        b = ftdag.DagBuilder()
        b.add_source("s", 1)
        b.add_task("t", ["s", "s"], noop, retries=1, priority=2)
        dag = b.build()
        assert dag._next is dag._dependents
        assert dag._after is None and dag._followers is None
        assert dag._access is None and dag._resources is None
        assert dag.order_dependencies("t") == ()

    def test_after_and_before(self):
        b = ftdag.DagBuilder()
        b.add_source("s", 1)
        b.add_task("x", ["s"], noop)
        b.add_task("y", ["x", "x"], noop)
        b.add_task("z", [], noop, after="x", before=["w"])
        b.add_task("w", [], noop)
        dag = b.build()
        ids = {k: i for i, k in enumerate(dag.keys())}
        assert order_edges(dag) == {("x", "z"), ("z", "w")}
        assert dag.order_dependencies("z") == ("x",) and dag.order_dependencies("w") == ("z",)
        assert dag.dependencies("z") == () and dag.dependents("x") == ("y",)  # data only
        x, y, z = ids["x"], ids["y"], ids["z"]
        assert dag._after[z] == (x,) and dag._followers[x] == (z,)
        assert dag._next[x] == (y, y, z)  # data dependents with multiplicity, then followers
        assert_tables_consistent(dag)
        assert_topological(dag)

    def test_order_edge_duplicating_a_data_edge_is_dropped(self):
        b = ftdag.DagBuilder()
        b.add_task("x", [], noop)
        b.add_task("y", ["x"], noop, after=["x"])
        b.add_task("z", [], noop, before="y", after=["x"])
        dag = b.build()
        assert order_edges(dag) == {("x", "z"), ("z", "y")}
        b = ftdag.DagBuilder()
        b.add_task("x", [], noop)
        b.add_task("y", ["x"], noop, after=["x"])
        dag = b.build()
        assert dag._after is None and dag._next is dag._dependents

    def test_access_sets(self):
        b = ftdag.DagBuilder()
        b.add_task("reader", [], noop, reads="x")
        b.add_task("writer", [], noop, writes="x", resources={"db": 2})
        b.add_task("consumer", [], noop, consumes="x")
        b.add_task("creator", [], noop, creates="x")
        b.add_task("other", [], noop, reads="y")
        dag = b.build()
        assert order_edges(dag) == {
            ("creator", "reader"), ("creator", "writer"), ("creator", "consumer"),
            ("reader", "consumer"), ("writer", "consumer"),
        }  # no order between the reader and the writer
        assert dag.keys() == ["creator", "other", "reader", "writer", "consumer"]
        ids = {k: i for i, k in enumerate(dag.keys())}
        access = {k: dag._access[i] for k, i in ids.items()}
        assert access == {
            "reader": (frozenset("x"), frozenset()), "writer": (frozenset(), frozenset("x")),
            "consumer": None, "creator": None, "other": (frozenset("y"), frozenset()),
        }
        assert dag._resources[ids["writer"]] == (("db", 2),)
        assert [r for k, r in zip(dag.keys(), dag._resources) if k != "writer"] == [None] * 4
        assert_tables_consistent(dag)

    def test_a_task_is_not_ordered_against_itself(self):
        b = ftdag.DagBuilder()
        b.add_task("both", [], noop, creates="x", reads="x")
        b.add_task("eat", [], noop, consumes="y", writes="y")
        dag = b.build()
        assert dag._after is None

    def test_ids_are_topological_over_both_kinds_of_edge(self):
        b = ftdag.DagBuilder()
        b.add_task("last", [], noop, after=["middle"])
        b.add_task("middle", [], noop, after="first")
        b.add_task("first", [], noop)
        dag = b.build()
        assert dag.keys() == ["first", "middle", "last"]

    @pytest.mark.parametrize("seed", range(15))
    def test_random_graphs(self, seed):
        """Data edges and order edges drawn from one hidden order; nodes added shuffled."""
        rng = random.Random(seed)
        n = rng.randint(2, 50)
        graph = random_graph(rng, n)
        after = {k: set() for k in graph}  # every order edge, by its target
        after_arg = {k: [] for k in graph}  # each edge given as `after` of its target...
        before_arg = {k: [] for k in graph}  # ... or as `before` of its source
        for _ in range(rng.randint(0, 2 * n)):
            u, v = sorted(rng.sample(range(n), 2))
            if graph[u] is not None and graph[v] is not None:
                after[v].add(u)
                (after_arg[v].append(u) if rng.random() < 0.5 else before_arg[u].append(v))
        b = ftdag.DagBuilder()
        for k in rng.sample(range(n), n):
            if graph[k] is None:
                b.add_source(k, k)
            else:
                b.add_task(k, list(graph[k]), noop, after=after_arg[k], before=before_arg[k])
        dag = b.build()
        assert_topological(dag)
        assert_tables_consistent(dag)
        for v in graph:
            assert preds(dag, v) == set(graph[v] or ()) | after[v]
        # ancestors follow both kinds of edge
        for k in rng.sample(range(n), 3):
            expected, todo = set(), [k]
            while todo:
                x = todo.pop()
                if x not in expected:
                    expected.add(x)
                    todo.extend(set(graph[x] or ()) | after[x])
            assert dag.ancestors(k) == expected


# -- build errors -------------------------------------------------------------------------------


class TestBuildErrors:
    def test_unknown_after_and_before_keys(self):
        b = ftdag.DagBuilder()
        b.add_task("t", ["d1"], noop, after=["a1", "d1"], before=("b", 1))
        with pytest.raises(ftdag.MissingDependencyError) as cm:
            b.build()
        assert cm.value.task == "t"
        assert cm.value.missing == ["d1", "a1", ("b", 1)]
        assert "'a1'" in str(cm.value) and "('b', 1)" in str(cm.value)

    @pytest.mark.parametrize("argument", ["after", "before"])
    def test_after_or_before_a_source(self, argument):
        b = ftdag.DagBuilder()
        b.add_source("s", 1)
        b.add_task("t", [], noop, **{argument: "s"})
        with pytest.raises(ftdag.OrderError) as cm:
            b.build()
        err = cm.value
        assert isinstance(err, ftdag.BuildError)
        assert (err.task, err.source, err.argument) == ("t", "s", argument)
        assert "'t'" in str(err) and "'s'" in str(err) and f"{argument}=" in str(err)

    def check_cycle(self, dag_builder, length=None):
        with pytest.raises(ftdag.CycleError) as cm:
            dag_builder.build()
        cycle = cm.value.cycle
        assert cycle[0] == cycle[-1] and len(set(cycle)) == len(cycle) - 1
        if length is not None:
            assert len(cycle) == length + 1
        return cycle

    def test_self_after(self):
        b = ftdag.DagBuilder()
        b.add_task("me", [], noop, after="me")
        assert self.check_cycle(b) == ["me", "me"]

    def test_cycle_through_order_edges(self):
        # x -(data)-> y -(after)-> z -(before)-> x
        b = ftdag.DagBuilder()
        b.add_task("x", [], noop)
        b.add_task("y", ["x"], noop)
        b.add_task("z", [], noop, after="y", before="x")
        b.add_task("outside", ["z"], noop)
        cycle = self.check_cycle(b, 3)
        edges = {("x", "y"), ("y", "z"), ("z", "x")}
        assert set(zip(cycle, cycle[1:])) == edges  # each key runs before the next

    def test_cycle_through_a_creator_is_a_cycle_error(self):
        b = ftdag.DagBuilder()
        b.add_task("reader", [], noop, reads="x")
        b.add_task("creator", ["reader"], noop, creates="x")
        cycle = self.check_cycle(b, 2)
        assert set(cycle) == {"reader", "creator"}

    def test_cycle_across_a_barrier(self):
        b = ftdag.DagBuilder()
        b.add_task("early", ["late"], noop)  # a dependency added after a barrier cannot run before it
        b.add_barrier()
        b.add_task("late", [], noop)
        assert set(self.check_cycle(b, 2)) == {"early", "late"}

    @pytest.mark.parametrize("kind", ["create", "consume"])
    def test_two_creators_or_consumers(self, kind):
        b = ftdag.DagBuilder()
        b.add_task("one", [], noop, **{kind + "s": ["n", "m"]})
        b.add_task("unrelated", [], noop, reads="n")
        b.add_task(("two", 2), [], noop, **{kind + "s": "n"})
        with pytest.raises(ftdag.AccessError) as cm:
            b.build()
        err = cm.value
        assert isinstance(err, ftdag.BuildError) and isinstance(err, ValueError)
        assert (err.name, err.tasks, err.kind) == ("n", ("one", ("two", 2)), kind)
        assert str(err).startswith(f"tasks 'one' and ('two', 2) both {kind} 'n'")

    def test_three_creators(self):
        b = ftdag.DagBuilder()
        for k in "abc":
            b.add_task(k, [], noop, creates="n")
        with pytest.raises(ftdag.AccessError, match="tasks 'a', 'b' and 'c' all create 'n'") as cm:
            b.build()
        assert cm.value.tasks == ("a", "b", "c")

    @pytest.mark.parametrize("how", ["data", "after", "before", "chain", "barrier"])
    @pytest.mark.parametrize("kind", ["read", "write"])
    def test_user_after_the_consumer(self, how, kind):
        b = ftdag.DagBuilder()
        b.add_task("consumer", [], noop, consumes="n")
        if how == "barrier":
            b.add_barrier()
        deps = ["consumer"] if how == "data" else ["mid"] if how == "chain" else []
        b.add_task("mid", ["consumer"], noop)
        b.add_task("user", deps, noop, after="consumer" if how == "after" else None, **{kind + "s": "n"})
        if how == "before":
            b.add_task("x", [], noop, after="consumer", before="user")
        with pytest.raises(ftdag.AccessError) as cm:
            b.build()
        err = cm.value
        assert (err.name, err.tasks, err.kind) == ("n", ("user", "consumer"), kind)
        message = str(err)
        assert f"task 'user' {kind}s 'n'" in message and "'consumer'" in message and "consumes" in message

    def test_unrelated_cycle_next_to_an_access_edge_is_a_cycle_error(self):
        b = ftdag.DagBuilder()
        b.add_task("reader", [], noop, reads="n")
        b.add_task("consumer", [], noop, consumes="n")
        b.add_task("p", ["q", "consumer"], noop)
        b.add_task("q", ["p"], noop)
        assert set(self.check_cycle(b, 2)) == {"p", "q"}


# -- plans follow order edges -------------------------------------------------------------------


class TestClosure:
    def test_order_predecessors_are_planned(self):
        b = ftdag.DagBuilder()
        b.add_source("s", 1)
        b.add_task("setup", ["s"], noop)
        b.add_task("prepare", [], noop, after="setup")
        b.add_task("work", ["prepare"], noop)
        b.add_task("cleanup", [], noop, after="work")
        b.add_task("unrelated", ["s"], noop)
        dag = b.build()
        assert dag.ancestors("work") == {"s", "setup", "prepare", "work"}
        assert dag.ancestors("cleanup") == {"s", "setup", "prepare", "work", "cleanup"}
        assert dag.ancestors(["setup"]) == {"s", "setup"}  # nothing is pulled *forward*

    def test_consumer_pulls_every_user_and_creator(self):
        dag = dagga()
        assert dag.ancestors("reduce-abc-to-d") == set(dag.keys())
        assert dag.ancestors("create-c") == {"create-a", "create-b", "modify-a", "create-c"}
        assert dag.ancestors("create-b") == {"create-b"}

    def test_given_nodes_are_not_followed(self):
        b = ftdag.DagBuilder()
        b.add_task("first", [], noop)
        b.add_task("second", [], noop, after="first")
        b.add_task("third", ["second"], noop)
        dag = b.build()
        assert dag._closure([2], frozenset([1])) == [1, 2]


# -- barriers -----------------------------------------------------------------------------------


def barrier_graph(layout, sources=()):
    """``layout``: a list of groups, each ``{key: data deps}``, separated by barriers."""
    b = ftdag.DagBuilder()
    for s in sources:
        b.add_source(s, 0)
    for n, group in enumerate(layout):
        if n:
            b.add_barrier()
        for k, deps in group.items():
            b.add_task(k, list(deps), noop)
    return b.build()


class TestBarriers:
    def test_edges_go_from_sinks_to_sources(self):
        # before: a1 -> a2, a3;  after: b1 -> b2, b3
        dag = barrier_graph([{"a1": [], "a2": ["a1"], "a3": []}, {"b1": [], "b2": ["b1"], "b3": []}])
        assert order_edges(dag) == {(u, v) for u in ("a2", "a3") for v in ("b1", "b3")}  # 2 x 2
        for v in ("b1", "b2", "b3"):
            assert {"a1", "a2", "a3"} <= dag.ancestors(v)
        assert_tables_consistent(dag)
        assert dag.batches() == [["a1", "a3"], ["a2"], ["b1", "b3"], ["b2"]]

    def test_only_consecutive_groups_are_linked(self):
        dag = barrier_graph([{"a": []}, {"b1": [], "b2": []}, {"c": []}, {"d": []}])
        assert order_edges(dag) == {("a", "b1"), ("a", "b2"), ("b1", "c"), ("b2", "c"), ("c", "d")}
        assert dag.ancestors("d") == {"a", "b1", "b2", "c", "d"}
        assert dag.keys() == ["a", "b1", "b2", "c", "d"]

    def test_order_edges_inside_a_group_count(self):
        b = ftdag.DagBuilder()
        b.add_task("a1", [], noop)
        b.add_task("a2", [], noop, after="a1")  # a1 is not a sink
        b.add_barrier()
        b.add_task("b1", [], noop, creates="x")
        b.add_task("b2", [], noop, reads="x")  # b2 is not a source
        dag = b.build()
        assert order_edges(dag) == {("a1", "a2"), ("a2", "b1"), ("b1", "b2")}

    def test_empty_groups_and_sources(self):
        b = ftdag.DagBuilder()
        b.add_barrier()  # nothing before
        b.add_source("s", 1)
        b.add_task("a", ["s"], noop)
        b.add_barrier()
        b.add_barrier()  # nothing between
        b.add_source("s2", 2)  # only a source between
        b.add_barrier()
        b.add_task("b", [], noop)
        b.add_task("c", ["s2"], noop)
        b.add_barrier()  # nothing after
        dag = b.build()
        assert order_edges(dag) == {("a", "b"), ("a", "c")}  # sources are never ordered
        assert dag.ancestors("c") == {"s", "a", "s2", "c"}

    @pytest.mark.parametrize("at", range(3))
    def test_a_barrier_with_one_task_orders_nothing(self, at):
        b = ftdag.DagBuilder()
        if at == 0:
            b.add_barrier()
        b.add_source("s", 0)
        if at == 1:
            b.add_barrier()
        b.add_task("t", ["s"], noop)
        if at == 2:
            b.add_barrier()
        dag = b.build()
        assert dag._after is None and dag._next is dag._dependents

    def test_wide_layers_cost_sinks_times_sources(self):
        dag = barrier_graph([{f"a{i}": [] for i in range(5)}, {f"b{i}": [] for i in range(4)}])
        assert len(order_edges(dag)) == 20
        assert dag.batches() == [[f"a{i}" for i in range(5)], [f"b{i}" for i in range(4)]]

    @pytest.mark.parametrize("seed", range(10))
    def test_random(self, seed):
        """Every task added before a barrier is an ancestor of every task added after it."""
        rng = random.Random(seed)
        b = ftdag.DagBuilder()
        added, group_of, graph, group = [], {}, {}, 0
        for k in range(rng.randint(1, 40)):
            if rng.random() < 0.15:
                b.add_barrier()
                group += 1
            if k and rng.random() < 0.1:
                b.add_source(k, 0)
                graph[k] = None
                continue
            same_group = [d for d in added if group_of[d] == group or graph[d] is None]
            deps = rng.sample(same_group, min(len(same_group), rng.randint(0, 2)))
            b.add_task(k, deps, noop)
            graph[k] = deps
            group_of[k] = group
            added.append(k)
        dag = b.build()
        assert_topological(dag)
        assert_tables_consistent(dag)
        tasks = [k for k in graph if graph[k] is not None]
        for v in tasks:
            ancestors = dag.ancestors(v)
            assert {u for u in tasks if group_of[u] < group_of[v]} <= ancestors
            assert not {u for u in tasks if group_of[u] > group_of[v]} & ancestors
        # Edges only between consecutive non-empty groups, from a sink to a source.
        groups = sorted({group_of[k] for k in tasks})
        for u, v in order_edges(dag):
            assert groups.index(group_of[v]) == groups.index(group_of[u]) + 1
            assert not any(u in graph[w] for w in tasks if group_of[w] == group_of[u])
            assert not [d for d in graph[v] if graph[d] is not None]


# -- batches ------------------------------------------------------------------------------------


def check_batches(dag, layers, planned):
    """Every planned task exactly once; every edge forward; no conflicting pair in a layer."""
    where = {k: n for n, layer in enumerate(layers) for k in layer}
    assert sum(map(len, layers)) == len(where)
    assert set(where) == {k for k in planned if not dag.is_source(k)}
    for k, n in where.items():
        for p in preds(dag, k):
            if not dag.is_source(p):
                assert where[p] < n, (p, k)
    position = {k: i for i, k in enumerate(dag.keys())}
    for layer in layers:
        assert [position[k] for k in layer] == sorted(position[k] for k in layer)
        for i, u in enumerate(layer):
            ou = dag.options(u)
            for v in layer[i + 1:]:
                ov = dag.options(v)
                assert not ou.writes & (ov.reads | ov.writes), (u, v)
                assert not ov.writes & (ou.reads | ou.writes), (u, v)


class TestBatches:
    def test_dagga_readme_example(self):
        dag = dagga()
        assert dag.batches() == [["create-a", "create-b"], ["modify-a"], ["create-c"], ["reduce-abc-to-d"]]
        assert dag.batches(["create-c"]) == [["create-a", "create-b"], ["modify-a"], ["create-c"]]
        assert dag.batches("create-a") == [["create-a"]]

    def test_readers_share_a_layer_writers_do_not(self):
        b = ftdag.DagBuilder()
        b.add_source("s", 0)
        b.add_task("r1", ["s"], noop, reads="x")
        b.add_task("w1", [], noop, writes="x")
        b.add_task("r2", [], noop, reads=["x", "y"])
        b.add_task("w2", [], noop, writes=["y"])
        b.add_task("free", [], noop)
        dag = b.build()
        # Ids follow insertion order (it is topological): r1, w1, r2, w2, free.  Sources are left out.
        # r1 and r2 read x: one layer; w1 writes x, w2 writes y (which r2 reads): the next one.
        assert dag.batches() == [["r1", "r2", "free"], ["w1", "w2"]]
        assert dag.batches(["w2", "free"]) == [["w2", "free"]]

    def test_unknown_output(self):
        with pytest.raises(ftdag.UnknownKeyError):
            dagga().batches(["nope"])

    @pytest.mark.parametrize("seed", range(20))
    def test_random_graphs_with_accesses(self, seed):
        rng = random.Random(seed)
        n = rng.randint(1, 60)
        graph = random_graph(rng, n)
        names = "abcde"
        b = ftdag.DagBuilder()
        for k in rng.sample(range(n), n):
            if graph[k] is None:
                b.add_source(k, 0)
                continue
            earlier = [d for d in range(k) if graph[d] is not None]
            b.add_task(
                k, list(graph[k]), noop,
                reads=rng.sample(names, rng.randint(0, 2)), writes=rng.sample(names, rng.randint(0, 1)),
                after=rng.sample(earlier, min(len(earlier), rng.randint(0, 2))),
            )
        dag = b.build()
        check_batches(dag, dag.batches(), dag.keys())
        outputs = rng.sample(range(n), min(n, 3))
        check_batches(dag, dag.batches(outputs), dag.ancestors(outputs))


# -- pictures -----------------------------------------------------------------------------------


AWKWARD = 'say "hi"\\'
STRANGE = "<later> #1; `x` & y"


def pictured():
    """A source, data and order edges, access sets, resources, priority, awkward keys."""
    b = ftdag.DagBuilder()
    b.add_source("src", 1)
    b.add_task(AWKWARD, ["src"], noop, reads=["a"], writes="b", resources={"db": 2, "gpu": 1})
    b.add_task(("t", 1), [AWKWARD], noop, priority=3, cost=2.5)
    b.add_task(STRANGE, [], noop, after=[("t", 1)], creates="c")
    b.add_task("pruned", ["src"], noop, consumes="c")
    return b.build()


def dot_nodes(dot):
    """``{node id: (label lines, other attributes)}`` from :func:`ftdag.Dag.to_dot` output,
    unescaping the label as Graphviz does."""
    found = {}
    for m in re.finditer(r'^  (n\d+) \[label="((?:[^"\\]|\\.)*)"(.*)\];$', dot, re.M):
        text, chars = m.group(2), []
        i = 0
        while i < len(text):
            c = text[i]
            if c == "\\":
                i += 1
                c = {"n": "\n"}.get(text[i], text[i])
            chars.append(c)
            i += 1
        found[m.group(1)] = ("".join(chars).split("\n"), m.group(3))
    return found


def mermaid_nodes(text):
    """``{node id: label lines}`` from :func:`ftdag.Dag.to_mermaid` output, entities decoded."""
    found = {}
    for m in re.finditer(r'^  (n\d+)[\[(]+"([^"]*)"[\])]+$', text, re.M):
        label = m.group(2)
        bare = re.sub(r"#\d+;", "", label.replace("<br/>", ""))
        assert not set(bare) & set('"#&<>`;'), label  # each of these is written as an entity
        lines = [re.sub(r"#(\d+);", lambda e: chr(int(e.group(1))), part) for part in label.split("<br/>")]
        found[m.group(1)] = lines
    return found


class TestPictures:
    def test_dot(self):
        dag = pictured()
        dot = dag.to_dot()
        assert dot.startswith("digraph ftdag {\n") and dot.endswith("}\n")
        nodes = dot_nodes(dot)
        assert nodes == {
            "n0": (["'src'"], ", shape=ellipse"),  # sources drawn differently
            "n1": ([repr(AWKWARD), "reads a", "writes b", "db×2, gpu×1"], ""),
            "n2": (["('t', 1)", "priority 3, cost 2.5"], ""),
            "n3": ([repr(STRANGE), "creates c"], ""),
            "n4": (["'pruned'", "consumes c"], ""),
        }
        lines = dot.splitlines()
        assert "  n0 -> n1;" in lines and "  n1 -> n2;" in lines and "  n0 -> n4;" in lines  # data: solid
        assert "  n2 -> n3 [style=dashed];" in lines  # order (after): dashed
        assert "  n3 -> n4 [style=dashed];" in lines  # creates -> consumes
        assert len([line for line in lines if "->" in line]) == 5
        assert "gray" not in dot

    def test_dot_with_outputs_greys_the_pruned(self):
        dot = pictured().to_dot([("t", 1)])
        nodes = dot_nodes(dot)
        assert nodes["n3"][1] == nodes["n4"][1] == ", color=gray, fontcolor=gray, style=dashed"
        assert nodes["n2"][1] == ", penwidth=2"  # the output
        assert nodes["n0"][1] == ", shape=ellipse" and nodes["n1"][1] == ""
        lines = dot.splitlines()
        assert "  n2 -> n3 [style=dashed, color=gray];" in lines
        assert "  n0 -> n4 [color=gray];" in lines
        assert "  n0 -> n1;" in lines and "  n1 -> n2;" in lines

    def test_mermaid(self):
        dag = pictured()
        text = dag.to_mermaid()
        lines = text.splitlines()
        assert lines[0] == "flowchart TB"
        assert mermaid_nodes(text) == {
            "n0": ["'src'"],
            "n1": [repr(AWKWARD), "reads a", "writes b", "db×2, gpu×1"],
            "n2": ["('t', 1)", "priority 3, cost 2.5"],
            "n3": [repr(STRANGE), "creates c"],
            "n4": ["'pruned'", "consumes c"],
        }
        assert lines[1].startswith("  n0([") and lines[2].startswith('  n1["')  # a source is a stadium
        assert '"' not in STRANGE and "#60;later#62; #35;1#59; #96;x#96; #38; y" in text
        assert "#34;hi#34;" in text
        assert "  n0 --> n1" in lines and "  n2 -.-> n3" in lines and "  n3 -.-> n4" in lines
        assert "pruned" not in text.replace("'pruned'", "")

    def test_mermaid_with_outputs_greys_the_pruned(self):
        lines = pictured().to_mermaid([("t", 1)]).splitlines()
        assert "  class n3,n4 pruned" in lines
        assert any(line.startswith("  classDef pruned ") for line in lines)
        assert "  class n2 output" in lines
        edges = [line for line in lines if "->" in line]
        grey = [i for i, line in enumerate(edges) if line.endswith(("n3", "n4"))]
        assert grey and f"  linkStyle {','.join(map(str, grey))} stroke:#aaa" in lines

    def test_nothing_requested_prunes_everything(self):
        lines = pictured().to_mermaid([]).splitlines()
        assert "  class n0,n1,n2,n3,n4 pruned" in lines and "  linkStyle 0,1,2,3,4 stroke:#aaa" in lines
        assert not any("output" in line for line in lines)
        nodes = dot_nodes(pictured().to_dot([]))
        assert all("color=gray" in attrs and "penwidth" not in attrs for _, attrs in nodes.values())

    @pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
    @pytest.mark.parametrize("requested", [False, True])
    def test_graphviz_accepts_the_dot(self, requested):
        for dag, outputs in ((pictured(), [("t", 1)]), (dagga(), ["create-c"])):
            proc = subprocess.run(
                ["dot", "-Tsvg"], input=dag.to_dot(outputs if requested else None), capture_output=True,
                text=True, timeout=60,
            )
            assert proc.returncode == 0 and not proc.stderr, proc.stderr
            assert "<svg" in proc.stdout
