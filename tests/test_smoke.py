import ftdag


def test_readme_example():
    b = ftdag.DagBuilder()
    b.add_source("a", 1)
    b.add_source("b", 2)
    b.add_task("c", ["a", "b"], lambda a, b: a + b)
    dag = b.build()
    with ftdag.Executor(ftdag.ExecutorConfig(backend="sequential")) as ex:
        res = ex.run(dag, ["c"])
        assert res["c"] == 3 and dict(res) == {"c": 3}
        assert dict(ex.run_sequential(dag, ["c"])) == {"c": 3}
