"""Keyword dependencies (``add_task(key, {"x": "a"}, fn)``) and function pipelines (``ftdag.Pipeline``).

Everything a task runs is defined at module level: worker processes import this module by
name (see ``helpers``).
"""

from __future__ import annotations

import functools
import pickle
import threading

import pytest
from helpers import kept_by_fixture

import ftdag
from ftdag._fingerprint import function_fingerprint
from ftdag._keywords import KeywordCall

BACKENDS = ["sequential", "threads", "processes"]


@pytest.fixture(scope="module")
def process_executor():
    with ftdag.Executor(backend="processes", max_workers=2) as ex, kept_by_fixture(ex):
        yield ex


@pytest.fixture
def executor(request, process_executor):
    """An executor of each backend (``request.param``); the process pool is shared by the module."""
    if request.param == "processes":
        yield process_executor
    else:
        with ftdag.Executor(backend=request.param, max_workers=2) as ex:
            yield ex


def sub(x, y):
    return x - y


def describe(*, label, value):  # keyword-only parameters
    return f"{label}={value}"


def attempt_and_args(x, y):
    return ftdag.current_task().attempt, x, y


CALLS: list[str] = []  # appended to by the tasks whose calls a test counts (sequential runs only)


def counted_sub(x, y):
    CALLS.append("counted_sub")
    return x - y


# -- keyword dependencies ---------------------------------------------------------------------------


def keyword_dag():
    b = ftdag.DagBuilder()
    b.add_source("a", 10)
    b.add_source("b", 3)
    b.add_task("c", {"y": "a", "x": "b"}, sub)  # the mapping's order, not the parameters'
    b.add_task("same", {"x": "a", "y": "a"}, sub)  # one key under two parameter names
    b.add_task("kw", {"value": "c", "label": "b"}, describe)
    b.add_task("pos", ["c", "same"], sub)  # positional tasks depend on keyword ones as usual
    b.add_task("opts", {"y": "b", "x": "a"}, attempt_and_args, timeout=60, retries=1)  # the attempt path
    return b.build()


