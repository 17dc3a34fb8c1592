"""The graph model: DagBuilder, Dag, and every build-time error (messages included)."""

import random

import pytest
from helpers import ancestors, build_dag, random_graph

import ftdag


def add(*xs):
    return sum(xs)


def diamond():
    """a, b -> c -> d, plus e <- a (keys added in a non-topological order)."""
    b = ftdag.DagBuilder()
    b.add_task("d", ["c"], add)  # depends on a key that is added later
    b.add_task("c", ["a", "b"], add)
    b.add_source("a", 1)
    b.add_task("e", ["a"], add)
    b.add_source("b", 2)
    return b.build()


def assert_topological(dag):
    keys = dag.keys()
    position = {k: i for i, k in enumerate(keys)}
    assert len(position) == len(keys) == len(dag)
    for k in keys:
        for d in dag.dependencies(k):
            assert position[d] < position[k], (d, k)


# -- numbering and the flat tables -----------------------------------------------------------------


class TestNumbering:
    def test_ids_follow_insertion_order_when_it_is_topological(self):
        b = ftdag.DagBuilder()
        b.add_source("s", 1)
        b.add_task("x", ["s"], add)
        b.add_source("t", 2)  # a source after a task: Kahn's algorithm would move it first
        b.add_task("y", ["t", "x"], add)
        assert b.build().keys() == ["s", "x", "t", "y"]

    def test_a_graph_added_out_of_order_is_renumbered_topologically(self):
        dag = diamond()
        assert_topological(dag)
        # Kahn's algorithm over insertion order: the nodes with no dependency first, in the order
        # they were added, then each node once its dependencies are numbered.
        assert dag.keys() == ["a", "b", "e", "c", "d"]
        assert dag.dependencies("c") == ("a", "b") and dag.dependencies("d") == ("c",)

    @pytest.mark.parametrize("seed", range(5))
    def test_tables_agree_with_the_rows(self, seed):
        """The flat tables hold each node's dependencies as listed (repeats included) and, as
        their inverse, its dependents with multiplicity, ascending."""
        rng = random.Random(seed)
        graph = random_graph(rng, 60, max_deps=4, sources=0.2)
        keys = list(graph)
        rng.shuffle(keys)  # added in a random order: build() must renumber
        b = ftdag.DagBuilder()
        for k in keys:
            if graph[k] is None:
                b.add_source(k, 1)
            else:
                b.add_task(k, list(graph[k]), add)
        dag = b.build()
        assert_topological(dag)
        ids = {k: i for i, k in enumerate(dag.keys())}
        n = len(dag)
        assert len(dag._dep_start) == len(dag._out_start) == n + 1
        inverse: list[list[int]] = [[] for _ in range(n)]
        for k in dag:
            row = dag._deps[ids[k]]
            assert row == tuple(ids[d] for d in (graph[k] or ()))
            for d in row:
                inverse[d].append(ids[k])
        assert [list(dag._dependents[i]) for i in range(n)] == inverse
        assert list(dag._dependents) == [tuple(r) for r in inverse]  # the view iterates the same rows
        assert dag._next is dag._dependents  # no order edges: the same table
        with pytest.raises(IndexError):
            dag._deps[n]
        assert dag._deps[-1] == dag._deps[n - 1]


# -- building and inspecting --------------------------------------------------------------------


