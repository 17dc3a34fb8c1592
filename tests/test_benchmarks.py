"""The benchmark harness (benchmarks/): every runner agrees with the plain loop on every workload,
bench.py's JSON has its documented schema, and the tables print.  Tiny sizes, no timing assertions."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "benchmarks"
sys.path.insert(0, str(BENCH))

import bench  # noqa: E402
import compare  # noqa: E402
import runners  # noqa: E402
import workloads  # noqa: E402

SPIN = 2000.0  # loop rounds per "ms": fixed, so that no test calibrates or depends on timing
PARALLEL = [r for r in runners.RUNNERS if r != "plain"]


@pytest.fixture(autouse=True)
def _worker_paths(monkeypatch):
    """Worker processes started by spawn/forkserver import the task modules by name."""
    extra = [str(BENCH), str(REPO / "examples")]
    old = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(extra + old))


def _skip_unavailable(runner: str) -> None:
    if runner == "dask-threaded" and importlib.util.find_spec("dask") is None:
        pytest.skip("dask is not installed (the tox envs install it through the bench extra)")


@pytest.mark.parametrize(
    "name, size",
    [(name, "tiny") for name in workloads.WORKLOADS]
    + [(name, "quick") for name in workloads.WORKLOADS if name != "gil-release"],  # same graph, bigger buffers
)
def test_workload_descriptions_are_consistent(name, size):
    wl = workloads.make(name, size, SPIN)
    wl.check()
    assert wl.n_tasks == len(wl.order) > 0
    assert len(wl.dag()) == wl.n_nodes
    # The Dag and the plain description are the same graph.
    dag = wl.dag()
    for key in wl.order:
        assert dag.dependencies(key) == wl.tasks[key][1]
    assert all(dag.is_source(k) for k in wl.sources)


def test_sizes_match_the_issue_targets():
    full = workloads.SIZES["full"]
    assert full["chain"]["n"] == 10_000
    assert (full["heavy"]["n"], full["heavy"]["task_us"]) == (32, 10_000)
    assert (full["fine"]["n"], full["fine"]["task_us"]) == (4096, 50)
    assert full["gil-release"]["mb"] == 1


def test_task_functions_pickle_by_reference():
    import pickle

    for name in workloads.WORKLOADS:
        wl = workloads.make(name, "tiny", SPIN)
        for fn, _ in wl.tasks.values():
            assert pickle.loads(pickle.dumps(fn)) is not None


def test_rollup_workload_reuses_the_example_graph():
    import rollup

    wl = workloads.make("rollup", "tiny", SPIN)
    sources, tasks = rollup.rollup_nodes(16, 4, wl.params["hash_iters"], proof_chunk=0)
    assert wl.sources == sources
    assert wl.order == [k for k, _, _ in tasks]
    res = runners.run_plain(wl)
    proof = res[rollup.proof_key(0)]
    chunk0 = runners.run_plain(workloads.Workload(
        "x", "x", "x", wl.sources, wl.tasks, wl.order, [rollup.chunk_key(0)]))[rollup.chunk_key(0)]
    assert rollup.verify_proof(wl.params["hash_iters"], chunk0, proof, res["batch"])


@pytest.mark.parametrize("runner", PARALLEL)
@pytest.mark.parametrize("name", workloads.WORKLOADS)
def test_runner_matches_plain_loop(name, runner):
    _skip_unavailable(runner)
    wl = workloads.make(name, "tiny", SPIN)
    expected = runners.run_plain(wl)
    r = runners.make_runner(runner, 2)
    try:
        r.prepare(wl)
        for _ in range(2):  # a second run reuses the runner's pools
            got = r.run(wl)
            runners.check_same(runner, got, expected)
            assert list(got) == list(wl.outputs)
    finally:
        r.close()
    if runner.startswith("ftdag-"):
        assert r.last_stats["backend"] == runner[len("ftdag-"):]
        assert r.last_stats["executed"] == wl.n_nodes


def test_check_same_reports_a_mismatch():
    with pytest.raises(runners.ResultMismatch, match="1 keys"):
        runners.check_same("x", {"a": 1, "b": 2}, {"a": 1, "b": 3})


def test_missing_dask_is_reported_as_unavailable(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask", None)  # makes `import dask` raise ImportError
    with pytest.raises(runners.RunnerUnavailable, match="dask is not installed"):
        runners.make_runner("dask-threaded", 2)


MEASUREMENT_FIELDS = {
    "workload", "title", "description", "params", "n_tasks", "n_nodes", "runner", "ok", "error",
    "plain_s", "runner_s", "plain_best_s", "plain_median_s", "runner_best_s", "runner_median_s",
    "ratio_best", "ratio_median", "speedup_best", "overhead_us_per_task", "gil_enabled_before",
    "gil_enabled_after", "stats", "info", "loadavg", "background_cpus", "steal_cpus",
}


def _check_document(doc):
    assert doc["schema"] == "ftdag-bench/1"
    assert set(doc) >= {"schema", "date", "machine", "interpreter", "settings", "measurements"}
    assert isinstance(doc["machine"]["cpu_count"], int)
    it = doc["interpreter"]
    assert set(it) >= {"label", "version", "build", "free_threaded_build", "gil_enabled_at_start",
                       "gil_enabled_at_end", "executable", "task_constants_immortal"}
    assert it["build"] in ("free-threaded", "GIL")
    assert set(doc["settings"]) >= {"workers", "repeat", "size", "spin_per_ms", "budget_s"}
    for m in doc["measurements"]:
        assert set(m) >= MEASUREMENT_FIELDS, MEASUREMENT_FIELDS - set(m)
        assert isinstance(m["gil_enabled_after"], bool)
        if m["ok"]:
            assert m["error"] is None
            assert len(m["plain_s"]) == len(m["runner_s"]) >= 1
            assert m["runner_best_s"] == min(m["runner_s"]) > 0
            assert m["plain_best_s"] == min(m["plain_s"]) > 0
            assert m["ratio_best"] == pytest.approx(m["runner_best_s"] / m["plain_best_s"])
            assert m["speedup_best"] == pytest.approx(1 / m["ratio_best"])
        else:
            assert m["error"] and not m["runner_s"]


def test_bench_json_schema_and_table(tmp_path, capsys):
    out = tmp_path / "b.json"
    rc = bench.main(["--in-process", "--size", "tiny", "--workload", "chain", "fine", "--runner", "ftdag-sequential",
                     "ftdag-threads", "graphlib-threads", "--repeat", "2", "--spin-per-ms", str(SPIN), "--json", str(out)])
    assert rc == 0
    doc = json.loads(out.read_text())
    _check_document(doc)
    assert [(m["workload"], m["runner"]) for m in doc["measurements"]] == [
        (w, r) for w in ("chain", "fine") for r in ("ftdag-sequential", "ftdag-threads", "graphlib-threads")]
    assert all(m["ok"] for m in doc["measurements"])
    assert all(len(m["runner_s"]) == 2 for m in doc["measurements"])
    chain = doc["measurements"][0]
    assert chain["n_tasks"] == workloads.SIZES["tiny"]["chain"]["n"]
    assert chain["stats"]["backend"] == "sequential"
    printed = capsys.readouterr().out
    assert "| workload | runner | best | median | × plain (best)" in printed
    assert "| no-op chain 20 | plain |" in printed
    assert "| no-op chain 20 | ftdag-threads |" in printed
    assert "fine-grained 16x20us" in printed


def test_a_failing_runner_is_an_error_cell(tmp_path, capsys):
    wl = workloads.make("chain", "tiny", SPIN)
    rec = bench.measure(wl, "no-such-runner", workers=2, repeat=2)
    assert rec["ok"] is False and "no-such-runner" in rec["error"]
    doc = bench.new_document({"workers": 2, "repeat": 2, "size": "tiny", "spin_per_ms": SPIN, "budget_s": None})
    doc["interpreter"]["gil_enabled_at_end"] = runners.gil_enabled()
    doc["measurements"].append(rec)
    _check_document(doc)
    assert "| no-op chain 20 | no-such-runner | n/a: KeyError" in bench.table(doc)


def test_isolated_measurement_in_a_subprocess(tmp_path, capsys):
    """The default mode: one fresh subprocess per (workload, runner), results merged."""
    out = tmp_path / "iso.json"
    rc = bench.main(["--size", "tiny", "--workload", "heavy", "--runner", "ftdag-threads", "--repeat", "1",
                     "--spin-per-ms", str(SPIN), "--json", str(out)])
    assert rc == 0
    doc = json.loads(out.read_text())
    _check_document(doc)
    (m,) = doc["measurements"]
    assert m["ok"], m["error"]
    assert m["child"]["interpreter"]["executable"] and m["child"]["returncode"] == 0
    assert "[1/1]" in capsys.readouterr().err


def test_a_child_that_cannot_start_is_an_error_record(tmp_path):
    rec = bench.run_child(str(tmp_path / "no-python"), "chain", "ftdag-threads", size="tiny", workers=2, repeat=1,
                          budget=None, spin_per_ms=SPIN, timeout=30)
    assert rec["ok"] is False and "could not start" in rec["error"]
    assert set(rec) >= MEASUREMENT_FIELDS


def _fake_measurement(workload, interp, runner, plain, run, ok=True, gil=False):
    return {
        "workload": workload, "title": f"{workload} tiny", "description": "d", "interpreter": interp, "runner": runner,
        "ok": ok, "error": None if ok else "ModuleNotFoundError: nope", "plain_s": [plain] if ok else [plain],
        "runner_s": [run] if ok else [], "plain_best_s": plain, "plain_median_s": plain,
        "runner_best_s": run if ok else None, "runner_median_s": run if ok else None,
        "speedup_best": plain / run if ok else None, "gil_enabled_after": gil, "overhead_us_per_task": None,
    }


def test_compare_table_from_records():
    doc = {
        "interpreters": [{"label": "3.13", "ft": False}, {"label": "3.13t", "ft": True}],
        "settings": {"workloads": ["fine"]},
        "measurements": [
            _fake_measurement("fine", "3.13", "ftdag-threads", 1.0, 1.0, gil=True),
            _fake_measurement("fine", "3.13", "ftdag-processes", 1.0, None, ok=False, gil=True),
            _fake_measurement("fine", "3.13t", "ftdag-threads", 1.25, 0.5),
            _fake_measurement("fine", "3.13t", "dask-threaded", 1.25, 1.0, gil=True),
        ],
    }
    rows = compare.summarise(doc)
    by = {(r["interpreter"], r["runner"]): r for r in rows}
    assert by[("3.13", "plain")]["speedup_vs_gil"] == pytest.approx(1.0)
    assert by[("3.13t", "plain")]["speedup_vs_gil"] == pytest.approx(0.8)
    assert by[("3.13t", "ftdag-threads")]["speedup_same"] == pytest.approx(2.5)
    assert by[("3.13t", "ftdag-threads")]["speedup_vs_gil"] == pytest.approx(2.0)
    assert by[("3.13t", "dask-threaded")]["gil"] == "ON⚠"
    assert by[("3.13", "ftdag-processes")]["ok"] is False
    md = compare.markdown(doc, rows)
    assert "| fine tiny | 3.13t | ftdag-threads | 500.0 ms | 500.0 ms | 2.50× | **2.00×** | off |" in md
    assert "| fine tiny | 3.13 | ftdag-processes | n/a: ModuleNotFoundError: nope |" in md
    assert "**ON⚠**" in md
    assert "3.13t · ftdag-threads 2.00×" in compare.headline(doc, rows)


def test_background_load_counts_only_other_processes(monkeypatch):
    monkeypatch.setattr(os, "sysconf", lambda name: 100)  # clock ticks per second
    before = (1000, 0, {1: 10, 2: 5})
    after = (1300, 10, {1: 60, 3: 50})  # process 2 ended, 3 started: 50 + 50 ticks are ours
    load = bench.background_load(before, after, 1.0)
    assert load == {"background_cpus": 2.0, "steal_cpus": 0.1}
    assert bench.is_noisy(load)
    assert not bench.is_noisy({"background_cpus": 0.1, "steal_cpus": 0.0})
    assert bench.background_load(before, after, 0.05) == {"background_cpus": None, "steal_cpus": None}
    assert bench.background_load(None, after, 1.0)["background_cpus"] is None
    snap = bench.cpu_snapshot()
    if snap is not None:  # Linux
        assert os.getpid() in snap[2]


def test_breakeven_is_the_smallest_size_from_which_every_larger_one_is_faster():
    def rec(interp, runner, us, speedup):
        return {"interpreter": interp, "runner": runner, "task_us": us, "ok": speedup is not None,
                "speedup_best": speedup}

    sweep = [
        rec("3.13t", "ftdag-threads", 5, 0.8), rec("3.13t", "ftdag-threads", 10, 1.3),
        rec("3.13t", "ftdag-threads", 50, 1.9),
        rec("3.13", "ftdag-threads", 5, 0.7), rec("3.13", "ftdag-threads", 10, 1.2),  # a noisy blip
        rec("3.13", "ftdag-threads", 50, 1.01),  # within noise: not faster
        rec("3.13", "ftdag-processes", 5, None), rec("3.13", "ftdag-processes", 10, 1.5),
        rec("3.13", "ftdag-processes", 50, 1.8),
    ]
    rows = {(r["interpreter"], r["runner"]): r for r in compare.breakeven(sweep)}
    assert rows["3.13t", "ftdag-threads"]["breakeven_us"] == 10
    assert rows["3.13", "ftdag-threads"]["breakeven_us"] is None
    assert rows["3.13", "ftdag-processes"]["breakeven_us"] == 10
    text = compare.breakeven_markdown(list(rows.values()))
    assert "| 3.13t | ftdag-threads | 0.80× | 1.30× | 1.90× | 10 µs |" in text
    assert "never (up to 50 µs)" in text


def test_bench_param_overrides_a_workload_parameter():
    args = bench.parse_args(["--workload", "heavy", "--param", "n=8", "--param", "task_us=12.5"])
    assert args.param == {"n": 8, "task_us": 12.5}
    with pytest.raises(SystemExit):
        bench.parse_args(["--param", "n"])