class TestKeywordDependencies:
    def test_dependencies_are_the_mapping_values_in_order(self):
        dag = keyword_dag()
        assert dag.dependencies("c") == ("a", "b")
        assert dag.dependencies("same") == ("a", "a")
        assert dag.dependencies("kw") == ("c", "b")
        assert set(dag.dependents("a")) == {"c", "same", "opts"}

    @pytest.mark.parametrize("executor", BACKENDS, indirect=True)
    def test_every_backend(self, executor):
        res = executor.run(keyword_dag(), ["c", "same", "kw", "pos", "opts"])
        assert dict(res) == {"c": 3 - 10, "same": 0, "kw": "3=-7", "pos": -7, "opts": (1, 10, 3)}

    def test_an_empty_mapping_calls_the_function_with_no_arguments(self):
        b = ftdag.DagBuilder()
        fn = lambda: 42
        b.add_task("t", {}, fn)
        dag = b.build()
        assert dag._fns[0] is fn  # no adapter: the same task as deps=[]
        with ftdag.Executor(backend="sequential") as ex:
            assert ex.run(dag, "t")["t"] == 42

    def test_tasks_sharing_a_function_and_names_share_one_adapter(self):
        b = ftdag.DagBuilder()
        b.add_source("a", 1)
        for i in range(3):
            b.add_task(i, {"x": "a", "y": "a"}, sub)
        b.add_task("other", {"y": "a", "x": "a"}, sub)
        dag = b.build()
        adapters = {id(dag._fns[dag._id(k)]) for k in range(3)}
        assert len(adapters) == 1  # pickled once for worker processes, fingerprinted once per run
        assert id(dag._fns[dag._id("other")]) not in adapters

    @pytest.mark.parametrize(
        "deps, error, words",
        [
            ({1: "a"}, TypeError, ["task 't'", "parameter name must be a str", "int: 1"]),
            ({"not-valid": "a"}, ValueError, ["task 't'", "'not-valid'", "not a valid identifier"]),
            ({"": "a"}, ValueError, ["task 't'", "''", "not a valid identifier"]),
            ({"x": ["a"]}, TypeError, ["task 't'", "parameter 'x'", "must be hashable", "['a']"]),
            (["a", {"x": "b"}], TypeError, ["task 't'", "mixes positional and keyword"]),
            ({"a", "b"}, TypeError, ["task 't'", "list or tuple of keys, or a mapping", "set"]),
        ],
    )
    def test_validation_errors_name_the_task_and_the_parameter(self, deps, error, words):
        b = ftdag.DagBuilder()
        with pytest.raises(error) as info:
            b.add_task("t", deps, sub)
        for word in words:
            assert word in str(info.value)
        assert "t" not in b._nodes  # nothing was added

    def test_missing_keyword_dependency_is_reported_at_build(self):
        b = ftdag.DagBuilder()
        b.add_source("a", 1)
        b.add_task("t", {"x": "a", "y": "nope"}, sub)
        with pytest.raises(ftdag.MissingDependencyError) as info:
            b.build()
        assert info.value.task == "t" and info.value.missing == ["nope"]

    def test_the_adapter_pickles_and_reads_well(self):
        adapter = KeywordCall(sub, ("y", "x"))
        copy = pickle.loads(pickle.dumps(adapter))
        assert type(copy) is KeywordCall and copy.fn is sub and copy.names == ("y", "x")
        assert copy(1, 5) == adapter(1, 5) == 4
        assert "sub" in repr(adapter) and "('y', 'x')" in repr(adapter)
        assert adapter.__qualname__ == "sub" and adapter.__name__ == "sub"
        partial = KeywordCall(functools.partial(sub, 1), ("y",))
        assert partial.__qualname__ == "partial" and partial(3) == -2

    def test_the_adapters_fingerprint_follows_its_function_and_names(self):
        fp = function_fingerprint
        assert fp(KeywordCall(sub, ("x", "y"))) == fp(KeywordCall(sub, ("x", "y")))  # a new adapter, same task
        variants = {
            fp(KeywordCall(sub, ("x", "y"))),
            fp(KeywordCall(sub, ("y", "x"))),  # names swapped: another computation
            fp(KeywordCall(counted_sub, ("x", "y"))),  # another function
            fp(KeywordCall(functools.partial(sub, 1), ("y",))),
            fp(sub),
        }
        assert len(variants) == 5

    def test_a_store_loads_a_keyword_task_on_the_second_run(self):
        def build():  # a new builder, so new adapters: the fingerprints must still match
            b = ftdag.DagBuilder()
            b.add_source("a", 10)
            b.add_source("b", 3)
            b.add_task("c", {"y": "a", "x": "b"}, counted_sub)
            return b.build()

        store = ftdag.MemoryStore()
        CALLS.clear()
        with ftdag.Executor(backend="sequential") as ex:
            first = ex.run(build(), "c", store=store)
            second = ex.run(build(), "c", store=store)
        assert first["c"] == second["c"] == -7
        assert first.stats.stored == 1 and second.stats.loaded == 1
        assert CALLS == ["counted_sub"]  # ran once

    def test_an_unpicklable_keyword_function_is_named_by_its_own_name(self, process_executor):
        lock = threading.Lock()

        def holds_a_lock(x):
            with lock:
                return x

        b = ftdag.DagBuilder()
        b.add_source("a", 1)
        b.add_task("t", {"x": "a"}, holds_a_lock)
        with pytest.raises(ftdag.SerializationError) as info:
            process_executor.run(b.build(), "t")
        assert "holds_a_lock" in str(info.value) and "task 't'" in str(info.value)


# -- pipelines --------------------------------------------------------------------------------------

TEXT = "the quick brown fox jumps over the lazy dog and the end"

PIPE = ftdag.Pipeline()


@PIPE.task
def words(text):
    return text.split()


@PIPE.task(retries=1, priority=5)
def long_words(words, min_len=4):
    return [w for w in words if len(w) >= min_len]


