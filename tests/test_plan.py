"""Plans (ftdag._plan): the counts a run starts from, the ready order and the solo links,
computed the fast way for a request of the whole graph and the general way otherwise."""

import random

import pytest
from helpers import random_graph

import ftdag
from ftdag import _plan
from ftdag._plan import NO_TASK, NOT_PLANNED

pytestmark = pytest.mark.timeout(60)


def add(*xs):
    return sum(xs)


def build(graph, order_edges=False):
    b = ftdag.DagBuilder()
    for k, deps in graph.items():
        if deps is None:
            b.add_source(k, 1)
        else:
            after = [k - 1] if order_edges and k > 1 and graph.get(k - 1) is not None and k % 5 == 0 else None
            b.add_task(k, list(deps), add, after=after)
    return b.build()


def general(dag, output_ids):
    """The template of the general path: the closure walk (by asking for one more output than
    needed would change the request, so call the closure path directly)."""
    template = _plan._Template.__new__(_plan._Template)
    real = _plan._every_sink
    _plan._every_sink = lambda dag, outputs: False
    try:
        template.__init__(dag, output_ids)
    finally:
        _plan._every_sink = real
    return template


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("order_edges", [False, True])
def test_the_whole_graph_fast_path_agrees_with_the_closure_walk(seed, order_edges):
    rng = random.Random(seed)
    dag = build(random_graph(rng, 120, max_deps=4, sources=0.15, window=10), order_edges)
    sinks = [k for k in dag if not dag.dependents(k) and not any(
        k in dag.order_dependencies(u) for u in dag)]
    output_ids = dag._output_ids(sinks + dag.keys()[:3])  # every sink, and a few other outputs
    assert _plan._every_sink(dag, frozenset(output_ids))
    fast, slow = _plan._Template(dag, output_ids), general(dag, output_ids)
    assert list(fast.tasks) == list(slow.tasks)
    assert fast.initial == slow.initial and fast.executed == slow.executed == len(dag)
    assert list(fast.remaining) == list(slow.remaining)
    assert list(fast.consumers) == list(slow.consumers)
    assert fast.heap == slow.heap
    assert [list(x) for x in fast.ranks()] == [list(x) for x in slow.ranks()]
    assert list(fast.links()) == list(slow.links())


def test_a_partial_request_plans_only_the_ancestors():
    dag = build({0: None, 1: (0,), 2: (1,), 3: (0,), 4: (3, 3)})
    template = _plan._Template(dag, dag._output_ids([4]))
    assert not _plan._every_sink(dag, frozenset(dag._output_ids([4])))
    assert list(template.tasks) == [3, 4]
    assert list(template.remaining) == [0, NOT_PLANNED, NOT_PLANNED, 0, 2]  # 3 is listed twice by 4
    assert list(template.consumers) == [1, 0, 0, 2, 1]  # the output holds one count
    assert list(template.links()) == [NO_TASK] * 5  # 3 has two edges to 4: no solo link


def test_ready_order_is_critical_path_then_insertion():
    # a -> b -> c is the longest path (3, then 2 for b); c, d and e each end a path of 1, so
    # they keep insertion order among themselves
    b = ftdag.DagBuilder()
    b.add_task("d", [], add)
    b.add_task("a", [], add)
    b.add_task("b", ["a"], add)
    b.add_task("c", ["b"], add)
    b.add_task("e", [], add)
    dag = b.build()
    order, rank = _plan._Template(dag, dag._output_ids(["c", "d", "e"])).ranks()
    assert [dag.keys()[t] for t in order] == ["a", "b", "d", "c", "e"]
    assert [rank[t] for t in order] == list(range(5))


def test_ranks_and_links_are_computed_once_and_only_when_asked():
    dag = build({0: None, 1: (0,), 2: (1,)})
    template = _plan._Template(dag, dag._output_ids([2]))
    assert template._order is None and template._solo is None  # a sequential run never asks
    assert template.ranks() is not None and template.ranks()[0] is template._order
    assert template.links() is template.links()