class TestDag:
    def test_readme_example(self):
        b = ftdag.DagBuilder()
        b.add_source("a", 1)
        b.add_source("b", 2)
        b.add_task("c", ["a", "b"], lambda a, b: a + b)
        dag = b.build()
        assert isinstance(dag, ftdag.Dag)
        assert len(dag) == 3
        assert set(dag.keys()) == {"a", "b", "c"}
        assert dag.dependencies("c") == ("a", "b")

    def test_len_contains_keys(self):
        dag = diamond()
        assert len(dag) == 5
        assert set(dag.keys()) == {"a", "b", "c", "d", "e"}
        assert list(dag) == list(dag.keys())
        for k in "abcde":
            assert k in dag
        assert "z" not in dag
        assert ["a"] not in dag  # unhashable: simply not a key
        assert_topological(dag)

    def test_dependencies_keep_listed_order_and_repeats(self):
        b = ftdag.DagBuilder()
        b.add_source("x", 1)
        b.add_source("y", 2)
        b.add_task("t", ["y", "x", "y"], add)
        dag = b.build()
        assert dag.dependencies("t") == ("y", "x", "y")
        assert dag.dependencies("x") == ()
        assert dag.dependents("y") == ("t",)  # each dependent once
        assert dag.dependents("t") == ()

    def test_dependents(self):
        dag = diamond()
        assert set(dag.dependents("a")) == {"c", "e"}
        assert dag.dependents("b") == ("c",)
        assert dag.dependents("c") == ("d",)
        assert dag.dependents("d") == ()

    def test_is_source(self):
        dag = diamond()
        assert {k for k in dag if dag.is_source(k)} == {"a", "b"}

    def test_unknown_key_lookups_raise_keyerror_naming_the_key(self):
        dag = diamond()
        for method in (dag.dependencies, dag.dependents, dag.is_source, dag.ancestors):
            with pytest.raises(ftdag.UnknownKeyError, match="'nope'") as cm:
                method("nope")
            assert isinstance(cm.value, KeyError)
            assert cm.value.keys == ["nope"]

    def test_ancestors(self):
        dag = diamond()
        assert dag.ancestors(["d"]) == {"a", "b", "c", "d"}
        assert dag.ancestors(["e"]) == {"a", "e"}
        assert dag.ancestors(["a"]) == {"a"}
        assert dag.ancestors(["d", "e"]) == {"a", "b", "c", "d", "e"}
        assert dag.ancestors(["e", "e"]) == {"a", "e"}
        assert dag.ancestors([]) == set()
        assert dag.ancestors(iter(["e"])) == {"a", "e"}

    def test_ancestors_bare_string_is_one_key(self):
        b = ftdag.DagBuilder()
        b.add_source("a", 1)
        b.add_source("b", 2)
        b.add_task("ab", ["a"], add)
        b.add_source(b"xy", 3)
        dag = b.build()
        assert dag.ancestors("ab") == {"ab", "a"}
        assert dag.ancestors("b") == {"b"}
        assert dag.ancestors(b"xy") == {b"xy"}

    def test_ancestors_unknown_output(self):
        dag = diamond()
        with pytest.raises(ftdag.UnknownOutputError) as cm:
            dag.ancestors(["d", "zz", "yy"])
        assert cm.value.keys == ["zz", "yy"]
        assert "'zz'" in str(cm.value) and "'yy'" in str(cm.value)

    def test_any_hashable_key(self):
        keys = [0, 1.5, None, ("t", 1), frozenset({1, 2}), b"bytes", "str"]
        b = ftdag.DagBuilder()
        b.add_source(keys[0], "v")
        for prev, k in zip(keys, keys[1:]):
            b.add_task(k, [prev], lambda v: v)
        dag = b.build()
        assert list(dag.keys()) == keys
        # A tuple is one key, alone or inside a list.
        assert dag.ancestors([("t", 1)]) == set(keys[:4])
        assert dag.ancestors(("t", 1)) == set(keys[:4])
        assert dag.ancestors(None) == {0, 1.5, None}  # a non-iterable is one key

    def test_task_without_dependencies(self):
        b = ftdag.DagBuilder()
        b.add_task("t", [], lambda: 42)
        b.add_task("u", (), lambda: 43)
        dag = b.build()
        assert dag.dependencies("t") == ()
        assert not dag.is_source("t")
        assert dag.ancestors(["t"]) == {"t"}

    def test_builder_snapshots_on_build(self):
        b = ftdag.DagBuilder()
        b.add_source("a", 1)
        first = b.build()
        b.add_task("b", ["a"], add)
        second = b.build()
        assert set(first.keys()) == {"a"}
        assert set(second.keys()) == {"a", "b"}
        assert first.dependents("a") == ()
        assert second.dependents("a") == ("b",)

    def test_dag_has_no_public_mutators(self):
        dag = diamond()
        with pytest.raises(AttributeError):
            dag.extra = 1
        keys = dag.keys()
        assert isinstance(keys, list)  # several keys when passed as outputs; a tuple is one
        keys.append("extra")
        assert "extra" not in dag

    @pytest.mark.parametrize("seed", range(20))
    def test_random_graphs(self, seed):
        rng = random.Random(seed)
        graph = random_graph(rng, rng.randint(1, 60))
        dag = build_dag(graph, shuffle=rng)
        assert set(dag.keys()) == set(graph)
        assert_topological(dag)
        for k, deps in graph.items():
            assert dag.is_source(k) == (deps is None)
            assert dag.dependencies(k) == (deps or ())
            assert set(dag.dependents(k)) == {u for u, ds in graph.items() if k in (ds or ())}
            assert len(dag.dependents(k)) == len(set(dag.dependents(k)))
        for _ in range(5):
            outputs = rng.sample(sorted(graph), rng.randint(0, min(5, len(graph))))
            assert dag.ancestors(outputs) == ancestors(graph, outputs)

    def test_200k_chain(self):
        n = 200_000
        b = ftdag.DagBuilder()
        # Added last-first, so every dependency is a forward reference.
        for i in range(n - 1, 0, -1):
            b.add_task(i, [i - 1], add)
        b.add_source(0, 0)
        dag = b.build()
        assert len(dag) == n
        assert dag.keys() == list(range(n))
        assert len(dag.ancestors([n - 1])) == n
        assert dag.ancestors([10]) == set(range(11))