@PIPE.task
def counts(words, *, top=2):  # keyword-only: wired by keyword anyway
    tally: dict[str, int] = {}
    for w in words:
        tally[w] = tally.get(w, 0) + 1
    return sorted(tally.items(), key=lambda kv: (-kv[1], kv[0]))[:top]


@PIPE.task(name="report")
def make_report(long_words, counts):
    return {"long": len(long_words), "top": counts}


def expected_report(text=TEXT, min_len=4, top=2):
    ws = words(text)
    return make_report(long_words(ws, min_len), counts(ws, top=top))


# Plain functions added to fresh pipelines by the tests below.


def first(xs):
    return xs[0]


def scaled(first, factor=10):
    return first * factor


def shifted(scaled, offset=0):
    return scaled + offset


def star_args(*xs):
    return xs


def star_kwargs(a, **more):
    return a


def positional_only(a, /, b):
    return a + b


def own_name(own_name=1):
    return own_name


class TestPipeline:
    def test_wiring_by_parameter_name(self):
        dag = PIPE.build(text=TEXT)
        assert set(dag.keys()) == {"text", "words", "long_words", "counts", "report"}
        assert dag.is_source("text")
        assert dag.dependencies("words") == ("text",)
        assert dag.dependencies("long_words") == ("words",)  # min_len: no such node, so its default
        assert dag.dependencies("report") == ("long_words", "counts")
        with ftdag.Executor(backend="sequential") as ex:
            res = ex.run(dag, "report")
        assert res["report"] == expected_report() == {"long": 5, "top": [("the", 3), ("and", 1)]}

    def test_the_decorated_function_is_returned_unchanged(self):
        assert words("a b") == ["a", "b"]
        assert long_words.__name__ == "long_words" and not isinstance(long_words, KeywordCall)
        assert make_report.__name__ == "make_report"  # name= renames the task, not the function
        pipe = ftdag.Pipeline()
        assert pipe.task(first) is first
        assert pipe.task(name="s", retries=3)(scaled) is scaled
        assert scaled(2, factor=3) == 6

    def test_a_default_is_used_unless_a_node_of_that_name_exists(self):
        pipe = ftdag.Pipeline()
        pipe.task(first)
        pipe.task(scaled)
        pipe.task(shifted)
        with ftdag.Executor(backend="sequential") as ex:
            dag = pipe.build(xs=[2])
            assert dag.dependencies("scaled") == ("first",)
            assert ex.run(dag, "shifted")["shifted"] == 20
            dag = pipe.build(xs=[2], factor=3, offset=1)  # sources override defaults
            assert dag.dependencies("scaled") == ("first", "factor")
            assert dag.dependencies("shifted") == ("scaled", "offset")
            assert ex.run(dag, "shifted")["shifted"] == 7

        def factor(xs):  # a task overrides a default too
            return len(xs)

        pipe.task(factor)
        dag = pipe.build(xs=[2, 5, 6])
        assert dag.dependencies("scaled") == ("first", "factor")
        with ftdag.Executor(backend="sequential") as ex:
            assert ex.run(dag, "shifted")["shifted"] == 6

    def test_build_twice_with_different_sources(self):
        dag1 = PIPE.build(text="a bb ccc dddd eeeee")
        dag2 = PIPE.build(text=TEXT, min_len=5, top=1)
        with ftdag.Executor(backend="sequential") as ex:
            assert ex.run(dag1, "report")["report"] == expected_report("a bb ccc dddd eeeee")
            assert ex.run(dag2, "report")["report"] == expected_report(TEXT, 5, 1) == {"long": 3, "top": [("the", 3)]}
            assert ex.run(dag1, "report")["report"] == expected_report("a bb ccc dddd eeeee")  # dag1 unchanged
        # Builds share the adapters of tasks wired the same way: worker processes receive them once.
        assert dag1._fns[dag1._id("report")] is dag2._fns[dag2._id("report")]

    def test_a_build_is_a_snapshot(self):
        pipe = ftdag.Pipeline()
        pipe.task(first)
        dag = pipe.build(xs=[4])
        pipe.task(scaled)
        assert "scaled" not in dag and "scaled" in pipe.build(xs=[4])

    def test_options_are_passed_through(self):
        dag = PIPE.build(text=TEXT)
        assert dag.options("long_words").retries == 1 and dag.options("long_words").priority == 5
        assert dag.options("words") == ftdag.TaskOptions()
        pipe = ftdag.Pipeline()
        pipe.task(first, resources={"db": 1}, reads="cache", before="shifted")
        pipe.task(scaled, timeout=5)
        pipe.task(shifted)
        dag = pipe.build(xs=[1])
        o = dag.options("first")
        assert o.resources == (("db", 1),) and o.reads == frozenset({"cache"}) and o.before == ("shifted",)
        assert dag.options("scaled").timeout == 5.0
        with ftdag.Executor(backend="threads", max_workers=2, resources={"db": 1}) as ex:
            assert ex.run(dag, "shifted")["shifted"] == 10

    def test_invalid_options_fail_at_decoration(self):
        pipe = ftdag.Pipeline()
        with pytest.raises(TypeError, match=r"unknown option\(s\) 'retry'.*test_pipeline\.first.*retries"):
            pipe.task(retry=2)(first)
        with pytest.raises(ValueError, match=r"retries of task 'first' must be an int >= 0"):
            pipe.task(first, retries=-1)
        assert "first" not in pipe  # neither was added

    def test_missing_dependency_names_the_function_and_the_parameter(self):
        pipe = ftdag.Pipeline()
        pipe.task(scaled)
        with pytest.raises(ftdag.MissingDependencyError) as info:
            pipe.build(frist=1)
        err = info.value
        assert err.task == "scaled" and err.missing == ["first"]
        message = str(err)
        assert "function test_pipeline.scaled" in message and "parameter 'first'" in message
        assert "'first' -> 'frist'" in message  # a close name is suggested
        copy = pickle.loads(pickle.dumps(err))
        assert str(copy) == message and copy.task == "scaled" and copy.missing == ["first"]

    def test_several_missing_parameters_are_named_together(self):
        pipe = ftdag.Pipeline()
        pipe.task(sub, name="s")
        with pytest.raises(ftdag.MissingDependencyError, match=r"parameters 'x', 'y' of function test_pipeline\.sub"):
            pipe.build()

    @pytest.mark.parametrize(
        "fn, param, kind",
        [(star_args, "xs", "*args"), (star_kwargs, "more", "**kwargs"), (positional_only, "a", "positional-only")],
    )
    def test_parameters_that_cannot_name_a_node_fail_at_decoration(self, fn, param, kind):
        pipe = ftdag.Pipeline()
        with pytest.raises(TypeError) as info:
            pipe.task(fn)
        message = str(info.value)
        assert f"parameter {param!r} of function test_pipeline.{fn.__name__}" in message and kind in message
        assert len(pipe) == 0

    def test_two_functions_with_one_name(self):
        pipe = ftdag.Pipeline()
        pipe.task(scaled)

        def scaled_too(first):
            return first

        with pytest.raises(ftdag.DuplicateKeyError) as info:
            pipe.task(name="scaled")(scaled_too)
        assert info.value.key == "scaled"
        message = str(info.value)
        assert "test_pipeline.scaled" in message and "scaled_too" in message and "name=" in message
        with pytest.raises(ftdag.DuplicateKeyError, match=r"function test_pipeline\.scaled was already added"):
            pipe.task(scaled)
        copy = pickle.loads(pickle.dumps(info.value))
        assert str(copy) == message and copy.key == "scaled"
        pipe.task(scaled, name="scaled_again")  # the same function under another name is fine
        assert pipe.names() == ["scaled", "scaled_again"]

    def test_a_source_named_like_a_task(self):
        with pytest.raises(ftdag.DuplicateKeyError, match=r"source named like .* test_pipeline\.words") as info:
            PIPE.build(text=TEXT, words=["x"])
        assert info.value.key == "words"

    def test_names_contains_len(self):
        assert PIPE.names() == ["words", "long_words", "counts", "report"]
        assert "report" in PIPE and "make_report" not in PIPE and ["x"] not in PIPE
        assert len(PIPE) == 4 and "4 tasks" in repr(PIPE)

    def test_callables_without_a_name_need_one(self):
        pipe = ftdag.Pipeline()
        with pytest.raises(TypeError, match=r"no usable __name__.*pass name="):
            pipe.task(lambda first: first)
        with pytest.raises(TypeError, match=r"no usable __name__"):
            pipe.task(functools.partial(scaled, factor=2))
        with pytest.raises(TypeError, match=r"name= of function .* must be a non-empty str"):
            pipe.task(first, name=("a", 1))
        with pytest.raises(TypeError, match=r"takes a callable"):
            pipe.task(3)
        pipe.task(first)
        pipe.task(lambda first: first + 1, name="plus_one")
        pipe.task(functools.partial(scaled, factor=2), name="doubled")  # factor: a default a node overrides
        with ftdag.Executor(backend="sequential") as ex:
            assert dict(ex.run(pipe.build(xs=[5]), ["plus_one", "doubled"])) == {"plus_one": 6, "doubled": 10}
            assert ex.run(pipe.build(xs=[5], factor=3), "doubled")["doubled"] == 15

    def test_a_parameter_named_like_its_own_task_is_a_cycle(self):
        pipe = ftdag.Pipeline()
        pipe.task(own_name)
        with pytest.raises(ftdag.CycleError):
            pipe.build()

    @pytest.mark.parametrize("executor", BACKENDS, indirect=True)
    def test_every_backend(self, executor):
        res = executor.run(PIPE.build(text=TEXT, top=3), ["report", "long_words"])
        assert res["report"] == expected_report(top=3)
        assert res["long_words"] == long_words(words(TEXT))

    def test_a_store_recognises_another_pipeline_of_the_same_functions(self):
        def pipeline():
            pipe = ftdag.Pipeline()
            pipe.task(counted_sub, name="c")
            return pipe

        store = ftdag.MemoryStore()
        CALLS.clear()
        with ftdag.Executor(backend="sequential") as ex:
            assert ex.run(pipeline().build(x=10, y=3), "c", store=store)["c"] == 7
            second = ex.run(pipeline().build(x=10, y=3), "c", store=store)
            assert second["c"] == 7 and second.stats.loaded == 1
            assert ex.run(pipeline().build(x=10, y=4), "c", store=store)["c"] == 6  # another input
        assert CALLS == ["counted_sub", "counted_sub"]


def test_renames_let_one_function_serve_several_tasks():
    pipe = ftdag.Pipeline()

    def count(words, min_len=1):
        return sum(1 for w in words if len(w) >= min_len)

    for part in ("a", "b"):
        pipe.task(count, name=f"count/{part}", renames={"words": f"words/{part}"})
    pipe.task(lambda x, y: x + y, name="total", renames={"x": "count/a", "y": "count/b"})
    dag = pipe.build(**{"words/a": ["one", "two", "x"], "words/b": ["three"], "min_len": 2})
    assert dag.dependencies("count/a") == ("words/a", "min_len")
    with ftdag.Executor(backend="threads") as ex:
        assert dict(ex.run(dag, ["count/a", "count/b", "total"])) == {"count/a": 2, "count/b": 1, "total": 3}
    with pytest.raises(TypeError, match="'nope', which is not one of its parameters"):
        pipe.task(count, name="bad", renames={"nope": "words/a"})
    with pytest.raises(TypeError, match="must map 'words' to a node name"):
        pipe.task(count, name="bad", renames={"words": 3})
    missing = ftdag.Pipeline()
    missing.task(count, renames={"words": "nowhere"})
    with pytest.raises(ftdag.MissingDependencyError, match="nowhere"):
        missing.build()
