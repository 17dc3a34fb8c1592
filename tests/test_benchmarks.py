"""The benchmark harness (benchmarks/): every runner agrees with the plain loop on every workload,
bench.py's JSON has its documented schema, the records derive their numbers, the reference is
computed once, the reports format, and importing bench.py runs nothing.  Tiny sizes, no timing
assertions."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "benchmarks"
sys.path.insert(0, str(BENCH))

import bench  # noqa: E402
import compare  # noqa: E402
import measurement  # noqa: E402
import report  # noqa: E402
import runners  # noqa: E402
import smallgraph  # noqa: E402
import workloads  # noqa: E402
from environment import Interpreter, background_load, cpu_snapshot  # noqa: E402
from records import Measurement, Reference, SmallGraphResult, reference_interpreter  # noqa: E402

pytestmark = pytest.mark.timeout(120)

SPIN = 2000.0  # loop rounds per "ms": fixed, so that no test calibrates or depends on timing
PARALLEL = [r for r in runners.RUNNERS if r != "plain"]
FREE_THREADED = bool(__import__("sysconfig").get_config_var("Py_GIL_DISABLED"))


@pytest.fixture(autouse=True)
def _worker_paths(monkeypatch):
    """Worker processes started by spawn/forkserver import the task modules by name."""
    extra = [str(BENCH), str(REPO / "examples")]
    old = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(extra + old))


@pytest.mark.parametrize(
    "name, size",
    [(name, "tiny") for name in workloads.ALL_WORKLOADS]
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


def test_full_workloads_have_the_shapes_the_readme_table_names():
    """Built at full size, each workload is the graph its README row describes."""
    chain = workloads.make("chain", "full", SPIN)
    assert chain.n_tasks == 10_000
    # One chain: each task depends on the one before it (the first on a source).
    task_deps = [[d for d in deps if d in chain.tasks] for _, deps in (chain.tasks[k] for k in chain.order)]
    assert task_deps[0] == [] and all(ds == [prev] for ds, prev in zip(task_deps[1:], chain.order))
    heavy = workloads.make("heavy", "full", SPIN)
    assert heavy.n_tasks == 32 and heavy.params["task_us"] == 10_000
    assert all(not any(d in heavy.tasks for d in deps) for _, deps in heavy.tasks.values())  # independent
    fine = workloads.make("fine", "full", SPIN)
    leaves = [k for k, (_, deps) in fine.tasks.items() if not any(d in fine.tasks for d in deps)]
    assert len(leaves) == 4096 and fine.params["task_us"] == 50
    assert len(fine.outputs) == 1  # one reduction tree over the leaves


def test_small_graph_cases():
    diamond = workloads.make("diamond", "full", SPIN)
    assert (diamond.n_tasks, len(diamond.sources)) == (3, 1)
    assert [len(diamond.tasks[k][1]) for k in diamond.order] == [1, 1, 2]
    assert "diamond" not in workloads.WORKLOADS  # not a row of the comparison table
    d, c = smallgraph.CASES["diamond"], smallgraph.CASES["chain"]
    assert (d.runner, d.reference, d.target, d.runs, smallgraph.ROUNDS) == (
        "ftdag-threads", "ftdag-sequential", 2.0, 2000, 5)
    assert (c.runner, c.reference, c.target) == ("ftdag-threads", "plain", 1.2)
    assert workloads.make(c.workload, "full", SPIN).n_tasks == 10_000


def test_task_functions_pickle_by_reference():
    import pickle

    for name in workloads.ALL_WORKLOADS:
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
@pytest.mark.parametrize("name", workloads.ALL_WORKLOADS)
def test_runner_matches_plain_loop(name, runner):
    wl = workloads.make(name, "tiny", SPIN)
    expected = runners.run_plain(wl)
    r = runners.make_runner(runner, 2)
    try:
        r.prepare(wl)
        for _ in range(2):  # a second run reuses the runner's pools
            got = r.run(wl)
            runners.check_same(runner, got, expected)
            assert list(got) == list(wl.outputs)
        runners.check_same(runner, dict(r.call(wl)()), expected)  # the bare call the small-graph row times
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
    assert set(doc) >= {"schema", "date", "machine", "interpreter", "settings", "measurements", "small_graph"}
    assert isinstance(doc["machine"]["cpu_count"], int)
    it = doc["interpreter"]
    assert set(it) >= {"label", "version", "build", "free_threaded_build", "gil_enabled_at_start",
                       "gil_enabled_at_end", "executable", "task_constants_immortal"}
    assert it["build"] in ("free-threaded", "GIL")
    for m in doc["measurements"]:
        assert set(doc["settings"]) >= {"workers", "repeat", "size", "spin_per_ms", "budget_s"}
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
    assert Measurement.from_json(chain).to_json() == chain  # the typed record round-trips its JSON
    printed = capsys.readouterr().out
    assert "| workload | runner | best | median | × plain (best)" in printed
    assert "| no-op chain 20 | plain |" in printed
    assert "| no-op chain 20 | ftdag-threads |" in printed
    assert "fine-grained 16x20us" in printed


def test_a_failing_runner_is_an_error_cell():
    wl = workloads.make("chain", "tiny", SPIN)
    rec = bench.measure(wl, "no-such-runner", workers=2, repeat=2)
    assert rec.ok is False and "no-such-runner" in rec.error
    assert rec.ratio_best is None and rec.overhead_us_per_task is None
    doc = bench.new_document({"workers": 2, "repeat": 2, "size": "tiny", "spin_per_ms": SPIN, "budget_s": None})
    doc["interpreter"]["gil_enabled_at_end"] = runners.gil_enabled()
    doc["measurements"].append(rec)
    _check_document(json.loads(bench.to_json(doc)))
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
    rec = measurement.run_child(str(tmp_path / "no-python"), "chain", "ftdag-threads", size="tiny", workers=2,
                                repeat=1, budget=None, spin_per_ms=SPIN, timeout=30)
    assert rec.ok is False and "could not start" in rec.error
    assert set(rec.to_json()) >= MEASUREMENT_FIELDS
    sg = measurement.run_small_graph(str(tmp_path / "no-python"), "diamond", workers=2, timeout=30)
    assert sg.ok is False and "could not start" in sg.error and sg.title == "3-task diamond"


# -- importing bench.py runs nothing; running it compiles the task modules ----------------------


def _python(args: list[str], pycache: Path) -> str:
    """Run this interpreter as these machines do (PYTHONDONTWRITEBYTECODE=1), bytecode cache in ``pycache``."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONPYCACHEPREFIX=str(pycache))
    proc = subprocess.run([sys.executable, *args], cwd=BENCH, env=env, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_importing_bench_compiles_nothing(tmp_path):
    out = _python(["-c", "import sys, bench; print(sorted(m for m in ('workloads', 'runners', 'rollup') "
                   "if m in sys.modules))"], tmp_path / "pycache")
    assert out.strip() == "[]"  # no task module imported either (it would be compiled from source)
    assert not list(tmp_path.rglob("*.pyc"))


def test_running_bench_precompiles_its_task_modules(tmp_path):
    """Under PYTHONDONTWRITEBYTECODE=1 too: on 3.13t, task code compiled from source at import has
    mortal constants that threads contend on (see bench.precompile)."""
    pycache, out = tmp_path / "pycache", tmp_path / "b.json"
    _python([str(BENCH / "bench.py"), "--quiet", "--in-process", "--size", "tiny", "--workload", "chain",
             "--runner", "ftdag-sequential", "--repeat", "1", "--spin-per-ms", str(SPIN), "--json", str(out)], pycache)
    assert {p.name.split(".")[0] for p in pycache.rglob("*.pyc")} == {"workloads", "runners", "rollup"}
    assert json.loads(out.read_text())["interpreter"]["task_constants_immortal"] or not FREE_THREADED


# -- the typed records and the one reference ----------------------------------------------------


def test_a_measurement_record_derives_its_numbers():
    m = Measurement("chain", "ftdag-threads", True, n_tasks=1000, plain_s=(0.003, 0.002, 0.004),
                    runner_s=(0.006, 0.005, 0.004), background_cpus=0.2, steal_cpus=0.1)
    assert (m.plain_best_s, m.plain_median_s, m.runner_best_s, m.runner_median_s) == (0.002, 0.003, 0.004, 0.005)
    assert m.ratio_best == pytest.approx(2.0) and m.ratio_median == pytest.approx(5 / 3)
    assert m.speedup_best == pytest.approx(0.5)
    assert m.overhead_us_per_task == pytest.approx(2.0)
    assert m.load == pytest.approx(0.3) and m.noisy
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.ok = False
    again = Measurement.from_json(json.loads(json.dumps(m.to_json())))
    assert again == m
    failed = Measurement.failed("chain", "dask-threaded", "dask is not installed")
    assert (failed.ok, failed.speedup_best, failed.runner_best_s, failed.noisy) == (False, None, None, False)


def _interp(label: str) -> Interpreter:
    ft = label.endswith("t")
    return Interpreter(path=f"/py{label}", executable=f"/py{label}", version="3.13.5", major=3, minor=13, ft=ft)


def _m(workload, interp, runner, plain, run, ok=True, gil=False):
    return Measurement(workload, runner, ok, error=None if ok else "ModuleNotFoundError: nope",
                       title=f"{workload} tiny", description="d", plain_s=(plain,), runner_s=(run,) if ok else (),
                       gil_enabled_after=gil, interpreter=interp)


def test_the_reference_is_the_gil_builds_plain_loop_computed_once():
    ft, gil = _interp("3.13t"), _interp("3.13")
    assert reference_interpreter([ft, gil]) is gil
    assert reference_interpreter([ft]) is None
    ms = [_m("fine", "3.13", "ftdag-threads", 1.0, 1.0), _m("fine", "3.13", "dask-threaded", 0.8, 2.0),
          _m("fine", "3.13t", "ftdag-threads", 1.25, 0.5), _m("fine", "3.13t", "ftdag-processes", 1.5, 1.0)]
    ref = Reference.of([ft, gil], ms)
    assert (ref.gil_label, ref.label) == ("3.13", "3.13")
    assert ref.plain("fine", "3.13") == 0.8  # the best plain loop over every process that timed it
    assert ref.plain("fine", "3.13t") == 1.25
    assert ref.speedups(ms[2]) == (pytest.approx(2.5), pytest.approx(1.6))  # same process; GIL plain
    assert ref.plain_speedups("fine", "3.13t") == (1.0, pytest.approx(0.64))
    none = Reference.of([ft], ms[2:])
    assert (none.gil_label, none.label, none.speedups(ms[2])[1]) == (None, "GIL", None)
    c = _comparison([ft, gil], ms)
    doc = c.to_json()
    assert doc["reference"] == {"interpreter": "3.13", "label": "3.13"}
    assert [(i["label"], i["reference"]) for i in doc["interpreters"]] == [("3.13t", False), ("3.13", True)]
    assert {(r["interpreter"], r["runner"]): r["speedup_vs_gil"] for r in doc["summary"]}[
        ("3.13t", "ftdag-threads")] == pytest.approx(1.6)


def _comparison(interps, measurements, small_graph=(), sweep=()):
    settings = report.Settings(workers=2, size="tiny", repeat=1, budget_s=1.0, timeout_s=10, noisy_retries=0,
                               spin_per_ms=SPIN, calibrated_on="3.13", workloads=("fine",),
                               runners=("ftdag-threads",), sweep_work_us=200_000)
    machine = {"cpu_count": 2, "platform": "Linux", "machine": "x86_64"}
    return report.Comparison("quick", "2026-01-01T00:00:00+00:00", 1.0, machine, tuple(interps), settings,
                             tuple(measurements), tuple(small_graph), tuple(sweep))


def test_compare_table_from_records():
    ms = [
        _m("fine", "3.13", "ftdag-threads", 1.0, 1.0, gil=True),
        _m("fine", "3.13", "ftdag-processes", 1.0, None, ok=False, gil=True),
        _m("fine", "3.13t", "ftdag-threads", 1.25, 0.5),
        _m("fine", "3.13t", "dask-threaded", 1.25, 1.0, gil=True),
    ]
    c = _comparison([_interp("3.13"), _interp("3.13t")], ms)
    by = {(r.interpreter, r.runner): r for r in c.rows}
    assert by[("3.13", "plain")].speedup_vs_gil == pytest.approx(1.0)
    assert by[("3.13t", "plain")].speedup_vs_gil == pytest.approx(0.8)
    assert by[("3.13t", "ftdag-threads")].speedup_same == pytest.approx(2.5)
    assert by[("3.13t", "ftdag-threads")].speedup_vs_gil == pytest.approx(2.0)
    assert by[("3.13t", "dask-threaded")].gil == "ON⚠"
    assert by[("3.13", "ftdag-processes")].ok is False
    md = report.markdown(c.rows, c.reference)
    assert "| fine tiny | 3.13t | ftdag-threads | 500.0 ms | 500.0 ms | 2.50× | **2.00×** | off |" in md
    assert "| fine tiny | 3.13 | ftdag-processes | n/a: ModuleNotFoundError: nope |" in md
    assert "**ON⚠**" in md
    assert "3.13t · ftdag-threads 2.00×" in report.headline(c)
    text = report.markdown_report(c, chart=False)
    assert "× 3.13 plain" in text and "### Small graphs" not in text and report.CHART_LINK not in text


# -- the small-graph row -------------------------------------------------------------------------


def _sg(case, interp, runner_s, reference_s, ok=True):
    c = smallgraph.CASES[case]
    return smallgraph.record(c, ok=ok, error=None if ok else "RuntimeError: boom", runs=c.runs,
                             runner_medians_s=(runner_s * 1.1, runner_s) if ok else (),
                             reference_medians_s=(reference_s, reference_s * 1.2) if ok else (),
                             free_threaded_build=interp.endswith("t"), interpreter=interp)


def test_small_graph_row_in_the_report():
    results = [_sg("diamond", "3.13t", 30e-6, 20e-6), _sg("diamond", "3.13", 40e-6, 10e-6),
               _sg("chain", "3.13t", 3.0e-3, 2.0e-3), _sg("chain", "3.13", 0, 0, ok=False)]
    assert results[0].runner_s == 30e-6 and results[0].rounds == 2
    # Rounds (33, 20) and (30, 24): the median of the rounds' ratios, 1.65 and 1.25; the bests' ratio 30 / 20.
    assert results[0].ratio == pytest.approx(1.45) and results[0].meets_target is True
    assert results[0].best_ratio == pytest.approx(1.5)
    assert results[2].ratio == pytest.approx(1.45) and results[2].meets_target is False
    assert results[3].ratio is None and results[3].best_ratio is None
    text = report.small_graph_markdown(results)
    assert ("| graph | interpreter | ftdag threads | reference | threads / reference | target | ratio of the best "
            "times | runs × rounds |") in text
    assert "| 3-task diamond | 3.13t | 30 µs | ftdag-sequential 20 µs | 1.45× | ≤ 2×: met | 1.50× | 2000 × 2 |" in text
    assert "| 3-task diamond | 3.13 | 40 µs | ftdag-sequential 10 µs | 3.87× | (≤ 2× on free-threaded builds) |" in text
    assert "| no-op chain 10000 | 3.13t | 3.0 ms | plain 2.0 ms | 1.45× | ≤ 1.2×: missed | 1.50× | 50 × 2 |" in text
    assert "| no-op chain 10000 | 3.13 | n/a: RuntimeError: boom | plain |" in text
    c = _comparison([_interp("3.13"), _interp("3.13t")], [_m("fine", "3.13", "ftdag-threads", 1.0, 1.0)],
                    small_graph=results)
    assert text in report.markdown_report(c, chart=True)
    doc = json.loads(json.dumps(c.to_json()))
    first = doc["small_graph"][0]
    assert (first["case"], first["interpreter"], first["ratio"], first["target"], first["meets_target"]) == (
        "diamond", "3.13t", pytest.approx(1.45), 2.0, True)
    assert first["best_ratio"] == pytest.approx(1.5)
    assert SmallGraphResult.from_json(first) == results[0]


def test_the_small_graph_ratio_pairs_the_blocks_of_a_round():
    """A machine in a slow phase for most rounds: the reference caught a fast one in one round, the
    runner in none.  The ratio of the best times pairs two phases; the rounds' median ratio does not."""
    c = smallgraph.CASES["diamond"]
    r = smallgraph.record(c, ok=True, runner_medians_s=(52.9e-6, 52.6e-6, 54.0e-6, 55.1e-6, 54.5e-6),
                          reference_medians_s=(29.4e-6, 14.7e-6, 30.2e-6, 30.4e-6, 29.7e-6), free_threaded_build=True)
    assert r.best_ratio == pytest.approx(52.6 / 14.7)
    assert r.ratio == pytest.approx(55.1 / 30.4) and r.meets_target is True  # the median of 1.80, 3.58, 1.79, 1.81, 1.84


@pytest.mark.parametrize("case", smallgraph.CASES)
def test_small_graph_case_in_process(case):
    r = smallgraph.measure(smallgraph.CASES[case], workers=2, rounds=2, runs=3)
    assert r.ok, r.error
    assert (r.case, r.runs, r.rounds, r.free_threaded_build) == (case, 3, 2, FREE_THREADED)
    assert len(r.reference_medians_s) == 2 and r.ratio > 0
    assert r.gil_enabled_after is (not FREE_THREADED)


def test_small_graph_case_in_a_subprocess():
    r = measurement.run_small_graph(sys.executable, "diamond", workers=2, rounds=2, runs=5, timeout=60)
    assert r.ok, r.error
    assert (r.title, r.runner, r.reference, r.runs, r.rounds) == ("3-task diamond", "ftdag-threads",
                                                                  "ftdag-sequential", 5, 2)


# -- noise, sweep, options -----------------------------------------------------------------------


def test_background_load_counts_only_other_processes():
    hz = os.sysconf("SC_CLK_TCK")
    before = (10 * hz, 0, {1: hz // 10, 2: hz // 20})
    after = (13 * hz, hz // 10, {1: hz * 6 // 10, 3: hz // 2})  # 2 ended, 3 started: hz / 2 + hz / 2 are ours
    load = background_load(before, after, 1.0)
    assert load == {"background_cpus": 2.0, "steal_cpus": 0.1}
    assert Measurement("w", "r", True, **load).noisy
    assert not Measurement("w", "r", True, background_cpus=0.1, steal_cpus=0.0).noisy
    assert background_load(before, after, 0.05) == {"background_cpus": None, "steal_cpus": None}
    assert background_load(None, after, 1.0)["background_cpus"] is None
    snap = cpu_snapshot()
    if snap is not None:  # Linux
        assert os.getpid() in snap[2]


def test_breakeven_is_the_smallest_size_from_which_every_larger_one_is_faster():
    def point(interp, runner, us, speedup):
        ok = speedup is not None
        return Measurement("heavy", runner, ok, params={"n": 64, "task_us": us}, plain_s=(1.0,),
                           runner_s=(1.0 / speedup,) if ok else (), interpreter=interp)

    sweep = [
        point("3.13t", "ftdag-threads", 5, 0.8), point("3.13t", "ftdag-threads", 10, 1.3),
        point("3.13t", "ftdag-threads", 50, 1.9),
        point("3.13", "ftdag-threads", 5, 0.7), point("3.13", "ftdag-threads", 10, 1.2),  # a noisy blip
        point("3.13", "ftdag-threads", 50, 1.01),  # within noise: not faster
        point("3.13", "ftdag-processes", 5, None), point("3.13", "ftdag-processes", 10, 1.5),
        point("3.13", "ftdag-processes", 50, 1.8),
    ]
    rows = {(r.interpreter, r.runner): r for r in report.breakeven(sweep)}
    assert rows["3.13t", "ftdag-threads"].breakeven_us == 10
    assert rows["3.13", "ftdag-threads"].breakeven_us is None
    assert rows["3.13", "ftdag-processes"].breakeven_us == 10
    text = report.breakeven_markdown(list(rows.values()), 200_000)
    assert "| 3.13t | ftdag-threads | 0.80× | 1.30× | 1.90× | 10 µs |" in text
    assert "never (up to 50 µs)" in text
    assert "about 200 ms of work" in text


def test_bench_param_overrides_a_workload_parameter():
    args = bench.parse_args(["--workload", "heavy", "--param", "n=8", "--param", "task_us=12.5"])
    assert args.param == {"n": 8, "task_us": 12.5}
    with pytest.raises(SystemExit):
        bench.parse_args(["--param", "n"])


def test_compare_keeps_its_command_line():
    args = compare.parse_args(["--full", "--workers", "3", "--workload", "chain", "--runner", "ftdag-threads",
                               "--interpreter", "3.13t", "--no-chart", "--no-sweep", "--repeat", "2"])
    assert (args.full, args.workers, args.workload, args.runner, args.interpreter) == (
        True, 3, ["chain"], ["ftdag-threads"], ["3.13t"])
    assert (args.no_chart, args.no_sweep, args.repeat, args.out) == (True, True, 2, None)
    assert compare.parse_args([]).workload == list(workloads.WORKLOADS)


# -- ab.py: two versions of ftdag in one process ------------------------------------------------


def _ab(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCH / "ab.py"), *args], cwd=REPO, capture_output=True, text=True,
                          timeout=90, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("base", ["HEAD", "checkout"])
def test_ab_times_a_base_version_beside_this_checkout(tmp_path, base):
    """A git revision, or a directory holding src/ftdag, is imported as ftdag_base beside this
    checkout's ftdag; both run the diamond, their results checked, and each round gives a ratio."""
    out = tmp_path / "ab.json"
    given = str(REPO) if base == "checkout" else base
    proc = _ab(given, "--rounds", "2", "--runs", "3", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    assert doc["base"] == given and (doc["rounds"], doc["runs"], doc["workers"]) == (2, 3, 2)
    assert len(doc["ratios_a"]) == len(doc["ratios_b"]) == 2 and all(r > 0 for r in doc["ratios_a"] + doc["ratios_b"])
    assert doc["b_over_a"] > 0 and "B over A, median per round" in proc.stdout


def test_ab_random_graph_runs_each_version_in_its_own_processes(tmp_path):
    """--graph random: per-round ratios of one thread run and one sequential run, measured in
    child processes of each version, alternating."""
    out = tmp_path / "ab.json"
    proc = _ab("HEAD", "--graph", "random", "--nodes", "300", "--processes", "2", "--rounds", "2", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    assert (doc["graph"], doc["nodes"], doc["processes"], doc["rounds"]) == ("random", 300, 2, 2)
    assert len(doc["medians_a"]) == len(doc["medians_b"]) == 2 and doc["ratio_a"] > 0 and doc["ratio_b"] > 0
    assert abs(doc["b_over_a"] - doc["ratio_b"] / doc["ratio_a"]) < 1e-9 and "B over A" in proc.stdout


def test_ab_names_a_base_it_cannot_use():
    proc = _ab("no-such-revision", "--rounds", "1")
    assert proc.returncode != 0 and "'no-such-revision' is neither a directory with src/ftdag nor a git revision" in proc.stderr