# -- build errors -------------------------------------------------------------------------------


class TestDuplicateKey:
    @pytest.mark.parametrize("first", ["source", "task"])
    @pytest.mark.parametrize("second", ["source", "task"])
    def test_duplicate(self, first, second):
        b = ftdag.DagBuilder()
        adders = {
            "source": lambda key: b.add_source(key, 1),
            "task": lambda key: b.add_task(key, [], lambda: 2),
        }
        adders[first]("dup")
        with pytest.raises(ftdag.DuplicateKeyError) as cm:
            adders[second]("dup")
        err = cm.value
        assert isinstance(err, ftdag.BuildError)
        assert isinstance(err, ValueError)
        assert err.key == "dup"
        assert "'dup'" in str(err)
        assert "duplicate" in str(err)
        # The first node is kept.
        dag = b.build()
        assert len(dag) == 1
        assert dag.is_source("dup") == (first == "source")

    def test_duplicate_equal_keys(self):
        b = ftdag.DagBuilder()
        b.add_source(1, "int")
        with pytest.raises(ftdag.DuplicateKeyError) as cm:
            b.add_source(1.0, "float")  # 1 == 1.0: the same key
        assert cm.value.key == 1.0


class TestMissingDependency:
    def test_one_missing(self):
        b = ftdag.DagBuilder()
        b.add_source("a", 1)
        b.add_task("t", ["a", "ghost"], add)
        with pytest.raises(ftdag.MissingDependencyError) as cm:
            b.build()
        err = cm.value
        assert isinstance(err, ftdag.BuildError)
        assert isinstance(err, ValueError)
        assert err.task == "t"
        assert err.missing == ["ghost"]
        assert "'t'" in str(err)
        assert "'ghost'" in str(err)

    def test_several_missing_each_named_once(self):
        b = ftdag.DagBuilder()
        b.add_task(("t", 1), ["m1", "m2", "m1"], add)
        with pytest.raises(ftdag.MissingDependencyError) as cm:
            b.build()
        err = cm.value
        assert err.task == ("t", 1)
        assert err.missing == ["m1", "m2"]
        message = str(err)
        assert "('t', 1)" in message
        assert "'m1'" in message and "'m2'" in message

    def test_missing_is_reported_at_build_not_add(self):
        b = ftdag.DagBuilder()
        b.add_task("t", ["later"], add)  # fine for now
        b.add_source("later", 1)
        assert b.build().dependencies("t") == ("later",)


class TestCycle:
    def check_cycle(self, err, graph):
        """``err.cycle`` is a real cycle of ``graph``: each key a dependency of the next."""
        cycle = err.cycle
        assert len(cycle) >= 2
        assert cycle[0] == cycle[-1]
        assert len(set(cycle[:-1])) == len(cycle) - 1
        for dep, user in zip(cycle, cycle[1:]):
            assert dep in graph[user], (dep, user)
        message = str(err)
        for k in cycle[:10]:  # (all of them would be quadratic on the long cycle)
            assert repr(k) in message
        assert isinstance(err, ftdag.BuildError)
        assert isinstance(err, ValueError)

    def build(self, graph, sources=()):
        b = ftdag.DagBuilder()
        for s in sources:
            b.add_source(s, 0)
        for k, deps in graph.items():
            b.add_task(k, deps, add)
        with pytest.raises(ftdag.CycleError) as cm:
            b.build()
        return cm.value

    def test_self_dependency(self):
        err = self.build({"me": ["me"]})
        assert err.cycle == ["me", "me"]
        assert "'me'" in str(err)

    def test_two_cycle(self):
        graph = {"a": ["b"], "b": ["a"]}
        err = self.build(graph)
        self.check_cycle(err, graph)
        assert set(err.cycle) == {"a", "b"}

    def test_cycle_behind_other_nodes(self):
        # src -> x -> (p -> q -> r -> p) -> y; only p, q, r are on the cycle.
        graph = {"x": ["src"], "p": ["x", "r"], "q": ["p"], "r": ["q"], "y": ["r", "x"]}
        err = self.build(graph, sources=["src"])
        self.check_cycle(err, graph)
        assert set(err.cycle) == {"p", "q", "r"}
        assert len(err.cycle) == 4

    def test_cycle_like_graphlib(self):
        # Same convention as graphlib: each node precedes (is a dependency of) the next.
        import graphlib

        graph = {1: [3], 2: [1], 3: [2]}
        err = self.build(graph)
        with pytest.raises(graphlib.CycleError) as gl:
            graphlib.TopologicalSorter(graph).prepare()
        expected = gl.value.args[1]
        self.check_cycle(err, graph)
        # The same cycle, possibly starting elsewhere.
        rotations = [expected[i:-1] + expected[:i] + [expected[i]] for i in range(len(expected) - 1)]
        assert err.cycle in rotations

    def test_long_cycle(self):
        n = 100_000
        graph = {i: [(i + 1) % n] for i in range(n)}
        err = self.build(graph)
        assert len(err.cycle) == n + 1
        self.check_cycle(err, graph)

    def test_cycle_is_rejected_at_build(self):
        b = ftdag.DagBuilder()
        b.add_task("a", ["b"], add)
        b.add_task("b", ["a"], add)  # no error yet
        with pytest.raises(ftdag.CycleError):
            b.build()

    @pytest.mark.parametrize("seed", range(10))
    def test_random_graph_with_a_back_edge(self, seed):
        rng = random.Random(seed)
        graph = {k: list(deps or ()) for k, deps in random_graph(rng, 40).items()}  # every node a task
        # Close a cycle: a node that (transitively) depends on 0 becomes 0's dependency.
        users = [k for k in graph if 0 in ancestors(graph, [k]) and k != 0]
        if not users:
            users = [39]
            graph[39].append(0)
        graph[0] = [rng.choice(users)]
        b = ftdag.DagBuilder()
        for k in rng.sample(sorted(graph), len(graph)):
            b.add_task(k, graph[k], add)
        with pytest.raises(ftdag.CycleError) as cm:
            b.build()
        self.check_cycle(cm.value, graph)


class TestEmptyGraph:
    def test_empty(self):
        with pytest.raises(ftdag.EmptyGraphError) as cm:
            ftdag.DagBuilder().build()
        assert isinstance(cm.value, ftdag.BuildError)
        assert isinstance(cm.value, ValueError)
        assert "empty" in str(cm.value)


# -- bad arguments to add_* ---------------------------------------------------------------------


class TestBadInput:
    def assert_not_added(self, b, key="k"):
        b.add_source("other", 0)
        dag = b.build()
        assert key not in dag
        assert len(dag) == 1

    @pytest.mark.parametrize("fn", [None, 42, "add", [add]])
    def test_task_fn_not_callable(self, fn):
        b = ftdag.DagBuilder()
        with pytest.raises(TypeError) as cm:
            b.add_task("k", [], fn)
        message = str(cm.value)
        assert "'k'" in message
        assert "callable" in message
        assert type(fn).__name__ in message
        self.assert_not_added(b)

    @pytest.mark.parametrize("key", [["list"], {"d": 1}, {"set"}, bytearray(b"x")])
    def test_unhashable_task_key(self, key):
        b = ftdag.DagBuilder()
        with pytest.raises(TypeError) as cm:
            b.add_task(key, [], add)
        assert "hashable" in str(cm.value)
        assert repr(key) in str(cm.value)
        self.assert_not_added(b)

    @pytest.mark.parametrize("key", [["list"], {"d": 1}, {"set"}])
    def test_unhashable_source_key(self, key):
        b = ftdag.DagBuilder()
        with pytest.raises(TypeError) as cm:
            b.add_source(key, 1)
        assert "hashable" in str(cm.value)
        assert repr(key) in str(cm.value)

    @pytest.mark.parametrize(
        "deps",
        ["ab", b"ab", {"a"}, frozenset({"a"}), iter(["a"]), None, 1, range(1)],
        ids=["str", "bytes", "set", "frozenset", "iterator", "None", "int", "range"],
    )  # (a mapping is keyword dependencies: tests/test_pipeline.py)
    def test_deps_not_a_list_or_tuple(self, deps):
        b = ftdag.DagBuilder()
        b.add_source("a", 1)
        with pytest.raises(TypeError) as cm:
            b.add_task("k", deps, add)
        message = str(cm.value)
        assert "'k'" in message
        assert "list or tuple" in message
        assert type(deps).__name__ in message
        dag = b.build()
        assert "k" not in dag

    def test_unhashable_dependency(self):
        b = ftdag.DagBuilder()
        with pytest.raises(TypeError) as cm:
            b.add_task("k", ["fine", ["bad"]], add)
        message = str(cm.value)
        assert "'k'" in message
        assert "['bad']" in message
        assert "hashable" in message
        self.assert_not_added(b)

    def test_error_types_are_not_build_errors(self):
        # Bad arguments are TypeErrors, not graph errors.
        b = ftdag.DagBuilder()
        with pytest.raises(TypeError) as cm:
            b.add_task("k", [], None)
        assert not isinstance(cm.value, ftdag.BuildError)
